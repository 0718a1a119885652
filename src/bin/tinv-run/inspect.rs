//! `tinv-run inspect`.

use crate::args::Args;
use crate::json::Json;
use crate::{model_path, out};
use std::path::Path;
use std::sync::Arc;
use tinv::format::MetaValue;

pub const HELP: &str = "\
tinv-run inspect — what a model file holds and what each path costs

USAGE:
    tinv-run inspect [M] [--model M] [--verify] [--tensors] [--json]

OPTIONS:
    M, --model M   .tinv file or package directory (default: $TINV_MODEL, else
                   the engines/fmnist package; see tinv-run --help)
    --verify       recompute every tensor checksum and compare each device copy with its
                   host tensor (reads the whole file)
    --tensors      list every tensor (name, dtype, shape, file offset, bytes)
    --json         one JSON object: file, file_bytes, input_shape [C, H, W], classes,
                   config {image_size [H, W], channels, patch, dim, heads, blocks, mlp_hidden,
                   classes, tokens, depths, mean, std, ln_eps, gelu, controller
                   {features, default_budget} or null}, paths [{depth, flops, weight_bytes}],
                   controller_flops, controller_flops_graph, controller_weight_bytes,
                   controller_weight_bytes_graph (0 without a controller),
                   arena_bytes, arena_lower_bound_bytes, kernel, model_hash (hex string: the
                   tinv.model_hash of its ONNX graphs and the model_hash of its TensorRT
                   manifests), metadata {key: value} (an
                   integer above 2^53, such as tinv.content_hash, as a decimal string),
                   tensors [{name, dtype, shape, offset (from the file's start), bytes}]
                   (always, --tensors or not)

Weight bytes of a path are the bytes of every backbone tensor it reads (stem, its blocks, its
exit head); because blocks start on fresh pages, a path never touches deeper pages. The
controller's tensors come on top: predictor, level-1 policy and exit RNN in `adaptive` mode,
predictor and graph policy in `graph` mode.
";

pub fn run(raw: &[std::ffi::OsString]) -> Result<(), String> {
    let a = Args::parse(raw, &["model"], &["json", "verify", "tensors"])?;
    // The model is named once: by --model or by one positional argument.
    let named = a.path("model").is_some();
    if named && !a.positional.is_empty() {
        return Err(format!(
            "the model is given twice, by --model and as '{}'; give one",
            a.positional[0].to_string_lossy()
        ));
    }
    let a = a.max_positional(usize::from(!named))?;
    let arg = a.path("model").or(a.positional.first().map(Path::new));
    let path = model_path::resolve(arg)?;
    let model = Arc::new(model_path::open(arg, a.has("verify"))?);
    let c = model.config().clone();
    // The CPU backend's plan (its arena is what inspect reports): under `auto`, engines beside
    // the model would be opened and every weight uploaded just to print the configuration.
    let opts = tinv::SessionOptions::default().backend(tinv::Backend::Cpu);
    let session = tinv::Session::new(model.clone(), opts).map_err(|e| e.to_string())?;
    let sum = |refs: &[tinv::model::WRef]| -> u64 {
        refs.iter()
            .map(|r| model.w_file_range(*r).len() as u64)
            .sum()
    };
    let bytes = |k: usize| sum(&model.path_tensors(k));
    // What the controller reads on top in `adaptive` and in `graph` mode.
    let ctrl_bytes = model
        .ctrl()
        .map(|w| [false, true].map(|g| sum(&w.tensors(g))));
    // Up-front controller FLOPs of `adaptive` and of `graph` mode.
    let ctrl_flops = model
        .ctrl()
        .map(|w| [false, true].map(|g| tinv::model::flops::controller_up_front_flops(&c, w, g)));
    let idx = model.index();
    if a.has("json") {
        let meta = Json::Obj(
            idx.meta
                .entries()
                .iter()
                .map(|(k, v)| {
                    let j = match v {
                        // Above 2^53 a JSON reader that parses numbers as doubles rounds it
                        // (the content hash): a decimal string keeps every digit.
                        MetaValue::U64(x) if *x > 1 << 53 => Json::Str(x.to_string()),
                        MetaValue::U64(x) => Json::Int(*x),
                        MetaValue::F64(x) => Json::Num(*x),
                        MetaValue::Str(s) => Json::Str(s.clone()),
                        MetaValue::U64s(a) => Json::Arr(a.iter().map(|x| Json::Int(*x)).collect()),
                        MetaValue::F64s(a) => Json::Arr(a.iter().map(|x| Json::Num(*x)).collect()),
                    };
                    (k.clone(), j)
                })
                .collect(),
        );
        let paths = Json::Arr(
            model
                .costs()
                .iter()
                .enumerate()
                .map(|(k, pc)| {
                    Json::obj()
                        .set("depth", Json::Int(pc.depth as u64))
                        .set("flops", Json::Int(pc.backbone_flops))
                        .set("weight_bytes", Json::Int(bytes(k)))
                })
                .collect(),
        );
        let tensors = Json::Arr(
            idx.tensors
                .iter()
                .map(|t| {
                    Json::obj()
                        .set("name", Json::Str(t.name.clone()))
                        .set("dtype", Json::Str(t.dtype.name().into()))
                        .set(
                            "shape",
                            Json::Arr(t.shape.iter().map(|d| Json::Int(*d as u64)).collect()),
                        )
                        .set("offset", Json::Int(t.offset as u64))
                        .set("bytes", Json::Int(t.nbytes as u64))
                })
                .collect(),
        );
        let j = Json::obj()
            .set("file", Json::Str(path.display().to_string()))
            .set("file_bytes", Json::Int(idx.file_len as u64))
            .set(
                "input_shape",
                Json::Arr(
                    [c.channels, c.image_h, c.image_w]
                        .iter()
                        .map(|v| Json::Int(*v as u64))
                        .collect(),
                ),
            )
            .set("classes", Json::Int(c.classes as u64))
            .set("config", config_json(&c))
            .set("paths", paths)
            .set(
                "controller_flops",
                Json::Int(ctrl_flops.map_or(0, |f| f[0])),
            )
            .set(
                "controller_flops_graph",
                Json::Int(ctrl_flops.map_or(0, |f| f[1])),
            )
            .set(
                "controller_weight_bytes",
                Json::Int(ctrl_bytes.map_or(0, |b| b[0])),
            )
            .set(
                "controller_weight_bytes_graph",
                Json::Int(ctrl_bytes.map_or(0, |b| b[1])),
            )
            .set("arena_bytes", Json::Int(session.arena_bytes() as u64))
            .set(
                "arena_lower_bound_bytes",
                Json::Int(session.arena_lower_bound_bytes() as u64),
            )
            .set("kernel", Json::Str(tinv::cpu::gemm::kernel_name().into()))
            .set(
                "model_hash",
                Json::Str(format!("{:#018x}", model.model_hash())),
            )
            .set("metadata", meta)
            .set("tensors", tensors);
        outln!("{}", j.render());
        return Ok(());
    }
    outln!(
        "file          {} ({} bytes, format v{})",
        out::escaped(&path.display().to_string()),
        idx.file_len,
        idx.version
    );
    outln!(
        "producer      {}",
        out::escaped(idx.meta.str("tinv.producer").unwrap_or("?"))
    );
    outln!("content hash  {:#018x}", model.content_hash());
    // What exported ONNX graphs (tinv.model_hash) and TensorRT manifests record.
    outln!(
        "model hash    {:#018x} (tensors and configuration; tinv.model_hash of ONNX exports \
         and model_hash of engine manifests)",
        model.model_hash()
    );
    // Checked at open whenever present (a file that opened has the right one).
    match idx.meta.u64(tinv::format::META_HASH_KEY) {
        Some(h) => outln!("meta hash     {h:#018x} (checked at open)"),
        None => outln!("meta hash     none (written before tinv.meta_hash: metadata unchecked)"),
    }
    outln!(
        "input         {}x{}x{} (C×H×W), normalized (x − {:?}) / {:?}",
        c.channels,
        c.image_h,
        c.image_w,
        c.mean,
        c.std
    );
    outln!(
        "ViT           patch {}, dim {}, {} blocks, {} heads, MLP {}, {} classes, {} tokens, LayerNorm ε {:e}, GELU {}",
        c.patch,
        c.dim,
        c.blocks,
        c.heads,
        c.mlp_hidden,
        c.classes,
        c.tokens(),
        c.ln_eps,
        c.gelu.name()
    );
    match (&c.controller, model.ctrl()) {
        (Some(cc), Some(w)) => outln!(
            "controller    {} (predictor {}, policy {}, graph policy {}, exit RNN {}), {} FLOPs up front ({} in graph mode), {} weight bytes ({} in graph mode), default λ {}",
            cc.features,
            w.hp,
            w.hq,
            if w.graph.is_some() { w.hg.to_string() } else { "= policy".into() },
            w.hr,
            ctrl_flops.map_or(0, |f| f[0]),
            ctrl_flops.map_or(0, |f| f[1]),
            ctrl_bytes.map_or(0, |b| b[0]),
            ctrl_bytes.map_or(0, |b| b[1]),
            cc.default_budget
        ),
        _ => outln!("controller    none (runs a fixed depth; full depth by default)"),
    }
    outln!("paths:");
    let full = model.costs().last().map_or(1, |p| p.backbone_flops) as f64;
    for (k, pc) in model.costs().iter().enumerate() {
        outln!(
            "  depth {:>3}   {:>10.3} MFLOPs ({:5.1}% of full)   {:>10} weight bytes",
            pc.depth,
            pc.backbone_flops as f64 / 1e6,
            pc.backbone_flops as f64 / full * 100.0,
            bytes(k)
        );
    }
    outln!(
        "arena         {} bytes for batch 1 (liveness lower bound {} bytes); GEMM kernel {}",
        session.arena_bytes(),
        session.arena_lower_bound_bytes(),
        tinv::cpu::gemm::kernel_name()
    );
    if a.has("tensors") {
        outln!("tensors ({}):", idx.tensors.len());
        for t in &idx.tensors {
            outln!(
                "  {:<28} {} {:?} at {} ({} bytes)",
                t.name,
                t.dtype.name(),
                t.shape,
                t.offset,
                t.nbytes
            );
        }
    } else {
        outln!(
            "tensors       {} (list them with --tensors)",
            idx.tensors.len()
        );
    }
    if a.has("verify") {
        outln!("verify        every checksum matches");
    }
    print_engines(&model);
    Ok(())
}

/// The model's configuration (`Config`) as the `config` object of `--json`.
fn config_json(c: &tinv::Config) -> Json {
    let ints = |v: &[usize]| Json::Arr(v.iter().map(|x| Json::Int(*x as u64)).collect());
    let floats = |v: &[f32]| Json::Arr(v.iter().map(|x| Json::f32(*x)).collect());
    let controller = c.controller.as_ref().map_or(Json::Null, |cc| {
        Json::obj()
            .set("features", Json::Str(cc.features.clone()))
            .set("default_budget", Json::f32(cc.default_budget))
    });
    Json::obj()
        .set("image_size", ints(&[c.image_h, c.image_w]))
        .set("channels", Json::Int(c.channels as u64))
        .set("patch", Json::Int(c.patch as u64))
        .set("dim", Json::Int(c.dim as u64))
        .set("heads", Json::Int(c.heads as u64))
        .set("blocks", Json::Int(c.blocks as u64))
        .set("mlp_hidden", Json::Int(c.mlp_hidden as u64))
        .set("classes", Json::Int(c.classes as u64))
        .set("tokens", Json::Int(c.tokens() as u64))
        .set("depths", ints(&c.depths))
        .set("mean", floats(&c.mean))
        .set("std", floats(&c.std))
        .set("ln_eps", Json::f32(c.ln_eps))
        .set("gelu", Json::Str(c.gelu.name().into()))
        .set("controller", controller)
}

/// Device memory of built TensorRT engines (weights once + one arena vs the naive layout).
#[cfg(feature = "tensorrt")]
fn print_engines(model: &tinv::Model) {
    let dir = tinv::backend::default_engines_dir(model);
    match tinv::trt::builder::read_manifest(&dir)
        .and_then(|m| tinv::trt::arena::MemoryReport::new(&m).map(|r| (m, r)))
    {
        Ok((m, r)) => {
            outln!(
                "engines       {} ({} layout, {:?}, TensorRT {}.{}.{}, {})",
                out::escaped(&dir.display().to_string()),
                m.layout.name(),
                m.precision,
                m.tensorrt.major,
                m.tensorrt.minor,
                m.tensorrt.patch,
                m.gpu.name
            );
            out!("{r}");
        }
        Err(e) => outln!(
            "engines       none usable in {} ({e})",
            out::escaped(&dir.display().to_string())
        ),
    }
}

#[cfg(not(feature = "tensorrt"))]
fn print_engines(_: &tinv::Model) {}
