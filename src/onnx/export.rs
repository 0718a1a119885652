//! The export entry points: which graphs a layout needs, their file names, and writing them.

use super::blob::weight_blob;
use super::graph::{DataTensor, GraphBuilder, WeightMode};
use super::proto::ModelProto;
use super::vit::{self, LnFlavour};
use crate::control::feature_len;
use crate::error::{Error, Result};
use crate::model::Model;
use std::path::{Path, PathBuf};

/// ONNX IR version written (TensorRT 8.5's parser reads up to IR 8).
pub const IR_VERSION: i64 = 8;
/// Opset of the default domain (opset 18 moved ReduceMean's axes to an input, which TensorRT
/// 8.5 cannot parse).
pub const OPSET: i64 = 17;

/// Version of what the exporter writes for a given model and [`ExportOptions`]. It is raised
/// whenever the graphs change (operators, names, shapes, numerics), and TensorRT engine
/// manifests record it, so that plans built from an older tinv's graphs are refused rather
/// than run (the model hash alone does not change with the exporter). 2: fixed batch for
/// TensorRT and hidden states named `hidden.{d}`.
pub const EXPORT_VERSION: u32 = 2;

/// How the depth paths are cut into graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One graph per depth path: pixels in, logits out.
    PerPath,
    /// One graph per segment between exits (the first takes pixels, every one produces the
    /// hidden state `[B, N, D]`) plus one exit-head graph per path.
    Segments,
}

/// Export options; the default is the TensorRT 8.5 flavour with a symbolic batch:
/// decomposed LayerNorm, one graph per path, FP16 weight inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// LayerNorm flavour.
    pub ln: LnFlavour,
    /// Graph layout.
    pub layout: Layout,
    /// Weights as FP16 inputs (default) or baked f32 initializers.
    pub weights: WeightMode,
    /// First dimension of every data input and output: `None` (default) writes the symbolic
    /// dimension `batch`, which ONNX Runtime sizes per call; `Some(n)` fixes it (1 ..= i64::MAX,
    /// else [`Error::InvalidArgument`]). The TensorRT backend exports `Some(1)`: a symbolic
    /// dimension would need an optimization profile, and its engines run one image per call.
    pub batch: Option<usize>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            ln: LnFlavour::Decomposed,
            layout: Layout::PerPath,
            weights: WeightMode::Fp16Inputs,
            batch: None,
        }
    }
}

/// What an exported graph computes. Data inputs and outputs (all f32, batch dimension `batch`):
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphKind {
    /// `pixels [B, C, H, W]` (raw, in [0, 1]) → `logits [B, K]`: blocks `0..depth`, exit `depth`.
    Path {
        /// Depth of the path.
        depth: usize,
    },
    /// Blocks `start..end`: `pixels` (when `start == 0`, stem included) or `hidden.{start}
    /// [B, N, D]` → `hidden.{end} [B, N, D]`. The hidden state is named by the depth it
    /// stands after, so that one segment's output is the next one's input and the exit head's
    /// by name (the TensorRT backend shares buffers by name), and no graph reads and writes
    /// the same name.
    Segment {
        /// First block (0-based).
        start: usize,
        /// One past the last block (a path depth).
        end: usize,
    },
    /// `hidden.{depth} [B, N, D]` → `logits [B, K]`: the exit head of path `depth`.
    ExitHead {
        /// Depth of the path.
        depth: usize,
    },
    /// Level-1 controller: `features [B, F]`, `budget [B, 1]` → `pred [B, P]` (predictor
    /// probabilities), `scores [B, P]` (path = argmax, lowest index on ties).
    Controller {
        /// `graph` mode's own up-front policy (`controller.graph.onnx`: the one path an input
        /// runs), else `adaptive` mode's start policy (`controller.onnx`).
        graph: bool,
    },
}

impl ExportOptions {
    /// Self-contained f32 graphs (`--baked`): per path, decomposed LayerNorm.
    pub fn baked() -> Self {
        ExportOptions {
            weights: WeightMode::Baked,
            ..ExportOptions::default()
        }
    }
}

