//! timm parity: the checkpoint in tests/fixtures/timm-vit was written by timm itself, with
//! timm's own logits for four PNG inputs in expected.json. Fold it, run each image at full depth
//! through the runtime, and match timm (max |Δ| ≤ 1e-4). The unfolded reference forward of
//! `common` is held to the same bar, which validates the reference used by the other tests.

mod common;

use common::*;
use std::path::PathBuf;
use tinv_fold::{fold, Checkpoint, ConfigSpec, FoldOptions};

const TOL: f64 = 1e-4;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/timm-vit")
}

/// Decodes an 8-bit RGB PNG to CHW floats x/255.
fn load_png(path: &std::path::Path) -> (usize, usize, Vec<f32>) {
    let f = std::fs::File::open(path).expect("png opens");
    let mut reader = png::Decoder::new(f).read_info().expect("png header");
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut chw = vec![0.0f32; 3 * h * w];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                chw[c * h * w + y * w + x] = f32::from(buf[y * info.line_size + x * 3 + c]) / 255.0;
            }
        }
    }
    (h, w, chw)
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn folded_timm_checkpoint_matches_timm_logits() {
    let dir = fixture();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).expect("json"))
            .expect("expected.json parses");
    let kw = &expected["kwargs"];
    let heads = kw["num_heads"].as_u64().expect("num_heads") as usize;
    let img = kw["img_size"].as_u64().expect("img_size") as usize;
    let mean = floats(&expected["preprocess"]["mean"]);
    let std = floats(&expected["preprocess"]["std"]);

    let ck_bytes = std::fs::read(dir.join("model.safetensors")).expect("checkpoint");
    let ck = Checkpoint::parse(ck_bytes.clone()).expect("parses");
    // Only what timm's constructor was told and tensors cannot show: heads and preprocessing.
    let flags = ConfigSpec {
        heads: Some(heads),
        mean: Some(mean.clone()),
        std: Some(std.clone()),
        ..ConfigSpec::default()
    };
    let (cfg, w) = fold(&ck, None, flags, &FoldOptions::default(), &mut |_| {}).expect("folds");
    assert_eq!(
        (cfg.image_h, cfg.image_w),
        (img, img),
        "image size inferred from pos_embed"
    );
    assert_eq!(
        cfg.depths,
        vec![cfg.blocks],
        "a plain timm ViT folds to one full-depth path"
    );
    let file = w.to_bytes();

    // The reference forward reads the checkpoint as timm names it.
    let tensors: Tensors = ck
        .tensors()
        .iter()
        .map(|(n, t)| (n.clone(), (t.shape.clone(), ck.f32(n).expect("tensor"))))
        .collect();
    let spec = Spec {
        channels: 3,
        image_h: img,
        image_w: img,
        patch: cfg.patch,
        dim: cfg.dim,
        heads,
        blocks: cfg.blocks,
        mlp: cfg.mlp_hidden,
        classes: cfg.classes,
        exits: vec![],
        qkv_bias: true,
        eps: 1e-6,
        tanh_gelu: false,
        mean,
        std,
    };

    let cases = expected["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    let (mut worst_rt, mut worst_ref) = (0.0f64, 0.0f64);
    for case in cases {
        let name = case["image"].as_str().expect("image name");
        let want = floats(&case["logits"]);
        let (h, w, x) = load_png(&dir.join(name));
        assert_eq!((h, w), (img, img));
        let got = runtime_logits(&file, &x, cfg.blocks);
        let d_rt = max_abs_diff(&got, &want);
        let d_ref = max_abs_diff64(&reference_forward(&tensors, &spec, &x, cfg.blocks), &want);
        eprintln!("{name}: runtime |Δ| = {d_rt:.3e}, unfolded reference |Δ| = {d_ref:.3e}");
        worst_rt = worst_rt.max(d_rt);
        worst_ref = worst_ref.max(d_ref);
    }
    eprintln!("timm parity: runtime max |Δ| = {worst_rt:.3e}, reference max |Δ| = {worst_ref:.3e}");
    assert!(
        worst_ref <= TOL,
        "unfolded reference vs timm: {worst_ref:e}"
    );
    assert!(worst_rt <= TOL, "folded runtime vs timm: {worst_rt:e}");
}

#[test]
fn folded_timm_checkpoint_in_f16_stays_near_timm() {
    let dir = fixture();
    let ck = Checkpoint::parse(std::fs::read(dir.join("model.safetensors")).expect("read"))
        .expect("parses");
    let flags = ConfigSpec {
        heads: Some(3),
        ..ConfigSpec::default()
    };
    let opts = FoldOptions {
        matrix_dtype: tinv::format::DType::F16,
        ..FoldOptions::default()
    };
    let (cfg, w) = fold(&ck, None, flags, &opts, &mut |_| {}).expect("folds");
    let file = w.to_bytes();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).expect("json"))
            .expect("parses");
    let case = &expected["cases"][0];
    let (_, _, x) = load_png(&dir.join(case["image"].as_str().expect("name")));
    let got = runtime_logits(&file, &x, cfg.blocks);
    let d = max_abs_diff(&got, &floats(&case["logits"]));
    eprintln!("timm parity, f16 storage: |Δ| = {d:.3e}");
    // Rounding every matrix to f16 (2^-11 relative) moves these logits (|ℓ| ≲ 0.6) by ~1e-4
    // (measured 1.3e-4); a folding error moves them by ~0.1 or more.
    assert!(d <= 1e-3, "f16 vs timm: {d:e}");
}

/// The whole pipeline as a user runs it: the `tinv-fold` binary writes the file, the runtime
/// memory-maps it (`Model::open`, checksums verified) and matches timm.
#[test]
fn cli_folded_file_matches_timm_logits() {
    let dir = fixture();
    let out = std::env::temp_dir().join(format!("tinv-fold-timm-{}.tinv", std::process::id()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tinv-fold"))
        .arg(dir.join("model.safetensors"))
        .args(["--heads", "3", "-q", "-o"])
        .arg(&out)
        .status()
        .expect("runs");
    assert!(status.success());
    let model = tinv::Model::open(&out, &tinv::OpenOptions::default().verify(true)).expect("opens");
    let mut sess =
        tinv::Session::new(std::sync::Arc::new(model), Default::default()).expect("session");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).expect("json"))
            .expect("parses");
    let mut worst = 0.0f64;
    for case in expected["cases"].as_array().expect("cases") {
        let (_, _, x) = load_png(&dir.join(case["image"].as_str().expect("name")));
        let mut logits = vec![0.0f32; 10];
        sess.infer_depth(&x, 1, 4, &mut logits).expect("infers");
        worst = worst.max(max_abs_diff(&logits, &floats(&case["logits"])));
    }
    std::fs::remove_file(&out).ok();
    eprintln!("timm parity via the CLI and Model::open: max |Δ| = {worst:.3e}");
    assert!(worst <= TOL, "{worst:e}");
}
