//! A [`Session`]: one thread's state for running a shared [`Model`] — the arena, the compiled
//! plans, the worker pool and the controller's buffers, all allocated at open. Inference
//! allocates nothing when it succeeds (a failed call allocates its error message).

use crate::backend::{self, Backend};
use crate::control::{self, CtrlScratch};
use crate::cpu::exec::{self, Ctx};
use crate::cpu::plan::{self, Buffers, Op, Plan};
use crate::cpu::pool::Pool;
use crate::error::{Error, Result};
use crate::model::{flops, Model};
use std::sync::Arc;
use std::time::Instant;

mod options;
pub use options::{Mode, SessionOptions, Stats};

/// How the start and stop of each input are decided in one call.
#[derive(Clone, Copy)]
enum Policy {
    Mode(Mode),
    Forced(usize),
    AllExits,
}

/// The runtime state of one caller over a shared model: arena, worker pool, controller buffers
/// and the stats of the last call. Calls take `&mut self`, so one caller at a time; a session
/// may move between threads (`Send`). Logits are deterministic: the same bits on every run, at
/// every thread count and batch size.
pub struct Session {
    model: Arc<Model>,
    /// Inputs of the last successful call (`last_stats`); 0 before the first and after a failure.
    last: usize,
    plans: Vec<Plan>,
    buf: Buffers,
    arena: Vec<f32>,
    pool: Pool,
    serial: Pool,
    ctrl: CtrlScratch,
    mode: Mode,
    budget: f32,
    stats: Vec<Stats>,
    start: Vec<usize>,
    order: Vec<usize>,
    next: Vec<usize>,
    sel: Vec<usize>,
    rnn: Vec<f32>,
    cost: Costs,
    /// The TensorRT side when the session runs on TensorRT.
    trt: Option<backend::Trt>,
}

/// What a log line or a `{:?}` of a struct holding a session wants: the model, the backend and
/// the settings, not the buffers.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("model", &self.model.path())
            .field("backend", &self.backend())
            .field("mode", &self.mode)
            .field("budget", &self.budget)
            .field("max_batch", &self.max_batch())
            .field("arena_bytes", &self.arena_bytes())
            .finish_non_exhaustive()
    }
}

/// Per-input costs, precomputed at open.
struct Costs {
    stem: u64,
    block: u64,
    exit: u64,
    /// Up-front controller FLOPs in `adaptive` / `graph` mode (each runs its own policy).
    ctrl_up: [u64; 2],
    ctrl_exit: u64,
    stem_bytes: u64,
    block_bytes: Vec<u64>,
    exit_bytes: Vec<u64>,
    /// Controller weight bytes read per input in `adaptive` / `graph` mode.
    ctrl_bytes: [u64; 2],
    ctrl_rnn_bytes: u64,
}

/// `n` copies of `v`, or [`Error::OutOfMemory`] naming `what`: the session's batch-sized
/// buffers grow with `max_batch`, and an allocation the machine refuses must come back as an
/// error (through the C ABI too), not abort the process.
pub(crate) fn filled<T: Clone>(n: usize, v: T, what: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| {
        Error::OutOfMemory(format!(
            "{what}: {n} × {} bytes could not be allocated",
            std::mem::size_of::<T>()
        ))
    })?;
    out.resize(n, v);
    Ok(out)
}