/// One exported ONNX model.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxGraph {
    /// What it computes.
    pub kind: GraphKind,
    /// File name used by [`write_export`], e.g. `path.4.onnx`.
    pub file_name: String,
    /// The serialized `ModelProto`.
    pub bytes: Vec<u8>,
    /// Its data inputs, in order (the weight inputs of FP16-input graphs are in the binding
    /// table instead).
    pub inputs: Vec<DataTensor>,
    /// Its outputs, in order.
    pub outputs: Vec<DataTensor>,
}

fn path_index(model: &Model, depth: usize) -> Result<usize> {
    model.config().path_index(depth).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "depth {depth} is not a path of this model (paths: {:?})",
            model.config().depths
        ))
    })
}

fn finish(
    model: &Model,
    kind: GraphKind,
    file_name: String,
    opts: &ExportOptions,
    b: GraphBuilder,
) -> Result<OnnxGraph> {
    let flavour = match opts.ln {
        LnFlavour::Decomposed => "decomposed",
        LnFlavour::Native => "native",
    };
    let weights = match opts.weights {
        WeightMode::Fp16Inputs => "fp16-inputs",
        WeightMode::Baked => "baked-f32",
    };
    let (inputs, outputs) = b.data_io();
    let proto = ModelProto {
        ir_version: IR_VERSION,
        opset: OPSET,
        producer_name: "tinv".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc: format!("{kind:?} of a tinv model"),
        metadata: vec![
            (
                "tinv.model_hash".into(),
                format!("{:#018x}", model.model_hash()),
            ),
            ("tinv.ln".into(), flavour.into()),
            ("tinv.weights".into(), weights.into()),
        ],
        graph: b.finish(),
    };
    let bytes = proto.to_bytes();
    check_size(&file_name, bytes.len())?;
    Ok(OnnxGraph {
        kind,
        file_name,
        bytes,
        inputs,
        outputs,
    })
}

/// Protobuf's limit on one serialized message (2 GiB − 1): ONNX Runtime, TensorRT's parser and
/// the `onnx` package all refuse a larger `.onnx` file.
pub const MAX_ONNX_BYTES: usize = i32::MAX as usize;

/// Refuses a graph too large for a protobuf reader (only baked f32 graphs of very large models
/// get there: FP16-input graphs carry no weights).
fn check_size(file_name: &str, len: usize) -> Result<()> {
    if len > MAX_ONNX_BYTES {
        return Err(Error::InvalidArgument(format!(
            "{file_name}: {len} bytes exceeds protobuf's 2 GiB message limit; export with FP16 \
             weight inputs (without --baked) instead"
        )));
    }
    Ok(())
}

/// A fixed batch dimension must be a positive ONNX `int64`: 0 made graphs that hold nothing,
/// and above `i64::MAX` the stored dimension wrapped to a negative one, which no runtime loads.
fn check_batch(opts: &ExportOptions) -> Result<()> {
    match opts.batch {
        Some(n) if n == 0 || i64::try_from(n).is_err() => Err(Error::arg(format!(
            "ExportOptions::batch {n}: a fixed batch must be 1 ..= {}",
            i64::MAX
        ))),
        _ => Ok(()),
    }
}

/// Name of the hidden state after `depth` blocks in the `segments` layout.
pub fn hidden_name(depth: usize) -> String {
    format!("hidden.{depth}")
}

/// The graph of one depth path: `pixels` → `logits`.
pub fn path_graph(model: &Model, depth: usize, opts: &ExportOptions) -> Result<OnnxGraph> {
    check_batch(opts)?;
    let k = path_index(model, depth)?;
    let c = model.config();
    let mut b = GraphBuilder::new(
        model,
        opts.weights,
        opts.batch,
        &format!("tinv_path_{depth}"),
    );
    let pixels = b.batched_input("pixels", &[c.channels, c.image_h, c.image_w]);
    b.batched_output("logits", &[c.classes]);
    let mut x = vit::stem(&mut b, &pixels);
    for i in 0..depth {
        x = vit::block(&mut b, i, &x, opts.ln);
    }
    vit::exit_head(&mut b, k, &x, opts.ln, "logits");
    finish(
        model,
        GraphKind::Path { depth },
        format!("path.{depth}.onnx"),
        opts,
        b,
    )
}

