//! `tinv-run selftest` (feature `tensorrt`): the first command a Jetson owner runs. Per layout:
//! TensorRT against the CPU backend on every path, latency with and without CUDA graphs, the
//! path-switch cost, adaptive mode, device memory; then the layout it recommends.

use crate::args::Args;
use crate::model_path;
use crate::trt::with_trt::{build_layout, parse_layout};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tinv::trt::arena::MemoryReport;
use tinv::trt::builder::{read_manifest, MANIFEST_FILE};
use tinv::trt::layout::{recommend_layout, LayoutScore};
use tinv::trt::manifest::{Layout, Precision};
use tinv::{Backend, Model, Session, SessionOptions};

/// What one layout measured.
struct Measured {
    layout: Layout,
    dir: PathBuf,
    /// The largest `logit_error` its engines' precision allows.
    tol: f64,
    /// Device memory: weights once + one arena.
    device_bytes: u64,
    /// Device memory if every engine held its own weights and context memory.
    naive_bytes: u64,
    t: Timings,
}

/// What the sessions of one layout gave: agreement with the CPU, then times.
#[derive(Debug)]
struct Timings {
    /// The largest `logit_error` over every input and path.
    worst: f64,
    /// Runs whose prediction differs from the CPU's.
    disagree: usize,
    /// Runs compared (inputs × paths).
    runs: usize,
    /// Per path: (depth, graph p50, graph p99, plain-enqueue p50), µs.
    paths: Vec<(usize, f64, f64, f64)>,
    switch_us: f64,
    /// Adaptive mode at the model's default budget: mean µs and mean depth.
    adaptive_us: f64,
    adaptive_depth: f64,
}

pub fn selftest(raw: &[std::ffi::OsString]) -> Result<(), String> {
    let a = Args::parse(
        raw,
        &["model", "engines", "iters", "layouts", "workspace"],
        &["verify"],
    )?
    .max_positional(0)?;
    let iters = a.count("iters", "a run count", 2)?.unwrap_or(200);
    let workspace = crate::trt::workspace_mb(&a)?;
    let layouts = a
        .get("layouts")
        .unwrap_or("per-path,segments")
        .split(',')
        .map(parse_layout)
        .collect::<Result<Vec<_>, _>>()?;
    let model = Arc::new(model_path::open(a.path("model"), a.has("verify"))?);
    let base = a
        .path("engines")
        .map_or_else(|| tinv::backend::default_engines_dir(&model), PathBuf::from);
    let base_layout = read_manifest(&base).ok().map(|m| m.layout);
    let inputs = sample_inputs(a.path("model"), model.config());
    let mut all = Vec::new();
    for layout in layouts {
        let dir = layout_dir(&base, base_layout, layout);
        if !dir.join(MANIFEST_FILE).is_file() {
            errln!(
                "selftest: no {} engines in {}; building them",
                layout.name(),
                dir.display()
            );
            build_layout(&model, layout, None, workspace, &dir)?;
        }
        let m = measure(&model, layout, &dir, &inputs, iters)?;
        out!("{}", report(&m));
        all.push(m);
    }
    let scores: Vec<LayoutScore> = all
        .iter()
        .map(|m| LayoutScore {
            layout: m.layout,
            adaptive_us: m.t.adaptive_us,
            device_bytes: m.device_bytes,
        })
        .collect();
    if let Some((best, why)) = recommend_layout(&scores) {
        let dir = all
            .iter()
            .find(|m| m.layout == best)
            .map_or(base.clone(), |m| m.dir.clone());
        outln!("recommended layout: {} — {why}", best.name());
        if dir != base {
            outln!(
                "  sessions use {}: run `tinv-run build --layout {}` (or pass --engines {})",
                base.display(),
                best.name(),
                dir.display()
            );
        }
    }
    verdict(&all)
}

/// The error for the first layout whose logits are out of tolerance.
fn verdict(all: &[Measured]) -> Result<(), String> {
    match all.iter().find(|m| m.t.worst > m.tol) {
        Some(m) => Err(format!(
            "{} engines: TensorRT logits differ from the CPU by {:.2e} of the largest logit (> {:.0e})",
            m.layout.name(),
            m.t.worst,
            m.tol
        )),
        None => Ok(()),
    }
}

