//! What the `tinv-train` command-line tests (cli_*.rs) share: the binary, a scratch folder per
//! test, a tiny crafted IDX dataset (8×8 images, 4 classes, so each training run takes well under
//! a second), the arguments of a tiny `fit`, and running the binary to success or to one
//! `error: …` line.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_tinv-train");

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinv-train-cli-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `n` 8×8 images with labels 0..4 (`train` and `t10k`) in `dir` (created).
pub fn dataset(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let images: Vec<u8> = (0..n * 64).map(|i| (i * 37 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
    for p in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{p}-images-idx3-ubyte")),
            tinv::idx::encode(&[n, 8, 8], &images).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{p}-labels-idx1-ubyte")),
            tinv::idx::encode(&[n], &labels).unwrap(),
        )
        .unwrap();
    }
}

/// Applies `edit` to the training labels in `dir` (the IDX file's values, after its header).
pub fn edit_train_labels(dir: &Path, edit: impl FnOnce(&mut [u8])) {
    let f = dir.join("train-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&f).unwrap();
    edit(&mut bytes[8..]);
    std::fs::write(&f, bytes).unwrap();
}

/// Runs the binary; returns (success, stderr).
pub fn run(args: &[&str]) -> (bool, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs and expects exactly one clean error line containing every one of `want`.
pub fn fails(args: &[&str], want: &[&str]) {
    let o = Command::new(BIN).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("error: "), "{args:?}: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{args:?}: {err}"
    );
    for w in want {
        assert!(last.contains(w), "{args:?}: wanted '{w}' in: {last}");
    }
}

/// Tiny `fit` arguments on `data`, writing `out`; `extra` flag/value pairs replace the defaults
/// or are appended.
pub fn fit<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "fit",
        "--data",
        data,
        "--out",
        out,
        "--patch",
        "4",
        "--dim",
        "8",
        "--heads",
        "2",
        "--mlp-hidden",
        "16",
        "--blocks",
        "2",
        "--depths",
        "1,2",
        "--batch",
        "16",
        "--val",
        "40",
        "--epochs",
        "1",
        "--shift",
        "1",
        "--log-every",
        "0",
    ];
    for pair in extra.chunks(2) {
        match v.iter().position(|x| *x == pair[0]) {
            Some(i) => v[i + 1] = pair[1],
            None => v.extend_from_slice(pair),
        }
    }
    v
}

/// A scratch folder `name` holding a 120-image dataset in `d/`, and that dataset's path.
pub fn tiny_data(name: &str) -> (PathBuf, String) {
    let dir = tmp(name);
    dataset(&dir.join("d"), 120);
    let data = dir.join("d").to_str().unwrap().to_string();
    (dir, data)
}

/// `controller` on checkpoint `ck` in place, one short PPO iteration; it must succeed.
pub fn quick_controller(ck: &str, data: &str) {
    let (ok, err) = run(&[
        "controller",
        ck,
        "--data",
        data,
        "--iters",
        "1",
        "--episodes",
        "8",
    ]);
    assert!(ok, "{err}");
}
