//! The per-thread half of the TensorRT backend: [`TrtSession`] owns one stream, ONE arena (max
//! over engines) given to every context, fixed I/O buffers, pinned staging buffers, and one
//! context per engine with its weight inputs bound to the model's shared weight buffer. After a
//! warm-up enqueue of every engine it captures ONE CUDA graph per path (and per one-step
//! escalation when `segments` can resume). Each graph also holds the copies between the staging
//! buffers and the device: captured graphs freeze addresses, so the caller's buffers go through
//! the staging ones. Inference writes the input into pinned memory, launches the chosen path's
//! graph, waits, and reads the logits; nothing is allocated or captured after open.

use super::backend::TrtModel;
use super::binding::engine_bindings;
use super::device::{DevicePtr, Graph, Pinned, Stream};
use super::manifest::IoMode;
use super::TrtError;
use std::sync::Arc;
use tinv_sys::ContextHandle;

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
    /// Pinned staging for the input and for the largest path output.
    stage_in: Option<Pinned>,
    stage_out: Option<Pinned>,
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
            stage_in: None,
            stage_out: None,
            contexts: Vec::new(),
            path_graphs: Vec::new(),
            step_graphs: Vec::new(),
            owned_graphs: Vec::new(),
            last: None,
        };
        // On any error below, Drop releases what exists so far.
        s.arena = Some(device.alloc(s.model.arena_bytes)?);
        s.io_block = Some(device.alloc(s.model.io.total.max(256))?);
        let (_, _, in_len) = s.input()?;
        s.stage_in = Some(device.pinned_alloc(in_len as u64)?);
        let mut out_len = 0;
        for p in 0..s.model.paths.len() {
            out_len = out_len.max(s.output(p)?.1);
        }
        s.stage_out = Some(device.pinned_alloc(out_len.max(1) as u64)?);
        s.bind_contexts()?;
        let all: Vec<usize> = (0..s.contexts.len()).collect();
        s.enqueue(&all)?; // warm-up: resource allocation must not happen under capture
        device.sync(s.stream)?;
        let model = s.model.clone();
        for p in 0..model.paths.len() {
            let g = s.capture(model.paths.engines(p), true, p)?;
            s.path_graphs.push(g);
        }
        for p in 0..model.paths.len().saturating_sub(1) {
            let step = model.paths.escalation(p, p + 1)?;
            let rerun = step == model.paths.engines(p + 1);
            let g = match (rerun, s.path_graphs.get(p + 1)) {
                // per-path: the deeper path's own graph (its input is still staged)
                (true, Some(&g)) => g,
                _ => s.capture(step, false, p + 1)?,
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

    /// Captures, into one graph: the staged input's copy to the device (`copy_in`), the
    /// enqueues of `engines`, and the copy of path `out_path`'s output to the staging buffer. On
    /// any failure the capture is ended and discarded (a refused enqueue must never leave an
    /// empty graph that replays stale data).
    fn capture(
        &mut self,
        engines: &[usize],
        copy_in: bool,
        out_path: usize,
    ) -> Result<Graph, TrtError> {
        let device = self.model.device.clone();
        let (stage_in, stage_out) = self.staging()?;
        let (in_ptr, _, in_len) = self.input()?;
        let (out_ptr, out_len) = self.output(out_path)?;
        device.begin_capture(self.stream)?;
        let captured = (|| -> Result<(), TrtError> {
            if copy_in {
                device.copy_to_device(in_ptr, stage_in, in_len as u64, self.stream)?;
            }
            self.enqueue(engines)?;
            Ok(device.copy_to_host(stage_out, out_ptr, out_len as u64, self.stream)?)
        })();
        if let Err(e) = captured {
            device.abort_capture(self.stream);
            return Err(e);
        }
        let g = device.end_capture(self.stream)?;
        self.owned_graphs.push(g);
        Ok(g)
    }

    fn staging(&self) -> Result<(Pinned, Pinned), TrtError> {
        match (self.stage_in, self.stage_out) {
            (Some(i), Some(o)) => Ok((i, o)),
            _ => Err(TrtError::Plan("staging buffers are not allocated".into())),
        }
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

    /// The external input: its device address, name and byte length.
    fn input(&self) -> Result<(DevicePtr, String, usize), TrtError> {
        let name = self
            .model
            .io
            .external_inputs()
            .next()
            .map(|b| b.name.clone())
            .unwrap_or_default();
        let (ptr, len) = self.buffer(&name)?;
        Ok((ptr, name, len))
    }

    /// The output of path `path` (the first output of its last engine): address and length.
    fn output(&self, path: usize) -> Result<(DevicePtr, usize), TrtError> {
        let m = &self.model.manifest;
        let last = self
            .model
            .paths
            .engines(path)
            .last()
            .and_then(|&i| m.engines.get(i));
        let out = last.and_then(|e| e.io.iter().find(|t| t.mode == IoMode::Output));
        let name = out
            .map(|t| t.name.clone())
            .ok_or_else(|| TrtError::Plan(format!("path {path} has no output")))?;
        self.buffer(&name)
    }

    /// Launches `graph` and reads path `path`'s output from the staging buffer into `output`.
    fn launch_and_read(
        &self,
        graph: Graph,
        path: usize,
        output: &mut [u8],
    ) -> Result<(), TrtError> {
        let (_, len) = self.output(path)?;
        if output.len() != len {
            return Err(TrtError::Plan(format!(
                "output is {} bytes, path {path} produces {len}",
                output.len()
            )));
        }
        let device = &self.model.device;
        device.launch(graph, self.stream)?;
        device.sync(self.stream)?;
        Ok(device.pinned_read(self.staging()?.1, output)?)
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
        let (_, name, len) = self.input()?;
        if input.len() != len {
            return Err(TrtError::Plan(format!(
                "input is {} bytes, tensor {name} takes {len}",
                input.len()
            )));
        }
        self.last = None;
        self.model.device.pinned_write(self.staging()?.0, input)?;
        self.launch_and_read(g, path, output)?;
        self.last = Some(path);
        Ok(Launched {
            engines: self.model.paths.engines(path).to_vec(),
            rerun: false,
        })
    }

    /// After [`TrtSession::run`] of path `from`, continues to path `from + 1`: `segments`
    /// resumes from the hidden state left in the I/O buffers; `per-path` reruns the deeper
    /// engine on the still-staged input (reported with `rerun`, so the stats charge it).
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
        self.launch_and_read(g, from + 1, output)?;
        self.last = Some(from + 1);
        Ok(Launched {
            engines: self.model.paths.escalation(from, from + 1)?.to_vec(),
            rerun,
        })
    }

    /// Bytes of the output of path `path`.
    pub fn output_len(&self, path: usize) -> Result<usize, TrtError> {
        self.output(path).map(|(_, len)| len)
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
        for p in [self.stage_in, self.stage_out].into_iter().flatten() {
            device.pinned_free(p);
        }
        device.stream_destroy(self.stream);
    }
}
