//! Orchestration of the TensorRT backend over [`ShimApi`] and [`Device`]:
//! - [`TrtModel`] (shared, read-only): the manifest checked against this model, TensorRT and
//!   GPU; every engine deserialized once; the weights uploaded ONCE into one device buffer.
//! - [`TrtSession`] (one thread): one stream, ONE arena (max over engines) given to every
//!   context, fixed I/O buffers, each context's weight inputs bound to the shared buffer, a
//!   warm-up enqueue of every engine, then ONE CUDA graph captured per path (and per one-step
//!   escalation when `segments` can resume). Inference copies the input in, launches the chosen
//!   path's graph and copies the logits out; nothing is allocated or captured after open.

use super::arena::{arena_bytes, IoPlan};
use super::binding::engine_bindings;
use super::check::Expected;
use super::device::{Device, DevicePtr, Graph, Stream};
use super::manifest::{self, IoMode, Layout, Manifest, Precision, TrtVersion};
use super::paths::PathTable;
use super::{align_up, TrtError};
use std::sync::Arc;
use tinv_sys::{ContextHandle, EngineHandle, ShimApi};

/// Where the bytes come from: plan files and the weights' device copies (the `.tinv` device
/// section, `dev.<name>`, already FP16 `[K, N]` as the engines expect).
pub trait Sources {
    /// The bytes of plan file `file` (relative to the manifest's folder).
    fn plan(&self, file: &str) -> Result<Vec<u8>, String>;
    /// The device bytes of weight `name`.
    fn weight(&self, name: &str) -> Option<&[u8]>;
}

/// What the caller knows about the model and insists on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// `tinv.content_hash` of the `.tinv`.
    pub model_hash: u64,
    /// The model's `paths.depths`.
    pub depths: Vec<u32>,
    /// A layout the caller requires, if any.
    pub layout: Option<Layout>,
    /// A precision the caller requires, if any.
    pub precision: Option<Precision>,
}

/// Engines deserialized so far; frees them on drop (also on a failed open).
struct Engines {
    shim: Arc<dyn ShimApi>,
    handles: Vec<EngineHandle>,
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
    device: Arc<dyn Device>,
    manifest: Manifest,
    paths: PathTable,
    io: IoPlan,
    arena_bytes: u64,
    weights: Option<DevicePtr>,
    engines: Engines,
}

fn refused(file: &str, why: impl std::fmt::Display) -> TrtError {
    TrtError::Plan(format!(
        "plan {file}: {why}; run `tinv-run build` to rebuild the engines"
    ))
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
            tensorrt: TrtVersion {
                major: part(v.major),
                minor: part(v.minor),
                patch: part(v.patch),
            },
            gpu: manifest::Gpu {
                name: gpu.name,
                compute_capability: gpu.compute_capability,
            },
            depths: opts.depths.clone(),
            layout: opts.layout,
            precision: opts.precision,
        };
        manifest.check(&expected)?;
        let paths = PathTable::new(&manifest)?;
        let io = IoPlan::new(&manifest)?;
        if io.external_inputs().count() != 1 {
            return Err(TrtError::Plan(
                "the engines must have exactly one external input (the image)".into(),
            ));
        }
        let mut engines = Engines {
            shim: shim.clone(),
            handles: Vec::with_capacity(manifest.engines.len()),
        };
        let mut device_memory = 0u64;
        for e in &manifest.engines {
            let plan = sources.plan(&e.plan).map_err(|why| refused(&e.plan, why))?;
            let h = shim
                .deserialize(&plan)
                .map_err(|why| refused(&e.plan, why))?;
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
        if let Some(p) = self.weights {
            self.device.free(p);
        }
        // `engines` frees the engines after this (field drop), once every session is gone:
        // sessions hold an Arc<TrtModel>.
    }
}

/// What one run launched, for the stats (escalation charges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// Engines the launched graph runs, in order (indices into the manifest's engines).
    pub engines: Vec<usize>,
    /// Whether engines already run for a shallower path were run again (`per-path`).
    pub rerun: bool,
}

