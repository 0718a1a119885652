//! `tinv-run build` and `tinv-run selftest`: the TensorRT side, for the device (feature
//! `tensorrt`; without it both explain how to get a build that has it).

pub const BUILD_HELP: &str = "\
tinv-run build — build one TensorRT engine per depth path (on the device)

USAGE:
    tinv-run build [--model M] [--layout per-path|segments] [--fp16|--fp32] [--out DIR]
                   [--workspace MB] [--verify]

OPTIONS:
    --model M        .tinv file or package directory (default: $TINV_MODEL, else
                     the engines/fmnist package; see tinv-run --help)
    --layout L       per-path (default): one engine per path, every weight an FP16 input bound
                     to one shared device buffer (weights on the device once);
                     segments: one engine per segment between exits + one per exit head, each
                     weight a constant of exactly one engine
    --fp16 / --fp32  precision (default: FP16, and FP32 for segments on TensorRT 11). per-path
                     is FP16 by construction; segments bake f32 weights, which TensorRT 11's
                     strongly typed networks run in FP32 only, so --fp16 is refused there
    --out DIR        output folder (default: plans/ beside the model file)
    --workspace MB   builder workspace limit, 1 to 1048576 (default 1024)
    --verify         check every tensor checksum and device copy when opening the model

Exports the ONNX graphs (opset 17; decomposed LayerNorm for TensorRT 8.5, the native op for
≥ 8.6), builds each engine with progress output, and writes DIR/manifest: model hash (tensors
and configuration), TensorRT version, GPU, precision, layout, per-engine device memory, I/O
tensors and the weight bindings. Sessions use the engines only when all of these match (`--backend auto|tensorrt`).

Needs TensorRT support compiled in (`cargo build --release --features tensorrt`, on the device:
docs/JETSON.md); a tinv-run built without it refuses this command and every option above.
";

pub const SELFTEST_HELP: &str = "\
tinv-run selftest — check the TensorRT engines against the CPU backend, time them, compare layouts

USAGE:
    tinv-run selftest [--model M] [--engines DIR] [--layouts L,...] [--iters N] [--workspace MB]
                      [--verify]

OPTIONS:
    --model M        .tinv file or package directory (default: $TINV_MODEL, else
                     the engines/fmnist package; see tinv-run --help)
    --engines DIR    engines folder (default: plans/ beside the model); the engines there are
                     used for the layout they were built with, the other layout lives in
                     DIR.<layout> (e.g. plans.segments/); a layout with no engines is built first
    --layouts L,...  layouts to check and compare (default: per-path,segments)
    --iters N        timed runs per measurement, at least 2 (default 200)
    --workspace MB   builder workspace limit when building, 1 to 1048576 (default 1024)
    --verify         check every tensor checksum and device copy when opening the model

For each layout: runs the package's sample images (or random inputs) through TensorRT and the
CPU backend on every path and compares logits (FP32 ≤ 1e-3, FP16 ≤ 2e-2 of the largest |logit|)
and predictions; times every path with its CUDA graph and with plain enqueues (median, p99), the
cost of switching paths, and adaptive mode over the inputs; prints the device memory (weights
once + one arena, against N engines that each embed their weights). Ends with the layout it
recommends and why. Exits non-zero when any logits are out of tolerance.

Needs TensorRT support compiled in (`cargo build --release --features tensorrt`, on the device:
docs/JETSON.md); a tinv-run built without it refuses this command and every option above.
";

#[cfg(not(feature = "tensorrt"))]
pub fn build(_: &[std::ffi::OsString]) -> Result<(), String> {
    Err(no_trt())
}

#[cfg(not(feature = "tensorrt"))]
pub fn selftest(_: &[std::ffi::OsString]) -> Result<(), String> {
    Err(no_trt())
}

#[cfg(not(feature = "tensorrt"))]
fn no_trt() -> String {
    "this tinv-run was built without TensorRT support; on the device run \
     `cargo build --release --features tensorrt` (see docs/JETSON.md)"
        .into()
}

#[cfg(feature = "tensorrt")]
pub use crate::selftest::selftest;
#[cfg(feature = "tensorrt")]
pub use with_trt::{build, workspace_mb};

#[cfg(feature = "tensorrt")]
pub(crate) mod with_trt {
    use crate::args::Args;
    use crate::model_path;
    use std::path::{Path, PathBuf};
    use std::time::Instant;
    use tinv::trt::builder::build_engines;
    use tinv::trt::cuda::CudaDevice;
    use tinv::trt::manifest::{Layout, Manifest, Precision};
    use tinv_sys::{Shim, ShimApi};

    pub fn parse_layout(s: &str) -> Result<Layout, String> {
        match s {
            "per-path" => Ok(Layout::PerPath),
            "segments" => Ok(Layout::Segments),
            other => Err(format!("--layout {other}: expected per-path or segments")),
        }
    }

    /// `--workspace` in MB: 1 MB to 1 TiB (2^20 MB), default 1024; in bytes it fits a u64.
    pub fn workspace_mb(a: &Args) -> Result<u64, String> {
        match a.count::<u64>("workspace", "megabytes", 1)? {
            Some(mb) if mb > 1 << 20 => Err(format!("--workspace {mb}: at most 1048576 MB")),
            mb => Ok(mb.unwrap_or(1024)),
        }
    }

