//! `tinv-run export-onnx`.

use crate::args::Args;
use crate::{model_path, out};
use tinv::onnx::{ExportOptions, Layout, LnFlavour, WeightMode};

pub const HELP: &str = "\
tinv-run export-onnx — one ONNX model per depth path (opset 17, IR version 8)

USAGE:
    tinv-run export-onnx [--model M] --out DIR [--layout per-path|segments]
                         [--ln decomposed|native] [--baked] [--batch N] [--verify]

OPTIONS:
    --model M        .tinv file or package directory (default: $TINV_MODEL, else
                     the engines/fmnist package; see tinv-run --help)
    --out DIR        output directory (created if missing); files of another export there
                     (names this one does not write) are refused, never mixed in
    --layout L       per-path (default): path.<depth>.onnx, pixels → logits;
                     segments: segment.<a>-<b>.onnx, blocks a..b, pixels (a = 0) or hidden.<a>
                     → hidden.<b>, plus exit.<d>.onnx, hidden.<d> → logits, per path
    --ln F           decomposed (default; TensorRT 8.5 parses it) or native
                     LayerNormalization (TensorRT ≥ 8.6, ONNX Runtime)
    --baked          self-contained f32 graphs with the weights as initializers (for ONNX
                     Runtime or trtexec); by default every weight is an FP16 graph input with
                     the same name in every graph, and weights.f16.bin + weights.tsv (name,
                     dtype, shape, byte offset, 256-aligned) hold the values to bind, so one
                     device buffer serves every engine; such graphs compute in FP16 (LayerNorm
                     in f32) and take and return f32
    --batch N        fix the batch dimension at N (1 to 4096), as TensorRT engines built
                     without an optimization profile need; by default it is the symbolic
                     dimension `batch`, sized per call (ONNX Runtime)
    --verify         check every tensor checksum and device copy when opening the model

Inputs are raw pixels in [0, 1] (`pixels`, [batch, C, H, W]); the graphs normalize them. A
model with a controller also gets controller.onnx (features, budget → pred, scores: adaptive
mode's start path), and controller.graph.onnx (the same for graph mode's one path) when it has
its own graph policy.
";

pub fn run(raw: &[std::ffi::OsString]) -> Result<(), String> {
    let a = Args::parse(
        raw,
        &["model", "out", "layout", "ln", "batch"],
        &["baked", "verify"],
    )?
    .max_positional(0)?;
    let out = a
        .path("out")
        .ok_or("export-onnx needs --out DIR (see tinv-run export-onnx --help)")?;
    let layout = match a.get("layout").unwrap_or("per-path") {
        "per-path" => Layout::PerPath,
        "segments" => Layout::Segments,
        other => return Err(format!("--layout {other}: expected per-path or segments")),
    };
    let ln = match a.get("ln").unwrap_or("decomposed") {
        "decomposed" => LnFlavour::Decomposed,
        "native" => LnFlavour::Native,
        other => return Err(format!("--ln {other}: expected decomposed or native")),
    };
    let weights = if a.has("baked") {
        WeightMode::Baked
    } else {
        WeightMode::Fp16Inputs
    };
    let model = model_path::open(a.path("model"), a.has("verify"))?;
    let opts = ExportOptions {
        ln,
        layout,
        weights,
        batch: a.batch_opt()?,
    };
    let files = tinv::onnx::write_export(&model, &opts, out).map_err(|e| e.to_string())?;
    for f in &files {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        outln!(
            "wrote {} ({size} bytes)",
            out::escaped(&f.display().to_string())
        );
    }
    Ok(())
}
