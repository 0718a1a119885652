//! The measuring commands. `tinv-run bench`: what it reports of every path, and no path-switch
//! cost on a one-path model (it panicked); `tinv-run soak`: its windows and summary; the TensorRT
//! commands (`build`, `selftest`) say what is missing on a machine without TensorRT.

#[path = "common/cli.rs"]
#[allow(dead_code)] // `assert_failed_with` is for the other cli_*.rs
mod cli_support;
#[path = "common/cli_fixtures.rs"]
mod fixtures;

use cli_support::{assert_one_line_error, field, num, run, tmp};
use fixtures::{fixture, one_path_model};
use std::sync::Arc;
use tinv::{Backend, Model, OpenOptions, Session, SessionOptions};

/// The text inside the JSON array `key` of `obj` (an array without nested arrays).
fn array<'a>(obj: &'a str, key: &str) -> &'a str {
    let at = obj
        .find(&format!("\"{key}\":["))
        .unwrap_or_else(|| panic!("no {key}: {obj}"));
    let rest = &obj[at + key.len() + 4..];
    &rest[..rest.find(']').unwrap()]
}

/// The objects of the JSON array `key` in `out` (objects without nested objects).
fn objects<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    array(out, key).split("},{").collect()
}

/// The numbers of the JSON array `key` in `obj`.
fn ints(obj: &str, key: &str) -> Vec<u64> {
    array(obj, key)
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect()
}

/// `bench` on a two-path model at batch 2: a row per path in order, whose FLOPs are the
/// library's cost of that path times the batch and whose GFLOP/s are those FLOPs over its p50;
/// a switch cost; the four weight GEMMs at the model's shapes and this batch; the arena a CPU
/// session of batch 2 allocates. The text report carries the same FLOPs, shapes and arena.
#[test]
fn bench_reports_every_path_its_flops_the_gemm_shapes_and_the_arena() {
    let dir = tmp("bench-paths");
    let (path, cfg) = fixture(&dir);
    let m = path.to_str().unwrap();
    let args = [
        "bench", "--model", m, "--iters", "4", "--warmup", "1", "--batch", "2",
    ];
    let (code, out, err) = run(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let model = Arc::new(Model::open(&path, &OpenOptions::default()).unwrap());
    let flops: Vec<u64> = model.costs().iter().map(|c| 2 * c.backbone_flops).collect();
    let rows = objects(&out, "paths");
    assert_eq!(rows.len(), cfg.depths.len(), "{out}");
    for ((row, &d), &f) in rows.iter().zip(&cfg.depths).zip(&flops) {
        assert_eq!(field(row, "depth"), d.to_string(), "{out}");
        assert_eq!(field(row, "flops"), f.to_string(), "{out}");
        let (p50, p99) = (num(row, "p50_us"), num(row, "p99_us"));
        assert!(p50 > 0.0 && p50 <= p99, "{row}");
        let g = num(row, "gflops");
        assert!((g - f as f64 / p50 / 1e3).abs() <= 1e-9 * g, "{row}");
    }
    assert!(num(&out, "switch_us").is_finite(), "{out}");
    let (t, d, h) = (cfg.tokens() * 2, cfg.dim, cfg.mlp_hidden);
    let shapes = [(t, 3 * d, d), (t, d, d), (t, h, d), (t, d, h)];
    let gemm = objects(&out, "gemm");
    assert_eq!(gemm.len(), 4, "{out}");
    for (g, (m, n, k)) in gemm.iter().zip(shapes) {
        let got = (field(g, "m"), field(g, "n"), field(g, "k"));
        assert_eq!(got, (&*m.to_string(), &*n.to_string(), &*k.to_string()));
        assert!(num(g, "gflops") > 0.0, "{g}");
    }
    let opts = SessionOptions::default().backend(Backend::Cpu).max_batch(2);
    let arena = Session::new(model, opts).unwrap().arena_bytes();
    assert_eq!(field(&out, "arena_bytes"), arena.to_string());
    let kernel = tinv::cpu::gemm::kernel_name();
    assert_eq!(field(&out, "kernel"), format!("\"{kernel}\""));
    assert_eq!((field(&out, "threads"), field(&out, "batch")), ("1", "2"));
    assert!(num(&out, "peak_rss_bytes") > 0.0, "{out}");

    let (code, text, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.starts_with(&format!(
            "kernel {kernel}, 1 thread(s), batch 2, 4 runs per path\n"
        )),
        "{text}"
    );
    for (&d, &f) in cfg.depths.iter().zip(&flops) {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("depth {d:>3}  p50")))
            .unwrap_or_else(|| panic!("no depth {d}: {text}"));
        assert!(
            line.contains(&format!("{:>8.2} MFLOPs", f as f64 / 1e6)),
            "{line}"
        );
    }
    assert!(
        text.contains("path switch  ") && !text.contains("one path"),
        "{text}"
    );
    for (m, n, k) in shapes {
        assert!(
            text.contains(&format!("gemm m={m:<5} n={n:<5} k={k:<5}")),
            "{text}"
        );
    }
    assert!(text.ends_with(&format!("arena {arena} bytes\n")), "{text}");
}

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

