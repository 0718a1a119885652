//! `tinv-run sweep` against `tinv-run eval`: every point of the curve is what `eval` measures in
//! the same mode, one input per call, and bad lists and targets are one-line errors.

#[path = "common/cli.rs"]
mod cli_support;

use cli_support::{assert_one_line_error, run, tmp};
use std::path::{Path, PathBuf};
use tinv::format::DType;
use tinv::synth;

/// A 1-channel 8×8 model of paths `depths`, with or without a controller, and 40 images with
/// labels, as IDX files: (model, images, labels).
fn fixture(name: &str, depths: &[usize], controller: bool) -> (PathBuf, PathBuf, PathBuf) {
    let dir = tmp(name);
    let cfg = synth::config(8, 1, 4, 16, 2, 2, 3, depths, controller);
    let model = dir.join("m.tinv");
    std::fs::write(&model, synth::random_model(&cfg, 5, DType::F32)).unwrap();
    let n = 40;
    let px: Vec<u8> = (0..n * 64).map(|i| (i * 37 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i * 7 % 3) as u8).collect();
    let (images, labs) = (dir.join("x.idx"), dir.join("y.idx"));
    std::fs::write(&images, tinv::idx::encode(&[n, 8, 8], &px).unwrap()).unwrap();
    std::fs::write(&labs, tinv::idx::encode(&[n], &labels).unwrap()).unwrap();
    (model, images, labs)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The value of `"key":` in a flat JSON object, as written (a number or `null`).
fn field<'a>(obj: &'a str, key: &str) -> &'a str {
    let at = obj
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {obj}"));
    let rest = &obj[at + key.len() + 3..];
    &rest[..rest.find([',', '}']).unwrap_or(rest.len())]
}

/// The points of a `sweep --json` output, each as its own JSON text.
fn points(json: &str) -> Vec<&str> {
    json.split("{\"kind\":").skip(1).collect()
}

/// `eval --json` with `extra` options: its `(accuracy, mean_flops)` as written.
fn eval(model: &Path, images: &Path, labels: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "eval",
        "--model",
        s(model),
        "--images",
        s(images),
        "--labels",
        s(labels),
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{args:?}: {err}");
    (
        field(&out, "accuracy").into(),
        field(&out, "mean_flops").into(),
    )
}

