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
mod tests {
    use super::*;

    /// `time_sessions` with CPU sessions in TensorRT's place, those of another model than the
    /// reference's: the worst error and the disagreements are the per-run comparisons of every
    /// input on every path, every path is timed, and the adaptive mean depth is that of the
    /// inputs in turn run alone.
    #[test]
    fn time_sessions_compares_every_input_on_every_path_and_times_each_mode() {
        let c = tinv::synth::config(8, 1, 4, 16, 3, 2, 4, &[1, 2, 3], true);
        let open = |seed| {
            let bytes = tinv::synth::random_model(&c, seed, tinv::format::DType::F32);
            Arc::new(Model::from_bytes(&bytes, &tinv::OpenOptions::default()).unwrap())
        };
        let (reference, other) = (open(1), open(4));
        let cpu = |m: &Arc<Model>| {
            Session::new(m.clone(), SessionOptions::default().backend(Backend::Cpu)).unwrap()
        };
        let inputs: Vec<Vec<f32>> = tinv::synth::random_inputs(&c, 5, 3)
            .chunks(c.input_len())
            .map(<[f32]>::to_vec)
            .collect();
        let (mut g, mut p, mut r) = (cpu(&other), cpu(&other), cpu(&reference));
        let t = time_sessions(&mut g, &mut p, &mut r, &inputs, 7).unwrap();
        let (mut a, mut b) = (cpu(&other), cpu(&reference));
        let (mut la, mut lb) = (vec![0f32; c.classes], vec![0f32; c.classes]);
        let (mut worst, mut disagree) = (0f64, 0);
        for x in &inputs {
            for &d in &c.depths {
                a.infer_depth(x, 1, d, &mut la).unwrap();
                b.infer_depth(x, 1, d, &mut lb).unwrap();
                let (e, differs) = logit_error(&la, &lb);
                worst = worst.max(e);
                disagree += usize::from(differs);
            }
        }
        assert!(
            disagree > 0,
            "the two models must disagree somewhere for this test"
        );
        assert_eq!((t.worst, t.disagree, t.runs), (worst, disagree, 15));
        let depths: Vec<usize> = t.paths.iter().map(|p| p.0).collect();
        assert_eq!(depths, c.depths);
        assert!(t
            .paths
            .iter()
            .all(|&(_, p50, p99, plain)| p50 > 0.0 && p50 <= p99 && plain > 0.0));
        assert!(t.switch_us.is_finite() && t.adaptive_us > 0.0, "{t:?}");
        let per: Vec<usize> = (0..7)
            .map(|i| a.infer(&inputs[i % 5], 1, &mut la).unwrap()[0].depth)
            .collect();
        // Seed 4's controller sends input 2 to depth 2 and the others to 3: which input runs
        // when shows in the mean.
        assert!(per.iter().any(|&d| d != per[0]), "{per:?}");
        let depth: usize = per.iter().sum();
        assert_eq!(t.adaptive_depth, depth as f64 / 7.0);
        // The same model on both sides agrees exactly.
        let (mut g, mut p, mut r) = (cpu(&other), cpu(&other), cpu(&other));
        let t = time_sessions(&mut g, &mut p, &mut r, &inputs, 2).unwrap();
        assert_eq!((t.worst, t.disagree, t.runs), (0.0, 0, 15));
    }

    #[test]
    fn a_layouts_engines_are_in_the_folder_built_for_it_or_beside_it() {
        let base = Path::new("/pkg/plans");
        let (pp, seg) = (Layout::PerPath, Layout::Segments);
        assert_eq!(layout_dir(base, Some(seg), seg), base);
        assert_eq!(
            layout_dir(base, Some(seg), pp),
            Path::new("/pkg/plans.per-path")
        );
        assert_eq!(
            layout_dir(base, Some(pp), seg),
            Path::new("/pkg/plans.segments")
        );
        // No engines in `base` yet: the default layout, per-path, is built there.
        assert_eq!(layout_dir(base, None, pp), base);
        assert_eq!(
            layout_dir(base, None, seg),
            Path::new("/pkg/plans.segments")
        );
    }

