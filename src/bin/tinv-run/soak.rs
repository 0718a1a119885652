//! `tinv-run soak`: a long run of adaptive inferences that watches memory, speed and determinism.

use crate::args::Args;
use crate::json::Json;
use std::sync::Arc;
use std::time::Instant;

pub const HELP: &str = "\
tinv-run soak — many adaptive inferences: memory drift, throughput over time, determinism

USAGE:
    tinv-run soak [--model M | --synthetic fmnist] [--count N] [--budget λ]
                  [--report-every N] [--inputs K] [--threads N] [--backend B]
                  [--engines D] [--verify] [--json]

OPTIONS:
    --model M          .tinv file or package directory (default: $TINV_MODEL, else
                       the engines/fmnist package; see tinv-run --help)
    --synthetic NAME   a model with random weights instead: fmnist (28² grey, patch 4, dim 96,
                       3 heads, 8 blocks, exits 2/4/6/8, a random controller that starts
                       inputs at depths 2 and 4 and escalates them, so that both levels run)
    --count N          inferences in all (default 1000000)
    --budget λ         controller budget in [0, 1] (default: the model's)
    --report-every N   one report line per N inferences (default: count / 10)
    --inputs K         distinct random inputs, cycled, at most 65536 (default 64)
    --threads N        worker threads, 1 to 256 (default 1)
    --backend B        auto (default), cpu or tensorrt, as for classify
    --engines D        TensorRT engines folder (default: plans/ beside the model file)
    --verify           check every tensor checksum and device copy when opening the --model
    --json             one JSON object per report: done, per_sec, rss_kib, paths (inferences
                       of the window per path); then a summary object: count, secs, per_sec,
                       start_rss_kib, end_rss_kib, rss_growth_pct, mismatches, paths (per path,
                       in all); RSS values are \"n/a\" where /proc is unreadable

Inputs are K fixed random images; each is run count/K times, one per call (batch 1). The first
logits of each input are kept and every later run must give the same bits. RSS (VmRSS from
/proc/self/status) is taken after one warm-up pass over the inputs and at the end; the run
fails (exit 1) if any output differs or, from 1000 inferences on, the RSS grew by more than 1%
(a shorter run grows by the pages its first reports touch, not by drift).
";

/// Inferences from which RSS growth is judged: a run of 4 grew 1.9 % on a small synthetic model,
/// the pages that printing its report touched, not drift.
const MIN_DRIFT_COUNT: u64 = 1000;

/// The most distinct inputs `--inputs` takes.
const MAX_INPUTS: usize = 1 << 16;

/// One reporting window.
struct Window {
    done: u64,
    per_sec: f64,
    rss_kib: Option<u64>,
    /// Inferences of the window that answered at each path.
    paths: Vec<u64>,
}

/// The outcome of a soak run.
struct Summary {
    count: u64,
    secs: f64,
    start_rss_kib: Option<u64>,
    end_rss_kib: Option<u64>,
    mismatches: u64,
    first_mismatch: Option<u64>,
    paths: Vec<u64>,
}

impl Summary {
    /// RSS growth from start to end in percent, if RSS is readable here.
    fn rss_growth_pct(&self) -> Option<f64> {
        let (a, b) = (self.start_rss_kib?, self.end_rss_kib?);
        Some((b as f64 - a as f64) / a as f64 * 100.0)
    }
}

/// `VmRSS` in KiB from the text of `/proc/self/status`.
fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Resident set size of this process in KiB (Linux; `None` elsewhere).
fn rss_kib() -> Option<u64> {
    parse_vmrss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The model's shape as `soak` sees it: inputs cycled, logits per input, paths.
#[derive(Clone, Copy)]
struct Shape {
    inputs: usize,
    classes: usize,
    paths: usize,
}

/// One batch-1 inference of input `i` of `inputs` on `s`, into `logits`: the path that answered.
fn session_infer<'a>(
    s: &'a mut tinv::Session,
    inputs: &'a [f32],
) -> impl FnMut(usize, &mut [f32]) -> Result<usize, String> + 'a {
    let len = s.model().config().input_len();
    move |i, logits| {
        let x = &inputs[i * len..(i + 1) * len];
        s.infer(x, 1, logits)
            .map(|st| st[0].path)
            .map_err(|e| e.to_string())
    }
}

