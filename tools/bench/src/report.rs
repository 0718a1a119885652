//! The report: latency/memory tables, targets, per-path latency, accuracy vs FLOPs with the
//! oracle point, GEMM efficiency against OpenBLAS, written as Markdown with SVG plots.

use crate::blas::Blas;
use crate::child::{self, percentiles};
use crate::svg::{self, Series};
use crate::{Args, Case, Row};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tinv::{Mode, Model, OpenOptions, Session, SessionOptions};

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// FLOPs of the full-depth path (`backbone_flops` already includes its exit head).
fn full_flops(m: &Model) -> u64 {
    m.costs().last().map_or(0, |c| c.backbone_flops)
}

/// p50 latency (µs) of each path, tinv, one thread, in this process.
fn per_path_latency(case: &Case, runs: usize) -> Result<Vec<(usize, f64)>, String> {
    let model =
        Arc::new(Model::open(&case.tinv, &OpenOptions::default()).map_err(|e| e.to_string())?);
    let c = model.config().clone();
    let mut s =
        Session::new(model.clone(), SessionOptions::default()).map_err(|e| e.to_string())?;
    let per = c.input_len();
    let n = case.inputs.len() / per;
    let mut logits = vec![0.0; c.classes];
    let mut out = Vec::new();
    for &d in &c.depths {
        let mut lat = Vec::new();
        for i in 0..runs + 10 {
            let x = &case.inputs[(i % n) * per..(i % n + 1) * per];
            let t = Instant::now();
            s.infer_depth(x, 1, d, &mut logits)
                .map_err(|e| e.to_string())?;
            if i >= 10 {
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        out.push((d, percentiles(&mut lat).0));
    }
    Ok(out)
}

/// The budgets the controller is measured at: denser where this model's λ does something (0–0.2;
/// from 0.3 on nearly every input stops at the first exit).
const BUDGETS: [f32; 12] = [
    0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0,
];
/// The confidence thresholds of the baseline (those of `tinv-run sweep` and `tinv-train eval`).
const TAUS: [f32; 7] = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99];

/// Accuracy and mean FLOPs of the adaptive controller per budget, of the threshold baseline per
/// τ, the oracle, every exit.
struct Sweep {
    budgets: Vec<(f32, f64, f64)>,
    thresholds: Vec<(f32, f64, f64)>,
    oracle: (f64, f64),
    exits: Vec<(usize, f64, f64)>,
}

fn sweep(case: &Case) -> Result<Option<Sweep>, String> {
    let Some(labels) = &case.labels else {
        return Ok(None);
    };
    let model =
        Arc::new(Model::open(&case.tinv, &OpenOptions::default()).map_err(|e| e.to_string())?);
    let c = model.config().clone();
    let (per, n, p) = (c.input_len(), labels.len(), c.depths.len());
    let costs: Vec<f64> = model
        .costs()
        .iter()
        .map(|k| k.backbone_flops as f64)
        .collect();
    let mut s =
        Session::new(model.clone(), SessionOptions::default()).map_err(|e| e.to_string())?;
    let mut all = vec![0.0; p * c.classes];
    let (mut oracle_ok, mut oracle_flops, mut exit_ok) = (0usize, 0f64, vec![0usize; p]);
    for (i, &y) in labels.iter().enumerate() {
        s.infer_all_exits(&case.inputs[i * per..(i + 1) * per], 1, &mut all)
            .map_err(|e| e.to_string())?;
        let right: Vec<bool> = all
            .chunks_exact(c.classes)
            .map(|l| tinv::control::argmax(l) == usize::from(y))
            .collect();
        right
            .iter()
            .zip(exit_ok.iter_mut())
            .for_each(|(r, e)| *e += usize::from(*r));
        let first = right.iter().position(|r| *r);
        oracle_ok += usize::from(first.is_some());
        oracle_flops += costs[first.unwrap_or(0)];
    }
    let exits = (0..p)
        .map(|k| (c.depths[k], costs[k], exit_ok[k] as f64 / n as f64))
        .collect();
    // (value, mean FLOPs, accuracy) of `mode(v)` for each of `values`, one input per call.
    let mut logits = vec![0.0; c.classes];
    let mut curve = |values: &[f32], mode: &dyn Fn(f32) -> Mode| {
        let mut out = Vec::new();
        for &v in values {
            s.set_mode(mode(v)).map_err(|e| e.to_string())?;
            if matches!(mode(v), Mode::Adaptive) {
                s.set_budget(v).map_err(|e| e.to_string())?;
            }
            let (mut ok, mut flops) = (0usize, 0f64);
            for (i, &y) in labels.iter().enumerate() {
                let st = s
                    .infer(&case.inputs[i * per..(i + 1) * per], 1, &mut logits)
                    .map_err(|e| e.to_string())?;
                ok += usize::from(st[0].class == usize::from(y));
                flops += st[0].flops as f64;
            }
            out.push((v, flops / n as f64, ok as f64 / n as f64));
        }
        Ok::<_, String>(out)
    };
    let budgets = match model.ctrl() {
        Some(_) => curve(&BUDGETS, &|_| Mode::Adaptive)?,
        None => Vec::new(),
    };
    let thresholds = curve(&TAUS, &Mode::Threshold)?;
    Ok(Some(Sweep {
        budgets,
        thresholds,
        oracle: (oracle_flops / n as f64, oracle_ok as f64 / n as f64),
        exits,
    }))
}

/// How the header explains the "eff. GFLOP/s" column.
const EFF_GFLOPS: &str = "Effective GFLOP/s = mean FLOPs per inference ÷ mean latency, in every \
row: an adaptive row's FLOPs differ from input to input, and its mean latency, not its p50, is \
what those FLOPs took.";

/// Effective GFLOP/s of row `r`: its mean FLOPs per inference (`full_flops` when the runtime does
/// not report them) over its mean latency. Over the p50 instead, the adaptive row, whose cheap
/// inputs set the p50 and whose expensive ones the mean FLOPs, came out at 134% of sgemm.
fn eff_gflops(r: &Row, full_flops: f64) -> f64 {
    let flops = r.get("mean_flops").unwrap_or(full_flops);
    flops / r.get("mean_us").unwrap_or(f64::NAN) / 1e3
}

/// The header's "N warm-up then M timed runs per row", with the adaptive rows' own count
/// (`adaptive`, when there are any and it differs).
fn runs_sentence(warmup: usize, runs: usize, adaptive: Option<usize>) -> String {
    let mut s = format!("{warmup} warm-up then {runs} timed runs per row");
    if let Some(n) = adaptive.filter(|&n| n != runs) {
        let _ = write!(
            s,
            " ({n} for the tinv-adaptive rows: the smallest multiple of the --eval-n test images \
             used that is at least --runs, so that their mean weighs every test input alike)"
        );
    }
    s
}

/// The row of (`case`, runtime `rt`, `t` threads) in `rows`.
pub fn find<'a>(rows: &'a [Row], case: &str, rt: &str, t: usize) -> Option<&'a Row> {
    rows.iter().find(|r| r.is(case, rt, t))
}

