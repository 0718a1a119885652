//! The shared half of the TensorRT backend, over [`ShimApi`] and [`Device`]: [`TrtModel`]
//! checks the manifest against this model, TensorRT and GPU, deserializes every engine once and
//! uploads the weights ONCE into one device buffer. The per-thread half is
//! [`TrtSession`](super::session::TrtSession).

use super::arena::{arena_bytes, IoPlan};
use super::check::Expected;
use super::device::{Device, DevicePtr};
use super::manifest::{self, IoMode, Layout, Manifest, Precision, TrtVersion};
use super::paths::PathTable;
use super::{align_up, TrtError};
use std::sync::Arc;
use tinv_sys::{EngineHandle, ShimApi};

/// Where the bytes come from: plan files and the weights' device copies (the `.tinv` device
/// section, `dev.<name>`, already FP16 `[K, N]` as the engines expect).
pub trait Sources {
    /// The bytes of plan file `file` (relative to the manifest's folder), or why not: the kind
    /// tells a missing file (stale engines, a rebuild fixes it) from any other failure.
    fn plan(&self, file: &str) -> Result<Vec<u8>, (std::io::ErrorKind, String)>;
    /// The device bytes of weight `name`.
    fn weight(&self, name: &str) -> Option<&[u8]>;
}

/// What the caller knows about the model and insists on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// [`crate::Model::model_hash`] of the `.tinv` (tensors and configuration).
    pub model_hash: u64,
    /// The model's `paths.depths`.
    pub depths: Vec<u32>,
    /// A layout the caller requires, if any.
    pub layout: Option<Layout>,
    /// A precision the caller requires, if any.
    pub precision: Option<Precision>,
    /// Floats of one input image (C·H·W): the external input must be f32 of this many
    /// elements.
    pub input_len: u64,
    /// Classes: every path's output must be f32 logits of this many elements.
    pub classes: u64,
}

/// Engines deserialized so far; frees them on drop (also on a failed open).
pub(super) struct Engines {
    pub(super) shim: Arc<dyn ShimApi>,
    pub(super) handles: Vec<EngineHandle>,
}

impl Drop for Engines {
    fn drop(&mut self) {
        for &h in self.handles.iter().rev() {
            self.shim.engine_free(h);
        }
    }
}

/// The shared half: engines and the one device copy of the weights.
pub struct TrtModel {
    /// Declared first so that it drops first: the engines are freed while `device` (and with it
    /// the CUDA context, when this is its last holder) is still alive.
    pub(super) engines: Engines,
    pub(super) device: Arc<dyn Device>,
    pub(super) manifest: Manifest,
    pub(super) paths: PathTable,
    pub(super) io: IoPlan,
    pub(super) arena_bytes: u64,
    pub(super) weights: Option<DevicePtr>,
}

fn refused(file: &str, why: impl std::fmt::Display) -> TrtError {
    TrtError::StalePlan(format!(
        "plan {file}: {why}; run `tinv-run build` to rebuild the engines"
    ))
}

/// A failed deserialization: TensorRT's refusal (`TINV_TRT_ERR_TENSORRT`: another TensorRT
/// build or GPU, or a damaged file) is stale, anything else (no memory, a bad argument) is not.
/// TensorRT signals every refusal with the same NULL engine, running out of device memory for
/// the engine's weights included (on a Jetson the GPU shares the board's DRAM): that one is told
/// by the error TensorRT logged, and a rebuild would not fix it.
pub(super) fn not_deserialized(file: &str, why: tinv_sys::ShimError) -> TrtError {
    match &why {
        tinv_sys::ShimError::Call {
            status, message, ..
        } if *status == tinv_sys::bindings::tinv_trt_status_TINV_TRT_ERR_TENSORRT as i32 => {
            if names_memory(message) {
                TrtError::Plan(format!("plan {file}: out of device memory: {why}"))
            } else {
                refused(file, why)
            }
        }
        _ => TrtError::Plan(format!("plan {file}: {why}")),
    }
}