/// Runs `count` inferences cycling over the `shape.inputs` inputs through `infer` (input index,
/// logits → path index), calling `report` after every `every` inferences. Allocates nothing per
/// inference itself: the kept logits and counters are sized before the loop.
fn soak(
    shape: Shape,
    mut infer: impl FnMut(usize, &mut [f32]) -> Result<usize, String>,
    count: u64,
    every: u64,
    mut report: impl FnMut(&Window),
) -> Result<Summary, String> {
    let (n_in, k, p) = (shape.inputs, shape.classes, shape.paths);
    let mut reference = vec![0u32; n_in * k];
    let mut logits = vec![0f32; k];
    let mut paths = vec![0u64; p];
    // Warm-up pass: the reference logits, and every page the runs will touch is resident.
    for i in 0..n_in {
        infer(i, &mut logits)?;
        for (r, v) in reference[i * k..(i + 1) * k].iter_mut().zip(&logits) {
            *r = v.to_bits();
        }
    }
    let start_rss_kib = rss_kib();
    let (mut mismatches, mut first_mismatch) = (0, None);
    let mut window = vec![0u64; p];
    let t0 = Instant::now();
    let mut tw = t0;
    for n in 0..count {
        let i = (n % n_in as u64) as usize;
        window[infer(i, &mut logits)?] += 1;
        let same = reference[i * k..(i + 1) * k]
            .iter()
            .zip(&logits)
            .all(|(r, v)| *r == v.to_bits());
        if !same {
            mismatches += 1;
            first_mismatch.get_or_insert(n);
        }
        if (n + 1) % every == 0 || n + 1 == count {
            let now = Instant::now();
            let in_window = window.iter().sum::<u64>();
            report(&Window {
                done: n + 1,
                per_sec: in_window as f64 / now.duration_since(tw).as_secs_f64().max(1e-9),
                rss_kib: rss_kib(),
                paths: window.clone(),
            });
            paths.iter_mut().zip(&window).for_each(|(a, w)| *a += w);
            window.iter_mut().for_each(|w| *w = 0);
            tw = now;
        }
    }
    Ok(Summary {
        count,
        secs: t0.elapsed().as_secs_f64(),
        start_rss_kib,
        end_rss_kib: rss_kib(),
        mismatches,
        first_mismatch,
        paths,
    })
}

fn opt_num(v: Option<u64>) -> Json {
    v.map_or(Json::Str("n/a".into()), Json::Int)
}