#[test]
fn every_point_is_what_eval_measures_in_that_mode() {
    let (m, x, y) = fixture("sweep-eval", &[1, 2], true);
    let (code, out, err) = run(&[
        "sweep",
        "--model",
        s(&m),
        "--images",
        s(&x),
        "--labels",
        s(&y),
        "--budgets",
        "0,0.5",
        "--thresholds",
        "0.4,0.9",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(field(&out, "samples"), "40");
    let pts = points(&out);
    // 2 exits, the oracle, adaptive and graph at 2 budgets, 2 thresholds.
    assert_eq!(pts.len(), 2 + 1 + 4 + 2, "{out}");
    for p in &pts {
        let opts: Vec<String> = if p.starts_with("\"depth\"") {
            vec!["--depth".into(), field(p, "depth").into()]
        } else if p.starts_with("\"adaptive\"") || p.starts_with("\"graph\"") {
            let mode = &p[1..p[1..].find('"').unwrap() + 1];
            vec![
                "--mode".into(),
                mode.into(),
                "--budget".into(),
                field(p, "budget").into(),
            ]
        } else if p.starts_with("\"threshold\"") {
            vec!["--mode".into(), format!("threshold:{}", field(p, "tau"))]
        } else {
            assert!(p.starts_with("\"oracle\""), "{p}");
            let (code, e, err) = run(&[
                "eval",
                "--model",
                s(&m),
                "--images",
                s(&x),
                "--labels",
                s(&y),
                "--json",
            ]);
            assert_eq!(code, 0, "{err}");
            assert_eq!(field(p, "accuracy"), field(&e, "oracle_accuracy"), "{p}");
            assert_eq!(field(p, "mean_flops"), field(&e, "oracle_flops"), "{p}");
            continue;
        };
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        let (acc, flops) = eval(&m, &x, &y, &opts);
        assert_eq!(
            (field(p, "accuracy"), field(p, "mean_flops")),
            (&*acc, &*flops),
            "{p}"
        );
    }
    // The two modes differ somewhere: the comparison above is not between equal numbers only.
    let flops: std::collections::BTreeSet<&str> =
        pts.iter().map(|p| field(p, "mean_flops")).collect();
    assert!(flops.len() > 3, "{out}");
}

#[test]
fn a_flops_target_names_the_most_accurate_budget_that_spends_no_more() {
    let (m, x, y) = fixture("sweep-target", &[1, 2], true);
    let args = |target: Option<&str>| {
        let mut v = vec![
            "sweep",
            "--model",
            s(&m),
            "--images",
            s(&x),
            "--labels",
            s(&y),
            "--budgets",
            "0,0.2,0.5,1",
            "--thresholds",
            "0.5",
            "--json",
        ];
        v.extend(target.map(|t| ["--flops-target", t]).into_iter().flatten());
        run(&v)
    };
    let (code, out, err) = args(None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(field(&out, "flops_target"), "null");
    assert_eq!(field(&out, "budget_for_target"), "null");
    // Worked out here from the adaptive points: the most accurate within the target, the
    // cheaper on a tie, the first listed on a tie of both.
    let adaptive: Vec<(f64, f64, &str)> = points(&out)
        .into_iter()
        .filter(|p| p.starts_with("\"adaptive\""))
        .map(|p| {
            let num = |k| field(p, k).parse::<f64>().unwrap();
            (num("accuracy"), num("mean_flops"), field(p, "budget"))
        })
        .collect();
    assert_eq!(adaptive.len(), 4);
    let cheapest = adaptive.iter().map(|a| a.1).fold(f64::INFINITY, f64::min);
    let dearest = adaptive.iter().map(|a| a.1).fold(0.0, f64::max);
    for limit in [cheapest, (cheapest + dearest) / 2.0, dearest] {
        let (code, out, err) = args(Some(&format!("{}", limit / 1e6)));
        assert_eq!(code, 0, "{err}");
        let mut best = None::<&(f64, f64, &str)>;
        for a in adaptive.iter().filter(|a| a.1 <= limit) {
            if best.is_none_or(|b| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)) {
                best = Some(a);
            }
        }
        let best = best.unwrap();
        assert_eq!(
            field(&out, "budget_for_target"),
            best.2,
            "limit {limit}: {out}"
        );
    }
    // Below every point it is an error naming the cheapest budget, after the table.
    let (code, out, err) = args(Some(&format!("{}", cheapest / 2e6)));
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("\"budget_for_target\":null"), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: no budget of --budgets spends at most"),
        "{err}"
    );
}

#[test]
fn a_model_without_a_controller_has_its_exits_the_oracle_and_the_thresholds() {
    let (m, x, y) = fixture("sweep-plain", &[1, 2], false);
    let (code, out, err) = run(&[
        "sweep",
        "--model",
        s(&m),
        "--images",
        s(&x),
        "--labels",
        s(&y),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let kinds: Vec<&str> = points(&out)
        .iter()
        .map(|p| &p[..p[1..].find('"').unwrap() + 2])
        .collect();
    let mut want = vec!["\"depth\"", "\"depth\"", "\"oracle\""];
    want.extend(["\"threshold\""; 7]);
    assert_eq!(kinds, want, "{out}");
    let base = [
        "sweep",
        "--model",
        s(&m),
        "--images",
        s(&x),
        "--labels",
        s(&y),
    ];
    for extra in [["--budgets", "0.1"], ["--flops-target", "1"]] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        assert_one_line_error(&args, "this model has no controller");
    }
}

#[test]
fn bad_lists_and_targets_are_one_line_errors() {
    let (m, x, y) = fixture("sweep-bad", &[1, 2], true);
    let base = [
        "sweep",
        "--model",
        s(&m),
        "--images",
        s(&x),
        "--labels",
        s(&y),
    ];
    for (extra, needle) in [
        (["--budgets", "0,1.5"], "found \"1.5\""),
        (["--budgets", "0,,0.1"], "found \"\""),
        (["--thresholds", "nan"], "expected numbers in [0, 1]"),
        (["--flops-target", "0"], "expected a positive number"),
        (["--flops-target", "inf"], "expected a positive number"),
        (["--flops-target", "x"], "million FLOPs per input"),
        (["--limit", "0"], "--limit must be at least 1"),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        assert_one_line_error(&args, needle);
    }
    assert_one_line_error(&["sweep", "--model", s(&m)], "sweep needs --images");
}

#[test]
fn skip_and_limit_take_the_samples_a_file_of_only_those_would_hold() {
    let (m, x, y) = fixture("sweep-skip", &[1, 2], true);
    let dir = x.parent().unwrap().to_path_buf();
    // Samples 25..35 of the fixture, written as files of their own.
    let px: Vec<u8> = (25 * 64..35 * 64).map(|i| (i * 37 % 251) as u8).collect();
    let labels: Vec<u8> = (25..35).map(|i| (i * 7 % 3) as u8).collect();
    let (x10, y10) = (dir.join("x10.idx"), dir.join("y10.idx"));
    std::fs::write(&x10, tinv::idx::encode(&[10, 8, 8], &px).unwrap()).unwrap();
    std::fs::write(&y10, tinv::idx::encode(&[10], &labels).unwrap()).unwrap();
    for cmd in ["eval", "sweep"] {
        let go = |x: &Path, y: &Path, extra: &[&str]| {
            let mut args = vec![
                cmd,
                "--model",
                s(&m),
                "--images",
                s(x),
                "--labels",
                s(y),
                "--json",
            ];
            args.extend_from_slice(extra);
            let (code, out, err) = run(&args);
            assert_eq!(code, 0, "{args:?}: {err}");
            out.split(",\"latency_us\"").next().unwrap().to_string()
        };
        let whole = go(&x10, &y10, &[]);
        assert!(whole.contains("\"samples\":10"), "{whole}");
        assert_eq!(
            go(&x, &y, &["--skip", "25", "--limit", "10"]),
            whole,
            "{cmd}"
        );
        assert_ne!(
            go(&x, &y, &["--skip", "24", "--limit", "10"]),
            whole,
            "{cmd}"
        );
        assert_one_line_error(
            &[
                cmd,
                "--model",
                s(&m),
                "--images",
                s(&x),
                "--labels",
                s(&y),
                "--skip",
                "40",
            ],
            "--skip 40 leaves none of the 40 samples",
        );
    }
}
