//! Folded == unfolded: random timm-style checkpoints with non-trivial LayerNorm γ/β are folded,
//! run by the runtime's CPU backend, and compared with the unfolded f64 reference forward of
//! `common` at every exit (f32 storage: max |Δlogit| ≤ 1e-5). Each case also runs the f64
//! folded forward of `common` on the file, so a failure says whether the file or the runtime's
//! kernels are wrong (f32 storage: the file alone must agree to 1e-6).

mod common;

use common::*;
use tinv::format::{parse, DType};
use tinv_fold::{fold, Checkpoint, ConfigSpec, FoldOptions};

const TOL_F32: f64 = 1e-5;

fn fold_bytes(ck_bytes: Vec<u8>, flags: ConfigSpec, opts: &FoldOptions) -> Vec<u8> {
    let ck = Checkpoint::parse(ck_bytes).expect("checkpoint parses");
    let (_, w) = fold(&ck, None, flags, opts, &mut |_| {}).expect("fold succeeds");
    w.to_bytes()
}

/// Compares every path on `images` random images; returns the largest |Δ| of the runtime
/// against the unfolded reference, after checking the file itself (f64 folded forward) to
/// `file_tol`.
fn compare(
    t: &Tensors,
    spec: &Spec,
    file: &[u8],
    depths: &[usize],
    images: u64,
    file_tol: f64,
) -> f64 {
    let (mut worst, mut worst_file) = (0.0f64, 0.0f64);
    for seed in 0..images {
        let x = random_image(spec, 1000 + seed);
        for &d in depths {
            let want = reference_forward(t, spec, &x, d);
            let folded = folded_forward(file, &x, d);
            worst_file = worst_file.max(max_abs_diff64(&folded, &want));
            let got = runtime_logits(file, &x, d);
            // Logits must be non-trivial for the comparison to mean anything.
            assert!(
                want.iter().any(|v| v.abs() > 0.1),
                "degenerate logits {want:?}"
            );
            worst = worst.max(max_abs_diff(&got, &want));
        }
    }
    eprintln!("folded file (f64 folded forward) vs unfolded: max |Δlogit| = {worst_file:.3e}");
    assert!(
        worst_file <= file_tol,
        "the folded FILE is wrong: max |Δ| {worst_file:e}"
    );
    worst
}

