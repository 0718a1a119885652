//! `tinv-run build` and `tinv-run selftest`: the TensorRT side, for the device (feature
//! `tensorrt`; without it both explain how to get a build that has it).

pub const BUILD_HELP: &str = "\
tinv-run build — build one TensorRT engine per depth path (on the device)

USAGE:
    tinv-run build [--model M] [--layout per-path|segments] [--fp16|--fp32] [--out DIR]
                   [--workspace MB]

OPTIONS:
    --model M        .tinv file or package directory (default: engines/fmnist)
    --layout L       per-path (default): one engine per path, every weight an FP16 input bound
                     to one shared device buffer (weights on the device once);
                     segments: one engine per segment between exits + one per exit head, each
                     weight a constant of exactly one engine
    --fp16 / --fp32  precision (per-path is FP16 by construction; --fp32 applies to segments)
    --out DIR        output folder (default: plans/ beside the model file)
    --workspace MB   builder workspace limit (default 1024)

Exports the ONNX graphs (opset 17; decomposed LayerNorm for TensorRT 8.5, the native op for
≥ 8.6), builds each engine with progress output, and writes DIR/manifest: model content hash,
TensorRT version, GPU, precision, layout, per-engine device memory, I/O tensors and the weight
bindings. Sessions use the engines only when all of these match (`--backend auto|tensorrt`).
";

pub const SELFTEST_HELP: &str = "\
tinv-run selftest — check the TensorRT engines against the CPU backend and time them

USAGE:
    tinv-run selftest [--model M] [--engines DIR] [--iters N]

Runs the package's sample images (or random inputs) through TensorRT and the CPU backend on
every path, compares logits (FP32 ≤ 1e-3, FP16 ≤ 2e-2 of the largest |logit|) and predictions,
then times every path's CUDA graph (median, p99) and the path-switch cost, and prints the device
memory: weights once + one arena, against N engines that each embed their weights.
";

#[cfg(not(feature = "tensorrt"))]
pub fn build(_: &[String]) -> Result<(), String> {
    Err(no_trt())
}

#[cfg(not(feature = "tensorrt"))]
pub fn selftest(_: &[String]) -> Result<(), String> {
    Err(no_trt())
}

#[cfg(not(feature = "tensorrt"))]
fn no_trt() -> String {
    "this tinv-run was built without TensorRT support; on the device run \
     `cargo build --release --features tensorrt` (see docs/JETSON.md)"
        .into()
}

#[cfg(feature = "tensorrt")]
pub use with_trt::{build, selftest};

#[cfg(feature = "tensorrt")]
mod with_trt {
    use crate::args::Args;
    use crate::model_path;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Instant;
    use tinv::onnx::{ExportOptions, GraphKind, Layout as OnnxLayout, LnFlavour, WeightMode};
    use tinv::trt::builder::{build_engines, BuildRequest, EngineSource};
    use tinv::trt::cuda::CudaDevice;
    use tinv::trt::manifest::{self, Layout, PathEngines, Precision};
    use tinv_sys::{BuildOptions, Shim, ShimApi};