pub fn run(raw: &[std::ffi::OsString]) -> Result<(), String> {
    let a = Args::parse(
        raw,
        &[
            "model",
            "synthetic",
            "count",
            "budget",
            "report-every",
            "inputs",
            "backend",
            "engines",
            "threads",
        ],
        &["json", "verify"],
    )?
    .max_positional(0)?;
    let count = a
        .count("count", "an inference count", 1)?
        .unwrap_or(1_000_000);
    let every = a
        .count("report-every", "an inference count", 1)?
        .unwrap_or((count / 10).max(1));
    let n_in = check_inputs(a.count("inputs", "an input count", 1)?.unwrap_or(64))?;
    let threads = a.threads()?;
    let budget = a.parse_opt::<f32>("budget", "a budget λ in [0, 1]")?;
    a.one_model()?;
    let model = match a.get("synthetic") {
        Some("fmnist") => {
            let cfg = tinv::synth::config(28, 1, 4, 96, 8, 3, 10, &[2, 4, 6, 8], true);
            // Seed 30: its random controller starts the 64 default inputs on paths 2 and 4 and
            // its layer-wise policy escalates them to all four exits (most seeds pick one path).
            let bytes = tinv::synth::random_model(&cfg, 30, tinv::format::DType::F32);
            tinv::Model::from_bytes(&bytes, &tinv::OpenOptions::default())
                .map_err(|e| e.to_string())?
        }
        Some(other) => return Err(format!("--synthetic {other}: known shapes are: fmnist")),
        None => crate::model_path::open(a.path("model"), a.has("verify"))?,
    };
    // Accepted and ignored before: the run went at full depth under a "budget 0.5" banner.
    if budget.is_some() && model.config().controller.is_none() {
        // soak takes neither --depth nor --mode.
        return Err(crate::no_controller("--budget", "drop it"));
    }
    let opts = crate::backend_options(&a)?
        .max_batch(1)
        .threads(threads)
        .budget(budget);
    let mut s = tinv::Session::new(Arc::new(model), opts).map_err(|e| e.to_string())?;
    let cfg = s.model().config().clone();
    let inputs = tinv::synth::random_inputs(&cfg, n_in, 42);
    let json = a.has("json");
    if cfg.controller.is_some() {
        errln!(
            "soak: {count} adaptive inferences over {n_in} inputs, budget {}, paths {:?}",
            s.budget(),
            cfg.depths
        );
    } else {
        errln!(
            "soak: {count} inferences over {n_in} inputs at full depth (the model has no \
             controller), paths {:?}",
            cfg.depths
        );
    }
    let shape = Shape {
        inputs: n_in,
        classes: cfg.classes,
        paths: cfg.depths.len(),
    };
    let sum = soak(shape, session_infer(&mut s, &inputs), count, every, |w| {
        if json {
            let paths = Json::Arr(w.paths.iter().map(|&v| Json::Int(v)).collect());
            let j = Json::obj()
                .set("done", Json::Int(w.done))
                .set("per_sec", Json::Num(w.per_sec))
                .set("rss_kib", opt_num(w.rss_kib))
                .set("paths", paths);
            outln!("{}", j.render());
        } else {
            let rss = w.rss_kib.map_or("n/a".into(), |r| format!("{r} KiB"));
            outln!(
                "{:>10} done  {:>9.1} inf/s  RSS {rss}  paths {:?}",
                w.done,
                w.per_sec,
                w.paths
            );
        }
    })?;
    let growth = sum.rss_growth_pct();
    let rate = sum.count as f64 / sum.secs.max(1e-9);
    if json {
        let j = Json::obj()
            .set("count", Json::Int(sum.count))
            .set("secs", Json::Num(sum.secs))
            .set("per_sec", Json::Num(rate))
            .set("start_rss_kib", opt_num(sum.start_rss_kib))
            .set("end_rss_kib", opt_num(sum.end_rss_kib))
            .set(
                "rss_growth_pct",
                growth.map_or(Json::Str("n/a".into()), Json::Num),
            )
            .set("mismatches", Json::Int(sum.mismatches))
            .set(
                "paths",
                Json::Arr(sum.paths.iter().map(|&v| Json::Int(v)).collect()),
            );
        outln!("{}", j.render());
    } else {
        let rss = |v: Option<u64>| v.map_or("n/a".into(), |r| format!("{r} KiB"));
        outln!(
            "soak: {} inferences in {:.1} s ({rate:.1} inf/s); RSS {} -> {} ({}); {} outputs differed from the first run; paths {:?}",
            sum.count,
            sum.secs,
            rss(sum.start_rss_kib),
            rss(sum.end_rss_kib),
            growth.map_or("n/a".into(), |g| format!("{g:+.3}%")),
            sum.mismatches,
            sum.paths
        );
    }
    verdict(&sum)
}

/// `--inputs`, at most [`MAX_INPUTS`].
fn check_inputs(n: usize) -> Result<usize, String> {
    match n {
        n if n > MAX_INPUTS => Err(format!("--inputs must be at most {MAX_INPUTS}")),
        n => Ok(n),
    }
}

/// The run's failure, if any: outputs that differed from their input's first run, else RSS drift.
fn verdict(sum: &Summary) -> Result<(), String> {
    if let Some(n) = sum.first_mismatch {
        return Err(format!(
            "{} outputs differed from the first run of their input (first at inference {n})",
            sum.mismatches
        ));
    }
    match sum.rss_growth_pct() {
        Some(g) if drifted(g, sum.count) => Err(format!("RSS grew by {g:.2}% (more than 1%)")),
        _ => Ok(()),
    }
}

/// Whether RSS growth `g` (%) over `count` inferences fails the soak.
fn drifted(g: f64, count: u64) -> bool {
    g > 1.0 && count >= MIN_DRIFT_COUNT
}

#[cfg(test)]
#[path = "soak_tests.rs"]
mod tests;