#[test]
fn multi_exit_model_with_controller_matches_unfolded_reference() {
    let spec = Spec::small();
    let mut t = random_checkpoint(&spec, 1);
    add_controller(&mut t, &spec, 3, 2);
    let json = spec
        .config_json(&[1, 3, 4])
        .replace('}', r#", "controller": {"default_budget": 0.25}}"#);
    let bytes = safetensors_bytes(&t, Src::F32, &[("tinv.config", &json)]);
    let file = fold_bytes(bytes, ConfigSpec::default(), &FoldOptions::default());
    let worst = compare(&t, &spec, &file, &[1, 3, 4], 3, 1e-6);
    eprintln!("multi-exit + controller: max |Δlogit| = {worst:.3e}");
    assert!(worst <= TOL_F32, "max |Δlogit| {worst:e} > {TOL_F32:e}");
}

#[test]
fn variants_without_qkv_bias_tanh_gelu_one_channel_and_half_sources_match() {
    let spec = Spec {
        channels: 1,
        image_h: 12,
        image_w: 12,
        patch: 3,
        dim: 16,
        heads: 4,
        blocks: 3,
        mlp: 24,
        classes: 5,
        exits: vec![2],
        qkv_bias: false,
        eps: 1e-5,
        tanh_gelu: true,
        mean: vec![0.3],
        std: vec![0.4],
    };
    for src in [Src::F32, Src::F16, Src::BF16] {
        // The reference sees exactly the values the checkpoint can hold.
        let t = round_to(&random_checkpoint(&spec, 7), src);
        let bytes = safetensors_bytes(&t, src, &[]);
        // No metadata: heads, normalization, ε and GELU from flags; the image size is inferred
        // from the square pos_embed grid and the paths from the exits present.
        let flags = ConfigSpec {
            heads: Some(4),
            ln_eps: Some(1e-5),
            gelu: Some(tinv::model::Gelu::Tanh),
            mean: Some(vec![0.3]),
            std: Some(vec![0.4]),
            ..ConfigSpec::default()
        };
        let file = fold_bytes(bytes, flags, &FoldOptions::default());
        let cfg = tinv::Model::from_bytes(&file, &Default::default())
            .expect("opens")
            .config()
            .clone();
        assert_eq!((cfg.image_h, cfg.image_w), (12, 12));
        assert_eq!(cfg.depths, vec![2, 3]);
        let worst = compare(&t, &spec, &file, &[2, 3], 2, 1e-6);
        eprintln!("{src:?} source, no qkv bias, tanh: max |Δlogit| = {worst:.3e}");
        assert!(
            worst <= TOL_F32,
            "{src:?}: max |Δlogit| {worst:e} > {TOL_F32:e}"
        );
    }
}

#[test]
fn f16_storage_keeps_vectors_f32_and_stays_close() {
    let spec = Spec::small();
    let t = random_checkpoint(&spec, 3);
    let json = spec.config_json(&[1, 3, 4]);
    let bytes = safetensors_bytes(&t, Src::F32, &[("tinv.config", &json)]);
    let opts = FoldOptions {
        matrix_dtype: DType::F16,
        ..FoldOptions::default()
    };
    let file = fold_bytes(bytes, ConfigSpec::default(), &opts);
    let index = parse(&file).expect("valid file");
    for ti in &index.tensors {
        let matrix = ti.name.ends_with(".weight");
        let want = if matrix { DType::F16 } else { DType::F32 };
        assert_eq!(ti.dtype, want, "{}", ti.name);
    }
    // f16 rounds each weight by up to 2^-11 relative; over these widths that moves logits of
    // magnitude ~1 by well under 1e-2, while a wrong fold moves them by O(1).
    let worst = compare(&t, &spec, &file, &[1, 3, 4], 2, 1e-2);
    eprintln!("f16 storage: max |Δlogit| = {worst:.3e}");
    assert!(worst <= 1e-2, "f16: max |Δlogit| {worst:e}");
}

#[test]
fn depths_flag_selects_a_subset_of_the_exits() {
    let spec = Spec::small();
    let t = random_checkpoint(&spec, 5);
    let bytes = safetensors_bytes(&t, Src::F32, &[]);
    let flags = ConfigSpec {
        heads: Some(spec.heads),
        image_size: Some((spec.image_h, spec.image_w)),
        depths: Some(vec![3, 4]),
        ..ConfigSpec::default()
    };
    let mut notes = Vec::new();
    let ck = Checkpoint::parse(bytes).expect("parses");
    let (cfg, w) = fold(&ck, None, flags, &FoldOptions::default(), &mut |m| {
        notes.push(m.to_string())
    })
    .expect("folds");
    assert_eq!(cfg.depths, vec![3, 4]);
    assert!(
        notes.iter().any(|n| n.contains("skipping exits.1.")),
        "{notes:?}"
    );
    let file = w.to_bytes();
    let index = parse(&file).expect("valid");
    assert!(index.tensor("exit.1.head.weight").is_none());
    let worst = compare(&t, &spec, &file, &[3, 4], 2, 1e-6);
    assert!(worst <= TOL_F32, "max |Δlogit| {worst:e}");
}

/// The reference's own erf against published values (Abramowitz & Stegun table 7.1, and
/// erf(5) = 1 − 1.5375e-12), to 1e-12: far below the f32 noise of the comparisons it serves.
#[test]
fn reference_erf_matches_published_values() {
    for (x, want) in [
        (0.0, 0.0),
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (3.5, 0.999_999_256_901_627_7),
        (5.0, 0.999_999_999_998_462_5),
        (-1.0, -0.842_700_792_949_714_9),
    ] {
        assert!(
            (erf(x) - want).abs() < 1e-12,
            "erf({x}) = {} vs {want}",
            erf(x)
        );
    }
}