/// The segment graph that ends at path `depth` (blocks from the previous path's depth, or from
/// the stem for the first path, up to `depth`).
pub fn segment_graph(model: &Model, depth: usize, opts: &ExportOptions) -> Result<OnnxGraph> {
    check_batch(opts)?;
    let k = path_index(model, depth)?;
    let c = model.config();
    // `k` came from `path_index`, so `k - 1` (when k > 0) is a valid index too.
    let start = if k == 0 { 0 } else { c.depths[k - 1] };
    let mut b = GraphBuilder::new(
        model,
        opts.weights,
        opts.batch,
        &format!("tinv_segment_{start}_{depth}"),
    );
    let mut x = if start == 0 {
        let pixels = b.batched_input("pixels", &[c.channels, c.image_h, c.image_w]);
        vit::stem(&mut b, &pixels)
    } else {
        let hidden = b.batched_input(&hidden_name(start), &[c.tokens(), c.dim]);
        b.cast_act(&hidden)
    };
    let out = hidden_name(depth);
    b.batched_output(&out, &[c.tokens(), c.dim]);
    for i in start..depth {
        x = vit::block(&mut b, i, &x, opts.ln);
    }
    b.scope("");
    b.op_out("Identity", &[&x], vec![], &out);
    let kind = GraphKind::Segment { start, end: depth };
    finish(
        model,
        kind,
        format!("segment.{start}-{depth}.onnx"),
        opts,
        b,
    )
}

/// The exit-head graph of path `depth`: `hidden` → `logits`.
pub fn exit_head_graph(model: &Model, depth: usize, opts: &ExportOptions) -> Result<OnnxGraph> {
    check_batch(opts)?;
    let k = path_index(model, depth)?;
    let c = model.config();
    let mut b = GraphBuilder::new(
        model,
        opts.weights,
        opts.batch,
        &format!("tinv_exit_{depth}"),
    );
    let hidden = b.batched_input(&hidden_name(depth), &[c.tokens(), c.dim]);
    b.batched_output("logits", &[c.classes]);
    let hidden = b.cast_act(&hidden);
    vit::exit_head(&mut b, k, &hidden, opts.ln, "logits");
    finish(
        model,
        GraphKind::ExitHead { depth },
        format!("exit.{depth}.onnx"),
        opts,
        b,
    )
}

/// The level-1 controller graph, or `None` if the model has no controller. Features are
/// computed on the host ([`crate::control::features_v1`]); only `opts.weights` matters here.
pub fn controller_graph(
    model: &Model,
    opts: &ExportOptions,
    graph: bool,
) -> Result<Option<OnnxGraph>> {
    check_batch(opts)?;
    if graph && model.ctrl().is_none_or(|w| w.graph.is_none()) {
        return Ok(None);
    }
    let c = model.config();
    let p = c.depths.len();
    let (name, file) = if graph {
        ("tinv_graph_controller", "controller.graph.onnx")
    } else {
        ("tinv_controller", "controller.onnx")
    };
    let mut b = GraphBuilder::new(model, opts.weights, opts.batch, name);
    let feats = b.batched_input("features", &[feature_len(c.channels)]);
    let budget = b.batched_input("budget", &[1]);
    b.batched_output("pred", &[p]);
    b.batched_output("scores", &[p]);
    if !vit::controller(&mut b, &feats, &budget, "pred", "scores", graph) {
        return Ok(None);
    }
    finish(model, GraphKind::Controller { graph }, file.into(), opts, b).map(Some)
}

/// Every graph of `opts.layout`: per path (or per segment plus exit heads), then the controller
/// if the model has one (and `graph` mode's, if it has its own policy).
pub fn export_graphs(model: &Model, opts: &ExportOptions) -> Result<Vec<OnnxGraph>> {
    let mut out = Vec::new();
    each_graph(model, opts, |g| {
        out.push(g);
        Ok(())
    })?;
    Ok(out)
}

