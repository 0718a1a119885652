//! `tinv-run bench` on a one-path model reports no path-switch cost (it panicked), and the
//! TensorRT commands (`build`, `selftest`) say what is missing on a machine without TensorRT.

#[path = "common/cli.rs"]
#[allow(dead_code)] // `assert_failed_with` and `field` are for the other cli_*.rs
mod cli_support;
#[path = "common/cli_fixtures.rs"]
mod fixtures;

use cli_support::{assert_one_line_error, run, tmp};
use fixtures::{fixture, one_path_model};

/// A one-path model (a plain timm ViT folds to one) has no path switch to time: `bench` says so
/// (JSON `switch_us` null) instead of indexing an empty list, which panicked.
#[test]
fn bench_on_a_one_path_model_reports_no_switch_cost() {
    let dir = tmp("bench-one-path");
    let path = one_path_model(&dir);
    let m = path.to_str().unwrap();
    let (code, out, err) = run(&["bench", "--model", m, "--iters", "2", "--warmup", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("path switch  none (the model has one path)"),
        "{out}"
    );
    let (code, out, err) = run(&[
        "bench", "--model", m, "--iters", "2", "--warmup", "0", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"switch_us\":null"), "{out}");
}

#[test]
fn tensorrt_commands_explain_what_is_missing() {
    let dir = tmp("trt");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    // No TensorRT here: without the feature the binary says how to get it; with it, the shim
    // (no headers at build time) or the engines (never built) are named.
    let (code, _, err) = run(&["build", "--model", m]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("TensorRT"), "{err}");
    let (code, _, err) = run(&["selftest", "--model", m]);
    assert_eq!(code, 1);
    assert!(
        err.contains("TensorRT") || err.contains("tinv-run build"),
        "{err}"
    );
    // With TensorRT support the bad layout is named before anything is loaded.
    let want = if cfg!(feature = "tensorrt") {
        "--layout diagonal: expected per-path or segments"
    } else {
        "TensorRT"
    };
    assert_one_line_error(&["build", "--model", m, "--layout", "diagonal"], want);
    if cfg!(feature = "tensorrt") {
        assert_one_line_error(
            &["build", "--model", m, "--fp16", "--fp32"],
            "--fp16 and --fp32 exclude each other",
        );
    }
    for cmd in ["build", "selftest"] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("USAGE"));
    }
}
