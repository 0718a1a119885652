//! Input that used to be accepted silently or to do damage: non-finite weights, folded values
//! that overflow their storage, safetensors data that is not exactly tiled by the tensors,
//! widths inferred from a mis-shaped tensor, a budget without a controller, and outputs that would
//! destroy the checkpoint.

mod common;

use common::*;
use tinv::format::DType;
use tinv_fold::{fold, Checkpoint, ConfigSpec, FoldError, FoldOptions};

fn flags() -> ConfigSpec {
    ConfigSpec {
        heads: Some(3),
        image_size: Some((16, 12)),
        ..ConfigSpec::default()
    }
}

/// Folds `bytes` with `flags()` and `opts`.
fn fold_with(bytes: Vec<u8>, opts: &FoldOptions) -> Result<(), FoldError> {
    let ck = Checkpoint::parse(bytes).expect("container is fine");
    fold(&ck, None, flags(), opts, &mut |_| {}).map(|_| ())
}

fn set(t: &mut Tensors, name: &str, index: usize, value: f32) {
    t.get_mut(name).expect("tensor exists").1[index] = value;
}

#[test]
fn non_finite_weights_are_refused_with_tensor_and_element() {
    for (name, index, value, src, shown) in [
        ("blocks.1.attn.qkv.weight", 5, f32::NAN, Src::F32, "NaN"),
        ("pos_embed", 0, f32::INFINITY, Src::F32, "inf"),
        ("exits.1.head.bias", 2, f32::NEG_INFINITY, Src::F16, "-inf"),
        ("norm.weight", 7, f32::NAN, Src::BF16, "NaN"),
    ] {
        let mut t = random_checkpoint(&Spec::small(), 1);
        set(&mut t, name, index, value);
        let e = fold_with(safetensors_bytes(&t, src, &[]), &FoldOptions::default())
            .expect_err("non-finite weight accepted");
        assert!(
            matches!(&e, FoldError::NonFinite { name: n, index: i, .. } if n == name && *i == index),
            "{e:?}"
        );
        let s = one_line(&e);
        assert!(s.contains(&format!("'{name}'")) && s.contains(shown), "{s}");
    }
}

#[test]
fn folded_values_that_overflow_their_storage_are_refused() {
    let f16 = FoldOptions {
        matrix_dtype: DType::F16,
        device: false,
    };
    let device = FoldOptions {
        matrix_dtype: DType::F32,
        device: true,
    };
    // γ·W = 9e76 is finite in the sources but not in f32.
    let mut t = random_checkpoint(&Spec::small(), 1);
    set(&mut t, "blocks.0.norm1.weight", 0, 3e38);
    set(&mut t, "blocks.0.attn.qkv.weight", 0, 3e38);
    let e = fold_with(
        safetensors_bytes(&t, Src::F32, &[]),
        &FoldOptions::default(),
    )
    .expect_err("f32 overflow accepted");
    assert!(
        matches!(&e, FoldError::Overflow { name, index: 0, storage: "f32" } if name == "blk.0.qkv.weight"),
        "{e:?}"
    );
    // 1e5 fits f32 but not f16 (largest finite 65504): fine as f32, refused as f16 storage and
    // in the device copy.
    let mut t = random_checkpoint(&Spec::small(), 1);
    set(&mut t, "blocks.2.mlp.fc2.weight", 0, 1e5);
    let bytes = safetensors_bytes(&t, Src::F32, &[]);
    fold_with(bytes.clone(), &FoldOptions::default()).expect("fits f32");
    for (opts, tensor) in [
        (&f16, "blk.2.fc2.weight"),
        (&device, "dev.blk.2.fc2.weight"),
    ] {
        let e = fold_with(bytes.clone(), opts).expect_err("f16 overflow accepted");
        assert!(
            matches!(&e, FoldError::Overflow { name, index: 0, storage: "f16" } if name == tensor),
            "{e:?}"
        );
        assert!(one_line(&e).contains(&format!("'{tensor}'")), "{e}");
    }
    // 65504 itself is the largest f16: stored, not refused.
    let mut t = random_checkpoint(&Spec::small(), 1);
    set(&mut t, "blocks.2.mlp.fc2.weight", 0, 65504.0);
    fold_with(safetensors_bytes(&t, Src::F32, &[]), &f16).expect("65504 fits f16");
}

