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

/// What one run launched, for the stats (escalation charges). Borrowed from the session's
/// resolved work, so a run allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched<'a> {
    /// Engines the launched graph runs, in order (indices into the manifest's engines).
    pub engines: &'a [usize],
    /// Whether engines already run for a shallower path were run again (`per-path`).
    pub rerun: bool,
}

/// One launchable unit (a path, or one escalation step): the staged input's copy to the device
/// (`copy_in`), the enqueues of `engines`, the copy of path `out_path`'s output back — captured
/// once as `graph`, or enqueued call by call when the session runs without CUDA graphs.
#[derive(Debug, Clone)]
struct Work {
    engines: Vec<usize>,
    copy_in: bool,
    out_path: usize,
    /// Device address and byte length of that output (resolved at open).
    out: (DevicePtr, usize),
    graph: Option<Graph>,
}

/// Per-thread state: stream, arena, I/O buffers, contexts and graphs.
pub struct TrtSession {
    model: Arc<TrtModel>,
    stream: Stream,
    arena: Option<DevicePtr>,
    io_block: Option<DevicePtr>,
    /// Pinned staging for the input and for the largest path output.
    stage_in: Option<Pinned>,
    /// The external input's device address, tensor name and byte length (resolved at open).
    input: (DevicePtr, String, usize),
    stage_out: Option<Pinned>,
    contexts: Vec<ContextHandle>,
    /// Per path: what one run of it launches.
    path_work: Vec<Work>,
    /// For path i: the work escalating from i to i+1, and whether it reruns the prefix.
    step_work: Vec<(Work, bool)>,
    owned_graphs: Vec<Graph>,
    /// The path whose output the I/O buffers hold (what `escalate` may resume from).
    last: Option<usize>,
}

impl TrtSession {
    /// Allocates the arena and I/O buffers, creates and binds one context per engine, warms every
    /// engine up once, then captures one graph per path and per escalation step.
    pub fn new(model: Arc<TrtModel>) -> Result<TrtSession, TrtError> {
        TrtSession::with_graphs(model, true)
    }

