//! `tinv-run sweep` against `tinv-run eval`: every point of the curve is what `eval` measures in
//! the same mode, one input per call, and bad lists and targets are one-line errors.

#[path = "common/cli.rs"]
mod cli_support;

use cli_support::{assert_one_line_error, field, num, run, tmp};
use std::path::PathBuf;
use tinv::format::DType;
use tinv::synth;

/// A model and a labelled IDX data set written for one test.
struct Case {
    model: PathBuf,
    images: PathBuf,
    labels: PathBuf,
}

/// Pixels and label of sample `i` of [`Case::new`]'s data set.
fn sample(i: usize) -> (Vec<u8>, u8) {
    let px = (i * 64..(i + 1) * 64)
        .map(|j| (j * 37 % 251) as u8)
        .collect();
    (px, (i * 7 % 3) as u8)
}

/// IDX files of samples `range` in `dir`: (images, labels).
fn write_data(
    dir: &std::path::Path,
    tag: &str,
    range: std::ops::Range<usize>,
) -> (PathBuf, PathBuf) {
    let n = range.len();
    let (px, labels): (Vec<Vec<u8>>, Vec<u8>) = range.map(sample).unzip();
    let (x, y) = (
        dir.join(format!("{tag}.x.idx")),
        dir.join(format!("{tag}.y.idx")),
    );
    std::fs::write(&x, tinv::idx::encode(&[n, 8, 8], &px.concat()).unwrap()).unwrap();
    std::fs::write(&y, tinv::idx::encode(&[n], &labels).unwrap()).unwrap();
    (x, y)
}

impl Case {
    /// A 1-channel 8×8 model of paths 1 and 2, with or without a controller, and 40 samples.
    fn new(name: &str, controller: bool) -> Case {
        let dir = tmp(name);
        let cfg = synth::tiny(3, controller);
        let model = dir.join("m.tinv");
        std::fs::write(&model, synth::random_model(&cfg, 5, DType::F32)).unwrap();
        let (images, labels) = write_data(&dir, "all", 0..40);
        Case {
            model,
            images,
            labels,
        }
    }

    /// `tinv-run cmd` on this model and data set, then `extra`.
    fn args<'a>(&'a self, cmd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let s = |p: &'a PathBuf| p.to_str().unwrap();
        let mut v = vec![cmd, "--model", s(&self.model)];
        v.extend(["--images", s(&self.images), "--labels", s(&self.labels)]);
        v.extend_from_slice(extra);
        v
    }

    /// [`Case::args`] run with `--json`, which must succeed: its stdout.
    fn json(&self, cmd: &str, extra: &[&str]) -> String {
        let mut args = self.args(cmd, extra);
        args.push("--json");
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    }
}

/// The points of a `sweep --json` output, each as its own JSON text after `"kind":`.
fn points(json: &str) -> Vec<&str> {
    json.split("{\"kind\":").skip(1).collect()
}

/// The kind of a point of [`points`], without its quotes.
fn kind(p: &str) -> &str {
    &p[1..p[1..].find('"').unwrap() + 1]
}

#[test]
fn every_point_is_what_eval_measures_in_that_mode() {
    let case = Case::new("sweep-eval", true);
    let out = case.json("sweep", &["--budgets", "0,0.5", "--thresholds", "0.4,0.9"]);
    assert_eq!(field(&out, "samples"), "40");
    let pts = points(&out);
    // 2 exits, the oracle, adaptive and graph at 2 budgets, 2 thresholds.
    assert_eq!(pts.len(), 2 + 1 + 4 + 2, "{out}");
    let plain = case.json("eval", &[]);
    for p in &pts {
        let opts = match kind(p) {
            "depth" => vec!["--depth".to_string(), field(p, "depth").into()],
            "adaptive" | "graph" => {
                let budget = field(p, "budget").to_string();
                vec!["--mode".into(), kind(p).into(), "--budget".into(), budget]
            }
            "threshold" => vec!["--mode".into(), format!("threshold:{}", field(p, "tau"))],
            k => {
                assert_eq!(k, "oracle", "{p}");
                assert_eq!(field(p, "accuracy"), field(&plain, "oracle_accuracy"));
                assert_eq!(field(p, "mean_flops"), field(&plain, "oracle_flops"));
                continue;
            }
        };
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        let e = case.json("eval", &opts);
        let measured = |j| (field(j, "accuracy"), field(j, "mean_flops"));
        assert_eq!(measured(p), measured(&e), "{p} vs eval {opts:?}");
    }
    // The points differ: the comparison above is not between equal numbers only.
    let flops: std::collections::BTreeSet<&str> =
        pts.iter().map(|p| field(p, "mean_flops")).collect();
    assert!(flops.len() > 3, "{out}");
    // The text report has the same points, in the same order, as rows of MFLOPs, their share
    // of full depth and the accuracy in per cent.
    let (code, text, err) =
        run(&case.args("sweep", &["--budgets", "0,0.5", "--thresholds", "0.4,0.9"]));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(text, text_report(&out), "{out}");
}

