//! Backend selection for a [`crate::Session`]: the CPU plans (always available), or TensorRT
//! engines built by `tinv-run build` (feature `tensorrt`). One mismatch policy: `tensorrt` fails
//! with an error naming what is wrong and saying how to rebuild; `auto` logs that error as a
//! warning and uses the CPU. Nothing rebuilds behind the user's back.

use crate::error::{Error, Result};
use crate::Model;
use std::path::{Path, PathBuf};

/// Which backend a session runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Parses `auto`, `cpu` or `tensorrt` (the names [`Display`](std::fmt::Display) writes), or
    /// `trt`.
    pub fn parse(s: &str) -> Result<Backend> {
        const ALL: [Backend; 3] = [Backend::Auto, Backend::Cpu, Backend::TensorRt];
        if s == "trt" {
            return Ok(Backend::TensorRt);
        }
        ALL.into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| Error::arg(format!("backend '{s}' is not one of auto, cpu, tensorrt")))
    }

    /// The name [`Backend::parse`] reads back.
    fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Cpu => "cpu",
            Backend::TensorRt => "tensorrt",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;
    /// [`Backend::parse`].
    fn from_str(s: &str) -> Result<Backend> {
        Backend::parse(s)
    }
}

/// The name [`Backend::parse`] reads back.
impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where `tinv-run build` puts a model's engines by default: `plans/` beside the `.tinv`.
///
/// For a model opened from memory ([`Model::from_bytes`], path `<memory>`) this is `plans`
/// relative to the current directory; [`engines_dir`] (which sessions use) gives `None` there.
pub fn default_engines_dir(model: &Model) -> PathBuf {
    model
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .join("plans")
}

/// The engines folder a session of `model` uses: `explicit` when given, else
/// [`default_engines_dir`] for a model opened from a file, else `None` (a model opened from
/// memory has no folder of its own; the current directory is never searched).
pub fn engines_dir(model: &Model, explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(d) => Some(d.to_path_buf()),
        None if !model.is_mapped() => None,
        None => Some(default_engines_dir(model)),
    }
}

/// The TensorRT state of a session (feature `tensorrt`).
#[cfg(feature = "tensorrt")]
pub(crate) struct Trt {
    pub(crate) session: crate::trt::session::TrtSession,
    /// Per-path logits bytes (f32) read back from the device.
    pub(crate) out: Vec<u8>,
}

/// Where a TensorRT backend would come from, decided without touching the device.
enum Plan {
    /// Use the CPU (the `Cpu` request, or `Auto` with no engines to try).
    Cpu,
    /// Try the engines of this folder.
    Engines(PathBuf),
}

