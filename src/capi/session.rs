//! Session exports: open/free, infer (policy or forced depth), budget and mode, stats, arena.

use super::registry::{Kind, Registry};
use super::status::{ffi_boundary, Fail, Status};
use super::{model_of, put, read_options, TinvModel, TinvSession};
use crate::session::{Mode, Session, SessionOptions, Stats};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

/// `TINV_MODE_ADAPTIVE`: level-1 start path, then the layer-wise policy at each exit.
pub const MODE_ADAPTIVE: u32 = 0;
/// `TINV_MODE_GRAPH`: level 1 only (one path per input, decided before it runs).
pub const MODE_GRAPH: u32 = 1;
/// `TINV_MODE_THRESHOLD`: baseline, continue while the exit's max softmax < τ.
pub const MODE_THRESHOLD: u32 = 2;

/// Options for opening a session (`tinv_session_options`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SessionOptionsC {
    /// `sizeof(tinv_session_options)`.
    pub struct_size: u32,
    /// A `tinv_mode` value.
    pub mode: u32,
    /// τ ∈ [0, 1] for `TINV_MODE_THRESHOLD`; ignored otherwise.
    pub threshold: f32,
    /// Budget λ ∈ [0, 1]; negative = the model's default.
    pub budget: f32,
    /// Most inputs per call, 1..=4096; 0 = 1.
    pub max_batch: u32,
    /// Worker threads for one call, 1..=256; 0 = 1 (run on the calling thread only).
    pub threads: u32,
}

/// Per-input stats of the last call (`tinv_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StatsC {
    /// Blocks run (depth of the path whose exit answered).
    pub depth: u32,
    /// Index of that path.
    pub path: u32,
    /// Depth of the path level 1 started with.
    pub start_depth: u32,
    /// Times the policy (or threshold) continued to a deeper path.
    pub escalations: u32,
    /// Every FLOP run for this input (controller, stem, blocks, every exit computed).
    pub flops: u64,
    /// Bytes of weights read for this input.
    pub weight_bytes: u64,
    /// Predicted class (argmax of the logits).
    pub class_id: u32,
    /// Softmax probability of that class.
    pub confidence: f32,
    /// Path index the complexity predictor rated best; -1 when the controller did not run.
    pub predicted_path: i32,
    /// Zero.
    pub reserved: u32,
    /// Wall time of the whole call in µs (shared by the inputs of a batch).
    pub latency_us: f64,
}

impl From<&Stats> for StatsC {
    fn from(s: &Stats) -> StatsC {
        let u = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        StatsC {
            depth: u(s.depth),
            path: u(s.path),
            start_depth: u(s.start_depth),
            escalations: s.escalations,
            flops: s.flops,
            weight_bytes: s.weight_bytes,
            class_id: u(s.class),
            confidence: s.confidence,
            predicted_path: s
                .predicted_path
                .and_then(|k| i32::try_from(k).ok())
                .unwrap_or(-1),
            reserved: 0,
            latency_us: s.latency_us,
        }
    }
}

/// What a session handle holds. The mutex is never contended by a correct caller (one thread
/// at a time); it turns a violation into `TINV_ERR_SESSION_BUSY` instead of a data race.
pub(crate) struct SessionObj {
    inner: Mutex<SessionState>,
    /// Inputs of the latest infer call if it succeeded; 0 before the first call and after a
    /// failed one. Set to the batch only under the lock, after the stats are written; outside
    /// the lock so that a call refused with `TINV_ERR_SESSION_BUSY` can clear it too.
    last_batch: AtomicUsize,
    /// The session's sizes, fixed when it opens (arena bytes, max batch, threads): read without
    /// the lock, so that asking for them never meets another thread's call (no SESSION_BUSY).
    sizes: Sizes,
}

/// What `tinv_session_arena_bytes`, `_max_batch` and `_threads` report.
struct Sizes {
    arena_bytes: usize,
    max_batch: usize,
    threads: usize,
}

struct SessionState {
    session: Session,
    /// Logits land here first, so the caller's buffer is written only on success.
    scratch: Vec<f32>,
}

static SESSIONS: Registry<SessionObj> = Registry::new(Kind::Session);

/// Default session options.
#[no_mangle]
pub extern "C" fn tinv_session_options_default() -> SessionOptionsC {
    SessionOptionsC {
        struct_size: std::mem::size_of::<SessionOptionsC>() as u32,
        mode: MODE_ADAPTIVE,
        threshold: 0.0,
        budget: -1.0,
        max_batch: 1,
        threads: 1,
    }
}

