//! The written file against docs/FORMAT.md: tensor order, 256-byte alignment, a fresh page
//! before every block and exit head, metadata (producer, source hash, configuration, defaults),
//! controller tensors transposed to `[in, out]`.

mod common;

use common::*;
use tinv::format::{parse, MetaValue};
use tinv_fold::{fold, Checkpoint, ConfigSpec, FoldOptions};

/// FNV-1a 64, written out here from the format page rather than taken from the library.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// `tinv.source_hash` as tools/fold/README.md defines it, for an F32 checkpoint: FNV-1a 64 of
/// "safetensors-content.v1", "tinv.config" and its value, then each tensor in name order (name,
/// "F32", rank, dims, byte count, bytes); strings end in a 0 byte, numbers are u64 LE.
fn source_hash(t: &Tensors, config: &str) -> u64 {
    let mut b: Vec<u8> = Vec::new();
    let text = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    };
    text(&mut b, "safetensors-content.v1");
    text(&mut b, "tinv.config");
    text(&mut b, config);
    for (name, (shape, vals)) in t {
        text(&mut b, name);
        text(&mut b, "F32");
        b.extend_from_slice(&(shape.len() as u64).to_le_bytes());
        for &d in shape {
            b.extend_from_slice(&(d as u64).to_le_bytes());
        }
        b.extend_from_slice(&(4 * vals.len() as u64).to_le_bytes());
        for v in vals {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    fnv(&b)
}

fn config_json() -> String {
    Spec::small().config_json(&[1, 3, 4]).replace(
        '}',
        r#", "controller": {"features": "tinv.features.v1", "default_budget": 0.25}}"#,
    )
}

fn small_with_controller() -> Tensors {
    let spec = Spec::small();
    let mut t = random_checkpoint(&spec, 11);
    add_controller(&mut t, &spec, 3, 12);
    t
}

fn fold_bytes(ck_bytes: Vec<u8>) -> Vec<u8> {
    let ck = Checkpoint::parse(ck_bytes).expect("parses");
    let (_, w) = fold(
        &ck,
        None,
        ConfigSpec::default(),
        &FoldOptions::default(),
        &mut |_| {},
    )
    .expect("folds");
    w.to_bytes()
}

fn folded_with_controller() -> (Tensors, Vec<u8>) {
    let t = small_with_controller();
    let file = fold_bytes(safetensors_bytes(
        &t,
        Src::F32,
        &[("tinv.config", &config_json())],
    ));
    (t, file)
}

#[test]
fn order_alignment_and_pages_follow_the_format() {
    let (_, file) = folded_with_controller();
    let index = parse(&file).expect("valid");
    let mut want: Vec<String> = Vec::new();
    for net in ["pred", "policy"] {
        for l in ["fc1", "fc2"] {
            want.push(format!("ctrl.{net}.{l}.weight"));
            want.push(format!("ctrl.{net}.{l}.bias"));
        }
    }
    for n in ["wx", "wh", "b", "out.weight", "out.bias"] {
        want.push(format!("ctrl.exit.{n}"));
    }
    for n in ["patch.weight", "patch.bias", "cls", "pos"] {
        want.push(format!("stem.{n}"));
    }
    for i in 0..4 {
        for n in ["qkv", "proj", "fc1", "fc2"] {
            want.push(format!("blk.{i}.{n}.weight"));
            want.push(format!("blk.{i}.{n}.bias"));
        }
        if [1, 3, 4].contains(&(i + 1)) {
            want.push(format!("exit.{}.head.weight", i + 1));
            want.push(format!("exit.{}.head.bias", i + 1));
        }
    }
    let got: Vec<String> = index.tensors.iter().map(|t| t.name.clone()).collect();
    assert_eq!(got, want);

    assert_eq!(index.data_offset % 4096, 0);
    for t in &index.tensors {
        assert_eq!(
            (t.offset - index.data_offset) % 256,
            0,
            "{} not 256-aligned",
            t.name
        );
        let starts_unit = t.name.ends_with("qkv.weight") || t.name.ends_with("head.weight");
        if starts_unit {
            assert_eq!(t.offset % 4096, 0, "{} does not start a page", t.name);
        }
    }
    // A path's tensors are a prefix: everything path 1 reads ends before blk.1's page.
    let blk1 = index.tensor("blk.1.qkv.weight").expect("blk.1").offset;
    let exit1 = index.tensor("exit.1.head.bias").expect("exit.1");
    assert!(exit1.offset + exit1.nbytes <= blk1);
    // The runtime accepts it and checksums verify.
    tinv::Model::from_bytes(&file, &tinv::OpenOptions::default().verify(true))
        .expect("opens + verifies");
}

#[test]
fn metadata_has_producer_source_hash_and_config() {
    let (t, file) = folded_with_controller();
    let m = parse(&file).expect("valid").meta;
    assert_eq!(
        m.str("tinv.producer"),
        Some(format!("tinv-fold {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert_eq!(
        m.str("tinv.source_hash"),
        Some(format!("fnv1a64:{:016x}", source_hash(&t, &config_json())).as_str())
    );
    assert!(m.u64("tinv.content_hash").is_some());
    let spec = Spec::small();
    assert_eq!(m.u64s("vit.image_size"), Some(&[16u64, 12][..]));
    assert_eq!(m.u64("vit.heads"), Some(3));
    assert_eq!(m.u64("vit.dim"), Some(24));
    assert_eq!(m.u64("vit.mlp_hidden"), Some(40));
    assert_eq!(m.u64("vit.classes"), Some(7));
    assert_eq!(m.u64s("paths.depths"), Some(&[1u64, 3, 4][..]));
    assert_eq!(m.str("vit.gelu"), Some("erf"));
    assert!((m.f64("vit.ln_eps").expect("eps") - 1e-6).abs() < 1e-12);
    let mean = m.f64s("vit.mean").expect("mean");
    assert!(mean
        .iter()
        .zip(&spec.mean)
        .all(|(a, b)| (a - b).abs() < 1e-6));
    assert_eq!(m.str("ctrl.features"), Some("tinv.features.v1"));
    assert_eq!(m.get("ctrl.default_budget"), Some(&MetaValue::F64(0.25)));
}

/// A re-run of the same training folds to the same bytes although the trainer's run log (wall
/// clock times) differs; a changed weight or configuration changes the source hash.
#[test]
fn the_source_hash_covers_what_folding_reads_and_nothing_else() {
    let t = small_with_controller();
    let json = config_json();
    let with_log =
        |log: &str| safetensors_bytes(&t, Src::F32, &[("tinv.config", &json), ("tinv.train", log)]);
    let a = with_log(r#"{"seconds": 6298.1}"#);
    let b = with_log(r#"{"seconds": 6301.7}"#);
    assert_ne!(a, b);
    let folded = fold_bytes(a);
    assert_eq!(folded, fold_bytes(b));
    let hash = |file: &[u8]| {
        parse(file)
            .expect("valid")
            .meta
            .str("tinv.source_hash")
            .expect("hash")
            .to_string()
    };
    let mut t2 = t.clone();
    t2.get_mut("head.bias").expect("head").1[0] += 1.0;
    let changed = fold_bytes(safetensors_bytes(&t2, Src::F32, &[("tinv.config", &json)]));
    assert_ne!(hash(&changed), hash(&folded));
    let other_budget = json.replace("0.25", "0.5");
    let rebudgeted = fold_bytes(safetensors_bytes(
        &t,
        Src::F32,
        &[("tinv.config", &other_budget)],
    ));
    assert_ne!(hash(&rebudgeted), hash(&folded));
}

/// `vit.ln_eps`, `vit.mean`, `vit.std` and `ctrl.default_budget` are f64 in the format: they
/// hold the values as given, not the f32 the runtime narrows them to widened back (1e-6 was
/// written as 9.999999974752427e-7, 0.485 as 0.48500001430511475).
#[test]
fn metadata_keeps_real_values_as_given() {
    let spec = Spec::small();
    let mut t = random_checkpoint(&spec, 11);
    add_controller(&mut t, &spec, 3, 12);
    let meta_of = |json: &str, flags: ConfigSpec| {
        let ck_bytes = safetensors_bytes(&t, Src::F32, &[("tinv.config", json)]);
        let ck = Checkpoint::parse(ck_bytes).expect("parses");
        let (cfg, w) = fold(&ck, None, flags, &FoldOptions::default(), &mut |_| {}).expect("folds");
        (cfg, parse(&w.to_bytes()).expect("valid").meta)
    };
    // From the checkpoint's `tinv.config`, including an f32 widened to f64 earlier, which must
    // come back unchanged (it did not without serde_json's float_roundtrip).
    let json = spec.config_json(&[1, 3, 4]).replace(
        '}',
        r#", "controller": {"default_budget": 0.029999999329447746}}"#,
    );
    let (cfg, m) = meta_of(&json, ConfigSpec::default());
    assert_eq!(m.get("vit.ln_eps"), Some(&MetaValue::F64(1e-6)));
    assert_eq!(m.f64s("vit.mean"), Some(&[0.485, 0.456, 0.406][..]));
    assert_eq!(m.f64s("vit.std"), Some(&[0.229, 0.224, 0.225][..]));
    assert_eq!(
        m.get("ctrl.default_budget"),
        Some(&MetaValue::F64(0.029999999329447746))
    );
    // The configuration the runtime sees is the f32 narrowing of the same values.
    assert_eq!(cfg.ln_eps, 1e-6f32);
    assert_eq!(cfg.mean, [0.485f32, 0.456, 0.406]);
    assert_eq!(cfg.controller.expect("controller").default_budget, 0.03f32);
    // From flags, and the defaults (ε, ImageNet normalization for 3 channels).
    let json = r#"{"heads": 3, "image_size": [16, 12], "controller": {"default_budget": 0.5}}"#;
    let flags = ConfigSpec {
        ln_eps: Some(1e-5),
        mean: Some(vec![0.1, 0.2, 0.3]),
        std: Some(vec![0.7, 0.8, 0.9]),
        default_budget: Some(0.03),
        ..ConfigSpec::default()
    };
    let (_, m) = meta_of(json, flags);
    assert_eq!(m.get("vit.ln_eps"), Some(&MetaValue::F64(1e-5)));
    assert_eq!(m.f64s("vit.mean"), Some(&[0.1, 0.2, 0.3][..]));
    assert_eq!(m.f64s("vit.std"), Some(&[0.7, 0.8, 0.9][..]));
    assert_eq!(m.get("ctrl.default_budget"), Some(&MetaValue::F64(0.03)));
    let (_, m) = meta_of(json, ConfigSpec::default());
    assert_eq!(m.get("vit.ln_eps"), Some(&MetaValue::F64(1e-6)));
    assert_eq!(m.f64s("vit.mean"), Some(&[0.485, 0.456, 0.406][..]));
    assert_eq!(m.f64s("vit.std"), Some(&[0.229, 0.224, 0.225][..]));
}

#[test]
fn controller_weights_are_transposed_to_in_out() {
    let (t, file) = folded_with_controller();
    let index = parse(&file).expect("valid");
    let read = |name: &str| -> (Vec<usize>, Vec<f32>) {
        let ti = index.tensor(name).expect(name);
        let v = file[ti.offset..ti.offset + ti.nbytes]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (ti.shape.clone(), v)
    };
    for name in [
        "ctrl.pred.fc1.weight",
        "ctrl.pred.fc2.weight",
        "ctrl.policy.fc1.weight",
        "ctrl.policy.fc2.weight",
        "ctrl.exit.wx",
        "ctrl.exit.wh",
        "ctrl.exit.out.weight",
    ] {
        let (src_shape, src) = &t[name];
        let (shape, got) = read(name);
        let (o, i) = (src_shape[0], src_shape[1]);
        assert_eq!(shape, vec![i, o], "{name}");
        for r in 0..o {
            for c in 0..i {
                assert_eq!(got[c * o + r], src[r * i + c], "{name}[{c}][{r}]");
            }
        }
    }
    assert_eq!(read("ctrl.exit.b").1, t["ctrl.exit.b"].1);
}

#[test]
fn plain_rgb_checkpoint_gets_timm_defaults() {
    let spec = Spec {
        exits: vec![],
        ..Spec::small()
    };
    let t = random_checkpoint(&spec, 4);
    let ck = Checkpoint::parse(safetensors_bytes(&t, Src::F32, &[])).expect("parses");
    let flags = ConfigSpec {
        heads: Some(3),
        image_size: Some((16, 12)),
        ..ConfigSpec::default()
    };
    let (cfg, _) = fold(&ck, None, flags, &FoldOptions::default(), &mut |_| {}).expect("folds");
    assert_eq!(cfg.depths, vec![4]);
    assert_eq!(cfg.ln_eps, 1e-6);
    assert_eq!(cfg.gelu, tinv::model::Gelu::Erf);
    assert_eq!(cfg.mean, vec![0.485, 0.456, 0.406]);
    assert_eq!(cfg.std, vec![0.229, 0.224, 0.225]);
    assert!(cfg.controller.is_none());
    assert_eq!(
        (cfg.patch, cfg.dim, cfg.blocks, cfg.mlp_hidden, cfg.classes),
        (4, 24, 4, 40, 7)
    );
}

#[test]
fn device_section_holds_f16_copies_of_the_gemm_weights_after_the_host_tensors() {
    let spec = Spec::small();
    let t = random_checkpoint(&spec, 21);
    let json = spec.config_json(&[1, 3, 4]);
    let ck = Checkpoint::parse(safetensors_bytes(&t, Src::F32, &[("tinv.config", &json)]))
        .expect("parses");
    let opts = FoldOptions {
        device: true,
        ..FoldOptions::default()
    };
    let (_, w) = fold(&ck, None, ConfigSpec::default(), &opts, &mut |_| {}).expect("folds");
    let file = w.to_bytes();
    let index = parse(&file).expect("valid");
    let host: Vec<_> = index.tensors.iter().filter(|t| t.flags & 1 == 0).collect();
    let dev: Vec<_> = index.tensors.iter().filter(|t| t.flags & 1 == 1).collect();
    let gemm: Vec<&str> = host
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| n.ends_with(".weight"))
        .collect();
    assert_eq!(
        gemm.len(),
        1 + 4 * 4 + 3,
        "stem + 4 per block + 3 exit heads"
    );
    let dev_names: Vec<String> = dev.iter().map(|t| t.name.clone()).collect();
    let want: Vec<String> = gemm.iter().map(|n| format!("dev.{n}")).collect();
    assert_eq!(dev_names, want);
    let last_host = host
        .iter()
        .map(|t| t.offset + t.nbytes)
        .max()
        .expect("host tensors");
    assert!(dev[0].offset >= last_host && dev[0].offset % 4096 == 0);
    let f32s = |ti: &tinv::format::TensorInfo| -> Vec<f32> {
        file[ti.offset..ti.offset + ti.nbytes]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    for d in &dev {
        assert_eq!(d.dtype, tinv::format::DType::F16, "{}", d.name);
        let h = index.tensor(&d.name[4..]).expect("host twin");
        assert_eq!(d.shape, h.shape, "{}", d.name);
        let got: Vec<u16> = file[d.offset..d.offset + d.nbytes]
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        let want: Vec<u16> = f32s(h)
            .iter()
            .map(|v| half::f16::from_f32(*v).to_bits())
            .collect();
        assert_eq!(got, want, "{}", d.name);
    }
    // The CPU backend ignores the section: same logits as without it.
    let (_, plain) = fold(
        &ck,
        None,
        ConfigSpec::default(),
        &FoldOptions::default(),
        &mut |_| {},
    )
    .expect("folds");
    let x = random_image(&spec, 5);
    assert_eq!(
        runtime_logits(&file, &x, 4),
        runtime_logits(&plain.to_bytes(), &x, 4)
    );
}