/// Whether a TensorRT error message says memory ran out: TensorRT 8's allocator logs "Cuda
/// Runtime (out of memory)" and "Requested amount of GPU memory (N bytes) could not be
/// allocated", TensorRT 10 "Error Code 2: OutOfMemory".
fn names_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["out of memory", "outofmemory", "could not be allocated"]
        .iter()
        .any(|k| m.contains(k))
}

fn same_io(m: &manifest::IoTensor, t: &tinv_sys::IoTensor) -> bool {
    let mode = matches!(
        (m.mode, t.mode),
        (IoMode::Input, tinv_sys::IoMode::Input) | (IoMode::Output, tinv_sys::IoMode::Output)
    );
    let dtype = matches!(
        (m.dtype, t.dtype),
        (manifest::DType::F32, tinv_sys::DType::F32)
            | (manifest::DType::F16, tinv_sys::DType::F16)
            | (manifest::DType::I32, tinv_sys::DType::I32)
            | (manifest::DType::I64, tinv_sys::DType::I64)
            | (manifest::DType::I8, tinv_sys::DType::I8)
    );
    let shape = m.shape.len() == t.shape.len()
        && m.shape
            .iter()
            .zip(&t.shape)
            .all(|(&a, &b)| i64::try_from(a).ok() == Some(b));
    m.name == t.name && mode && dtype && shape
}

/// The engines' interface against the model: one external input, f32 of `input_len`
/// elements, and every path's output f32 of `classes` elements — the session stages one image's
/// floats and reads one set of f32 logits, so anything else would be misread, not refused.
fn check_model_io(
    m: &Manifest,
    paths: &PathTable,
    io: &IoPlan,
    opts: &OpenOptions,
) -> Result<(), TrtError> {
    let tensor = |name: &str| {
        m.engines
            .iter()
            .flat_map(|e| &e.io)
            .find(|t| t.name == name)
    };
    let f32_of = |t: &manifest::IoTensor, want: u64, what: &str| {
        if t.dtype == manifest::DType::F32 && t.bytes() == want.saturating_mul(4) {
            return Ok(());
        }
        Err(TrtError::Plan(format!(
            "{what} {} is {} {:?}, the model needs f32 with {want} elements; \
             run `tinv-run build` to rebuild the engines",
            t.name,
            t.dtype.name(),
            t.shape
        )))
    };
    let mut inputs = io.external_inputs();
    let (Some(input), None) = (inputs.next(), inputs.next()) else {
        return Err(TrtError::Plan(
            "the engines must have exactly one external input (the image)".into(),
        ));
    };
    if let Some(t) = tensor(&input.name) {
        f32_of(t, opts.input_len, "input")?;
    }
    for k in 0..paths.len() {
        f32_of(paths.output(m, k)?, opts.classes, "output")?;
    }
    Ok(())
}

