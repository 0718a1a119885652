//! From a folded model to a [`BuildRequest`]: the ONNX flavour the TensorRT version parses,
//! the graphs of the chosen layout written to `out/onnx/`, which engines make up each path,
//! the weight-binding table (`per-path`), and the builder options — LayerNorm pinned to FP32
//! when building FP16 (it overflows in FP16 on TensorRT 8.x/10.x: NVIDIA's notes on "FP16 LayerNorm
//! overflow"). `tinv-run build` and `tinv-run selftest` both start here.

use super::builder::{BuildRequest, EngineSource};
use super::manifest::{self, Layout, PathEngines, Precision};
use super::TrtError;
use crate::model::Model;
use crate::onnx::{self, ExportOptions, GraphKind, LnFlavour, WeightMode, LAYER_NORM_SCOPE};
use std::path::Path;
use tinv_sys::BuildOptions;

/// The LayerNorm flavour TensorRT `major.minor`'s ONNX parser takes: 8.5 has no
/// `LayerNormalization` (added in 8.6).
pub fn ln_flavour(major: i32, minor: i32) -> LnFlavour {
    if major < 8 || (major == 8 && minor < 6) {
        LnFlavour::Decomposed
    } else {
        LnFlavour::Native
    }
}

/// Builder options for TensorRT `trt` (major, minor) and `precision`: FP16 builds on 8.x/10.x
/// keep every layer whose name carries [`LAYER_NORM_SCOPE`] (all LayerNorm nodes, see
/// `onnx::layer_norm`) in FP32. TensorRT 11 networks are strongly typed: precision comes from
/// the ONNX types, where the FP16-input graphs compute in FP16 with each LayerNorm between Casts
/// to and from f32, and the shim refuses per-layer precision there.
pub fn build_options(trt: (i32, i32), precision: Precision, workspace_bytes: u64) -> BuildOptions {
    let pin = precision == Precision::Fp16 && trt.0 < 11;
    BuildOptions {
        workspace_bytes,
        fp32_layer_substring: pin.then(|| LAYER_NORM_SCOPE.to_string()),
        ..BuildOptions::default()
    }
}

/// The precision a build of `layout` gets when none is asked for: FP16, except `segments` on
/// TensorRT ≥ 11, whose baked f32 weights make strongly typed FP32 networks.
pub fn default_precision(trt: (i32, i32), layout: Layout) -> Precision {
    if fp32_only(trt, layout) {
        Precision::Fp32
    } else {
        Precision::Fp16
    }
}

/// Whether `layout` builds only FP32 engines on TensorRT `trt`: `segments` bakes f32 weights,
/// which the FP16 builder flag lowers before 11; 11's strongly typed networks have no such flag.
fn fp32_only(trt: (i32, i32), layout: Layout) -> bool {
    layout == Layout::Segments && trt.0 >= 11
}

/// The ONNX flavour TensorRT `trt` (major, minor) builds `layout` from: its LayerNorm flavour,
/// FP16 weight inputs for `per-path` and baked weights for `segments`, and batch 1, fixed: the
/// engines run one image per call, and a symbolic batch would need an optimization profile,
/// without which the builder refuses the network.
pub fn export_options(trt: (i32, i32), layout: Layout) -> ExportOptions {
    let (layout, weights) = match layout {
        Layout::PerPath => (onnx::Layout::PerPath, WeightMode::Fp16Inputs),
        Layout::Segments => (onnx::Layout::Segments, WeightMode::Baked),
    };
    ExportOptions {
        ln: ln_flavour(trt.0, trt.1),
        layout,
        weights,
        batch: Some(1),
    }
}

