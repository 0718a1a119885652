//! Models and images that several `tinv-run` test files write.
#![allow(dead_code)] // each test file uses some of them

use super::cli_support::run;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tinv::format::DType;
use tinv::{synth, Model, OpenOptions, Session, SessionOptions};

/// A model of one path (depth 2) and no controller, as a plain timm ViT folds to.
pub fn one_path_model(dir: &Path) -> PathBuf {
    let cfg = synth::config(8, 1, 4, 16, 2, 2, 3, &[2], false);
    let path = dir.join("one.tinv");
    std::fs::write(&path, synth::random_model(&cfg, 4, DType::F32)).unwrap();
    path
}

/// A 1-channel 8×8 model with a controller, and a PGM image of it.
pub fn fixture(dir: &Path) -> (PathBuf, tinv::Config) {
    let cfg = synth::tiny(3, true);
    let path = dir.join("m.tinv");
    std::fs::write(&path, synth::random_model(&cfg, 9, DType::F32)).unwrap();
    (path, cfg)
}

/// An 8-bit binary PGM of `w` × `h` pixels `px`, with a comment in its header.
pub fn write_pgm(path: &Path, w: usize, h: usize, px: &[u8]) {
    let mut b = format!("P5\n# test\n{w} {h}\n255\n").into_bytes();
    b.extend_from_slice(px);
    std::fs::write(path, b).unwrap();
}

/// `tinv-run classify --depth 2 --json` of `img` with `model`, which must succeed: its stdout.
pub fn classify_json(model: &Path, img: &Path) -> String {
    let (code, out, err) = run(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--depth",
        "2",
        "--json",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    out
}

/// `tinv-run args` under `ulimit -v kib` (the memory of a small device): exit code and stderr.
pub fn run_limited(kib: u64, args: &[&std::ffi::OsStr]) -> (i32, String) {
    let o = Command::new("sh")
        .args(["-c", &format!("ulimit -v {kib} && exec \"$0\" \"$@\"")])
        .arg(env!("CARGO_BIN_EXE_tinv-run"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `tinv-run eval --json` of `model` on the IDX files `images` and `labels`.
pub fn eval_json(model: &Path, images: &Path, labels: &Path) -> (i32, String, String) {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (m, i, l) = (s(model), s(images), s(labels));
    run(&[
        "eval", "--model", &m, "--images", &i, "--labels", &l, "--json",
    ])
}

/// The library's depth-2 logits of input `x` (CHW floats) on `model`.
pub fn library_logits(model: &Path, x: &[f32]) -> Vec<f32> {
    let model = Arc::new(Model::open(model, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let mut logits = vec![0f32; model.config().classes];
    s.infer_depth(x, 1, 2, &mut logits).unwrap();
    logits
}