fn mode_of(mode: u32, threshold: f32) -> Result<Mode, Fail> {
    match mode {
        MODE_ADAPTIVE => Ok(Mode::Adaptive),
        MODE_GRAPH => Ok(Mode::Graph),
        MODE_THRESHOLD if (0.0..=1.0).contains(&threshold) => Ok(Mode::Threshold(threshold)),
        MODE_THRESHOLD => Err(Fail::new(
            Status::InvalidArg,
            format!("threshold {threshold} not in [0, 1]"),
        )),
        m => Err(Fail::new(
            Status::InvalidArg,
            format!("mode {m} is not a tinv_mode"),
        )),
    }
}

/// Opens a session on `model` → `*out`.
///
/// # Safety
/// `options` is NULL or a valid options struct; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_session_open(
    model: *const TinvModel,
    options: *const SessionOptionsC,
    out: *mut *mut TinvSession,
) -> Status {
    ffi_boundary!("tinv_session_open", [model, out], {
        // The handle first: a stale one is INVALID_HANDLE whatever the options say.
        let m = model_of(model)?;
        // SAFETY: caller contract.
        let o = unsafe {
            read_options(
                options,
                tinv_session_options_default(),
                "tinv_session_options",
            )
        }?;
        if o.budget.is_nan() {
            return Err(Fail::new(Status::InvalidArg, "budget is NaN"));
        }
        let opts = SessionOptions {
            max_batch: o.max_batch.max(1) as usize,
            threads: o.threads.max(1) as usize,
            mode: mode_of(o.mode, o.threshold)?,
            budget: (o.budget >= 0.0).then_some(o.budget),
            backend: m.backend,
            engines: m.engines.clone(),
            ..SessionOptions::default()
        };
        let classes = m.model.config().classes;
        let session = Session::new(std::sync::Arc::clone(&m.model), opts.clone())?;
        let sizes = Sizes {
            arena_bytes: session.arena_bytes(),
            max_batch: session.max_batch(),
            threads: session.threads(),
        };
        let h = SESSIONS.insert(SessionObj {
            inner: Mutex::new(SessionState {
                session,
                scratch: crate::session::filled(
                    opts.max_batch.saturating_mul(classes),
                    0.0,
                    "the logits buffer",
                )?,
            }),
            last_batch: AtomicUsize::new(0),
            sizes,
        })?;
        // SAFETY: checked non-null; writable by contract.
        unsafe { put(out, h as *mut TinvSession) };
        Ok(())
    })
}

/// Unregisters a session; NULL is a no-op.
///
/// # Safety
/// None beyond passing a value this library returned (any value is checked).
#[no_mangle]
pub unsafe extern "C" fn tinv_session_free(session: *mut TinvSession) -> Status {
    ffi_boundary!("tinv_session_free", [], {
        if !session.is_null() {
            drop(SESSIONS.remove(session as usize)?);
        }
        Ok(())
    })
}

/// Locks the session's state (busy → `TINV_ERR_SESSION_BUSY`).
fn lock(obj: &SessionObj) -> Result<MutexGuard<'_, SessionState>, Fail> {
    match obj.inner.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::WouldBlock) => Err(Fail::new(
            Status::SessionBusy,
            "session is in use by another thread (a session belongs to one thread at a time)",
        )),
        // A panic inside an earlier call: the session's buffers are rewritten by every call,
        // so its state is still usable.
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
    }
}

/// Runs `f` on the session's object and state, holding its lock.
fn with_session<R>(
    h: *const TinvSession,
    f: impl FnOnce(&SessionObj, &mut SessionState) -> Result<R, Fail>,
) -> Result<R, Fail> {
    let obj = SESSIONS.get(h as usize)?;
    let mut guard = lock(&obj)?;
    f(&obj, &mut guard)
}

/// Which path policy an infer call uses.
#[derive(Clone, Copy)]
enum Run {
    Policy,
    Depth(usize),
}