/// The folder to try for `backend`, or why not: `Auto` without TensorRT support, without a
/// folder or without a manifest in it is the CPU; `TensorRt` without a folder is an error.
fn plan(model: &Model, backend: Backend, engines: Option<&Path>) -> Result<Plan> {
    if backend == Backend::Cpu {
        return Ok(Plan::Cpu);
    }
    if backend == Backend::Auto && !cfg!(feature = "tensorrt") {
        // No folder to look at: name only one the caller gave (the default is not news).
        let why = "this tinv was built without the `tensorrt` feature; using the CPU backend";
        match engines {
            Some(dir) => log::warn!("{}: engines unused: {why}", dir.display()),
            None => log::debug!("{why}"),
        }
        return Ok(Plan::Cpu);
    }
    let Some(dir) = engines_dir(model, engines) else {
        if backend == Backend::Auto {
            log::debug!("model opened from memory and no engines folder given; using the CPU");
            return Ok(Plan::Cpu);
        }
        return Err(Error::Backend(
            "TensorRT backend: no engines folder (a model opened from memory has no folder of its own; give the engines folder explicitly)".into(),
        ));
    };
    if backend == Backend::Auto && !dir.join("manifest").is_file() {
        // No engines were built: the CPU is the plan. Only news when the caller named the
        // folder: the default folder is usually absent on a CPU machine.
        let why = "no TensorRT engines (no manifest; `tinv-run build` makes them)";
        let level = if engines.is_some() {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        log::log!(level, "{}: {why}; using the CPU backend", dir.display());
        return Ok(Plan::Cpu);
    }
    Ok(Plan::Engines(dir))
}

/// `Auto`'s fallback: an error of the TensorRT side becomes a warning and the CPU (`None`).
fn or_cpu<T>(backend: Backend, r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(e) if backend == Backend::Auto => {
            log::warn!("TensorRT backend unavailable, using the CPU: {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Decides up front which backend sessions of `model` run on, opening the TensorRT engines
/// (and uploading the weights, once per model) when that is the answer: `Cpu` or `TensorRt`,
/// never `Auto`. `TensorRt` fails when the engines cannot be opened; `Auto` then gives `Cpu`
/// (the reason logged as a warning). Sessions opened afterwards with the returned backend
/// reuse the opened engines. The C ABI calls this when a model is opened, so that
/// `tinv_model_open` reports a missing or unusable engines folder and `tinv_model_backend`
/// says what sessions will run on.
pub fn resolve(model: &Model, backend: Backend, engines: Option<&Path>) -> Result<Backend> {
    let dir = match plan(model, backend, engines)? {
        Plan::Cpu => return Ok(Backend::Cpu),
        Plan::Engines(dir) => dir,
    };
    Ok(match or_cpu(backend, load_engines(model, &dir))? {
        Some(_) => Backend::TensorRt,
        None => Backend::Cpu,
    })
}

/// Opens the TensorRT side of a session, or says why not (`Ok(None)` = use the CPU).
pub(crate) fn open(
    model: &Model,
    backend: Backend,
    engines: Option<&Path>,
    cuda_graphs: bool,
) -> Result<Option<Trt>> {
    let dir = match plan(model, backend, engines)? {
        Plan::Cpu => return Ok(None),
        Plan::Engines(dir) => dir,
    };
    or_cpu(backend, open_trt(model, &dir, cuda_graphs))
}

#[cfg(not(feature = "tensorrt"))]
pub(crate) enum Trt {}

#[cfg(not(feature = "tensorrt"))]
fn load_engines(_: &Model, _: &Path) -> Result<Trt> {
    Err(Error::Backend(
        "TensorRT backend not built: this tinv was compiled without the `tensorrt` feature (on \
         the device: `cargo build --release --features tensorrt`, see docs/JETSON.md)"
            .into(),
    ))
}

#[cfg(not(feature = "tensorrt"))]
fn open_trt(model: &Model, dir: &Path, _: bool) -> Result<Trt> {
    load_engines(model, dir)
}

/// The engines of `dir` for `model`, opened and the weights uploaded once per model (shared
/// by its sessions). Errors name the folder.
#[cfg(feature = "tensorrt")]
fn load_engines(
    model: &Model,
    dir: &Path,
) -> Result<std::sync::Arc<crate::trt::backend::TrtModel>> {
    use crate::trt;
    model.trt_model(dir, || {
        let opts = trt::backend::OpenOptions {
            model_hash: model.model_hash(),
            depths: model.config().depths.iter().map(|&d| d as u32).collect(),
            layout: None,
            precision: None,
            input_len: model.config().input_len() as u64,
            classes: model.config().classes as u64,
        };
        // Weights: the device section written by `tinv-fold --device` when present, else the
        // FP16 blob the ONNX export feeds (built here of what the device section lacks, dropped
        // after the upload).
        let blob = crate::onnx::upload_blob(model);
        let lookup = |name: &str| -> Option<&[u8]> {
            model
                .raw_tensor(&format!("dev.{name}"))
                .or_else(|| blob.bytes_of(name))
        };
        let opened = trt::open::open_engines(dir, &opts, &lookup)
            .map_err(|e| e.in_context(format_args!("TensorRT engines in {}", dir.display())))?;
        // The device holds the weights now; on a Jetson the host copy would be a second one.
        let released = model.release_device_section();
        if released > 0 {
            log::debug!("released {released} host bytes of the device section after the upload");
        }
        Ok(opened)
    })
}

#[cfg(feature = "tensorrt")]
fn open_trt(model: &Model, dir: &Path, cuda_graphs: bool) -> Result<Trt> {
    let shared = load_engines(model, dir)?;
    let session =
        crate::trt::session::TrtSession::with_graphs(shared, cuda_graphs).map_err(Error::from)?;
    // Every path's output is `classes` f32 logits (checked when the engines were opened).
    Ok(Trt {
        session,
        out: vec![0u8; model.config().classes * 4],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::DType;
    use crate::{synth, OpenOptions};

    fn bytes() -> Vec<u8> {
        let cfg = synth::tiny(3, false);
        synth::random_model(&cfg, 1, DType::F32)
    }

    #[test]
    fn the_engines_folder_is_beside_the_file_and_none_for_memory() {
        let m = Model::from_bytes(&bytes(), &OpenOptions::default()).unwrap();
        assert_eq!(engines_dir(&m, None), None);
        assert_eq!(
            engines_dir(&m, Some(Path::new("/e"))),
            Some(PathBuf::from("/e"))
        );
        // No folder: `auto` is the CPU without looking anywhere, `tensorrt` says what is missing.
        assert_eq!(resolve(&m, Backend::Auto, None).unwrap(), Backend::Cpu);
        assert_eq!(resolve(&m, Backend::Cpu, None).unwrap(), Backend::Cpu);
        let e = resolve(&m, Backend::TensorRt, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("opened from memory"), "{e}");

        let dir = crate::files::test_dir("engines-dir");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.tinv");
        std::fs::write(&file, bytes()).unwrap();
        let m = Model::open(&file, &OpenOptions::default()).unwrap();
        assert_eq!(engines_dir(&m, None), Some(dir.join("plans")));
        assert_eq!(resolve(&m, Backend::Auto, None).unwrap(), Backend::Cpu);
        let e = resolve(&m, Backend::TensorRt, None)
            .unwrap_err()
            .to_string();
        if cfg!(feature = "tensorrt") {
            assert!(
                e.contains(&format!("{}", dir.join("plans").display())),
                "{e}"
            );
        } else {
            assert!(e.contains("without the `tensorrt` feature"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