/// Per-thread state: stream, arena, I/O buffers, contexts and graphs.
pub struct TrtSession {
    model: Arc<TrtModel>,
    stream: Stream,
    arena: Option<DevicePtr>,
    io_block: Option<DevicePtr>,
    contexts: Vec<ContextHandle>,
    path_graphs: Vec<Graph>,
    /// For path i: the graph escalating from i to i+1, and whether it reruns the prefix.
    step_graphs: Vec<(Graph, bool)>,
    owned_graphs: Vec<Graph>,
    /// The path whose output the I/O buffers hold (what `escalate` may resume from).
    last: Option<usize>,
}

impl TrtSession {
    /// Allocates the arena and I/O buffers, creates and binds one context per engine, warms every
    /// engine up once, then captures one graph per path and per escalation step.
    pub fn new(model: Arc<TrtModel>) -> Result<TrtSession, TrtError> {
        let device = model.device.clone();
        let stream = device.stream_create()?;
        let mut s = TrtSession {
            model,
            stream,
            arena: None,
            io_block: None,
            contexts: Vec::new(),
            path_graphs: Vec::new(),
            step_graphs: Vec::new(),
            owned_graphs: Vec::new(),
            last: None,
        };
        // On any error below, Drop releases what exists so far.
        s.arena = Some(device.alloc(s.model.arena_bytes)?);
        s.io_block = Some(device.alloc(s.model.io.total.max(256))?);
        s.bind_contexts()?;
        let all: Vec<usize> = (0..s.contexts.len()).collect();
        s.enqueue(&all)?; // warm-up: resource allocation must not happen under capture
        device.sync(s.stream)?;
        let model = s.model.clone();
        for p in 0..model.paths.len() {
            let g = s.capture(model.paths.engines(p))?;
            s.path_graphs.push(g);
        }
        for p in 0..s.model.paths.len().saturating_sub(1) {
            let step = s.model.paths.escalation(p, p + 1)?.to_vec();
            let rerun = step.as_slice() == s.model.paths.engines(p + 1);
            let g = match (rerun, s.path_graphs.get(p + 1)) {
                (true, Some(&g)) => g,
                _ => s.capture(&step)?,
            };
            s.step_graphs.push((g, rerun));
        }
        Ok(s)
    }

    fn bind_contexts(&mut self) -> Result<(), TrtError> {
        let (m, shim) = (&self.model, &self.model.engines.shim);
        let (arena, io_block) = (self.arena.unwrap_or(0), self.io_block.unwrap_or(0));
        for (i, e) in m.manifest.engines.iter().enumerate() {
            let handle = *m
                .engines
                .handles
                .get(i)
                .ok_or_else(|| TrtError::Plan(format!("engine {} not loaded", e.name)))?;
            let ctx = shim.context_create(handle)?;
            self.contexts.push(ctx);
            shim.set_device_memory(ctx, arena, m.arena_bytes)?;
            let weights = engine_bindings(&m.manifest, i)?;
            for t in &e.io {
                let addr = match weights.iter().find(|b| b.tensor == t.name) {
                    Some(b) => m.weights.unwrap_or(0) + b.offset,
                    None => io_block + m.io.get(&t.name).map_or(0, |b| b.offset),
                };
                shim.set_tensor_address(ctx, &t.name, addr)?;
                if t.mode == IoMode::Input {
                    let shape: Vec<i64> = t
                        .shape
                        .iter()
                        .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
                        .collect();
                    shim.set_input_shape(ctx, &t.name, &shape)?;
                }
            }
        }
        Ok(())
    }

    fn enqueue(&self, engines: &[usize]) -> Result<(), TrtError> {
        for &i in engines {
            let ctx = *self
                .contexts
                .get(i)
                .ok_or_else(|| TrtError::Plan(format!("engine index {i} has no context")))?;
            self.model.engines.shim.enqueue(ctx, self.stream.0)?;
        }
        Ok(())
    }

    /// Captures the enqueues of `engines` into one graph; on any failure the capture is ended
    /// and discarded (a refused enqueue must never leave an empty graph that replays stale data).
    fn capture(&mut self, engines: &[usize]) -> Result<Graph, TrtError> {
        let device = self.model.device.clone();
        device.begin_capture(self.stream)?;
        if let Err(e) = self.enqueue(engines) {
            device.abort_capture(self.stream);
            return Err(e);
        }
        let g = device.end_capture(self.stream)?;
        self.owned_graphs.push(g);
        Ok(g)
    }