    pub fn build(raw: &[String]) -> Result<(), String> {
        let a = Args::parse(
            raw,
            &["model", "layout", "out", "workspace"],
            &["fp16", "fp32", "verify"],
        )?;
        let model = model_path::open(a.get("model"), a.has("verify"))?;
        let layout = match a.get("layout").unwrap_or("per-path") {
            "per-path" => Layout::PerPath,
            "segments" => Layout::Segments,
            other => return Err(format!("--layout {other}: expected per-path or segments")),
        };
        let precision = if a.has("fp32") {
            Precision::Fp32
        } else {
            Precision::Fp16
        };
        if layout == Layout::PerPath && precision == Precision::Fp32 {
            return Err(
                "--fp32 needs --layout segments: per-path engines take FP16 weight inputs".into(),
            );
        }
        let workspace = a
            .parse_opt::<u64>("workspace", "megabytes")?
            .unwrap_or(1024);
        let out = a
            .get("out")
            .map_or_else(|| tinv::backend::default_engines_dir(&model), PathBuf::from);
        let shim = Shim::shared().map_err(|e| e.to_string())?;
        let device = CudaDevice::open(0).map_err(|e| e.to_string())?;
        let v = shim.version();
        // TensorRT 8.5's ONNX parser has no LayerNormalization.
        let ln = if v.major == 8 && v.minor < 6 {
            LnFlavour::Decomposed
        } else {
            LnFlavour::Native
        };
        let onnx_dir = out.join("onnx");
        std::fs::create_dir_all(&onnx_dir).map_err(|e| format!("{}: {e}", onnx_dir.display()))?;
        let weights = if layout == Layout::PerPath {
            WeightMode::Fp16Inputs
        } else {
            WeightMode::Baked
        };
        let onnx_layout = if layout == Layout::PerPath {
            OnnxLayout::PerPath
        } else {
            OnnxLayout::Segments
        };
        let graphs = tinv::onnx::export_graphs(
            &model,
            &ExportOptions {
                ln,
                layout: onnx_layout,
                weights,
            },
        )
        .map_err(|e| e.to_string())?;
        let depths = &model.config().depths;
        let mut engines = Vec::new();
        let mut paths: Vec<PathEngines> = depths
            .iter()
            .map(|&d| PathEngines {
                depth: d as u32,
                engines: Vec::new(),
            })
            .collect();
        for g in &graphs {
            let name = g.file_name.trim_end_matches(".onnx").replace('.', "_");
            match g.kind {
                GraphKind::Path { depth } => {
                    if let Some(k) = model.config().path_index(depth) {
                        paths[k].engines.push(name.clone());
                    }
                }
                // A segment ending at exit k belongs to every path from k on; a head to its path.
                GraphKind::Segment { end, .. } => {
                    for p in paths.iter_mut().filter(|p| p.depth as usize >= end) {
                        p.engines.push(name.clone());
                    }
                }
                GraphKind::ExitHead { depth } => {
                    if let Some(k) = model.config().path_index(depth) {
                        paths[k].engines.push(name.clone());
                    }
                }
                GraphKind::Controller => continue, // runs on the host
            }
            let file = onnx_dir.join(&g.file_name);
            std::fs::write(&file, &g.bytes).map_err(|e| format!("{}: {e}", file.display()))?;
            engines.push(EngineSource { name, onnx: file });
        }
        let weights = if layout == Layout::PerPath {
            let blob = tinv::onnx::weight_blob(&model);
            let table = blob
                .bindings
                .iter()
                .map(|b| manifest::WeightBinding {
                    name: b.name.clone(),
                    dtype: manifest::DType::F16,
                    offset: b.offset as u64,
                    bytes: b.nbytes as u64,
                    shape: b.shape.iter().map(|&d| d as u64).collect(),
                })
                .collect();
            (table, blob.bytes.len() as u64)
        } else {
            (Vec::new(), 0)
        };
        let req = BuildRequest {
            model_hash: model.content_hash(),
            layout,
            precision,
            engines,
            weights,
            paths,
            options: BuildOptions {
                workspace_bytes: workspace << 20,
                ..BuildOptions::default()
            },
        };
        eprintln!(
            "build: TensorRT {}.{}.{}, {} engine(s), {:?} {:?} → {}",
            v.major,
            v.minor,
            v.patch,
            req.engines.len(),
            layout,
            precision,
            out.display()
        );
        let t0 = Instant::now();
        let mut progress = |engine: &str, phase: &str, step: i32, steps: i32| {
            if step < 0 {
                eprintln!("build: {engine}: {phase}");
            } else if steps > 0 && step % (steps / 4).max(1) == 0 {
                eprintln!("build: {engine}: {phase} {step}/{steps}");
            }
            true
        };
        let m =
            build_engines(&*shim, &device, &req, &out, &mut progress).map_err(|e| e.to_string())?;
        let report = tinv::trt::arena::MemoryReport::new(&m).map_err(|e| e.to_string())?;
        println!(
            "built {} engine(s) in {:.1} s into {}",
            m.engines.len(),
            t0.elapsed().as_secs_f64(),
            out.display()
        );
        println!(
            "device memory: {} bytes (weights once + one arena), naive {} bytes (every engine with its own weights and context memory)",
            report.total(),
            report.naive_total()
        );
        Ok(())
    }

