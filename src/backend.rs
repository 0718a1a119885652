//! Backend selection for a [`crate::Session`]: the CPU plans (always available), or TensorRT
//! engines built by `tinv-run build` (feature `tensorrt`). One mismatch policy: `tensorrt` fails
//! with an error naming what is wrong and saying how to rebuild; `auto` logs that error as a
//! warning and uses the CPU. Nothing rebuilds behind the user's back.

use crate::error::{Error, Result};
use crate::Model;
use std::path::{Path, PathBuf};

/// Which backend a session runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// TensorRT when engines for this model, this TensorRT and this GPU exist; else the CPU.
    #[default]
    Auto,
    /// The CPU plans.
    Cpu,
    /// TensorRT engines; an error if they cannot be used.
    TensorRt,
}

impl Backend {
    /// Parses `auto`, `cpu` or `tensorrt`.
    pub fn parse(s: &str) -> Result<Backend> {
        match s {
            "auto" => Ok(Backend::Auto),
            "cpu" => Ok(Backend::Cpu),
            "tensorrt" | "trt" => Ok(Backend::TensorRt),
            _ => Err(Error::arg(format!(
                "backend '{s}' is not one of auto, cpu, tensorrt"
            ))),
        }
    }
}

/// Where `tinv-run build` puts a model's engines by default: `plans/` beside the `.tinv`.
pub fn default_engines_dir(model: &Model) -> PathBuf {
    model
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .join("plans")
}

/// The TensorRT state of a session (feature `tensorrt`).
#[cfg(feature = "tensorrt")]
pub(crate) struct Trt {
    pub(crate) session: crate::trt::session::TrtSession,
    /// Per-path logits bytes (f32) read back from the device.
    pub(crate) out: Vec<u8>,
}

/// Opens the TensorRT side of a session, or says why not (`Ok(None)` = use the CPU).
pub(crate) fn open(
    model: &Model,
    backend: Backend,
    engines: Option<&Path>,
    cuda_graphs: bool,
) -> Result<Option<Trt>> {
    if backend == Backend::Cpu {
        return Ok(None);
    }
    let dir = engines.map_or_else(|| default_engines_dir(model), Path::to_path_buf);
    if backend == Backend::Auto && (!cfg!(feature = "tensorrt") || !dir.join("manifest").is_file())
    {
        // No engines were built (or no TensorRT support compiled in): the CPU is the plan.
        log::debug!(
            "no TensorRT engines in {}; using the CPU backend",
            dir.display()
        );
        return Ok(None);
    }
    match open_trt(model, &dir, cuda_graphs) {
        Ok(t) => Ok(Some(t)),
        Err(e) if backend == Backend::Auto => {
            log::warn!("TensorRT backend unavailable, using the CPU: {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(not(feature = "tensorrt"))]
pub(crate) enum Trt {}

#[cfg(not(feature = "tensorrt"))]
fn open_trt(_: &Model, _: &Path, _: bool) -> Result<Trt> {
    Err(Error::Backend(
        "TensorRT backend not built: this tinv was compiled without the `tensorrt` feature".into(),
    ))
}

#[cfg(feature = "tensorrt")]
fn open_trt(model: &Model, dir: &Path, cuda_graphs: bool) -> Result<Trt> {
    use crate::trt;
    let shared = model.trt_model(dir, || {
        let opts = trt::backend::OpenOptions {
            model_hash: model.content_hash(),
            depths: model.config().depths.iter().map(|&d| d as u32).collect(),
            layout: None,
            precision: None,
        };
        // Weights: the device section written by `tinv-fold --device` when present, else the
        // FP16 blob the ONNX export feeds (built here, dropped after the upload).
        let blob = crate::onnx::weight_blob(model);
        let lookup = |name: &str| -> Option<&[u8]> {
            model
                .raw_tensor(&format!("dev.{name}"))
                .or_else(|| blob.bytes_of(name))
        };
        trt::open::open_engines(dir, &opts, &lookup).map_err(Error::from)
    })?;
    let session =
        trt::session::TrtSession::with_graphs(shared, cuda_graphs).map_err(Error::from)?;
    let most = (0..model.config().depths.len())
        .map(|k| session.output_len(k))
        .try_fold(0usize, |m, l| l.map(|l| m.max(l)))
        .map_err(Error::from)?;
    Ok(Trt {
        session,
        out: vec![0u8; most],
    })
}