/// `soak --json` on the synthetic model (four paths): one object per window of count / 10
/// inferences, then a summary whose rate, RSS growth and per-path totals are those of the
/// windows and times it reports; the text report has the same windows.
#[test]
fn soak_reports_its_windows_and_a_summary_that_adds_them_up() {
    let args = [
        "soak",
        "--synthetic",
        "fmnist",
        "--count",
        "20",
        "--inputs",
        "4",
    ];
    let (code, out, err) = run(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 11, "{out}");
    let mut total = vec![0u64; 4];
    for (j, w) in lines[..10].iter().enumerate() {
        assert_eq!(field(w, "done"), (2 * (j + 1)).to_string(), "{w}");
        let paths = ints(w, "paths");
        assert_eq!((paths.len(), paths.iter().sum::<u64>()), (4, 2), "{w}");
        total.iter_mut().zip(&paths).for_each(|(t, p)| *t += p);
        assert!(num(w, "per_sec") > 0.0 && num(w, "rss_kib") > 0.0, "{w}");
    }
    let sum = lines[10];
    assert_eq!(field(sum, "count"), "20");
    assert_eq!(ints(sum, "paths"), total);
    assert_eq!(field(sum, "mismatches"), "0");
    let (secs, rate) = (num(sum, "secs"), num(sum, "per_sec"));
    assert!((rate - 20.0 / secs).abs() <= 1e-9 * rate, "{sum}");
    let (a, b) = (num(sum, "start_rss_kib"), num(sum, "end_rss_kib"));
    let growth = num(sum, "rss_growth_pct");
    assert!((growth - (b - a) / a * 100.0).abs() < 1e-9, "{sum}");

    let (code, text, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let done: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" done "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let want: Vec<String> = (1..=10).map(|j| (2 * j).to_string()).collect();
    assert_eq!(done, want, "{text}");
    assert!(
        text.contains("soak: 20 inferences in ") && text.contains(" 0 outputs differed"),
        "{text}"
    );
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
        // --workspace: 1 MB to 2^20 MB, checked before anything is loaded.
        for cmd in ["build", "selftest"] {
            assert_one_line_error(
                &[cmd, "--model", m, "--workspace", "1048577"],
                "--workspace 1048577: at most 1048576 MB",
            );
            assert_one_line_error(&[cmd, "--model", m, "--workspace", "0"], "--workspace");
        }
        let (code, _, err) = run(&["build", "--model", m, "--workspace", "1048576"]);
        assert_eq!(code, 1);
        assert!(
            !err.contains("--workspace") && err.contains("TensorRT"),
            "{err}"
        );
    }
    for cmd in ["build", "selftest"] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("USAGE"));
    }
}