/// The text `sweep` writes for the points of its `--json` output `json`: the header, then a row
/// per point.
fn text_report(json: &str) -> String {
    let full = num(json, "full_flops");
    let mut want = format!(
        "samples {}, backend cpu, full depth {:.3} MFLOPs per input\n",
        field(json, "samples"),
        full / 1e6
    );
    want += &format!(
        "{:<24} {:>9} {:>8} {:>9}\n",
        "point", "MFLOPs", "of full", "accuracy"
    );
    for p in points(json) {
        let label = match kind(p) {
            "depth" => format!("exit at depth {}", field(p, "depth")),
            "oracle" => "oracle".into(),
            "threshold" => format!("threshold τ = {}", field(p, "tau")),
            k => format!("{k} λ = {}", field(p, "budget")),
        };
        let (flops, acc) = (num(p, "mean_flops"), num(p, "accuracy"));
        want += &format!(
            "{label:<24} {:>9.3} {:>7.1}% {:>8.2}%\n",
            flops / 1e6,
            flops / full * 100.0,
            acc * 100.0
        );
    }
    want
}

#[test]
fn a_flops_target_names_the_most_accurate_budget_that_spends_no_more() {
    let case = Case::new("sweep-target", true);
    let budgets = ["--budgets", "0,0.2,0.5,1", "--thresholds", "0.5"];
    let with_target = |t: &str| {
        let mut args = case.args("sweep", &budgets);
        args.extend(["--json", "--flops-target", t]);
        run(&args)
    };
    let out = case.json("sweep", &budgets);
    assert_eq!(field(&out, "flops_target"), "null");
    assert_eq!(field(&out, "budget_for_target"), "null");
    // Worked out here from the adaptive points: the most accurate within the target, the
    // cheaper on a tie, the first listed on a tie of both.
    let adaptive: Vec<(f64, f64, &str)> = points(&out)
        .into_iter()
        .filter(|p| kind(p) == "adaptive")
        .map(|p| (num(p, "accuracy"), num(p, "mean_flops"), field(p, "budget")))
        .collect();
    assert_eq!(adaptive.len(), 4);
    let cheapest = adaptive.iter().map(|a| a.1).fold(f64::INFINITY, f64::min);
    let dearest = adaptive.iter().map(|a| a.1).fold(0.0, f64::max);
    for limit in [cheapest, (cheapest + dearest) / 2.0, dearest] {
        let (code, out, err) = with_target(&format!("{}", limit / 1e6));
        assert_eq!(code, 0, "{err}");
        let mut best = None::<&(f64, f64, &str)>;
        for a in adaptive.iter().filter(|a| a.1 <= limit) {
            if best.is_none_or(|b| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)) {
                best = Some(a);
            }
        }
        let want = best.unwrap();
        assert_eq!(
            field(&out, "budget_for_target"),
            want.2,
            "limit {limit}: {out}"
        );
        let t: f64 = format!("{}", limit / 1e6).parse().unwrap();
        assert_eq!(field(&out, "flops_target"), (t * 1e6).to_string(), "{out}");
        // The text names it after the table, with its accuracy and MFLOPs.
        let mut args = case.args("sweep", &budgets);
        let t = format!("{}", limit / 1e6);
        args.extend(["--flops-target", &t]);
        let (code, text, err) = run(&args);
        assert_eq!((code, err.as_str()), (0, ""));
        let line = format!(
            "for at most {t} MFLOPs per input: --budget {} ({:.2}% at {:.3} MFLOPs on these \
             samples)",
            want.2,
            want.0 * 100.0,
            want.1 / 1e6
        );
        assert_eq!(text.lines().last(), Some(line.as_str()), "{text}");
    }
    // Below every point it is an error naming the cheapest budget, after the table.
    let (code, out, err) = with_target(&format!("{}", cheapest / 2e6));
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
    let case = Case::new("sweep-plain", false);
    let out = case.json("sweep", &[]);
    let kinds: Vec<&str> = points(&out).into_iter().map(kind).collect();
    let mut want = vec!["depth", "depth", "oracle"];
    want.extend(["threshold"; 7]);
    assert_eq!(kinds, want, "{out}");
    for extra in [["--budgets", "0.1"], ["--flops-target", "1"]] {
        assert_one_line_error(&case.args("sweep", &extra), "this model has no controller");
    }
}