/// The three infer exports' body, at their FFI boundary (named `function`): validates the
/// buffers, runs, and copies logits (and, when asked, the stats) out on success. Every failure
/// on a valid handle (a NULL buffer and a busy session included) leaves the session with no
/// stats.
///
/// # Safety
/// `input` is NULL or points to `input_len` floats; `logits` is NULL or points to
/// `logits_len` writable floats; `stats` (when given) is NULL or points to its length of
/// writable entries.
#[allow(clippy::too_many_arguments)]
unsafe fn infer(
    function: &'static str,
    session: *const TinvSession,
    input: *const f32,
    input_len: usize,
    batch: usize,
    run: Run,
    logits: *mut f32,
    logits_len: usize,
    stats: Option<(*mut StatsC, usize)>,
) -> Status {
    ffi_boundary!(function, [session], {
        // An invalid handle has no session whose stats could be cleared; it fails below, after
        // the NULL checks (their order is that of the arguments, as for every export).
        let obj = SESSIONS.get(session as usize);
        if let Ok(o) = &obj {
            // Cleared first, so a failure before the lock (a NULL buffer, a busy session)
            // leaves 0; cleared again under the lock below.
            o.last_batch.store(0, Ordering::Relaxed);
        }
        if input.is_null() {
            return Err(Fail::null(function, "input"));
        }
        if logits.is_null() {
            return Err(Fail::null(function, "logits"));
        }
        if stats.is_some_and(|(p, _)| p.is_null()) {
            return Err(Fail::null(function, "stats"));
        }
        // Alignment after every NULL check and before any length, as the boundary macro
        // orders them for the other exports.
        if !input.is_aligned() {
            return Err(Fail::misaligned(function, "input"));
        }
        if !logits.is_aligned() {
            return Err(Fail::misaligned(function, "logits"));
        }
        if stats.is_some_and(|(p, _)| !p.is_aligned()) {
            return Err(Fail::misaligned(function, "stats"));
        }
        let obj = obj?;
        let mut guard = lock(&obj)?;
        // Again under the lock: a call that held it while this one cleared the count above
        // stored its own batch on the way out, and this call's failure below must not leave
        // that count over a session whose stats this call is about to clear.
        obj.last_batch.store(0, Ordering::Relaxed);
        let st = &mut *guard;
        let c = st.session.model().config();
        let (per, classes, max_batch) = (c.input_len(), c.classes, st.session.max_batch());
        if batch == 0 || batch > max_batch {
            return Err(Fail::new(
                Status::InvalidArg,
                format!("batch {batch} not in 1..={max_batch} (the session's max_batch)"),
            ));
        }
        // batch ≤ 4096 and per, classes come from a validated config, so these cannot overflow;
        // checked anyway because the cost is nil.
        let need_in = batch
            .checked_mul(per)
            .ok_or_else(|| Fail::new(Status::InvalidArg, "batch too large"))?;
        let need_out = batch * classes;
        if input_len != need_in {
            return Err(Fail::new(
                Status::InputLength,
                format!(
                    "input_len is {input_len}, batch {batch} of {}x{}x{} needs {need_in}",
                    c.channels, c.image_h, c.image_w
                ),
            ));
        }
        if logits_len < need_out {
            return Err(Fail::new(
                Status::BufferTooSmall,
                format!(
                    "logits_len is {logits_len}, batch {batch} x {classes} classes needs {need_out}"
                ),
            ));
        }
        if let Some((_, len)) = stats {
            stats_room(len, batch, || format!("batch {batch} needs {batch}"))?;
        }
        // SAFETY: non-null, aligned, and the caller declared `input_len` = need_in readable floats.
        // (The lengths are checked here, before a slice is formed from them; the values, NaN and
        // infinity, by the session, whose `Error::InvalidInput` is TINV_ERR_INVALID_INPUT.)
        let x = unsafe { std::slice::from_raw_parts(input, need_in) };
        let SessionState { session, scratch } = st;
        let out = scratch.get_mut(..need_out).ok_or_else(|| {
            Fail::new(Status::Internal, "scratch smaller than max_batch x classes")
        })?;
        match run {
            Run::Policy => session.infer(x, batch, out)?,
            Run::Depth(d) => session.infer_depth(x, batch, d, out)?,
        };
        // SAFETY: non-null, aligned, and the caller declared at least need_out writable floats;
        // the scratch buffer is ours, so the two cannot overlap.
        let dst = unsafe { std::slice::from_raw_parts_mut(logits, need_out) };
        dst.copy_from_slice(out);
        if let Some((p, _)) = stats {
            // SAFETY: checked non-null and aligned above, and `stats_room` checked `batch` entries.
            unsafe { copy_stats(session, p, batch)? };
        }
        // Under the lock, after the stats: `tinv_session_last_stats` (which takes the lock)
        // never sees a count whose stats are not written.
        obj.last_batch.store(batch, Ordering::Relaxed);
        Ok(())
    })
}