impl Session {
    /// Opens a session: compiles one plan per path and allocates the arena, sized by liveness
    /// for `opts.max_batch` inputs, and the worker pool.
    pub fn new(model: Arc<Model>, opts: SessionOptions) -> Result<Session> {
        if opts.max_batch == 0 || opts.max_batch > 4096 {
            return Err(Error::arg(format!(
                "max_batch {} not in 1..=4096",
                opts.max_batch
            )));
        }
        if opts.threads == 0 || opts.threads > 256 {
            return Err(Error::arg(format!(
                "threads {} not in 1..=256",
                opts.threads
            )));
        }
        let c = model.config();
        let budget = match opts.budget {
            Some(b) => b,
            None => c.default_budget(),
        };
        check_budget(budget)?;
        opts.mode.check()?;
        let plans = plan::compile(&model);
        let buf = plan::buffers(&model, opts.max_batch, opts.threads);
        let b = opts.max_batch;
        let bytes = |refs: &[crate::model::WRef]| -> u64 {
            refs.iter()
                .map(|r| model.w_file_range(*r).len() as u64)
                .sum()
        };
        let cost = Costs {
            stem: flops::stem_flops(c),
            block: flops::block_flops(c),
            exit: flops::exit_flops(c),
            ctrl_up: [false, true].map(|g| {
                model
                    .ctrl()
                    .map_or(0, |w| flops::controller_up_front_flops(c, w, g))
            }),
            ctrl_exit: model
                .ctrl()
                .map_or(0, |w| flops::controller_exit_flops(c, w)),
            stem_bytes: bytes(&model.stem().tensors()),
            block_bytes: model.blocks().iter().map(|w| bytes(&w.tensors())).collect(),
            exit_bytes: model.exits().iter().map(|e| bytes(&e.tensors())).collect(),
            // Up front: the predictor and the mode's up-front policy; the exit RNN is charged
            // at its first decision (an input may never reach one).
            ctrl_bytes: [false, true].map(|g| {
                model
                    .ctrl()
                    .map_or(0, |w| bytes(&w.pred) + bytes(&w.up_front(g).0))
            }),
            ctrl_rnn_bytes: model.ctrl().map_or(0, |w| bytes(&w.exit_rnn())),
        };
        let hr = model.ctrl().map_or(0, |w| w.hr);
        let trt = backend::open(
            &model,
            opts.backend,
            opts.engines.as_deref(),
            opts.cuda_graphs,
        )?;
        // A TensorRT session runs its paths on the device: no host arena, no CPU workers, no
        // f32 copies of an f16 model's weights.
        let on_cpu = trt.is_none();
        let arena = if on_cpu {
            let need = buf.layout.total.saturating_mul(4);
            if need > opts.max_arena_bytes {
                return Err(Error::arg(format!(
                    "the arena for batch {} would need {need} bytes, more than the limit of {} \
                     bytes (SessionOptions::max_arena_bytes): use a smaller batch",
                    opts.max_batch, opts.max_arena_bytes
                )));
            }
            model.widen_host()?;
            // Within the cap, an allocation failure is an error, not an abort.
            filled(buf.layout.total, 0f32, "the arena")?
        } else {
            Vec::new()
        };
        Ok(Session {
            last: 0,
            trt,
            ctrl: CtrlScratch::new(&model),
            plans,
            buf,
            arena,
            pool: Pool::new(if on_cpu { opts.threads } else { 1 }),
            serial: Pool::new(1),
            mode: opts.mode,
            budget,
            stats: filled(b, Stats::default(), "per-input statistics")?,
            start: filled(b, 0, "per-input paths")?,
            order: filled(b, 0, "per-input paths")?,
            next: filled(b, 0, "per-input paths")?,
            sel: filled(b, 0, "per-input paths")?,
            rnn: filled(b.saturating_mul(hr), 0.0, "the exit policy's states")?,
            cost,
            model,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }
    /// The compiled plans, one per path (`cpu` internals, for the workspace's tools and tests;
    /// not a stable API).
    #[doc(hidden)]
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }
    /// The backend this session runs on (`Cpu` or `TensorRt`, never `Auto`).
    pub fn backend(&self) -> Backend {
        if self.trt.is_some() {
            Backend::TensorRt
        } else {
            Backend::Cpu
        }
    }
    /// Size in bytes of the host arena the CPU backend runs in; 0 for a TensorRT session, whose
    /// arena is on the device (`tinv-run selftest` reports it).
    pub fn arena_bytes(&self) -> usize {
        self.arena.len() * 4
    }
    /// Liveness lower bound of the CPU backend's arena in bytes: no buffer placement can be
    /// smaller (reported for a TensorRT session too, which allocates none).
    pub fn arena_lower_bound_bytes(&self) -> usize {
        self.buf.layout.lower_bound * 4
    }
    /// Most inputs per call.
    pub fn max_batch(&self) -> usize {
        self.buf.max_batch
    }
    /// Threads the session runs on, the caller included: `SessionOptions::threads`, or fewer
    /// when the OS refused to start a worker; 1 for a TensorRT session, which starts no CPU
    /// workers.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
    /// Current budget λ.
    pub fn budget(&self) -> f32 {
        self.budget
    }
    /// Current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Sets the budget λ ∈ [0, 1].
    pub fn set_budget(&mut self, budget: f32) -> Result<()> {
        check_budget(budget)?;
        self.budget = budget;
        Ok(())
    }
    /// Sets the mode.
    pub fn set_mode(&mut self, mode: Mode) -> Result<()> {
        mode.check()?;
        self.mode = mode;
        Ok(())
    }
    /// Stats of the last call, one per input; empty before the first call and after a failed
    /// one.
    pub fn last_stats(&self) -> &[Stats] {
        self.stats.get(..self.last).unwrap_or_default()
    }

    /// Runs `batch` raw inputs (CHW, values in [0, 1], `batch × C × H × W` floats) with the
    /// session's mode and budget; writes `batch × classes` logits to the start of `logits`
    /// (which may be longer; the rest is not touched).
    ///
    /// # Errors
    /// `InvalidArgument` for a batch of 0 or above `max_batch`; `InputLength` for an input of
    /// another length; `BufferTooSmall` for a `logits` buffer too short; `InvalidInput` for an
    /// input holding a NaN or an infinity; `Numeric` when the logits or the controller's outputs
    /// come out non-finite; `Backend` when TensorRT fails. After an
    /// error the contents of `logits` are unspecified (the C ABI leaves its buffer untouched),
    /// and [`Session::last_stats`] is empty.
    pub fn infer(&mut self, input: &[f32], batch: usize, logits: &mut [f32]) -> Result<&[Stats]> {
        self.run(input, batch, logits, Policy::Mode(self.mode))
    }

    /// Runs every input on the path of depth `depth` (no controller). Errors as for
    /// [`Session::infer`], and `InvalidArgument` when `depth` is not a path (checked before the
    /// input).
    pub fn infer_depth(
        &mut self,
        input: &[f32],
        batch: usize,
        depth: usize,
        logits: &mut [f32],
    ) -> Result<&[Stats]> {
        let k = self.model.config().path_index(depth).ok_or_else(|| {
            Error::arg(format!(
                "depth {depth} is not a path of this model (paths: {:?})",
                self.model.config().depths
            ))
        })?;
        self.run(input, batch, logits, Policy::Forced(k))
    }

    /// One full-depth pass that computes every exit: writes `batch × paths × classes` logits
    /// (input-major). For evaluation (accuracy per exit, the oracle); not an adaptive run.
    pub fn infer_all_exits(
        &mut self,
        input: &[f32],
        batch: usize,
        logits: &mut [f32],
    ) -> Result<&[Stats]> {
        self.run(input, batch, logits, Policy::AllExits)
    }

    /// One call: [`Session::compute`], then the logits it wrote are checked. Finite inputs far
    /// outside [0, 1] (or non-finite weights) give NaN or infinite logits, an answer a robot must
    /// not act on: that is [`Error::Numeric`], not `Ok`.
    fn run(
        &mut self,
        input: &[f32],
        b: usize,
        out: &mut [f32],
        policy: Policy,
    ) -> Result<&[Stats]> {
        self.last = 0;
        self.compute(input, b, out, policy)?;
        let c = self.model.config();
        let per = match policy {
            Policy::AllExits => c.depths.len() * c.classes,
            _ => c.classes,
        };
        if let Some(j) = out
            .get(..b * per)
            .and_then(|o| o.iter().position(|v| !v.is_finite()))
        {
            return Err(Error::Numeric(format!(
                "logit {} of input {} is {}: the input is far outside [0, 1] or the weights are \
                 not finite",
                j % per,
                j / per,
                out.get(j).copied().unwrap_or(f32::NAN)
            )));
        }
        self.last = b;
        Ok(self.last_stats())
    }

    fn compute(
        &mut self,
        input: &[f32],
        b: usize,
        out: &mut [f32],
        policy: Policy,
    ) -> Result<&[Stats]> {
        let t0 = Instant::now();
        let model = Arc::clone(&self.model);
        let c = model.config();
        let (k_cls, p) = (c.classes, c.depths.len());
        if b == 0 || b > self.buf.max_batch {
            return Err(Error::arg(format!(
                "batch {b} not in 1..={}",
                self.buf.max_batch
            )));
        }
        if input.len() != b * c.input_len() {
            return Err(Error::InputLength(format!(
                "input has {} floats, batch {b} of {}x{}x{} needs {}",
                input.len(),
                c.channels,
                c.image_h,
                c.image_w,
                b * c.input_len()
            )));
        }
        let per = if matches!(policy, Policy::AllExits) {
            p * k_cls
        } else {
            k_cls
        };
        if out.len() < b * per {
            return Err(Error::BufferTooSmall(format!(
                "logits buffer holds {} floats, need {}",
                out.len(),
                b * per
            )));
        }
        if let Some(i) = input.iter().position(|v| !v.is_finite()) {
            let len = c.input_len();
            return Err(Error::InvalidInput(format!(
                "input value {i} (input {}, element {}) is NaN or infinite",
                i / len,
                i % len
            )));
        }
        let exit = self.exit_ctx(&model, policy);
        // 1. Level 1: the start path of every input.
        for i in 0..b {
            let img = &input[i * c.input_len()..(i + 1) * c.input_len()];
            let mut st = Stats::default();
            self.start[i] = match (policy, exit.ctrl) {
                (Policy::Forced(k), _) => k,
                (Policy::AllExits, _) | (Policy::Mode(Mode::Threshold(_)), _) => 0,
                (Policy::Mode(_), None) => p - 1,
                (Policy::Mode(m), Some(w)) => {
                    let graph = m == Mode::Graph;
                    let k =
                        control::decide_start(&model, &w, img, self.budget, graph, &mut self.ctrl)?;
                    st.predicted_path = Some(control::argmax(&self.ctrl.pred));
                    st.flops += self.cost.ctrl_up[usize::from(graph)];
                    st.weight_bytes += self.cost.ctrl_bytes[usize::from(graph)];
                    k
                }
            };
            st.start_depth = c.depths[self.start[i]];
            st.flops += self.cost.stem;
            st.weight_bytes += self.cost.stem_bytes;
            self.stats[i] = st;
        }
        self.rnn.iter_mut().for_each(|v| *v = 0.0);
        #[cfg(feature = "tensorrt")]
        if self.trt.is_some() {
            return self.run_trt(input, b, out, policy, t0);
        }
        // Slots ordered by start path, so the inputs still running are always a prefix.
        let mut n = 0;
        for k in 0..p {
            for i in 0..b {
                if self.start[i] == k {
                    self.order[n] = i;
                    n += 1;
                }
            }
        }
        let ctx = Ctx {
            model: &model,
            buf: &self.buf,
            pool: &self.pool,
            serial: &self.serial,
        };
        exec::stem(&ctx, &mut self.arena, input, &self.order[..b])?;
        let (mut active, mut done_blocks) = (b, 0);
        for k in 0..p {
            if active == 0 {
                break;
            }
            let plan = &self.plans[k];
            for op in &plan.ops[plan.resume_at(done_blocks)..plan.ops.len() - 1] {
                if let Op::Block(i, w) = op {
                    exec::block(&ctx, &mut self.arena, w, active)?;
                    for &s in &self.order[..active] {
                        self.stats[s].flops += self.cost.block;
                        self.stats[s].weight_bytes += self.cost.block_bytes[*i];
                    }
                }
            }
            done_blocks = plan.depth;
            // Slots that reach this exit: those that started here or earlier.
            let mut m = 0;
            for j in 0..active {
                if self.start[self.order[j]] <= k {
                    self.sel[m] = j;
                    m += 1;
                }
            }
            if m > 0 {
                let Some(Op::Exit(_, ew)) = plan.ops.last() else {
                    return Err(Error::Internal("plan does not end in an exit".into()));
                };
                exec::exit(&ctx, &mut self.arena, ew, &self.sel[..m])?;
            }
            let logits = &self.arena[self.buf.logits..self.buf.logits + m * k_cls];
            // 2. Level 2 (or the threshold rule) at this exit; finished inputs leave the prefix.
            let mut keep = 0;
            let mut r = 0;
            for j in 0..active {
                let s = self.order[j];
                if self.start[s] > k {
                    self.next[keep] = j;
                    keep += 1;
                    continue;
                }
                let row = &logits[r * k_cls..(r + 1) * k_cls];
                r += 1;
                let st = &mut self.stats[s];
                st.flops += self.cost.exit;
                st.weight_bytes += self.cost.exit_bytes[k];
                if matches!(policy, Policy::AllExits) {
                    out[(s * p + k) * k_cls..(s * p + k + 1) * k_cls].copy_from_slice(row);
                }
                if exit.continues(k, row, s, &mut self.rnn, &mut self.ctrl, st)? {
                    st.escalations += 1;
                    self.next[keep] = j;
                    keep += 1;
                } else {
                    exit.finish(k, row, st);
                    if !matches!(policy, Policy::AllExits) {
                        out[s * k_cls..(s + 1) * k_cls].copy_from_slice(row);
                    }
                }
            }
            // Compact the residual stream: kept slots move down, in order.
            let slab = c.tokens() * c.dim;
            for t in 0..keep {
                let j = self.next[t];
                if j != t {
                    let src = self.buf.x + j * slab;
                    self.arena
                        .copy_within(src..src + slab, self.buf.x + t * slab);
                    self.order[t] = self.order[j];
                }
            }
            active = keep;
        }
        let us = t0.elapsed().as_secs_f64() * 1e6;
        for st in &mut self.stats[..b] {
            st.latency_us = us;
        }
        Ok(&self.stats[..b])
    }
}

#[cfg(feature = "tensorrt")]
impl Session {
    /// The TensorRT run: one input at a time (the engines are built for batch 1), the chosen
    /// path's captured graph per input; escalation resumes (`segments`) or reruns the deeper
    /// engine (`per-path`), and the stats charge what actually ran.
    fn run_trt(
        &mut self,
        input: &[f32],
        b: usize,
        out: &mut [f32],
        policy: Policy,
        t0: Instant,
    ) -> Result<&[Stats]> {
        let model = Arc::clone(&self.model);
        let c = model.config();
        let (len, k_cls, p) = (c.input_len(), c.classes, c.depths.len());
        let exit = self.exit_ctx(&model, policy);
        let Some(trt) = self.trt.as_mut() else {
            return Err(Error::Internal("no TensorRT session".into()));
        };
        for i in 0..b {
            let img = &input[i * len..(i + 1) * len];
            let mut k = self.start[i];
            let launched = trt
                .session
                .run(k, bytemuck::cast_slice(img), &mut trt.out)?;
            let st = &mut self.stats[i];
            st.flops += c.depths[k] as u64 * self.cost.block + self.cost.exit;
            st.weight_bytes +=
                self.cost.block_bytes[..c.depths[k]].iter().sum::<u64>() + self.cost.exit_bytes[k];
            debug_assert!(!launched.rerun);
            loop {
                let dst = match policy {
                    Policy::AllExits => &mut out[(i * p + k) * k_cls..(i * p + k + 1) * k_cls],
                    _ => &mut out[i * k_cls..(i + 1) * k_cls],
                };
                for (o, bytes) in dst.iter_mut().zip(trt.out.chunks_exact(4)) {
                    *o = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                }
                let logits: &[f32] = dst;
                if !exit.continues(k, logits, i, &mut self.rnn, &mut self.ctrl, st)? {
                    exit.finish(k, logits, st);
                    break;
                }
                let launched = trt.session.escalate(k, &mut trt.out)?;
                st.escalations += 1;
                // FLOPs charge what ran: a `per-path` rerun runs the stem and the shallower
                // blocks again. Weight bytes count each tensor once per input
                // (docs/ARCHITECTURE.md), so only the blocks this input had not read yet.
                let read = c.depths[k];
                let prev = if launched.rerun { 0 } else { read };
                if launched.rerun {
                    st.flops += self.cost.stem;
                }
                k += 1;
                st.flops += (c.depths[k] - prev) as u64 * self.cost.block + self.cost.exit;
                st.weight_bytes += self.cost.block_bytes[read..c.depths[k]].iter().sum::<u64>()
                    + self.cost.exit_bytes[k];
            }
        }
        let us = t0.elapsed().as_secs_f64() * 1e6;
        for st in &mut self.stats[..b] {
            st.latency_us = us;
        }
        Ok(&self.stats[..b])
    }
}

impl Session {
    /// The exit decision context of one call under `policy` (both backends).
    fn exit_ctx<'m>(&self, model: &'m Model, policy: Policy) -> ExitCtx<'m> {
        ExitCtx {
            model,
            policy,
            ctrl: model.ctrl().copied(),
            budget: self.budget,
            ctrl_exit_flops: self.cost.ctrl_exit,
            ctrl_rnn_bytes: self.cost.ctrl_rnn_bytes,
        }
    }
}