#[test]
fn data_not_tiled_by_the_tensors_is_refused() {
    let two = |a: [u64; 2], b: [u64; 2]| {
        format!(
            r#"{{"a": {{"dtype": "F32", "shape": [2], "data_offsets": {a:?}}}, "b": {{"dtype": "F32", "shape": [2], "data_offsets": {b:?}}}}}"#
        )
    };
    // Exactly tiled: accepted.
    Checkpoint::parse(with_header(&two([0, 8], [8, 16]), 16)).expect("tiled");
    let e = container_err(with_header(&two([0, 8], [8, 16]), 20));
    assert!(e.contains("4 bytes after the last tensor"), "{e}");
    let e = container_err(with_header(&two([0, 8], [12, 20]), 20));
    assert!(e.contains("[8, 12)") && e.contains("'b'"), "{e}");
    let e = container_err(with_header(&two([4, 12], [12, 20]), 20));
    assert!(e.contains("[0, 4)") && e.contains("'a'"), "{e}");
    // A duplicated name: JSON keeps the last entry, whose bytes then leave a hole.
    let dup = r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}"#;
    let e = container_err(with_header(dup, 16));
    assert!(e.contains("[0, 8)"), "{e}");
    // A real checkpoint with 10 bytes appended.
    let mut b = safetensors_bytes(&random_checkpoint(&Spec::small(), 1), Src::F32, &[]);
    b.extend_from_slice(&[0; 10]);
    assert!(container_err(b).contains("10 bytes after the last tensor"));
}

#[test]
fn inferred_widths_come_from_correctly_oriented_tensors() {
    // A head stored [in, out] used to set classes = 24 and then report "expected [24, 24]".
    let mut t = random_checkpoint(&Spec::small(), 1);
    let (_, v) = t.remove("head.weight").expect("head");
    t.insert("head.weight".into(), (vec![24, 7], v));
    let s = one_line(&fold_err(&t, flags()));
    assert!(
        s.contains("'head.weight' has shape [24, 7], expected [_, 24]"),
        "{s}"
    );
    let mut t = random_checkpoint(&Spec::small(), 1);
    let (_, v) = t.remove("blocks.0.mlp.fc1.weight").expect("fc1");
    t.insert("blocks.0.mlp.fc1.weight".into(), (vec![24, 40], v));
    let s = one_line(&fold_err(&t, flags()));
    assert!(s.contains("expected [_, 24]"), "{s}");
    // The token count is free in the shape check: shown as `_`, not 0.
    let mut t = random_checkpoint(&Spec::small(), 1);
    let (_, v) = t.remove("pos_embed").expect("pos");
    t.insert("pos_embed".into(), (vec![13, 24], v));
    let s = one_line(&fold_err(&t, flags()));
    assert!(
        s.contains("'pos_embed' has shape [13, 24], expected [1, _, 24]"),
        "{s}"
    );
}

#[test]
fn block_index_at_the_integer_limit_is_an_error_not_a_panic() {
    let mut t = random_checkpoint(&Spec::small(), 1);
    t.insert(
        format!("blocks.{}.norm1.weight", usize::MAX),
        (vec![24], vec![1.0; 24]),
    );
    one_line(&fold_err(&t, flags()));
}

#[test]
fn budget_without_controller_is_refused() {
    let t = random_checkpoint(&Spec::small(), 1);
    let e = fold_err(
        &t,
        ConfigSpec {
            default_budget: Some(0.5),
            ..flags()
        },
    );
    let s = one_line(&e);
    assert!(
        s.contains("'ctrl.pred.fc1.weight'") && s.contains("--budget"),
        "{s}"
    );
}

#[test]
fn cli_never_overwrites_the_checkpoint_and_rejects_switch_values() {
    let dir = common::test_dir("fold-refusals");
    std::fs::create_dir_all(&dir).expect("tmp");
    let bytes = safetensors_bytes(&random_checkpoint(&Spec::small(), 1), Src::F32, &[]);
    let ck = dir.join("m.safetensors");
    std::fs::write(&ck, &bytes).expect("write");
    let as_tinv = dir.join("m.tinv"); // the default output of this input is itself
    std::fs::write(&as_tinv, &bytes).expect("write");
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).expect("dir");
    let p = |x: &std::path::Path| x.to_str().expect("utf-8 path").to_string();
    let (ck_s, tinv_s, sub_s) = (p(&ck), p(&as_tinv), p(&sub));
    let dotted = format!("{}/./m.safetensors", p(&dir));
    let base = ["--heads", "3", "--image-size", "16x12"];
    for (args, needle) in [
        (
            vec![ck_s.as_str(), "-o", ck_s.as_str()],
            "is the checkpoint itself",
        ),
        (
            vec![ck_s.as_str(), "-o", dotted.as_str()],
            "is the checkpoint itself",
        ),
        (vec![tinv_s.as_str()], "is the checkpoint itself"),
        (vec![ck_s.as_str(), "-o", sub_s.as_str()], "is a directory"),
        (vec![ck_s.as_str(), "--device=0"], "--device takes no value"),
        (vec![ck_s.as_str(), "--quiet=yes"], "--quiet takes no value"),
    ] {
        let args: Vec<&str> = args.iter().copied().chain(base).collect();
        let (code, _, err) = cli(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {err}");
        assert!(errors[0].contains(needle), "{args:?}: {}", errors[0]);
    }
    assert_eq!(std::fs::read(&ck).expect("still there"), bytes);
    assert_eq!(std::fs::read(&as_tinv).expect("still there"), bytes);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        left.len(),
        3,
        "no temporary or output left behind: {left:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