/// Runs `batch` inputs with the session's mode and budget; writes `batch × classes` logits.
///
/// # Safety
/// `input` points to `input_len` readable floats, `logits` to `logits_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn tinv_session_infer(
    session: *mut TinvSession,
    input: *const f32,
    input_len: usize,
    batch: usize,
    logits: *mut f32,
    logits_len: usize,
) -> Status {
    let (f, run) = ("tinv_session_infer", Run::Policy);
    // SAFETY: the caller's contract, passed on.
    unsafe {
        infer(
            f, session, input, input_len, batch, run, logits, logits_len, None,
        )
    }
}

/// [`tinv_session_infer`], and the call's stats (one per input) written to `stats` on success.
///
/// # Safety
/// As [`tinv_session_infer`]; `stats` points to `stats_len` writable entries.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn tinv_session_infer_stats(
    session: *mut TinvSession,
    input: *const f32,
    input_len: usize,
    batch: usize,
    logits: *mut f32,
    logits_len: usize,
    stats: *mut StatsC,
    stats_len: usize,
) -> Status {
    let (f, run, st) = (
        "tinv_session_infer_stats",
        Run::Policy,
        Some((stats, stats_len)),
    );
    // SAFETY: the caller's contract, passed on.
    unsafe {
        infer(
            f, session, input, input_len, batch, run, logits, logits_len, st,
        )
    }
}

/// Runs every input on the path of depth `depth` (no controller).
///
/// # Safety
/// As [`tinv_session_infer`].
#[no_mangle]
pub unsafe extern "C" fn tinv_session_infer_depth(
    session: *mut TinvSession,
    input: *const f32,
    input_len: usize,
    batch: usize,
    depth: usize,
    logits: *mut f32,
    logits_len: usize,
) -> Status {
    let (f, run) = ("tinv_session_infer_depth", Run::Depth(depth));
    // SAFETY: the caller's contract, passed on.
    unsafe {
        infer(
            f, session, input, input_len, batch, run, logits, logits_len, None,
        )
    }
}

/// Checks that a caller's stats buffer of `len` entries takes `n`; `short` says what needs
/// them. (Its NULL and alignment checks come first, with the other pointers'.)
fn stats_room(len: usize, n: usize, short: impl FnOnce() -> String) -> Result<(), Fail> {
    if len < n {
        return Err(Fail::new(
            Status::BufferTooSmall,
            format!("stats_len is {len}, {}", short()),
        ));
    }
    Ok(())
}

/// Writes the first `n` stats of `session`'s last call to `dst`.
///
/// # Safety
/// `dst` is non-null and aligned, with `n` writable entries (checked by [`stats_room`]).
unsafe fn copy_stats(session: &Session, dst: *mut StatsC, n: usize) -> Result<(), Fail> {
    let src = session
        .last_stats()
        .get(..n)
        .ok_or_else(|| Fail::new(Status::Internal, "stats shorter than the batch"))?;
    // SAFETY: per this function's contract.
    let dst = unsafe { std::slice::from_raw_parts_mut(dst, n) };
    for (d, s) in dst.iter_mut().zip(src) {
        *d = StatsC::from(s);
    }
    Ok(())
}

/// Sets the budget λ ∈ [0, 1].
///
/// # Safety
/// None (the handle is checked).
#[no_mangle]
pub unsafe extern "C" fn tinv_session_set_budget(session: *mut TinvSession, budget: f32) -> Status {
    ffi_boundary!("tinv_session_set_budget", [session], {
        with_session(session, |_, st| {
            // Negative: the model's stored default, as in tinv_session_options.
            let budget = if budget < 0.0 {
                st.session.model().config().default_budget()
            } else {
                budget
            };
            Ok(st.session.set_budget(budget)?)
        })
    })
}

/// Sets the mode (`threshold` is τ for `TINV_MODE_THRESHOLD`, ignored otherwise).
///
/// # Safety
/// None (the handle is checked).
#[no_mangle]
pub unsafe extern "C" fn tinv_session_set_mode(
    session: *mut TinvSession,
    mode: u32,
    threshold: f32,
) -> Status {
    ffi_boundary!("tinv_session_set_mode", [session], {
        // The handle before the arguments, as everywhere: a stale handle is INVALID_HANDLE.
        with_session(session, |_, st| {
            Ok(st.session.set_mode(mode_of(mode, threshold)?)?)
        })
    })
}