/// The stop/continue decision at an exit, shared by both backends (one per call).
struct ExitCtx<'a> {
    model: &'a Model,
    policy: Policy,
    ctrl: Option<crate::model::CtrlW>,
    budget: f32,
    ctrl_exit_flops: u64,
    ctrl_rnn_bytes: u64,
}

impl ExitCtx<'_> {
    /// Whether input `s` continues to the next path after exit `k` produced `row` (level 2,
    /// the threshold rule, or the all-exits pass); charges the level-2 step to `st`.
    /// [`Error::Numeric`] when the exit RNN's output is not finite.
    fn continues(
        &self,
        k: usize,
        row: &[f32],
        s: usize,
        rnn: &mut [f32],
        scratch: &mut CtrlScratch,
        st: &mut Stats,
    ) -> Result<bool> {
        let p = self.model.config().depths.len();
        match (self.policy, self.ctrl) {
            (Policy::AllExits, _) => Ok(k + 1 < p),
            (Policy::Forced(_), _)
            | (Policy::Mode(Mode::Graph), _)
            | (Policy::Mode(Mode::Adaptive), None) => Ok(false),
            (Policy::Mode(Mode::Threshold(t)), _) => {
                if k + 1 >= p {
                    return Ok(false);
                }
                // (The exit RNN's arm checks the same in `exit_continue`.)
                control::finite_exit(self.model, k, row)?;
                Ok(control::exit_stats(row).0 < t)
            }
            (Policy::Mode(Mode::Adaptive), Some(w)) => {
                let h = &mut rnn[s * w.hr..(s + 1) * w.hr];
                let decision =
                    control::exit_continue(self.model, &w, row, k, self.budget, h, scratch)?;
                // Charged only when the RNN ran (not at the deepest exit); its weights once, at
                // its first decision (no escalation yet).
                if decision.is_some() {
                    st.flops += self.ctrl_exit_flops;
                    if st.escalations == 0 {
                        st.weight_bytes += self.ctrl_rnn_bytes;
                    }
                }
                Ok(decision.unwrap_or(false))
            }
        }
    }

    /// Records that the input stopped at exit `k` with logits `row`.
    fn finish(&self, k: usize, row: &[f32], st: &mut Stats) {
        st.depth = self.model.config().depths[k];
        st.path = k;
        st.class = control::argmax(row);
        st.confidence = control::exit_stats(row).0;
    }
}

fn check_budget(b: f32) -> Result<()> {
    if (0.0..=1.0).contains(&b) {
        Ok(())
    } else {
        Err(Error::arg(format!("budget λ = {b} not in [0, 1]")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_outside_0_1_are_refused() {
        for b in [0.0, 0.3, 1.0] {
            assert!(check_budget(b).is_ok());
        }
        for b in [-0.01, 1.01, f32::NAN] {
            assert!(check_budget(b).is_err(), "{b}");
        }
    }
}

#[cfg(all(test, feature = "tensorrt"))]
mod trt_tests;
