//! ONNX export of the depth paths, for TensorRT (which builds its engines from ONNX) and for
//! ONNX Runtime users, and as an independent check of the runtime's numerics.
//!
//! One graph per depth path (or per segment between exits plus exit heads), opset 17, IR 8,
//! using only operators TensorRT 8.5's parser accepts. By default every weight is an FP16 graph
//! input named as in the `.tinv`, the same name in every graph, so one device buffer (see
//! [`weight_blob`]) feeds every engine; [`WeightMode::Baked`] writes self-contained f32 graphs.
//! The protobuf is written by the small encoder in [`proto`]; no Python in the export path.
//!
//! Operators: MatMul, Add, Sub, Mul, Div, Pow, Sqrt, Erf (or Tanh for tanh-GELU models),
//! ReduceMean (axes as an attribute, opset 17) or LayerNormalization, Softmax, Reshape,
//! Transpose, Gather, Concat, Shape + Expand (class token to the batch), Cast (in FP16-input
//! graphs: the f32 inputs in, the f32 outputs out, and around each LayerNorm — never on a
//! weight), Relu (controller), Identity (segment output). Integer constants are initializers.
//!
//! Data contract: `pixels [batch, C, H, W]` holds raw pixels in [0, 1]; the graph normalizes
//! with the model's mean/std itself, exactly like the runtime's input contract. `batch` is a
//! symbolic dimension, or a fixed one with [`ExportOptions::batch`] (the TensorRT backend
//! exports batch 1).
//!
//! Files written by [`write_export`]:
//!
//! | file | graph |
//! |---|---|
//! | `path.{d}.onnx` | [`GraphKind::Path`]: `pixels` → `logits` (layout `per-path`) |
//! | `segment.{a}-{b}.onnx` | [`GraphKind::Segment`]: blocks `a..b`, `pixels` (a = 0) or `hidden.{a}` → `hidden.{b}` |
//! | `exit.{d}.onnx` | [`GraphKind::ExitHead`]: `hidden.{d}` → `logits` |
//! | `controller.onnx` | [`GraphKind::Controller`]: `features`, `budget` → `pred`, `scores`; `adaptive` mode's start path |
//! | `controller.graph.onnx` | the same for `graph` mode's own up-front policy (the one path an input runs), when the model has one |
//! | `weights.f16.bin`, `weights.tsv` | FP16 weight blob and binding table (FP16-input graphs only) |
//!
//! Every graph carries `metadata_props` `tinv.model_hash` (`0x` and 16 hex digits, as `tinv-run inspect` prints it, [`crate::Model::model_hash`]: tensors
//! and configuration, to match engines to their model), `tinv.ln` and `tinv.weights`.

mod blob;
mod export;
mod graph;
// The protobuf encoder behind the exporter: public for the ONNX tests that build protos by hand,
// not part of the API.
#[doc(hidden)]
pub mod proto;
mod vit;

#[cfg(feature = "tensorrt")]
pub(crate) use blob::upload_blob;
pub use blob::{weight_blob, WeightBinding, WeightBlob};
pub use export::{
    controller_graph, exit_head_graph, export_graphs, hidden_name, path_graph, segment_graph,
    write_export, ExportOptions, GraphKind, Layout, OnnxGraph, BINDINGS_FILE, EXPORT_VERSION,
    IR_VERSION, MAX_ONNX_BYTES, OPSET, WEIGHTS_FILE,
};
pub use graph::{DataTensor, WeightMode};
pub use vit::{LnFlavour, LAYER_NORM_SCOPE};