/// Builds the graphs of [`export_graphs`] one at a time, handing each to `f` before building
/// the next (so a writer holds one graph in memory, not all of them).
fn each_graph(
    model: &Model,
    opts: &ExportOptions,
    mut f: impl FnMut(OnnxGraph) -> Result<()>,
) -> Result<()> {
    // The graphs and their checks read every weight as f32: an f16 model's copies are made
    // here, where a refused allocation is an error.
    model.widen_host()?;
    if opts.weights == WeightMode::Fp16Inputs {
        check_fp16_range(model.config())?;
    }
    check_finite(model, opts.weights == WeightMode::Fp16Inputs)?;
    for &depth in &model.config().depths {
        match opts.layout {
            Layout::PerPath => f(path_graph(model, depth, opts)?)?,
            Layout::Segments => {
                f(segment_graph(model, depth, opts)?)?;
                f(exit_head_graph(model, depth, opts)?)?;
            }
        }
    }
    for graph in [false, true] {
        if let Some(g) = controller_graph(model, opts, graph)? {
            f(g)?;
        }
    }
    Ok(())
}

/// Refuses weights of the exported graphs that are not finite, or (`fp16`, weights that the
/// FP16 blob holds) that round to infinity in FP16 (beyond ±65504, from 65520 on). The runtime
/// opens such a file and fails each call ([`Error::Numeric`]), or computes in f32; graphs
/// written from it would answer NaN to every input instead, in ONNX Runtime or TensorRT,
/// without an error. One pass over each tensor.
fn check_finite(model: &Model, fp16: bool) -> Result<()> {
    let bad = |v: f32| !v.is_finite() || (fp16 && half::f16::from_f32(v).is_infinite());
    for r in super::blob::exported_tensors(model) {
        let Some((i, &v)) = model.w(r).iter().enumerate().find(|&(_, &v)| bad(v)) else {
            continue;
        };
        let why = if v.is_finite() {
            ", beyond FP16's ±65504 (it rounds to infinity): its FP16 graphs would answer NaN; \
             export f32 graphs (--baked) instead"
        } else {
            ": graphs exported from it would answer NaN"
        };
        return Err(Error::InvalidArgument(format!(
            "tensor '{}' holds {v} at element {i}{why}",
            model.w_name(r)
        )));
    }
    Ok(())
}

/// The largest normalized pixel the FP16 graphs take: they cast `(x − mean) / std` to FP16,
/// whose largest finite value is 65504.
pub const MAX_FP16_NORMALIZED: f32 = 6.0e4;

/// Refuses a model whose normalization takes a pixel in [0, 1] beyond FP16's range: its FP16
/// graphs would compute inf, then NaN logits (the runtime and the f32 graphs are fine).
fn check_fp16_range(c: &crate::Config) -> Result<()> {
    match c.widest_normalization() {
        Some((m, s, worst)) if worst > MAX_FP16_NORMALIZED => Err(Error::arg(format!(
            "vit.mean {m} / vit.std {s} take a pixel in [0, 1] to {worst:e}, beyond what the FP16 \
             graphs hold (±{MAX_FP16_NORMALIZED:e}); export f32 graphs (--baked) instead"
        ))),
        _ => Ok(()),
    }
}

/// File name of the FP16 weight blob written next to the graphs.
pub const WEIGHTS_FILE: &str = "weights.f16.bin";
/// File name of its binding table ([`super::WeightBlob::table_text`]).
pub const BINDINGS_FILE: &str = "weights.tsv";

/// Whether `name` is a file name an export writes (so that one found in an export's folder and
/// not written by it belongs to another export).
fn is_export_file(name: &str) -> bool {
    name == WEIGHTS_FILE
        || name == BINDINGS_FILE
        || (name.ends_with(".onnx")
            && ["path.", "segment.", "exit.", "controller."]
                .iter()
                .any(|p| name.starts_with(p)))
}