/// Copies the stats of the latest infer call if it succeeded (one per input) →
/// `stats[0..*count]`; `*count` = 0 when it failed or none ran.
///
/// # Safety
/// `stats` points to `stats_len` writable entries; `count` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_session_last_stats(
    session: *mut TinvSession,
    stats: *mut StatsC,
    stats_len: usize,
    count: *mut usize,
) -> Status {
    ffi_boundary!("tinv_session_last_stats", [session, stats, count], {
        with_session(session, |obj, st| {
            let n = obj.last_batch.load(Ordering::Relaxed);
            stats_room(stats_len, n, || format!("the last call ran {n} inputs"))?;
            // SAFETY: non-null and aligned (checked at the boundary); `stats_room` checked the length.
            unsafe { copy_stats(&st.session, stats, n)? };
            // SAFETY: checked non-null; writable by contract.
            unsafe { put(count, n) };
            Ok(())
        })
    })
}

/// The body of a session's `usize` getter `function`: `get` of the session, written to `out`.
///
/// # Safety
/// `out` is writable.
unsafe fn get_usize(
    function: &'static str,
    session: *const TinvSession,
    out: *mut usize,
    get: fn(&Sizes) -> usize,
) -> Status {
    ffi_boundary!(function, [session, out], {
        // Not under the session's lock: the sizes never change.
        let n = get(&SESSIONS.get(session as usize)?.sizes);
        // SAFETY: checked non-null; writable by contract.
        unsafe { put(out, n) };
        Ok(())
    })
}

/// Bytes of the session's arena.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_session_arena_bytes(
    session: *const TinvSession,
    out: *mut usize,
) -> Status {
    // SAFETY: the caller's contract, passed on.
    unsafe { get_usize("tinv_session_arena_bytes", session, out, |s| s.arena_bytes) }
}

/// Most inputs per call of this session.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_session_max_batch(
    session: *const TinvSession,
    out: *mut usize,
) -> Status {
    // SAFETY: the caller's contract, passed on.
    unsafe { get_usize("tinv_session_max_batch", session, out, |s| s.max_batch) }
}

/// The threads the session runs on, the calling thread included.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_session_threads(
    session: *const TinvSession,
    out: *mut usize,
) -> Status {
    // SAFETY: the caller's contract, passed on.
    unsafe { get_usize("tinv_session_threads", session, out, |s| s.threads) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capi::{tinv_model_free, tinv_model_open_bytes};
    use std::ptr::{null, null_mut};

    /// A call refused because another thread holds the session clears the stats too; the
    /// session's sizes can be read meanwhile.
    #[test]
    fn busy_infer_clears_last_stats() {
        let cfg = crate::synth::tiny(3, false);
        let bytes = crate::synth::random_model(&cfg, 4, crate::format::DType::F32);
        let input = crate::synth::random_inputs(&cfg, 1, 2);
        let (mut logits, mut stats, mut n) = ([0f32; 3], [StatsC::default(); 1], 9usize);
        let (mut m, mut s) = (null_mut(), null_mut());
        // SAFETY: live buffers of the stated lengths and out slots.
        unsafe {
            let st = tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), null(), &mut m);
            assert_eq!(st, Status::Ok);
            assert_eq!(tinv_session_open(m, null(), &mut s), Status::Ok);
            let infer = |lg: *mut f32| tinv_session_infer(s, input.as_ptr(), input.len(), 1, lg, 3);
            assert_eq!(infer(logits.as_mut_ptr()), Status::Ok);
            assert_eq!(
                tinv_session_last_stats(s, stats.as_mut_ptr(), 1, &mut n),
                Status::Ok
            );
            assert_eq!(n, 1);
            {
                // Stand in for another thread inside a call on the session.
                let obj = SESSIONS.get(s as usize).unwrap();
                let _held = obj.inner.lock().unwrap();
                assert_eq!(infer(logits.as_mut_ptr()), Status::SessionBusy);
                // The fixed sizes are still there to read.
                let (mut batch, mut threads, mut arena) = (0, 0, 0);
                assert_eq!(tinv_session_max_batch(s, &mut batch), Status::Ok);
                assert_eq!(tinv_session_threads(s, &mut threads), Status::Ok);
                assert_eq!(tinv_session_arena_bytes(s, &mut arena), Status::Ok);
                assert_eq!((batch, threads), (1, 1));
                assert!(arena > 0);
            }
            assert_eq!(
                tinv_session_last_stats(s, stats.as_mut_ptr(), 1, &mut n),
                Status::Ok
            );
            assert_eq!(n, 0);
            assert_eq!(tinv_session_free(s), Status::Ok);
            assert_eq!(tinv_model_free(m), Status::Ok);
        }
    }
}