/// Exports `model`'s graphs for `layout` in the flavour TensorRT `trt` (major, minor) parses,
/// writes them to `out/onnx/`, and returns the request `builder::build_engines` takes.
/// `per-path` engines take FP16 weight inputs (so `precision` must be FP16); `segments` bake
/// the weights as constants.
pub fn prepare(
    model: &Model,
    trt: (i32, i32),
    layout: Layout,
    precision: Precision,
    workspace_bytes: u64,
    out: &Path,
) -> Result<BuildRequest, TrtError> {
    if layout == Layout::PerPath && precision == Precision::Fp32 {
        return Err(TrtError::Plan(
            "--fp32 needs --layout segments: per-path engines take FP16 weight inputs".into(),
        ));
    }
    // Otherwise FP32 engines would be built under an "fp16" manifest.
    if precision == Precision::Fp16 && fp32_only(trt, layout) {
        return Err(TrtError::Plan(format!(
            "--layout segments bakes f32 weights, and TensorRT {}'s strongly typed networks have \
             no FP16 flag, so its engines would run in FP32: build them with --fp32, or FP16 \
             engines with --layout per-path",
            trt.0
        )));
    }
    let opts = export_options(trt, layout);
    let graphs = onnx::export_graphs(model, &opts).map_err(|e| TrtError::Plan(e.to_string()))?;
    let onnx_dir = out.join("onnx");
    std::fs::create_dir_all(&onnx_dir)
        .map_err(|e| TrtError::Plan(format!("{}: {e}", onnx_dir.display())))?;
    let c = model.config();
    let mut paths: Vec<PathEngines> = c
        .depths
        .iter()
        .map(|&d| PathEngines {
            depth: d as u32,
            engines: Vec::new(),
        })
        .collect();
    let mut engines = Vec::new();
    for g in &graphs {
        let name = g.file_name.trim_end_matches(".onnx").replace('.', "_");
        match g.kind {
            GraphKind::Path { depth } | GraphKind::ExitHead { depth } => {
                if let Some(p) = c.path_index(depth).and_then(|k| paths.get_mut(k)) {
                    p.engines.push(name.clone());
                }
            }
            // A segment ending at path depth `end` belongs to every path at least that deep.
            GraphKind::Segment { end, .. } => {
                for p in paths.iter_mut().filter(|p| p.depth as usize >= end) {
                    p.engines.push(name.clone());
                }
            }
            GraphKind::Controller { .. } => continue, // runs on the host
        }
        let file = onnx_dir.join(&g.file_name);
        std::fs::write(&file, &g.bytes)
            .map_err(|e| TrtError::Plan(format!("{}: {e}", file.display())))?;
        engines.push(EngineSource { name, onnx: file });
    }
    let weights = match layout {
        Layout::PerPath => {
            let blob = onnx::weight_blob(model);
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
        }
        Layout::Segments => (Vec::new(), 0),
    };
    Ok(BuildRequest {
        model_hash: model.model_hash(),
        layout,
        precision,
        engines,
        weights,
        paths,
        options: build_options(trt, precision, workspace_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::DType;
    use crate::synth;

    fn model() -> Model {
        let cfg = synth::config(16, 1, 4, 16, 4, 2, 3, &[2, 4], false);
        Model::from_bytes(
            &synth::random_model(&cfg, 5, DType::F32),
            &crate::OpenOptions::default(),
        )
        .unwrap()
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = crate::files::test_dir(&format!("prepare-{name}"));
        d
    }

    #[test]
    fn tensorrt_8_5_gets_decomposed_layer_norm_later_versions_the_native_op() {
        assert_eq!(ln_flavour(8, 5), LnFlavour::Decomposed);
        assert_eq!(ln_flavour(8, 6), LnFlavour::Native);
        assert_eq!(ln_flavour(10, 3), LnFlavour::Native);
        assert_eq!(ln_flavour(11, 0), LnFlavour::Native);
    }

    #[test]
    fn fp16_builds_before_tensorrt_11_pin_layer_norm_to_fp32() {
        for v in [(8, 5), (8, 6), (10, 3)] {
            let o = build_options(v, Precision::Fp16, 64 << 20);
            assert_eq!(
                o.fp32_layer_substring.as_deref(),
                Some("LayerNorm"),
                "{v:?}"
            );
            assert_eq!(o.workspace_bytes, 64 << 20);
            assert_eq!(
                build_options(v, Precision::Fp32, 0).fp32_layer_substring,
                None
            );
        }
        // Strongly typed: the shim refuses per-layer precision; the graphs compute in f32.
        assert_eq!(
            build_options((11, 0), Precision::Fp16, 0).fp32_layer_substring,
            None
        );
    }

    #[test]
    fn per_path_request_one_engine_per_path_with_the_weight_table() {
        let m = model();
        let dir = tmp("per-path");
        let req = prepare(&m, (8, 5), Layout::PerPath, Precision::Fp16, 1 << 30, &dir).unwrap();
        let names: Vec<&str> = req.engines.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["path_2", "path_4"]);
        assert_eq!(req.paths[0].engines, ["path_2"]);
        assert_eq!(req.paths[1].engines, ["path_4"]);
        for e in &req.engines {
            assert!(e.onnx.exists(), "{}", e.onnx.display());
        }
        // Every weight of the model (no controller here) in the table, once, 256-aligned.
        let blob = onnx::weight_blob(&m);
        assert_eq!(req.weights.0.len(), blob.bindings.len());
        assert_eq!(req.weights.1, blob.bytes.len() as u64);
        assert!(req.weights.0.iter().all(|w| w.offset % 256 == 0));
        assert_eq!(
            req.options.fp32_layer_substring.as_deref(),
            Some(LAYER_NORM_SCOPE)
        );
        assert_eq!(req.model_hash, m.model_hash());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn segments_request_shares_segments_between_paths() {
        let dir = tmp("segments");
        let req = prepare(
            &model(),
            (10, 3),
            Layout::Segments,
            Precision::Fp32,
            0,
            &dir,
        )
        .unwrap();
        let p: Vec<Vec<String>> = req.paths.iter().map(|p| p.engines.clone()).collect();
        assert_eq!(
            p,
            [
                vec!["segment_0-2".to_string(), "exit_2".to_string()],
                vec![
                    "segment_0-2".to_string(),
                    "segment_2-4".to_string(),
                    "exit_4".to_string()
                ],
            ]
        );
        assert!(req.weights.0.is_empty());
        assert_eq!(req.options.fp32_layer_substring, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn segments_fp16_is_refused_on_tensorrt_11_and_fp32_is_its_default() {
        let e = prepare(
            &model(),
            (11, 0),
            Layout::Segments,
            Precision::Fp16,
            0,
            &tmp("seg11"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("build them with --fp32"), "{e}");
        assert_eq!(
            default_precision((11, 0), Layout::Segments),
            Precision::Fp32
        );
        for v in [(8, 5), (10, 3)] {
            assert_eq!(default_precision(v, Layout::Segments), Precision::Fp16);
        }
        for v in [(8, 5), (10, 3), (11, 1)] {
            assert_eq!(default_precision(v, Layout::PerPath), Precision::Fp16);
        }
    }

    /// Every data input and output of every graph a build writes has fixed dimensions, batch 1
    /// (a symbolic one makes TensorRT's builder ask for an optimization profile; a review
    /// found none was ever added), and the files written are those graphs.
    #[test]
    fn engines_are_built_from_graphs_of_batch_1_without_symbolic_dimensions() {
        let m = model();
        for (trt, layout, precision) in [
            ((8, 5), Layout::PerPath, Precision::Fp16),
            ((10, 3), Layout::Segments, Precision::Fp16),
            ((11, 0), Layout::Segments, Precision::Fp32),
        ] {
            let dir = tmp(&format!("batch-{}-{layout:?}", trt.0));
            let req = prepare(&m, trt, layout, precision, 0, &dir).unwrap();
            let graphs = onnx::export_graphs(&m, &export_options(trt, layout)).unwrap();
            let built: Vec<_> = graphs
                .iter()
                .filter(|g| !matches!(g.kind, GraphKind::Controller { .. }))
                .collect();
            assert_eq!(built.len(), req.engines.len());
            for (g, e) in built.iter().zip(&req.engines) {
                assert_eq!(std::fs::read(&e.onnx).unwrap(), g.bytes, "{}", e.name);
                for t in g.inputs.iter().chain(&g.outputs) {
                    assert_eq!(t.dims.first(), Some(&Some(1)), "{}: {t:?}", g.file_name);
                    assert!(t.dims.iter().all(Option::is_some), "{}: {t:?}", g.file_name);
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn per_path_fp32_is_refused() {
        let e = prepare(
            &model(),
            (10, 3),
            Layout::PerPath,
            Precision::Fp32,
            0,
            &tmp("refused"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("--layout segments"), "{e}");
    }
}
