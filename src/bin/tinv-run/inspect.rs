//! `tinv-run inspect`.

use crate::args::Args;
use crate::json::Json;
use crate::model_path;
use std::sync::Arc;
use tinv::format::MetaValue;

pub const HELP: &str = "\
tinv-run inspect — what a model file holds and what each path costs

USAGE:
    tinv-run inspect [M] [--model M] [--verify] [--tensors] [--json]

OPTIONS:
    M, --model M   .tinv file or package directory (default: engines/fmnist)
    --verify       recompute every tensor checksum (reads the whole file)
    --tensors      list every tensor (name, dtype, shape, offset, bytes)
    --json         one JSON object: config, paths [{depth, flops, weight_bytes}], arena_bytes,
                   arena_lower_bound_bytes, tensors, metadata

Weight bytes of a path are the bytes of every tensor it reads (controller, stem, its blocks,
its exit head); because blocks start on fresh pages, a path never touches deeper pages.
";

pub fn run(raw: &[String]) -> Result<(), String> {
    let a = Args::parse(raw, &["model"], &["json", "verify", "tensors"])?;
    let arg = a.get("model").or(a.positional.first().map(String::as_str));
    let path = model_path::resolve(arg)?;
    let model = Arc::new(model_path::open(arg, a.has("verify"))?);
    let c = model.config().clone();
    let session = tinv::Session::new(model.clone(), tinv::SessionOptions::default())
        .map_err(|e| e.to_string())?;
    let bytes = |k: usize| -> u64 {
        model
            .path_tensors(k)
            .iter()
            .map(|r| model.w_file_range(*r).len() as u64)
            .sum()
    };
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
            .set("paths", paths)
            .set(
                "controller_flops",
                Json::Int(ctrl_flops.map_or(0, |f| f[0])),
            )
            .set(
                "controller_flops_graph",
                Json::Int(ctrl_flops.map_or(0, |f| f[1])),
            )
            .set("arena_bytes", Json::Int(session.arena_bytes() as u64))
            .set(
                "arena_lower_bound_bytes",
                Json::Int(session.arena_lower_bound_bytes() as u64),
            )
            .set("kernel", Json::Str(tinv::cpu::gemm::kernel_name().into()))
            .set("metadata", meta)
            .set("tensors", tensors);
        println!("{}", j.render());
        return Ok(());
    }
    println!(
        "file          {} ({} bytes, format v{})",
        path.display(),
        idx.file_len,
        idx.version
    );
    println!(
        "producer      {}",
        idx.meta.str("tinv.producer").unwrap_or("?")
    );
    println!("content hash  {:#018x}", model.content_hash());
    println!(
        "input         {}x{}x{} (C×H×W), normalized (x − {:?}) / {:?}",
        c.channels, c.image_h, c.image_w, c.mean, c.std
    );
    println!(
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
        (Some(cc), Some(w)) => println!(
            "controller    {} (predictor {}, policy {}, graph policy {}, exit RNN {}), {} FLOPs up front ({} in graph mode), default λ {}",
            cc.features,
            w.hp,
            w.hq,
            if w.graph.is_some() { w.hg.to_string() } else { "= policy".into() },
            w.hr,
            ctrl_flops.map_or(0, |f| f[0]),
            ctrl_flops.map_or(0, |f| f[1]),
            cc.default_budget
        ),
        _ => println!("controller    none (runs a fixed depth; full depth by default)"),
    }
    println!("paths:");
    let full = model.costs().last().map_or(1, |p| p.backbone_flops) as f64;
    for (k, pc) in model.costs().iter().enumerate() {
        println!(
            "  depth {:>3}   {:>10.3} MFLOPs ({:5.1}% of full)   {:>10} weight bytes",
            pc.depth,
            pc.backbone_flops as f64 / 1e6,
            pc.backbone_flops as f64 / full * 100.0,
            bytes(k)
        );
    }
    println!(
        "arena         {} bytes for batch 1 (liveness lower bound {} bytes); GEMM kernel {}",
        session.arena_bytes(),
        session.arena_lower_bound_bytes(),
        tinv::cpu::gemm::kernel_name()
    );
    if a.has("tensors") {
        println!("tensors ({}):", idx.tensors.len());
        for t in &idx.tensors {
            println!(
                "  {:<28} {} {:?} at {} ({} bytes)",
                t.name,
                t.dtype.name(),
                t.shape,
                t.offset,
                t.nbytes
            );
        }
    } else {
        println!(
            "tensors       {} (list them with --tensors)",
            idx.tensors.len()
        );
    }
    if a.has("verify") {
        println!("verify        every checksum matches");
    }
    print_engines(&model);
    Ok(())
}

/// Device memory of built TensorRT engines (weights once + one arena vs the naive layout).
#[cfg(feature = "tensorrt")]
fn print_engines(model: &tinv::Model) {
    let dir = tinv::backend::default_engines_dir(model);
    match tinv::trt::builder::read_manifest(&dir)
        .and_then(|m| tinv::trt::arena::MemoryReport::new(&m).map(|r| (m, r)))
    {
        Ok((m, r)) => {
            println!(
                "engines       {} ({} layout, {:?}, TensorRT {}.{}.{}, {})",
                dir.display(),
                m.layout.name(),
                m.precision,
                m.tensorrt.major,
                m.tensorrt.minor,
                m.tensorrt.patch,
                m.gpu.name
            );
            print!("{r}");
        }
        Err(e) => println!("engines       none usable in {} ({e})", dir.display()),
    }
}

#[cfg(not(feature = "tensorrt"))]
fn print_engines(_: &tinv::Model) {}