/// Where `layout`'s engines live: `base` when they are the ones there (or when `base` has none
/// and the layout is the default, per-path), else the sibling `base.<layout>`.
fn layout_dir(base: &Path, base_layout: Option<Layout>, layout: Layout) -> PathBuf {
    let here = match base_layout {
        Some(l) => l == layout,
        None => layout == Layout::PerPath,
    };
    if here {
        return base.to_path_buf();
    }
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}", layout.name()));
    base.with_file_name(name)
}

fn session(
    model: &Arc<Model>,
    backend: Backend,
    dir: &Path,
    graphs: bool,
) -> Result<Session, String> {
    Session::new(
        model.clone(),
        SessionOptions::default()
            .backend(backend)
            .engines(dir.to_path_buf())
            .cuda_graphs(graphs),
    )
    .map_err(|e| e.to_string())
}

/// Latencies (µs) of `iters` forced runs of depth `d`, over the inputs in turn.
fn time_depth(
    s: &mut Session,
    inputs: &[Vec<f32>],
    d: usize,
    iters: usize,
) -> Result<Vec<f64>, String> {
    let mut logits = vec![0f32; s.model().config().classes];
    (0..iters)
        .map(|i| {
            s.infer_depth(&inputs[i % inputs.len()], 1, d, &mut logits)
                .map(|st| st[0].latency_us)
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn measure(
    model: &Arc<Model>,
    layout: Layout,
    dir: &Path,
    inputs: &[Vec<f32>],
    iters: usize,
) -> Result<Measured, String> {
    let manifest = read_manifest(dir).map_err(|e| e.to_string())?;
    let memory = MemoryReport::new(&manifest).map_err(|e| e.to_string())?;
    let mut gpu = session(model, Backend::TensorRt, dir, true)?;
    let mut plain = session(model, Backend::TensorRt, dir, false)?;
    let mut cpu = session(model, Backend::Cpu, dir, true)?;
    Ok(Measured {
        layout,
        dir: dir.to_path_buf(),
        tol: tolerance(manifest.precision),
        device_bytes: memory.total(),
        naive_bytes: memory.naive_total(),
        t: time_sessions(&mut gpu, &mut plain, &mut cpu, inputs, iters)?,
    })
}

/// Runs `inputs` through `gpu` (TensorRT with CUDA graphs) and `cpu` on every path and compares
/// them, then times `gpu` and `plain` (TensorRT call by call) on every path, `gpu`'s path switch
/// and its adaptive mode, `iters` runs each.
fn time_sessions(
    gpu: &mut Session,
    plain: &mut Session,
    cpu: &mut Session,
    inputs: &[Vec<f32>],
    iters: usize,
) -> Result<Timings, String> {
    let depths = gpu.model().config().depths.clone();
    let classes = gpu.model().config().classes;
    let (mut lg, mut lc) = (vec![0f32; classes], vec![0f32; classes]);
    let (mut worst, mut disagree) = (0f64, 0);
    for x in inputs {
        for &d in &depths {
            gpu.infer_depth(x, 1, d, &mut lg)
                .map_err(|e| e.to_string())?;
            cpu.infer_depth(x, 1, d, &mut lc)
                .map_err(|e| e.to_string())?;
            let (err, differs) = logit_error(&lg, &lc);
            worst = worst.max(err);
            disagree += usize::from(differs);
        }
    }
    let mut paths = Vec::new();
    for &d in &depths {
        let mut g = time_depth(gpu, inputs, d, iters)?;
        let mut p = time_depth(plain, inputs, d, iters)?;
        let (p50, g99) = tinv::timing::summary(&mut g);
        paths.push((d, p50, g99, tinv::timing::summary(&mut p).0));
    }
    // Switching: the shallowest and the deepest path alternately, against each run on its own.
    let (first, last) = (paths[0], paths[paths.len() - 1]);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for i in 0..iters {
        ta.extend(time_depth(gpu, &inputs[i % inputs.len()..], first.0, 1)?);
        tb.extend(time_depth(gpu, &inputs[i % inputs.len()..], last.0, 1)?);
    }
    let switch_us = switch_cost(
        (tinv::timing::summary(&mut ta).0, first.1),
        (tinv::timing::summary(&mut tb).0, last.1),
    );
    // Adaptive mode at the model's default budget, escalations included.
    let (mut total, mut depth) = (0f64, 0usize);
    for i in 0..iters {
        let st = gpu
            .infer(&inputs[i % inputs.len()], 1, &mut lg)
            .map_err(|e| e.to_string())?;
        total += st[0].latency_us;
        depth += st[0].depth;
    }
    Ok(Timings {
        worst,
        disagree,
        runs: inputs.len() * depths.len(),
        paths,
        switch_us,
        adaptive_us: total / iters as f64,
        adaptive_depth: depth as f64 / iters as f64,
    })
}

/// How far TensorRT's logits `trt` are from the CPU's `cpu`: the largest |difference| over the
/// largest |CPU logit| (at least 1e-6), and whether the two predict different classes.
fn logit_error(trt: &[f32], cpu: &[f32]) -> (f64, bool) {
    let scale = cpu.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = trt
        .iter()
        .zip(cpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let differs = tinv::control::argmax(trt) != tinv::control::argmax(cpu);
    (f64::from(diff / scale), differs)
}

/// The largest `logit_error` engines of `precision` may show.
fn tolerance(precision: Precision) -> f64 {
    if precision == Precision::Fp16 {
        2e-2
    } else {
        1e-3
    }
}

/// The cost of a path switch per run: over the shallowest and the deepest path, the mean of
/// (p50 when the two alternate − p50 on its own); each argument is that pair of one path.
fn switch_cost(shallow: (f64, f64), deep: (f64, f64)) -> f64 {
    (shallow.0 - shallow.1 + deep.0 - deep.1) / 2.0
}

/// One layout's lines of the report.
fn report(m: &Measured) -> String {
    let mut r = format!("layout {} ({}):\n", m.layout.name(), m.dir.display());
    let _ = writeln!(
        r,
        "  logits: worst |TensorRT − CPU| / max|logit| = {:.2e} (tolerance {:.0e}); {} differing predictions over {} runs",
        m.t.worst, m.tol, m.t.disagree, m.t.runs
    );
    r.push_str("  depth   graph p50   graph p99   no-graph p50   graph saves\n");
    for &(d, p50, p99, plain) in &m.t.paths {
        let _ = writeln!(
            r,
            "  {d:>5} {p50:>9.1} µs {p99:>9.1} µs {plain:>12.1} µs {:>11.1} µs",
            plain - p50
        );
    }
    let _ = writeln!(
        r,
        "  path switch (depth {} ↔ {}): {:+.1} µs per run",
        m.t.paths[0].0,
        m.t.paths[m.t.paths.len() - 1].0,
        m.t.switch_us
    );
    let _ = writeln!(
        r,
        "  adaptive (default budget, escalations included): mean {:.1} µs, mean depth {:.2}",
        m.t.adaptive_us, m.t.adaptive_depth
    );
    let _ = writeln!(
        r,
        "  device memory: {} bytes (weights once + one arena); naive {} bytes (every engine with its own weights and context memory)",
        m.device_bytes, m.naive_bytes
    );
    r
}

/// The package's sample images, or random inputs when it has none.
fn sample_inputs(model: Option<&std::path::Path>, c: &tinv::Config) -> Vec<Vec<f32>> {
    let dir = model_path::resolve(model)
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("samples")));
    let mut v: Vec<Vec<f32>> = dir
        .and_then(|d| std::fs::read_dir(d).ok())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p: PathBuf| crate::images::load_image(&p, c).ok())
        .collect();
    if v.is_empty() {
        let x = tinv::synth::random_inputs(c, 8, 1);
        v = x.chunks(c.input_len()).map(<[f32]>::to_vec).collect();
    }
    v
}

#[cfg(test)]
#[path = "selftest_tests.rs"]
mod tests;