fn target(md: &mut String, what: &str, got: Option<f64>, limit: f64, straddles: bool) {
    let caveat = if straddles {
        " (rounds on both sides of the limit)"
    } else {
        ""
    };
    let _ = match got {
        Some(g) if g <= limit => writeln!(md, "| {what} | {g:.2}× | ≤ {limit}× | met{caveat} |"),
        Some(g) => writeln!(
            md,
            "| {what} | {g:.2}× | ≤ {limit}× | **missed by {:.0}%**{caveat} |",
            (g / limit - 1.0) * 100.0
        ),
        None => writeln!(md, "| {what} | n/a | ≤ {limit}× | not measured |"),
    };
}

/// `git describe --always --dirty` of the working tree, or why there is none.
fn git_describe() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "not a git checkout".into())
}

/// Writes the Markdown report and its plots.
pub fn write(
    a: &Args,
    cases: &[Case],
    rows: &[Row],
    paired: &[(usize, Vec<f64>)],
    blas: Option<&Blas>,
    profile: Option<&str>,
) -> Result<(), String> {
    let plots = crate::plots_dir(&a.report);
    crate::create_dir(&plots)?;
    let mut md = intro(a, cases);
    let sgemm_ref = blas.map(|b| blas_section(&mut md, b));
    for case in cases {
        case_section(&mut md, a, case, rows, sgemm_ref, &plots)?;
    }
    if let Some(p) = profile {
        md.push_str(p);
    }
    targets_section(&mut md, a, cases, rows, paired);
    std::fs::write(a.out.join("results.txt"), raw_results(rows)).map_err(|e| e.to_string())?;
    std::fs::write(&a.report, md).map_err(|e| format!("{}: {e}", a.report.display()))?;
    errln!(
        "wrote {} and plots in {}",
        a.report.display(),
        plots.display()
    );
    Ok(())
}