    pub fn build(raw: &[std::ffi::OsString]) -> Result<(), String> {
        let a = Args::parse(
            raw,
            &["model", "layout", "out", "workspace"],
            &["fp16", "fp32", "verify"],
        )?
        .max_positional(0)?;
        // The arguments before the model: a bad flag costs no model load.
        let layout = parse_layout(a.get("layout").unwrap_or("per-path"))?;
        let workspace = workspace_mb(&a)?;
        let precision = precision(a.has("fp16"), a.has("fp32"))?;
        let model = model_path::open(a.path("model"), a.has("verify"))?;
        let out = a
            .path("out")
            .map_or_else(|| tinv::backend::default_engines_dir(&model), PathBuf::from);
        let m = build_layout(&model, layout, precision, workspace, &out)?;
        let report = tinv::trt::arena::MemoryReport::new(&m).map_err(|e| e.to_string())?;
        outln!(
            "device memory: {} bytes (weights once + one arena), naive {} bytes (every engine with its own weights and context memory)",
            report.total(),
            report.naive_total()
        );
        Ok(())
    }

    /// The precision `--fp16` / `--fp32` ask for; `None` (neither): the default for the TensorRT
    /// version and layout (`prepare::default_precision`).
    fn precision(fp16: bool, fp32: bool) -> Result<Option<Precision>, String> {
        match (fp16, fp32) {
            (true, true) => Err("--fp16 and --fp32 exclude each other".into()),
            (true, false) => Ok(Some(Precision::Fp16)),
            (false, true) => Ok(Some(Precision::Fp32)),
            (false, false) => Ok(None),
        }
    }

    /// The progress line for the builder's report (`engine`, `phase`, `step` of `steps`): a phase
    /// without steps (`step` < 0) always, a stepped phase at every quarter.
    fn progress_line(engine: &str, phase: &str, step: i32, steps: i32) -> Option<String> {
        if step < 0 {
            Some(format!("build: {engine}: {phase}"))
        } else if steps > 0 && step % (steps / 4).max(1) == 0 {
            Some(format!("build: {engine}: {phase} {step}/{steps}"))
        } else {
            None
        }
    }

    /// Exports and builds `layout`'s engines for `model` into `out`, with progress on stderr.
    pub fn build_layout(
        model: &tinv::Model,
        layout: Layout,
        precision: Option<Precision>,
        workspace_mb: u64,
        out: &Path,
    ) -> Result<Manifest, String> {
        let shim = Shim::shared().map_err(|e| e.to_string())?;
        let device = CudaDevice::open(0).map_err(|e| e.to_string())?;
        let v = shim.version();
        let precision = precision
            .unwrap_or_else(|| tinv::trt::prepare::default_precision((v.major, v.minor), layout));
        let req = tinv::trt::prepare::prepare(
            model,
            (v.major, v.minor),
            layout,
            precision,
            workspace_mb << 20,
            out,
        )
        .map_err(|e| e.to_string())?;
        errln!(
            "build: TensorRT {}.{}.{}, {} engine(s), {layout:?} {precision:?} → {}",
            v.major,
            v.minor,
            v.patch,
            req.engines.len(),
            out.display()
        );
        let t0 = Instant::now();
        let mut progress = |engine: &str, phase: &str, step: i32, steps: i32| {
            if let Some(line) = progress_line(engine, phase, step, steps) {
                errln!("{line}");
            }
            true
        };
        let m =
            build_engines(&*shim, &device, &req, out, &mut progress).map_err(|e| e.to_string())?;
        errln!(
            "built {} engine(s) in {:.1} s into {}",
            m.engines.len(),
            t0.elapsed().as_secs_f64(),
            out.display()
        );
        Ok(m)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn layouts_and_precisions_parse_as_documented() {
            assert_eq!(parse_layout("per-path"), Ok(Layout::PerPath));
            assert_eq!(parse_layout("segments"), Ok(Layout::Segments));
            assert!(parse_layout("Segments").is_err());
            assert_eq!(precision(false, false), Ok(None));
            assert_eq!(precision(true, false), Ok(Some(Precision::Fp16)));
            assert_eq!(precision(false, true), Ok(Some(Precision::Fp32)));
            assert!(precision(true, true).is_err());
        }

        #[test]
        fn progress_shows_unstepped_phases_and_every_quarter() {
            let shown = |steps: i32| -> Vec<i32> {
                (0..=steps)
                    .filter(|&s| progress_line("e", "p", s, steps).is_some())
                    .collect()
            };
            assert_eq!(shown(8), [0, 2, 4, 6, 8]);
            assert_eq!(shown(10), [0, 2, 4, 6, 8, 10]);
            // Under four steps, every step.
            assert_eq!(shown(3), [0, 1, 2, 3]);
            assert_eq!(progress_line("e", "p", 2, 0), None);
            assert_eq!(
                progress_line("path-2", "parsing", -1, 0).as_deref(),
                Some("build: path-2: parsing")
            );
            assert_eq!(
                progress_line("path-2", "layers", 4, 8).as_deref(),
                Some("build: path-2: layers 4/8")
            );
            assert_eq!(
                progress_line("path-2", "layers", 0, 8).as_deref(),
                Some("build: path-2: layers 0/8")
            );
        }
    }
}