    #[test]
    fn logit_error_is_relative_to_the_largest_cpu_logit() {
        // |2.5 − 2| / 4, the same class (1).
        assert_eq!(
            logit_error(&[1.0, 2.5, -4.0], &[1.0, 2.0, -4.0]),
            (0.125, false)
        );
        // |3 − 1| / 2, class 0 against class 1.
        assert_eq!(logit_error(&[3.0, 2.0, 0.0], &[1.0, 2.0, 0.0]), (1.0, true));
        // All-zero CPU logits: the scale is 1e-6, not 0.
        let (e, differs) = logit_error(&[1e-7, 0.0], &[0.0, 0.0]);
        assert!((e - 0.1).abs() < 1e-6 && !differs, "{e}");
        assert_eq!(
            (tolerance(Precision::Fp16), tolerance(Precision::Fp32)),
            (2e-2, 1e-3)
        );
    }

    #[test]
    fn switch_cost_is_the_mean_extra_time_of_the_two_paths() {
        // Shallow: 12 µs alternated, 10 alone; deep: 30 and 26.
        assert_eq!(switch_cost((12.0, 10.0), (30.0, 26.0)), 3.0);
        assert_eq!(switch_cost((10.0, 12.0), (26.0, 26.0)), -1.0);
    }

    fn measured(layout: Layout, worst: f64, tol: f64) -> Measured {
        Measured {
            layout,
            dir: PathBuf::from("/pkg/plans"),
            tol,
            device_bytes: 1000,
            naive_bytes: 4000,
            t: Timings {
                worst,
                disagree: 1,
                runs: 20,
                paths: vec![(2, 100.0, 140.0, 130.5), (8, 300.0, 350.25, 320.0)],
                switch_us: -1.25,
                adaptive_us: 180.04,
                adaptive_depth: 3.456,
            },
        }
    }

    #[test]
    fn the_report_prints_what_was_measured() {
        let want = "\
layout per-path (/pkg/plans):
  logits: worst |TensorRT − CPU| / max|logit| = 2.50e-4 (tolerance 1e-3); 1 differing predictions over 20 runs
  depth   graph p50   graph p99   no-graph p50   graph saves
      2     100.0 µs     140.0 µs        130.5 µs        30.5 µs
      8     300.0 µs     350.2 µs        320.0 µs        20.0 µs
  path switch (depth 2 ↔ 8): -1.2 µs per run
  adaptive (default budget, escalations included): mean 180.0 µs, mean depth 3.46
  device memory: 1000 bytes (weights once + one arena); naive 4000 bytes (every engine with its own weights and context memory)
";
        assert_eq!(report(&measured(Layout::PerPath, 2.5e-4, 1e-3)), want);
    }

    #[test]
    fn selftest_fails_on_the_first_layout_out_of_tolerance() {
        let ok = measured(Layout::PerPath, 1e-3, 1e-3);
        assert_eq!(verdict(&[ok]), Ok(()));
        let all = [
            measured(Layout::PerPath, 1e-4, 1e-3),
            measured(Layout::Segments, 3e-2, 2e-2),
        ];
        assert_eq!(
            verdict(&all),
            Err(
                "segments engines: TensorRT logits differ from the CPU by 3.00e-2 of the largest \
                 logit (> 2e-2)"
                    .into()
            )
        );
    }

    #[test]
    fn inputs_are_the_packages_sample_images_else_random_ones() {
        let dir = std::env::temp_dir().join(format!("tinv-selftest-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("samples")).unwrap();
        let c = tinv::synth::tiny(3, true);
        let model = dir.join("model.tinv");
        std::fs::write(
            &model,
            tinv::synth::random_model(&c, 1, tinv::format::DType::F32),
        )
        .unwrap();
        // Without readable images: 8 random inputs.
        std::fs::write(dir.join("samples/notes.txt"), "not an image").unwrap();
        let random = tinv::synth::random_inputs(&c, 8, 1);
        let want: Vec<Vec<f32>> = random.chunks(c.input_len()).map(<[f32]>::to_vec).collect();
        assert_eq!(sample_inputs(Some(&model), &c), want);
        // An 8×8 grey PGM: its pixels / 255 (the model normalizes).
        let px: Vec<u8> = (0..64).map(|i| (i * 4) as u8).collect();
        let mut pgm = b"P5\n8 8\n255\n".to_vec();
        pgm.extend_from_slice(&px);
        std::fs::write(dir.join("samples/a.pgm"), pgm).unwrap();
        let got = sample_inputs(Some(&dir), &c);
        let want: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
        assert_eq!(got.len(), 1);
        assert!(
            got[0].iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{got:?}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