/// The title and how every row was measured: machine, peer, runs, memory, command and tree.
fn intro(a: &Args, cases: &[Case]) -> String {
    // The timed runs of the tinv-adaptive rows (the Fashion-MNIST case's), as its child does them.
    let adaptive = cases.iter().find(|c| c.adaptive).map(|c| {
        let (ch, h, w) = c.chw;
        child::adaptive_runs(a.runs, c.inputs.len() / (ch * h * w).max(1))
    });
    let mut md = String::new();
    let _ = writeln!(md, "# tinv benchmark results\n\nGenerated by `tools/bench` (`tinv-bench`, see tools/bench/README.md); do not edit by hand.\n");
    let _ = writeln!(
        md,
        "Machine: {} ({} logical CPUs; tinv's GEMM kernel: {}). ONNX Runtime: `{}` through its C API (the `ort` crate, dynamically loaded), \
         graph optimisation level ALL, on tinv's own `--baked` f32 ONNX export with native \
         LayerNormalization (`--ln native`, which ONNX Runtime fuses). Batch 1, {}, \
         each (runtime, model, threads) in its own process; every row ran {} times in rotation with the others and \
         reports the median of its rounds. Memory increase = the process's anonymous resident \
         memory plus the resident pages it maps from the model file (tinv's weights), at the end \
         of the run minus before the model was loaded: neither runtime's own library code \
         counts. {EFF_GFLOPS}\n\nCommand: `{}`; tree: `{}`.\n",
        cpu_name(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        tinv::cpu::gemm::kernel_name(),
        file_name(&a.ort_lib.clone().unwrap_or_else(|| cases[0].ort_lib.clone())),
        runs_sentence(a.warmup, a.runs, adaptive),
        a.rounds,
        std::env::args().collect::<Vec<_>>().join(" "),
        git_describe()
    );
    md
}

/// The OpenBLAS sgemm table; returns its mean GFLOP/s over the ViT-Tiny shapes, the yardstick of
/// the "of sgemm" column.
fn blas_section(md: &mut String, b: &Blas) -> f64 {
    let _ = writeln!(
        md,
        "## OpenBLAS sgemm, one thread (`{}`)\n\n| M×K·K×N | GFLOP/s |\n|---|---|",
        file_name(&b.path)
    );
    let mut vit = Vec::new();
    for (m, k, n) in [
        (197, 192, 576),
        (197, 192, 192),
        (197, 192, 768),
        (197, 768, 192),
        (1024, 1024, 1024),
    ] {
        let g = b.gflops(m, n, k);
        if m == 197 {
            vit.push(g);
        }
        let _ = writeln!(md, "| {m}×{k}·{k}×{n} | {g:.1} |");
    }
    let mean = vit.iter().sum::<f64>() / vit.len() as f64;
    let _ = writeln!(md, "\nMean over the ViT-Tiny shapes: {mean:.1} GFLOP/s — the yardstick for \"effective GFLOP/s\" below.\n");
    mean
}

/// One case's section: its rows, the adaptive depth histogram, latency per path and accuracy vs
/// FLOPs (when the case has labels).
fn case_section(
    md: &mut String,
    a: &Args,
    case: &Case,
    rows: &[Row],
    sgemm_ref: Option<f64>,
    plots: &Path,
) -> Result<(), String> {
    let model = Model::open(&case.tinv, &OpenOptions::default()).map_err(|e| e.to_string())?;
    let ff = full_flops(&model) as f64;
    let _ = writeln!(
        md,
        "## {} (`{}`), full depth {:.1} MFLOPs\n",
        case.name,
        case.tinv.display(),
        ff / 1e6
    );
    let _ = writeln!(md, "| runtime | threads | p50 µs | p99 µs | mean µs | vs ORT (p50) | eff. GFLOP/s | of sgemm × threads | memory increase MiB | weight bytes / inference |\n|---|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter().filter(|r| r.case == case.name) {
        let p50 = r.get("p50_us").unwrap_or(f64::NAN);
        let ort = find(rows, &case.name, "ort", r.threads).and_then(|o| o.get("p50_us"));
        let eff = eff_gflops(r, ff);
        let _ = writeln!(
            md,
            "| {} | {} | {p50:.0} | {:.0} | {:.0} | {} | {eff:.1} | {} | {:.1} | {} |",
            r.runtime,
            r.threads,
            r.get("p99_us").unwrap_or(f64::NAN),
            r.get("mean_us").unwrap_or(f64::NAN),
            ort.map_or("–".into(), |o| format!("{:.2}×", p50 / o)),
            // The yardstick is one thread's: n threads are held to n times it.
            sgemm_ref.map_or("–".into(), |s| format!(
                "{:.0}%",
                100.0 * eff / (s * r.threads.max(1) as f64)
            )),
            r.get("mem_increase").unwrap_or(0.0) / 1048576.0,
            r.text("weight_bytes_per_inference").unwrap_or("–"),
        );
    }
    if let Some(h) =
        find(rows, &case.name, "tinv-adaptive", 1).and_then(|r| r.text("depth_histogram"))
    {
        let _ = writeln!(
            md,
            "\nAdaptive depth histogram over paths {:?}: {h}.",
            model.config().depths
        );
    }
    latency_section(md, a, case, plots)?;
    match sweep(case)? {
        Some(sw) => accuracy_section(md, case, &sw, plots),
        None => Ok(()),
    }
}

/// Latency per path, measured in this process, as a table and a bar plot.
fn latency_section(md: &mut String, a: &Args, case: &Case, plots: &Path) -> Result<(), String> {
    let lat = per_path_latency(case, a.runs.min(100))?;
    let _ = writeln!(
        md,
        "\n### Latency per path (tinv, 1 thread, p50)\n\nMeasured apart from the rows above: \
         one round in this process, 10 warm-up then {} timed calls per path, so depth {} here \
         and the full-depth row above differ by the host's noise between the two.\n\n| depth \
         | µs |\n|---|---|",
        a.runs.min(100),
        lat.last().map_or(0, |(d, _)| *d)
    );
    lat.iter().for_each(|(d, us)| {
        let _ = writeln!(md, "| {d} | {us:.0} |");
    });
    let items: Vec<(String, f64)> = lat
        .iter()
        .map(|(d, us)| (format!("depth {d}"), *us))
        .collect();
    let svg = svg::bars(
        &format!("{}: tinv latency per path (1 thread)", case.name),
        "µs (p50)",
        &items,
    );
    plot(
        md,
        plots,
        &format!("{}-latency-per-path.svg", case.name),
        "latency per path",
        svg,
    )
}

/// Accuracy vs FLOPs: the static exits, the oracle, the controller's λ sweep and the threshold
/// baseline's τ sweep, as a table and a line plot.
fn accuracy_section(md: &mut String, case: &Case, sw: &Sweep, plots: &Path) -> Result<(), String> {
    let _ = writeln!(
        md,
        "### Accuracy vs FLOPs ({} test images)\n\n| point | MFLOPs | accuracy |\n|---|---|---|",
        case.labels.as_ref().map_or(0, |l| l.len())
    );
    // One table row: a point's label, MFLOPs and accuracy.
    let mut row = |label: String, flops: f64, acc: f64| {
        let _ = writeln!(md, "| {label} | {:.2} | {:.2}% |", flops / 1e6, acc * 100.0);
    };
    for (d, fl, acc) in &sw.exits {
        row(format!("exit at depth {d} (all inputs)"), *fl, *acc);
    }
    row(
        "oracle (shallowest correct exit)".into(),
        sw.oracle.0,
        sw.oracle.1,
    );
    for (l, fl, acc) in &sw.budgets {
        row(format!("controller (adaptive), λ = {l}"), *fl, *acc);
    }
    for (t, fl, acc) in &sw.thresholds {
        row(format!("threshold baseline, τ = {t}"), *fl, *acc);
    }
    // (MFLOPs, accuracy %) of each point.
    let pts = |v: &[(f32, f64, f64)]| v.iter().map(|p| (p.1 / 1e6, p.2 * 100.0)).collect();
    let series = vec![
        Series {
            label: "learned controller (λ sweep)".into(),
            points: pts(&sw.budgets),
            line: true,
        },
        Series {
            label: "threshold baseline (τ sweep)".into(),
            points: pts(&sw.thresholds),
            line: true,
        },
        Series {
            label: "fixed exits".into(),
            points: sw.exits.iter().map(|e| (e.1 / 1e6, e.2 * 100.0)).collect(),
            line: true,
        },
        Series {
            label: "oracle".into(),
            points: vec![(sw.oracle.0 / 1e6, sw.oracle.1 * 100.0)],
            line: false,
        },
    ];
    let lo = sw
        .exits
        .iter()
        .map(|e| e.2 * 100.0)
        .fold(100.0, f64::min)
        .floor()
        - 1.0;
    let svg = svg::lines(
        &format!("{}: accuracy vs FLOPs", case.name),
        "MFLOPs per input",
        "accuracy %",
        &series,
        lo.max(0.0),
    );
    plot(
        md,
        plots,
        &format!("{}-accuracy-vs-flops.svg", case.name),
        "accuracy vs FLOPs",
        svg,
    )
}

/// Writes the plot `svg` as `plots/file` and shows it in `md` (the report lies beside `results/`).
fn plot(md: &mut String, plots: &Path, file: &str, alt: &str, svg: String) -> Result<(), String> {
    let path = plots.join(file);
    std::fs::write(&path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = writeln!(md, "\n![{alt}](results/{file})\n");
    Ok(())
}

/// The targets table: paired latency ratios per thread count, the adaptive mean against ONNX
/// Runtime's full depth, memory per case and weight bytes per inference.
fn targets_section(
    md: &mut String,
    a: &Args,
    cases: &[Case],
    rows: &[Row],
    paired: &[(usize, Vec<f64>)],
) {
    let _ = writeln!(
        md,
        "## Targets\n\nThe ViT-Tiny latency ratios come from one process per round that loads both \
         runtimes and alternates them in blocks of {} timed inferences at full depth ({} of each \
         per round after the warm-up; each block after {} untimed ones, and ONNX Runtime's session \
         set to stop spinning when a run returns, since its idle worker spun on for about 40 ms \
         into the next block; tinv first in even blocks, ONNX Runtime first in odd ones): each pair of neighbouring blocks gives the ratio of their p50s, the \
         round the median of those, and the median over the rounds is compared with the limit, \
         the range over the rounds beside it; a range that straddles the limit is said to. On a host whose noise \
         comes in bursts of seconds, a ratio of the medians in the table above (separate \
         processes, seconds apart) can pair a slow stretch of one runtime with a fast one of the \
         other.\n\n| target | measured | limit | status |\n|---|---|---|---|",
        child::PAIR_BLOCK,
        a.runs.div_ceil(child::PAIR_BLOCK).max(1) * child::PAIR_BLOCK,
        child::PAIR_SETTLE
    );
    for t in &a.threads {
        let ratios = paired
            .iter()
            .find(|(pt, _)| pt == t)
            .map_or(&[][..], |(_, r)| r.as_slice());
        let lo = ratios.iter().copied().reduce(f64::min);
        let hi = ratios.iter().copied().reduce(f64::max);
        let what = match (lo, hi) {
            (Some(lo), Some(hi)) if ratios.len() > 1 => format!(
                "ViT-Tiny full depth, tinv / ORT p50, {t} thread(s), median of {} rounds (range {lo:.2}–{hi:.2})",
                ratios.len()
            ),
            _ => format!("ViT-Tiny full depth, tinv / ORT p50, {t} thread(s)"),
        };
        let straddles = lo.zip(hi).is_some_and(|(lo, hi)| lo <= 1.0 && hi > 1.0);
        target(md, &what, crate::median(ratios.to_vec()), 1.0, straddles);
        let f = |rt: &str, k: &str| find(rows, "fmnist", rt, *t).and_then(|r| r.get(k));
        target(
            md,
            &format!("Fashion-MNIST adaptive mean / ORT full-depth mean, {t} thread(s)"),
            f("tinv-adaptive", "mean_us")
                .zip(f("ort", "mean_us"))
                .map(|(a, b)| a / b),
            0.45,
            false,
        );
    }
    for case in cases {
        let m = |rt: &str| find(rows, &case.name, rt, 1).and_then(|r| r.get("mem_increase"));
        target(
            md,
            &format!("{}: memory increase tinv / ORT", case.name),
            m("tinv").zip(m("ort")).map(|(a, b)| a / b),
            0.66,
            false,
        );
    }
    let wb =
        |rt: &str| find(rows, "fmnist", rt, 1).and_then(|r| r.get("weight_bytes_per_inference"));
    target(
        md,
        "Fashion-MNIST weight bytes per inference, adaptive / full depth",
        wb("tinv-adaptive").zip(wb("tinv")).map(|(a, b)| a / b),
        0.45,
        false,
    );
}

/// `results.txt`: one line a row, `case runtime threads key=value...`.
fn raw_results(rows: &[Row]) -> String {
    let raw: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.case,
                r.runtime,
                r.threads,
                r.kv.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect();
    raw.join("\n") + "\n"
}

/// A library's file name: the report is committed, so it names no directory of the machine that
/// wrote it.
fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or(String::new(), |f| f.to_string_lossy().into_owned())
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