    /// As [`TrtSession::new`]; with `graphs` false nothing is captured and every run enqueues
    /// its copies and engines one call at a time (what `tinv-run selftest` compares against).
    /// With `graphs` true, a capture that fails is discarded and the session runs without
    /// graphs from then on (see [`TrtSession::uses_graphs`]).
    pub fn with_graphs(model: Arc<TrtModel>, graphs: bool) -> Result<TrtSession, TrtError> {
        let device = model.device.clone();
        let stream = device.stream_create()?;
        let mut s = TrtSession {
            model,
            stream,
            arena: None,
            io_block: None,
            stage_in: None,
            input: (0, String::new(), 0),
            stage_out: None,
            contexts: Vec::new(),
            path_work: Vec::new(),
            step_work: Vec::new(),
            owned_graphs: Vec::new(),
            last: None,
        };
        // On any error below, Drop releases what exists so far.
        s.arena = Some(device.alloc(s.model.arena_bytes)?);
        s.io_block = Some(device.alloc(s.model.io.total.max(256))?);
        s.input = s.resolve_input()?;
        s.stage_in = Some(device.pinned_alloc(s.input.2 as u64)?);
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
        let mut graphs = graphs;
        for p in 0..model.paths.len() {
            let mut w = Work {
                engines: model.paths.engines(p).to_vec(),
                copy_in: true,
                out_path: p,
                out: s.output(p)?,
                graph: None,
            };
            if graphs {
                w.graph = s.capture_or_fall_back(&w)?;
                graphs = w.graph.is_some();
            }
            s.path_work.push(w);
        }
        for p in 0..model.paths.len().saturating_sub(1) {
            let step = model.paths.escalation(p, p + 1)?;
            let rerun = step == model.paths.engines(p + 1);
            let w = match (rerun, s.path_work.get(p + 1)) {
                // per-path: the deeper path's own work (its input is still staged)
                (true, Some(w)) => w.clone(),
                _ => {
                    let mut w = Work {
                        engines: step.to_vec(),
                        copy_in: false,
                        out_path: p + 1,
                        out: s.output(p + 1)?,
                        graph: None,
                    };
                    if graphs {
                        w.graph = s.capture_or_fall_back(&w)?;
                        graphs = w.graph.is_some();
                    }
                    w
                }
            };
            s.step_work.push((w, rerun));
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

    /// Issues `w`'s copies and enqueues on the stream (under capture, or directly).
    fn issue(&self, w: &Work) -> Result<(), TrtError> {
        let device = &self.model.device;
        let (stage_in, stage_out) = self.staging()?;
        let (in_ptr, _, in_len) = self.input;
        let (out_ptr, out_len) = w.out;
        if w.copy_in {
            device.copy_to_device(in_ptr, stage_in, in_len as u64, self.stream)?;
        }
        self.enqueue(&w.engines)?;
        Ok(device.copy_to_host(stage_out, out_ptr, out_len as u64, self.stream)?)
    }

    /// Captures `w` into one graph. On any failure the capture is ended and discarded (a
    /// refused enqueue must never leave an empty graph that replays stale data).
    fn capture(&mut self, w: &Work) -> Result<Graph, TrtError> {
        let device = self.model.device.clone();
        device.begin_capture(self.stream)?;
        if let Err(e) = self.issue(w) {
            device.abort_capture(self.stream);
            return Err(e);
        }
        let g = device.end_capture(self.stream)?;
        self.owned_graphs.push(g);
        Ok(g)
    }

    /// [`TrtSession::capture`], or, when capture fails, `None`: the work then runs call by call
    /// (as `trtexec --useCudaGraph` does; some TensorRT builds cannot capture some engines).
    /// That fallback is proven first with one direct run of `w`; if even that fails, the
    /// session cannot run and the error is returned.
    fn capture_or_fall_back(&mut self, w: &Work) -> Result<Option<Graph>, TrtError> {
        let e = match self.capture(w) {
            Ok(g) => return Ok(Some(g)),
            Err(e) => e,
        };
        log::warn!(
            "CUDA graph capture failed ({e}); this session runs its engines without CUDA graphs \
             (slower launches, same results)"
        );
        self.issue(w)?;
        self.model.device.sync(self.stream)?;
        Ok(None)
    }

    /// Whether every path and escalation step runs as a captured CUDA graph (false when the
    /// session was opened without graphs or capture failed and it fell back).
    pub fn uses_graphs(&self) -> bool {
        let mut all = self
            .path_work
            .iter()
            .chain(self.step_work.iter().map(|(w, _)| w));
        all.all(|w| w.graph.is_some())
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
    fn resolve_input(&self) -> Result<(DevicePtr, String, usize), TrtError> {
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
        let name = &self.model.paths.output(&self.model.manifest, path)?.name;
        self.buffer(name)
    }

    /// Launches `w` (its graph, or its calls one by one) and reads its output into `output`.
    fn launch_and_read(&self, w: &Work, output: &mut [u8]) -> Result<(), TrtError> {
        let len = w.out.1;
        if output.len() != len {
            return Err(TrtError::Plan(format!(
                "output is {} bytes, path {} produces {len}",
                output.len(),
                w.out_path
            )));
        }
        let device = &self.model.device;
        match w.graph {
            Some(g) => device.launch(g, self.stream)?,
            None => self.issue(w)?,
        }
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
    ) -> Result<Launched<'_>, TrtError> {
        self.last = None;
        let w = self
            .path_work
            .get(path)
            .ok_or_else(|| TrtError::Plan(format!("no path {path}")))?;
        let (_, name, len) = &self.input;
        let len = *len;
        if input.len() != len {
            return Err(TrtError::Plan(format!(
                "input is {} bytes, tensor {name} takes {len}",
                input.len()
            )));
        }
        self.model.device.pinned_write(self.staging()?.0, input)?;
        self.launch_and_read(w, output)?;
        self.last = Some(path);
        Ok(Launched {
            engines: &self.path_work[path].engines,
            rerun: false,
        })
    }

    /// After [`TrtSession::run`] of path `from`, continues to path `from + 1`: `segments`
    /// resumes from the hidden state left in the I/O buffers; `per-path` reruns the deeper
    /// engine on the still-staged input (reported with `rerun`, so the stats charge it).
    pub fn escalate(&mut self, from: usize, output: &mut [u8]) -> Result<Launched<'_>, TrtError> {
        if self.last != Some(from) {
            return Err(TrtError::Plan(format!(
                "escalating from path {from} needs a completed run of that path first"
            )));
        }
        self.last = None;
        let (w, rerun) = self
            .step_work
            .get(from)
            .ok_or_else(|| TrtError::Plan(format!("no deeper path after {from}")))?;
        self.launch_and_read(w, output)?;
        let rerun = *rerun;
        self.last = Some(from + 1);
        Ok(Launched {
            engines: &self.step_work[from].0.engines,
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
        device.make_current(); // for the shim's context frees below
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