    fn buffer(&self, name: &str) -> Result<(DevicePtr, usize), TrtError> {
        let b = self
            .model
            .io
            .get(name)
            .ok_or_else(|| TrtError::Plan(format!("no I/O buffer {name}")))?;
        let len = usize::try_from(b.bytes)
            .map_err(|_| TrtError::Plan(format!("buffer {name} too large")))?;
        Ok((self.io_block.unwrap_or(0) + b.offset, len))
    }

    /// The output tensor of path `path`: the first output of its last engine.
    fn output_of(&self, path: usize) -> Result<&str, TrtError> {
        let m = &self.model.manifest;
        let last = self
            .model
            .paths
            .engines(path)
            .last()
            .and_then(|&i| m.engines.get(i));
        let out = last.and_then(|e| e.io.iter().find(|t| t.mode == IoMode::Output));
        out.map(|t| t.name.as_str())
            .ok_or_else(|| TrtError::Plan(format!("path {path} has no output")))
    }

    fn copy_in(&self, input: &[u8]) -> Result<(), TrtError> {
        let name = self
            .model
            .io
            .external_inputs()
            .next()
            .map(|b| b.name.clone())
            .unwrap_or_default();
        let (ptr, len) = self.buffer(&name)?;
        if input.len() != len {
            return Err(TrtError::Plan(format!(
                "input is {} bytes, tensor {name} takes {len}",
                input.len()
            )));
        }
        Ok(self.model.device.memcpy_htod(ptr, input, self.stream)?)
    }

    fn copy_out(&self, path: usize, output: &mut [u8]) -> Result<(), TrtError> {
        let name = self.output_of(path)?.to_string();
        let (ptr, len) = self.buffer(&name)?;
        if output.len() != len {
            return Err(TrtError::Plan(format!(
                "output is {} bytes, tensor {name} holds {len}",
                output.len()
            )));
        }
        Ok(self.model.device.memcpy_dtoh(output, ptr, self.stream)?)
    }

    /// Runs path `path` (index into [`TrtModel::paths`]) on `input` (the external input's
    /// bytes) and writes its logits' bytes into `output`.
    pub fn run(
        &mut self,
        path: usize,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<Launched, TrtError> {
        let g = *self
            .path_graphs
            .get(path)
            .ok_or_else(|| TrtError::Plan(format!("no path {path}")))?;
        self.last = None;
        self.copy_in(input)?;
        self.model.device.launch(g, self.stream)?;
        self.copy_out(path, output)?;
        self.last = Some(path);
        Ok(Launched {
            engines: self.model.paths.engines(path).to_vec(),
            rerun: false,
        })
    }

    /// After [`TrtSession::run`] of path `from`, continues to path `from + 1`: `segments`
    /// resumes from the hidden state left in the I/O buffers; `per-path` reruns the deeper
    /// engine (reported with `rerun`, so the stats charge it). The input is not copied again.
    pub fn escalate(&mut self, from: usize, output: &mut [u8]) -> Result<Launched, TrtError> {
        let (g, rerun) = *self
            .step_graphs
            .get(from)
            .ok_or_else(|| TrtError::Plan(format!("no deeper path after {from}")))?;
        if self.last != Some(from) {
            return Err(TrtError::Plan(format!(
                "escalating from path {from} needs a completed run of that path first"
            )));
        }
        self.last = None;
        self.model.device.launch(g, self.stream)?;
        self.copy_out(from + 1, output)?;
        self.last = Some(from + 1);
        Ok(Launched {
            engines: self.model.paths.escalation(from, from + 1)?.to_vec(),
            rerun,
        })
    }

    /// Bytes of the output of path `path`.
    pub fn output_len(&self, path: usize) -> Result<usize, TrtError> {
        self.buffer(self.output_of(path)?).map(|(_, len)| len)
    }
}

impl Drop for TrtSession {
    fn drop(&mut self) {
        let device = self.model.device.clone();
        let _ = device.sync(self.stream); // nothing may still run on the arena
        for &g in &self.owned_graphs {
            device.graph_destroy(g);
        }
        for &c in self.contexts.iter().rev() {
            self.model.engines.shim.context_free(c);
        }
        for p in [self.io_block, self.arena].into_iter().flatten() {
            device.free(p);
        }
        device.stream_destroy(self.stream);
    }
}