/// Writes every graph of `opts` into `dir` (created if missing) and, for FP16 weight inputs,
/// the weight blob and its binding table. Returns the files written. Every file is written
/// under a temporary name first and renamed into place only once all are written, so an error
/// (a full disk) leaves `dir` as it was (and removes the folders this call created): half an
/// export would load as a whole one. (Only a rename failing part-way, or another process
/// exporting into `dir` at the same time, can still mix files.) For the same reason a `dir`
/// holding files of another export (other paths, layout or model: names this one does not
/// write) is refused, naming them. A graph over protobuf's 2 GiB limit ([`MAX_ONNX_BYTES`],
/// only baked graphs of very large models) is an `InvalidArgument` error; `dir` existing as a
/// file, or not creatable, an `Io` error.
pub fn write_export(model: &Model, opts: &ExportOptions, dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    if dir.exists() && !dir.is_dir() {
        // create_dir_all would only say "File exists".
        return Err(io(dir)(std::io::Error::other(
            "exists and is not a directory",
        )));
    }
    // The folders this call creates, deepest first: removed again on failure.
    let created: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // (temporary, final, name) for each file, in the order written.
    let mut staged: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        // A FIFO left under the name would block the write forever, a device swallow it.
        // Its message names the file (or the file a link there ends at).
        let path = crate::files::write_destination(&dir.join(name))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let tmp = crate::files::write_staged(&path, bytes).map_err(io(&path))?;
        staged.push((tmp, path, name.to_string()));
        Ok(())
    };
    let mut all = || -> Result<()> {
        each_graph(model, opts, |g| put(&g.file_name, &g.bytes))?;
        if opts.weights == WeightMode::Fp16Inputs {
            let blob = weight_blob(model);
            put(WEIGHTS_FILE, &blob.bytes)?;
            put(BINDINGS_FILE, blob.table_text().as_bytes())?;
        }
        Ok(())
    };
    let result = all().and_then(|()| {
        // By the names written in `dir` (a link there to elsewhere is still this export's).
        let ours: Vec<&str> = staged.iter().map(|(_, _, n)| n.as_str()).collect();
        let mut others: Vec<String> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !ours.contains(&n.as_str()) && is_export_file(n))
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        others.sort();
        Err(Error::InvalidArgument(format!(
            "{} holds files of another export ({}): remove them, or export into an empty folder",
            dir.display(),
            others.join(", ")
        )))
    });
    let result = result.and_then(|()| {
        for (tmp, path, _) in &staged {
            std::fs::rename(tmp, path).map_err(io(path))?;
        }
        Ok(staged.iter().map(|(_, p, _)| p.clone()).collect())
    });
    if result.is_err() {
        for (tmp, _, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
        // Only if empty: nothing of anyone else's is removed.
        for d in &created {
            let _ = std::fs::remove_dir(d);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tripwire for [`EXPORT_VERSION`]: the bytes of every graph TensorRT builds from (both
    /// layouts, both LayerNorm flavours, batch 1) of a fixed small model. When this fails, the
    /// exported graphs changed: if what they compute, their names or shapes changed, raise
    /// `EXPORT_VERSION` (engines built from the old graphs must be refused); then, either
    /// way, put the new value here. (The crate version is in the bytes too, and so is the
    /// metadata: writing `tinv.model_hash` as `0x…` changed the bytes, not the graphs.)
    #[test]
    fn exported_graphs_change_only_with_the_export_version() {
        let cfg = crate::synth::tiny(3, true);
        let model = Model::from_bytes(
            &crate::synth::random_model(&cfg, 7, crate::format::DType::F32),
            &crate::OpenOptions::default(),
        )
        .unwrap();
        // FNV-1a over (file name, bytes) of every graph, in export order.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for layout in [Layout::PerPath, Layout::Segments] {
            for ln in [LnFlavour::Decomposed, LnFlavour::Native] {
                let opts = ExportOptions {
                    ln,
                    layout,
                    weights: match layout {
                        Layout::PerPath => WeightMode::Fp16Inputs,
                        Layout::Segments => WeightMode::Baked,
                    },
                    batch: Some(1),
                };
                // The controllers run on the host: TensorRT builds none of them.
                let built = export_graphs(&model, &opts).unwrap().into_iter();
                for g in built.filter(|g| !matches!(g.kind, GraphKind::Controller { .. })) {
                    for b in g.file_name.bytes().chain(g.bytes.iter().copied()) {
                        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
            }
        }
        assert_eq!(
            (EXPORT_VERSION, format!("{h:#018x}")),
            (2, "0xf00bdab59dd68a17".to_string()),
            "the exported graphs changed: see this test's comment"
        );
    }

    /// A fixed batch of 0 or beyond ONNX's int64 was written as given (`usize::MAX` as -1, and
    /// read back as the symbolic `batch`); every public graph builder refuses it.
    #[test]
    fn a_fixed_batch_outside_int64_or_zero_is_refused() {
        let cfg = crate::synth::tiny(3, true);
        let bytes = crate::synth::random_model(&cfg, 7, crate::format::DType::F32);
        let m = Model::from_bytes(&bytes, &crate::OpenOptions::default()).unwrap();
        let at = |batch| ExportOptions {
            batch: Some(batch),
            ..ExportOptions::default()
        };
        for n in [0, usize::MAX, 1 << 63] {
            let o = at(n);
            let results = [
                path_graph(&m, 2, &o).map(|_| ()),
                segment_graph(&m, 2, &o).map(|_| ()),
                exit_head_graph(&m, 2, &o).map(|_| ()),
                controller_graph(&m, &o, false).map(|_| ()),
                export_graphs(&m, &o).map(|_| ()),
            ];
            for r in results {
                match r {
                    Err(Error::InvalidArgument(e)) => {
                        assert!(e.starts_with(&format!("ExportOptions::batch {n}:")), "{e}")
                    }
                    other => panic!("batch {n}: {other:?}"),
                }
            }
        }
        let g = path_graph(&m, 2, &at(i64::MAX as usize)).unwrap();
        assert_eq!(g.inputs[0].dims[0], Some(i64::MAX as usize));
    }

    /// `controller.onnx` runs `adaptive` mode's start policy (`ctrl.policy.*`) and
    /// `controller.graph.onnx` `graph` mode's own (`ctrl.graph.*`): neither names anything,
    /// weight or node, after the other's policy.
    #[test]
    fn each_controller_graph_names_only_its_own_policy() {
        let cfg = crate::synth::tiny(3, true);
        let bytes = crate::synth::random_model(&cfg, 7, crate::format::DType::F32);
        let m = Model::from_bytes(&bytes, &crate::OpenOptions::default()).unwrap();
        let has = |g: &OnnxGraph, s: &str| g.bytes.windows(s.len()).any(|w| w == s.as_bytes());
        for (graph, own, other) in [
            (false, "ctrl.policy", "ctrl.graph"),
            (true, "ctrl.graph", "ctrl.policy"),
        ] {
            let g = controller_graph(&m, &ExportOptions::default(), graph)
                .unwrap()
                .unwrap();
            assert!(has(&g, own) && !has(&g, other), "{}", g.file_name);
        }
    }

    #[test]
    fn graphs_over_the_protobuf_limit_are_refused() {
        assert!(check_size("path.4.onnx", MAX_ONNX_BYTES).is_ok());
        match check_size("path.4.onnx", MAX_ONNX_BYTES + 1) {
            Err(Error::InvalidArgument(m)) => {
                assert!(m.starts_with("path.4.onnx: 2147483648 bytes"), "{m}");
                assert!(m.contains("--baked"), "{m}");
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn fp16_graphs_refuse_a_normalization_beyond_fp16() {
        let mut cfg = crate::synth::tiny(3, false);
        // (1 − 0.5) / 5e-6 = 1e5 > 65504: FP16 would turn the pixels into inf.
        cfg.std = vec![5e-6];
        let bytes = crate::synth::random_model(&cfg, 1, crate::format::DType::F32);
        let m = Model::from_bytes(&bytes, &crate::OpenOptions::default()).unwrap();
        match export_graphs(&m, &ExportOptions::default()) {
            Err(Error::InvalidArgument(e)) => assert!(e.contains("--baked"), "{e}"),
            other => panic!("expected InvalidArgument, got {:?}", other.map(|g| g.len())),
        }
        let baked = ExportOptions {
            weights: WeightMode::Baked,
            ..ExportOptions::default()
        };
        assert!(export_graphs(&m, &baked).is_ok());
        // 2e-5: 2.5e4, inside FP16; and the documented largest, (1 + 59999) / 1 = 6e4 exactly
        // in f32, is taken too.
        for (mean, std) in [(0.5, 2e-5), (-59999.0, 1.0)] {
            (cfg.mean, cfg.std) = (vec![mean], vec![std]);
            let bytes = crate::synth::random_model(&cfg, 1, crate::format::DType::F32);
            let m = Model::from_bytes(&bytes, &crate::OpenOptions::default()).unwrap();
            let r = export_graphs(&m, &ExportOptions::default());
            assert!(r.is_ok(), "mean {mean}, std {std}: {:?}", r.err());
        }
    }
}
