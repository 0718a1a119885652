//! End-to-end smoke test of the harness on tiny inputs: a synthetic Fashion-MNIST-shaped model
//! with a controller and a fake IDX test set; checks that every runtime row, the targets table,
//! the accuracy sweep (with its oracle point) and the plots come out. Needs a venv with
//! onnxruntime (`$TINV_VENV`, else `.venv` at the repo root); prints SKIP without one.

use std::path::{Path, PathBuf};
use std::process::Command;
use tinv::format::DType;

mod common;

/// The harness on the Fashion-MNIST-shaped case in `dir` (written by `common::fmnist_case`),
/// without ViT-Tiny, with the venv and `dir/out` for its scratch.
fn harness(dir: &Path, venv: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tinv-bench"));
    for (flag, file) in [
        ("--fmnist", "fm.tinv"),
        ("--images", "images.idx"),
        ("--labels", "labels.idx"),
    ] {
        c.arg(flag).arg(dir.join(file));
    }
    c.arg("--no-vit-tiny")
        .arg("--venv")
        .arg(venv)
        .arg("--out")
        .arg(dir.join("out"));
    c
}

/// Runs the harness on a Fashion-MNIST-shaped case (with a controller or not) in a fresh folder
/// `tinv-bench-<name>-<pid>`, `--threads threads`, and checks that it succeeded. Returns the
/// folder, the report and stderr.
fn bench(venv: &Path, name: &str, controller: bool, threads: &str) -> (PathBuf, String, String) {
    let dir = std::env::temp_dir().join(format!("tinv-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    common::fmnist_case(&dir, controller);
    let report = dir.join("RESULTS.md");
    let out = harness(&dir, venv)
        .args(["--runs", "5", "--warmup", "1", "--threads", threads])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let md = std::fs::read_to_string(&report).unwrap();
    (dir, md, stderr)
}

#[test]
fn harness_runs_and_writes_the_report() {
    let Some(venv) = common::venv() else {
        eprintln!(
            "SKIP harness_runs_and_writes_the_report: no venv with onnxruntime (set TINV_VENV)"
        );
        return;
    };
    let (dir, md, stderr) = bench(&venv, "smoke", true, "1,2");
    // The model has a controller; the interleaved tinv/ORT child and the block profile are the
    // ViT-Tiny case's only.
    assert!(!stderr.contains("no controller"), "{stderr}");
    assert!(!stderr.contains("tinv/ort"), "{stderr}");
    assert!(!md.contains("## Where the time goes"), "{md}");
    // Odd rounds (by index from 0) run the children in reverse order: round 2 starts with
    // round 1's last.
    let children = |round: &str| -> Vec<String> {
        stderr
            .split(&format!("round {round}/3\n"))
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| l.starts_with("  "))
            .map(|l| l.split(" thread(s)").next().unwrap().to_string())
            .collect()
    };
    let (first, second) = (children("1"), children("2"));
    assert_eq!(first.len(), 6, "{stderr}");
    // Round 1 (even: index 0) in the listed order, which starts at 1 thread with tinv.
    assert_eq!(
        first[0],
        format!("  {:8} {:14} 1", "fmnist", "tinv"),
        "{stderr}"
    );
    assert_eq!(
        second,
        first.iter().rev().cloned().collect::<Vec<_>>(),
        "{stderr}"
    );
    assert_eq!(children("3"), first, "{stderr}");
    for t in [1, 2] {
        for rt in ["tinv", "tinv-adaptive", "ort"] {
            assert!(
                md.contains(&format!("| {rt} | {t} | ")),
                "no row {rt}/{t}:\n{md}"
            );
        }
    }
    // The adaptive rows time every one of the 20 test images, more than --runs 5.
    assert!(
        md.contains("5 timed runs per row (20 for the tinv-adaptive rows"),
        "{md}"
    );
    assert!(
        md.contains("Effective GFLOP/s = mean FLOPs per inference ÷ mean latency"),
        "{md}"
    );
    // ONNX Runtime gets native LayerNormalization, which it fuses (the decomposed form it cannot
    // fuse made it ~14 % slower); the decomposed graph is written only for tract.
    let graph = std::fs::read(dir.join("out/fmnist.path.full.onnx")).unwrap();
    assert!(
        graph
            .windows(b"LayerNormalization".len())
            .any(|w| w == b"LayerNormalization"),
        "the ORT graph has no LayerNormalization node"
    );
    assert!(
        md.contains("native LayerNormalization (`--ln native`, which ONNX Runtime fuses)"),
        "{md}"
    );
    assert!(md.contains("| oracle (shallowest correct exit) |"), "{md}");
    assert!(md.contains("| controller (adaptive), λ = 0.075 |"), "{md}");
    assert!(md.contains("| controller (adaptive), λ = 1 |"), "{md}");
    assert!(md.contains("| threshold baseline, τ = 0.95 |"), "{md}");
    assert!(md.contains("memory increase tinv / ORT"), "{md}");
    // Every row timed --runs 5 inferences after its warm-up, the adaptive ones each of the 20
    // images once; the medians of three rounds of whole counts are those counts.
    let raw = std::fs::read_to_string(dir.join("out/results.txt")).unwrap();
    assert_eq!(raw.lines().count(), 6, "{raw}");
    for l in raw.lines() {
        let runs = if l.contains(" tinv-adaptive ") { 20 } else { 5 };
        assert!(l.contains(&format!(" runs={runs} ")), "{l}");
    }
    // The interleaved measurement (both runtimes in one process, alternating blocks of 10) that
    // the ViT-Tiny latency target uses, here on the same case: 25 runs of each are 3 blocks.
    let child = harness(&dir, &venv)
        .args(["--runs", "25", "--warmup", "1"])
        .args(["--child", "tinv/ort", "fmnist", "1"])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&child.stdout).into_owned();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let kv = |k: &str| -> f64 {
        let at = line
            .find(&format!(" {k}="))
            .unwrap_or_else(|| panic!("{k} in {line}"));
        line[at + k.len() + 2..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {line}"))
    };
    assert!(line.starts_with("RESULT ratio="), "{line}");
    assert_eq!((kv("blocks"), kv("block")), (3.0, 10.0), "{line}");
    // Each block times 10 inferences of each runtime (after its untimed ones).
    assert_eq!((kv("tinv_runs"), kv("ort_runs")), (30.0, 30.0), "{line}");
    assert!(kv("tinv_p50_us") > 0.0 && kv("ort_p50_us") > 0.0, "{line}");
    assert!(kv("ratio").is_finite() && kv("ratio") > 0.0, "{line}");
    for svg in [
        "fmnist-latency-per-path.svg",
        "fmnist-accuracy-vs-flops.svg",
    ] {
        let s = std::fs::read_to_string(dir.join("results").join(svg)).unwrap();
        assert!(s.starts_with("<svg") && s.contains("</svg>"), "{svg}");
    }
    if std::env::var_os("TINV_BENCH_KEEP").is_none() {
        std::fs::remove_dir_all(&dir).ok();
    } else {
        eprintln!("kept {}", dir.display());
    }
}

/// Without ONNX Runtime there is no peer to measure: the harness stops with one `error:` line
/// naming the venv it searched, and writes no report. Needs no venv.
#[test]
fn missing_venv_is_a_clear_error_and_writes_no_report() {
    let dir = std::env::temp_dir().join(format!("tinv-bench-novenv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let venv = dir.join("no-such-venv");
    let report = dir.join("RESULTS.md");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tinv-bench"))
            .args(["--no-vit-tiny", "--venv"])
            .arg(&venv)
            .arg("--out")
            .arg(dir.join("out"))
            .arg("--report")
            .arg(&report)
            .args(extra)
            .output()
            .unwrap()
    };
    let cfg = tinv::synth::config(28, 1, 7, 32, 4, 2, 10, &[2, 4], true);
    let model = dir.join("fm.tinv");
    std::fs::write(&model, tinv::synth::random_model(&cfg, 3, DType::F32)).unwrap();
    let out = run(&["--fmnist", model.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: no libonnxruntime.so in the venv")
            && stderr.contains(&*venv.to_string_lossy()),
        "{stderr}"
    );
    // An --ort-lib that does not exist is named too.
    let lib = dir.join("libonnxruntime.so");
    let out = run(&[
        "--fmnist",
        model.to_str().unwrap(),
        "--ort-lib",
        lib.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--ort-lib") && stderr.contains("no such file"),
        "{stderr}"
    );
    // Bad thread lists are refused before anything runs.
    let out = run(&["--threads", "0,1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--threads: bad value '0'"), "{stderr}");
    assert!(!report.exists(), "a report was written");
    std::fs::remove_dir_all(&dir).ok();
}

/// A model without a controller gets no `tinv-adaptive` rows: adaptive mode would run it at full
/// depth, the `tinv` row again under another name. One stderr line says so.
#[test]
fn a_model_without_controller_has_no_adaptive_rows() {
    let Some(venv) = common::venv() else {
        eprintln!("SKIP a_model_without_controller_has_no_adaptive_rows: no venv (set TINV_VENV)");
        return;
    };
    let (dir, md, stderr) = bench(&venv, "noctrl", false, "1");
    assert!(
        stderr.contains("no controller, so no tinv-adaptive rows"),
        "{stderr}"
    );
    assert!(
        md.contains("| tinv | 1 | ") && md.contains("| ort | 1 | "),
        "{md}"
    );
    assert!(!md.contains("| tinv-adaptive |"), "{md}");
    // The header counts the full-depth rows' runs only.
    assert!(md.contains("then 5 timed runs per row, each"), "{md}");
    std::fs::remove_dir_all(&dir).ok();
}