#[test]
fn bad_lists_and_targets_are_one_line_errors() {
    let case = Case::new("sweep-bad", true);
    for (extra, needle) in [
        (["--budgets", "0,1.5"], "found \"1.5\""),
        (["--budgets", "0,,0.1"], "found \"\""),
        (["--thresholds", "nan"], "expected numbers in [0, 1]"),
        (["--flops-target", "0"], "expected a positive number"),
        (["--flops-target", "inf"], "expected a positive number"),
        (["--flops-target", "x"], "million FLOPs per input"),
        (["--limit", "0"], "--limit must be at least 1"),
    ] {
        assert_one_line_error(&case.args("sweep", &extra), needle);
    }
    let m = case.model.to_str().unwrap();
    assert_one_line_error(&["sweep", "--model", m], "sweep needs --images");
}

#[test]
fn skip_and_limit_take_the_samples_a_file_of_only_those_would_hold() {
    let case = Case::new("sweep-skip", true);
    let (images, labels) = write_data(case.images.parent().unwrap(), "part", 25..35);
    let part = Case {
        model: case.model.clone(),
        images,
        labels,
    };
    for cmd in ["eval", "sweep"] {
        // Everything but eval's latencies, which differ from run to run.
        let measured = |c: &Case, extra: &[&str]| {
            let out = c.json(cmd, extra);
            out.split(",\"latency_us\"").next().unwrap().to_string()
        };
        let whole = measured(&part, &[]);
        assert!(whole.contains("\"samples\":10"), "{whole}");
        assert_eq!(
            measured(&case, &["--skip", "25", "--limit", "10"]),
            whole,
            "{cmd}"
        );
        assert_ne!(
            measured(&case, &["--skip", "24", "--limit", "10"]),
            whole,
            "{cmd}"
        );
        assert_one_line_error(
            &case.args(cmd, &["--skip", "40"]),
            "--skip 40 leaves none of the 40 samples",
        );
    }
}

/// `sweep` reports its progress on stderr when it is a terminal or the data set has at least
/// 2,000 samples: the all-exits pass every 40 chunks of 64, then each point as it is done.
#[test]
fn sweep_reports_progress_from_2000_samples() {
    let case = Case::new("sweep-progress", true);
    let (images, labels) = write_data(case.images.parent().unwrap(), "big", 0..2600);
    let big = Case {
        model: case.model.clone(),
        images,
        labels,
    };
    let points = ["--budgets", "0", "--thresholds", "0.5"];
    for (limit, want) in [
        (
            "2600",
            "sweep: all-exits pass 2560/2600\nsweep: adaptive λ = 0 (1/3)\n\
             sweep: graph λ = 0 (2/3)\nsweep: threshold τ = 0.5 (3/3)\n",
        ),
        (
            "2000",
            "sweep: adaptive λ = 0 (1/3)\nsweep: graph λ = 0 (2/3)\n\
             sweep: threshold τ = 0.5 (3/3)\n",
        ),
        ("1999", ""),
    ] {
        let args = big.args("sweep", &[&points[..], &["--limit", limit]].concat());
        let (code, _, err) = run(&args);
        assert_eq!((code, err.as_str()), (0, want), "--limit {limit}");
    }
}