    pub fn selftest(raw: &[String]) -> Result<(), String> {
        let a = Args::parse(raw, &["model", "engines", "iters"], &["verify"])?;
        let iters = a
            .parse_opt::<usize>("iters", "a run count")?
            .unwrap_or(200)
            .max(2);
        let model = Arc::new(model_path::open(a.get("model"), a.has("verify"))?);
        let c = model.config().clone();
        let engines = a.get("engines").map(PathBuf::from);
        let open = |backend| {
            tinv::Session::new(
                model.clone(),
                tinv::SessionOptions {
                    backend,
                    engines: engines.clone(),
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string())
        };
        let mut gpu = open(tinv::Backend::TensorRt)?;
        let mut cpu = open(tinv::Backend::Cpu)?;
        let inputs = sample_inputs(a.get("model"), &c);
        let fp16 = tinv::trt::builder::read_manifest(
            &engines
                .clone()
                .unwrap_or_else(|| tinv::backend::default_engines_dir(&model)),
        )
        .map(|m| m.precision == Precision::Fp16)
        .unwrap_or(true);
        let (mut lg, mut lc) = (vec![0f32; c.classes], vec![0f32; c.classes]);
        let mut worst = 0f64;
        let mut disagree = 0;
        for x in &inputs {
            for &d in &c.depths {
                gpu.infer_depth(x, 1, d, &mut lg)
                    .map_err(|e| e.to_string())?;
                cpu.infer_depth(x, 1, d, &mut lc)
                    .map_err(|e| e.to_string())?;
                let scale = lc.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
                let diff = lg
                    .iter()
                    .zip(&lc)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max)
                    / scale;
                worst = worst.max(f64::from(diff));
                disagree += usize::from(tinv::control::argmax(&lg) != tinv::control::argmax(&lc));
            }
        }
        let tol = if fp16 { 2e-2 } else { 1e-3 };
        println!(
            "logits: worst |TensorRT − CPU| / max|logit| = {worst:.2e} (tolerance {tol:.0e}); {disagree} differing predictions over {} runs",
            inputs.len() * c.depths.len()
        );
        for &d in &c.depths {
            let mut t: Vec<f64> = (0..iters)
                .map(|_| {
                    gpu.infer_depth(&inputs[0], 1, d, &mut lg)
                        .map(|s| s[0].latency_us)
                })
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            t.sort_by(f64::total_cmp);
            println!(
                "depth {d:>3}: CUDA graph p50 {:.1} µs, p99 {:.1} µs",
                t[t.len() / 2],
                t[t.len() * 99 / 100]
            );
        }
        if worst > tol {
            return Err(format!("TensorRT logits differ from the CPU by {worst:.2e} of the largest logit (> {tol:.0e})"));
        }
        Ok(())
    }

    /// The package's sample images, or random inputs when it has none.
    fn sample_inputs(model: Option<&str>, c: &tinv::Config) -> Vec<Vec<f32>> {
        let dir = model_path::resolve(model)
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("samples")));
        let mut v: Vec<Vec<f32>> = dir
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p: PathBuf| crate::images::load_image(Path::new(&p), c).ok())
            .collect();
        if v.is_empty() {
            let x = tinv::synth::random_inputs(c, 8, 1);
            v = x.chunks(c.input_len()).map(<[f32]>::to_vec).collect();
        }
        v
    }
}