impl TrtModel {
    /// Checks `manifest` against the model, the loaded TensorRT and the GPU, deserializes every
    /// plan, checks each engine's I/O against the manifest, and uploads the weights once.
    pub fn open(
        shim: Arc<dyn ShimApi>,
        device: Arc<dyn Device>,
        manifest: Manifest,
        opts: &OpenOptions,
        sources: &dyn Sources,
    ) -> Result<TrtModel, TrtError> {
        manifest.validate()?;
        let v = shim.version();
        let part = |x: i32| u32::try_from(x).unwrap_or(0);
        let gpu = device.info()?;
        let expected = Expected {
            model_hash: opts.model_hash,
            export: crate::onnx::EXPORT_VERSION,
            tensorrt: TrtVersion {
                major: part(v.major),
                minor: part(v.minor),
                patch: part(v.patch),
            },
            gpu: manifest::Gpu {
                name: gpu.name,
                compute_capability: gpu.compute_capability,
                sms: gpu.sms,
            },
            depths: opts.depths.clone(),
            layout: opts.layout,
            precision: opts.precision,
        };
        manifest.check(&expected)?;
        let paths = PathTable::new(&manifest)?;
        let io = IoPlan::new(&manifest)?;
        check_model_io(&manifest, &paths, &io, opts)?;
        let mut engines = Engines {
            shim: shim.clone(),
            handles: Vec::with_capacity(manifest.engines.len()),
        };
        let mut device_memory = 0u64;
        for e in &manifest.engines {
            let plan = sources.plan(&e.plan).map_err(|(kind, why)| {
                // Missing: stale. Unreadable (permissions, I/O, not a regular file): a
                // rebuild would not fix it, and a program that rebuilds on EnginesStale
                // would loop.
                if kind == std::io::ErrorKind::NotFound {
                    refused(&e.plan, why)
                } else {
                    TrtError::Plan(format!("plan {}: {why}", e.plan))
                }
            })?;
            let hash = crate::format::fnv1a64(&plan);
            if hash != e.plan_hash {
                return Err(refused(
                    &e.plan,
                    format!(
                        "its bytes (FNV-1a {hash:#018x}) are not the ones `tinv-run build` wrote \
                         ({:#018x}): replaced or damaged since",
                        e.plan_hash
                    ),
                ));
            }
            let h = shim
                .deserialize(&plan)
                .map_err(|why| not_deserialized(&e.plan, why))?;
            engines.handles.push(h);
            drop(plan); // the engine holds its own copy; release the file bytes now
            let actual = shim.engine_io(h)?;
            let agrees =
                actual.len() == e.io.len() && e.io.iter().zip(&actual).all(|(m, t)| same_io(m, t));
            if !agrees {
                return Err(refused(
                    &e.plan,
                    format!(
                        "its I/O tensors differ from the manifest's engine {}",
                        e.name
                    ),
                ));
            }
            device_memory = device_memory.max(shim.engine_device_memory_size(h)?);
        }
        // The arena follows what TensorRT reports now, never less than the manifest recorded.
        let arena = arena_bytes(&manifest)?.max(align_up(device_memory).unwrap_or(u64::MAX));
        let weights = upload_weights(device.as_ref(), &manifest, sources)?;
        Ok(TrtModel {
            device,
            manifest,
            paths,
            io,
            arena_bytes: arena,
            weights,
            engines,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The paths.
    pub fn paths(&self) -> &PathTable {
        &self.paths
    }

    /// Bytes of the one weight buffer on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.weights.map_or(0, |_| self.manifest.weights_bytes)
    }

    /// Bytes of the arena each session allocates.
    pub fn arena_bytes(&self) -> u64 {
        self.arena_bytes
    }

    /// Bytes of the fixed I/O buffers each session allocates.
    pub fn io_bytes(&self) -> u64 {
        self.io.total
    }
}

/// One allocation holding every weight at its manifest offset; one copy per weight.
fn upload_weights(
    device: &dyn Device,
    m: &Manifest,
    sources: &dyn Sources,
) -> Result<Option<DevicePtr>, TrtError> {
    if m.weights_bytes == 0 {
        return Ok(None);
    }
    for w in &m.weights {
        let got = sources.weight(&w.name).map(<[u8]>::len);
        if got != usize::try_from(w.bytes).ok() {
            return Err(TrtError::Plan(format!(
                "weight {} has {got:?} device bytes, the manifest expects {}",
                w.name, w.bytes
            )));
        }
    }
    let ptr = device.alloc(m.weights_bytes)?;
    let upload = || -> Result<(), TrtError> {
        let stream = device.stream_create()?;
        let copied = m.weights.iter().try_for_each(|w| {
            let bytes = sources.weight(&w.name).unwrap_or(&[]); // length checked above
            device.memcpy_htod(ptr + w.offset, bytes, stream)
        });
        device.stream_destroy(stream);
        Ok(copied?)
    };
    if let Err(e) = upload() {
        device.free(ptr);
        return Err(e);
    }
    Ok(Some(ptr))
}

impl Drop for TrtModel {
    fn drop(&mut self) {
        // The engines' destructors (field drop, right after this) need the context current on
        // this thread, which may never have touched CUDA.
        self.device.make_current();
        if let Some(p) = self.weights {
            self.device.free(p);
        }
        // `engines` frees the engines after this (field drop, before `device`), once every
        // session is gone: sessions hold an Arc<TrtModel>.
    }
}
