//! A tiny persistent thread pool that spreads the chunks of one borrowed closure over whichever
//! threads are ready, without allocating per call.
//!
//! [`Pool::new`] spawns `threads - 1` workers once (when a session opens). [`Pool::run_chunks`]
//! publishes the caller's closure, and every thread that joins (the caller always, a worker when
//! it claims one of the call's tickets) takes chunk after chunk from a shared counter until none
//! is left. A worker that is late (descheduled by the OS, or still parked) simply finds no ticket
//! or no chunk: the caller never waits for a thread that has not started, only for those that
//! claimed a ticket to finish their current chunk. On shared or oversubscribed cores (a robot's
//! other processes, a noisy VM) a kernel therefore degrades towards one-thread speed instead of
//! stalling on the slowest thread. Workers spin for up to 1 ms after a job (long enough to
//! outlast the caller's last chunk of a kernel and reach the next one), then park on a condvar.
//! A panic in the closure, on any thread, is caught, the other threads finish, and the panic is
//! raised again on the caller.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker (or the waiting caller) polls before parking: long enough to bridge the
/// gap between two kernels of one forward pass (a condvar wake-up costs tens of µs), short enough
/// not to steal a shared core from other processes for long (at most this much CPU per worker
/// after each inference).
///
/// The gap to bridge is not the few µs between kernels but the tail of the previous one: a
/// worker whose last chunk ends first waits for the caller's, and ViT-Tiny's MLP GEMMs are
/// 6 chunks of about 100 µs on two threads. With 50 µs the worker had parked by then, and
/// nearly every kernel began with a wake-up: interleaved with ONNX Runtime
/// (`tinv-bench --child tinv/ort vit-tiny 2`, 4 alternating pairs, before that run told ONNX
/// Runtime to stop spinning after each of its runs) tinv/ORT was 0.99–1.08× with 50 µs and
/// 0.95–0.98× with 1 ms.
const SPIN_TIME: Duration = Duration::from_millis(1);

/// Low bits of [`Shared::call`] that count the tickets still unclaimed; the bits above hold the
/// call's number.
const TICKET_BITS: u32 = 16;
const TICKET_MASK: u64 = (1 << TICKET_BITS) - 1;

/// Most threads a pool has (tickets must fit in [`TICKET_BITS`]).
const MAX_THREADS: usize = 1024;

/// Polls `done` for up to [`SPIN_TIME`]; true if it became true. Reads the clock only every 32
/// polls (`pause` is slow on recent x86, so the poll count alone does not bound the time).
fn spin_until(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..32 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN_TIME {
            return done();
        }
    }
}

/// A job as the workers see it: the closure's address and a function that knows its type.
#[derive(Clone, Copy)]
struct Job {
    data: *const (),
    call: unsafe fn(*const (), usize),
}

/// Calls the closure behind `data` with slot `i`.
///
/// # Safety
/// `data` must point to a live `F`.
unsafe fn call_closure<F: Fn(usize) + Sync>(data: *const (), i: usize) {
    // SAFETY: the caller guarantees `data` is the address of a live `F` (see `Pool::dispatch`).
    let f = unsafe { &*data.cast::<F>() };
    f(i);
}

/// State changed under the mutex.
struct State {
    job: Option<Job>,
    shutdown: bool,
}

/// Everything the caller and the workers share.
struct Shared {
    state: Mutex<State>,
    /// `call number << TICKET_BITS | unclaimed tickets`. Published (under the mutex) with
    /// `threads - 1` tickets; a worker joins a call by taking one with a compare-exchange, and the
    /// caller withdraws the rest once it has run out of chunks.
    call: AtomicU64,
    /// Workers that claimed a ticket of the current call and finished it.
    finished: AtomicUsize,
    /// Workers that have started running (see `Pool::new`).
    started: AtomicUsize,
    /// Set by a worker whose call panicked (after it stored `worker_payload`); cleared by
    /// `dispatch`.
    worker_panicked: AtomicBool,
    /// The first such worker's panic payload, re-raised on the caller by `dispatch`.
    worker_payload: Mutex<Option<Box<dyn Any + Send>>>,
    /// Workers parked on `work_cv` (changed under the mutex): `dispatch` skips the wake-up
    /// system call when every worker is still spinning, as it is between the kernels of a
    /// forward pass.
    parked: AtomicUsize,
    /// The caller is parked on `done_cv` (set under the mutex): the last worker skips the
    /// wake-up otherwise.
    caller_parked: AtomicBool,
    /// Wakes workers (new call or shutdown).
    work_cv: Condvar,
    /// Wakes the caller when the workers that joined have finished (and `Pool::new` when a
    /// worker has started).
    done_cv: Condvar,
}

// SAFETY: `Job::data` is only dereferenced by a worker that claimed a ticket of the call that
// published it, and the caller does not leave `dispatch` before every such worker reported
// `finished`; during that window the closure is alive and `Sync` (enforced by the bounds), so
// sharing the pointer across threads is sound.
unsafe impl Send for Job {}

impl Shared {
    /// Locks the state, ignoring poisoning: no code holding this lock can panic (it only reads
    /// and writes plain fields), so a poisoned state is still consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Prefix of the pool's worker threads' names.
const WORKER_NAME: &str = "tinv-pool-";

thread_local! {
    /// Set on a pool's worker threads. A const `Cell` without `Drop`: readable to the end of
    /// the thread, where `std::thread::current()` panics.
    static IS_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of a pool's workers (the C ABI's panic hook asks).
pub(crate) fn on_worker_thread() -> bool {
    IS_WORKER.try_with(|w| w.get()).unwrap_or(false)
}

/// A fixed set of threads that share out the chunks of one closure per [`Pool::run_chunks`].
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes calls; a call that finds it taken (a nested or concurrent call) runs every
    /// chunk on its own thread instead of deadlocking.
    run_lock: Mutex<()>,
    /// The process that spawned the workers: after `fork()` the child has none of them.
    pid: u32,
}

impl Pool {
    /// Creates a pool of `threads` threads (the caller counts as one, so `threads - 1` workers
    /// are spawned; `0` is treated as `1`, more than 1024 as 1024). If the OS refuses a thread,
    /// the pool keeps the ones it got; [`Pool::threads`] reports the real count.
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                shutdown: false,
            }),
            call: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
            worker_payload: Mutex::new(None),
            parked: AtomicUsize::new(0),
            caller_parked: AtomicBool::new(false),
            work_cv: Condvar::new(),
            done_cv: Condvar::new(),
        });
        let threads = threads.clamp(1, MAX_THREADS);
        let mut workers = Vec::with_capacity(threads - 1);
        for index in 1..threads {
            let worker_shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("{WORKER_NAME}{index}"))
                .spawn(move || worker_loop(&worker_shared));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(err) => {
                    log::warn!(
                        "thread pool: could not spawn worker {index}: {err}; using {index} threads"
                    );
                    break;
                }
            }
        }
        // Wait until every worker runs: a thread's start-up (std allocates its name for the
        // stack-overflow handler) then happens here, at open, and not during whichever later
        // inference the OS first schedules it in. Before chunks, the first call waited for every
        // worker anyway; now a worker that has not started is simply not waited for.
        let mut st = shared.lock();
        while shared.started.load(Ordering::Acquire) < workers.len() {
            st = shared.done_cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        drop(st);
        Pool {
            shared,
            workers,
            run_lock: Mutex::new(()),
            pid: std::process::id(),
        }
    }

    /// Number of threads, the caller included (at least 1); the slots passed to closures are
    /// `0..threads()`.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(slot, chunk)` once for every chunk in `0..chunks` and returns when all calls have
    /// returned. The chunks go, in increasing order, to whichever threads are ready (the caller
    /// always takes part); `slot` is the running thread's index in `0..self.threads()`, the same
    /// for all the chunks one thread runs in this call and never shared by two threads at once,
    /// so it can pick a per-thread scratch buffer. Does not allocate.
    ///
    /// If any call panics, the remaining chunks may be skipped and the panic is then resumed on
    /// the caller (the caller's own panic payload if it panicked, else a new panic naming the
    /// worker failure). A nested or concurrent call runs every chunk on its own thread, as slot 0.
    pub fn run_chunks<F: Fn(usize, usize) + Sync>(&self, chunks: usize, f: F) {
        if chunks <= 1 || self.threads() == 1 {
            (0..chunks).for_each(|c| f(0, c));
            return;
        }
        let next = AtomicUsize::new(0);
        self.dispatch(|slot| loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= chunks {
                break;
            }
            f(slot, c);
        });
    }

    /// Runs `body(0)` on the caller and `body(k)` on every worker that claims ticket `k` while
    /// the caller is busy; returns when all of them have returned. `body` must do the work on
    /// whichever threads call it (the chunk counter of `run_chunks`).
    fn dispatch<F: Fn(usize) + Sync>(&self, body: F) {
        let n = self.threads();
        let _guard = match self.run_lock.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                body(0);
                return;
            }
        };
        let shared = &*self.shared;
        // No worker of the previous call is still running (we waited for every one that joined)
        // and none can join it any more (its tickets were withdrawn), so this reset is safe.
        shared.finished.store(0, Ordering::SeqCst);
        {
            let mut st = shared.lock();
            st.job = Some(Job {
                data: (&body as *const F).cast::<()>(),
                call: call_closure::<F>,
            });
            let number = (shared.call.load(Ordering::Relaxed) >> TICKET_BITS) + 1;
            shared
                .call
                .store(number << TICKET_BITS | (n as u64 - 1), Ordering::SeqCst);
        }
        // A worker increments `parked` under the mutex before it waits, after checking the call
        // number under the same mutex: either it saw the new call, or its increment is visible
        // here.
        if shared.parked.load(Ordering::SeqCst) > 0 {
            shared.work_cv.notify_all();
        }

        let mine = catch_unwind(AssertUnwindSafe(|| body(0)));

        // Withdraw the tickets nobody claimed: from here on no worker can join this call.
        let unclaimed =
            (shared.call.fetch_and(!TICKET_MASK, Ordering::SeqCst) & TICKET_MASK) as usize;
        let joined = n - 1 - unclaimed;
        // SAFETY (why `body` outlives the job): a worker dereferences `Job::data` (the address of
        // `body`, a local of this frame) only after claiming a ticket and before incrementing
        // `finished`. We return or unwind out of this frame only after `finished == joined`
        // below, and our own call was wrapped in `catch_unwind`, so no path leaves this frame
        // while a worker can still touch `body`.
        wait_finished(shared, joined);
        shared.lock().job = None;

        // The flag keeps the mutex off the path of a call without a panic. A worker stores its
        // payload before it sets the flag, and both before it counts itself finished, so a set
        // flag always finds the payload; taken whatever happens, none outlives its call.
        let worker_payload = if shared.worker_panicked.swap(false, Ordering::AcqRel) {
            shared
                .worker_payload
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
        } else {
            None
        };
        if let Err(payload) = mine {
            drop_payload(worker_payload);
            resume_unwind(payload);
        }
        if let Some(payload) = worker_payload {
            // Re-raise the worker's own panic on the caller (its message, not a new one, and
            // without running the panic hook a second time); the C ABI boundary catches it.
            resume_unwind(payload);
        }
    }
}

/// Below this many floats a row-wise kernel runs on the caller alone: waking the pool costs more.
const MIN_PARALLEL_FLOATS: usize = 16 * 1024;

/// Chunks per thread for the row-wise kernels: enough that a late thread's share is picked up by
/// the others, few enough that claiming them costs nothing.
const ROW_CHUNKS_PER_THREAD: usize = 4;

/// Chunk `c` of `chunks` of `units` units, as a range.
fn share(units: usize, c: usize, chunks: usize) -> std::ops::Range<usize> {
    units * c / chunks..units * (c + 1) / chunks
}

impl Pool {
    /// Runs `f` on disjoint parts of `data` made of whole rows of `width` floats, spread over
    /// the threads (on the caller alone when `data` is small). For row-wise kernels (GELU).
    pub fn rows_mut<F: Fn(&mut [f32]) + Sync>(&self, data: &mut [f32], width: usize, f: F) {
        let threads = self.threads();
        // Whole rows only: a tail shorter than a row (or a row wider than `data`) would not be
        // handed to `f` on the threads, while the single-thread path hands it everything.
        if threads == 1
            || data.len() < MIN_PARALLEL_FLOATS
            || width == 0
            || !data.len().is_multiple_of(width)
        {
            f(data);
            return;
        }
        let rows = data.len() / width;
        let chunks = (threads * ROW_CHUNKS_PER_THREAD).min(rows);
        let base = RowsPtr(data.as_mut_ptr());
        self.run_chunks(chunks, |_, c| {
            let r = share(rows, c, chunks);
            // SAFETY: the row ranges of different chunks are disjoint and inside `data` (rows ·
            // width ≤ data.len()), which stays borrowed until `run_chunks` returns.
            let part = unsafe {
                std::slice::from_raw_parts_mut(base.at(r.start * width), r.len() * width)
            };
            f(part);
        });
    }

    /// Runs `f(src part, dst part)` on matching parts of whole rows (`src` rows of `width`
    /// floats, `dst` rows of `dst_width`), spread over the threads. For LayerNorm.
    pub fn rows_map<F: Fn(&[f32], &mut [f32]) + Sync>(
        &self,
        src: &[f32],
        width: usize,
        dst: &mut [f32],
        dst_width: usize,
        f: F,
    ) {
        let threads = self.threads();
        // As in `rows_mut`: split only when both sides are the same whole number of rows.
        let rows = if width == 0
            || dst_width == 0
            || !src.len().is_multiple_of(width)
            || dst.len() / dst_width != src.len() / width
            || !dst.len().is_multiple_of(dst_width)
        {
            0
        } else {
            src.len() / width
        };
        if threads == 1 || src.len() < MIN_PARALLEL_FLOATS || rows == 0 {
            f(src, dst);
            return;
        }
        let chunks = (threads * ROW_CHUNKS_PER_THREAD).min(rows);
        let base = RowsPtr(dst.as_mut_ptr());
        self.run_chunks(chunks, |_, c| {
            let r = share(rows, c, chunks);
            let input = &src[r.start * width..r.end * width];
            // SAFETY: as in `rows_mut`: disjoint row ranges of `dst`, inside it (rows ·
            // dst_width ≤ dst.len()), borrowed until `run_chunks` returns.
            let out = unsafe {
                std::slice::from_raw_parts_mut(base.at(r.start * dst_width), r.len() * dst_width)
            };
            f(input, out);
        });
    }
}

/// A row buffer's base pointer, shared with the pool's threads (each writes its own rows).
#[derive(Clone, Copy)]
struct RowsPtr(*mut f32);
// SAFETY: used only by `rows_mut`/`rows_map`, whose threads write disjoint row ranges of a
// buffer that stays mutably borrowed until `Pool::run_chunks` returns.
unsafe impl Send for RowsPtr {}
// SAFETY: as above.
unsafe impl Sync for RowsPtr {}

impl RowsPtr {
    /// `base + offset` (a method, so closures capture the whole `Sync` wrapper).
    ///
    /// # Safety
    /// `offset` must be inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.add(offset) }
    }
}

/// Blocks until the `joined` workers that claimed a ticket of the current call have finished:
/// spins, then waits on `done_cv`.
fn wait_finished(shared: &Shared, joined: usize) {
    if joined == 0 || spin_until(|| shared.finished.load(Ordering::Acquire) == joined) {
        return;
    }
    let mut st = shared.lock();
    // Store the flag, then read `finished`; a worker increments `finished`, then reads the flag
    // (all SeqCst): one of us sees the other. A worker that sees the flag notifies under the
    // lock, which we hold until `wait` releases it, so the wake-up cannot be missed.
    shared.caller_parked.store(true, Ordering::SeqCst);
    while shared.finished.load(Ordering::SeqCst) != joined {
        st = shared.done_cv.wait(st).unwrap_or_else(|e| e.into_inner());
    }
    shared.caller_parked.store(false, Ordering::SeqCst);
}

/// The call number in a [`Shared::call`] word.
fn call_number(word: u64) -> u64 {
    word >> TICKET_BITS
}

/// The body of a worker: wait for a new call, try to claim a ticket, run the job with the
/// ticket as its slot, report, repeat until shutdown.
fn worker_loop(shared: &Shared) {
    IS_WORKER.with(|w| w.set(true));
    {
        // Under the lock, so `Pool::new` cannot miss the wake-up between its check and its wait.
        let _st = shared.lock();
        shared.started.fetch_add(1, Ordering::Release);
        shared.done_cv.notify_all();
    }
    let mut seen = 0u64;
    loop {
        spin_until(|| call_number(shared.call.load(Ordering::Acquire)) != seen);
        {
            let mut st = shared.lock();
            while call_number(shared.call.load(Ordering::SeqCst)) == seen && !st.shutdown {
                shared.parked.fetch_add(1, Ordering::SeqCst);
                st = shared.work_cv.wait(st).unwrap_or_else(|e| e.into_inner());
                shared.parked.fetch_sub(1, Ordering::SeqCst);
            }
            if st.shutdown {
                return;
            }
        }
        let mut word = shared.call.load(Ordering::Acquire);
        let slot = loop {
            if word & TICKET_MASK == 0 {
                break None;
            }
            match shared.call.compare_exchange_weak(
                word,
                word - 1,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => break Some((word & TICKET_MASK) as usize),
                Err(now) => word = now,
            }
        };
        seen = call_number(word);
        // Too late for this call (the caller withdrew the tickets): wait for the next.
        let Some(slot) = slot else { continue };
        // The caller published the job before the tickets, under the lock, and keeps it until
        // we report `finished`.
        let job = shared.lock().job;
        if let Some(job) = job {
            // SAFETY: we hold a ticket of the call that published `job`; its caller keeps the
            // closure alive until `finished` counts us, which happens only after this returns.
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { (job.call)(job.data, slot) }));
            if let Err(payload) = result {
                report_panic(shared, payload);
            }
        }
        shared.finished.fetch_add(1, Ordering::SeqCst);
        if shared.caller_parked.load(Ordering::SeqCst) {
            let _st = shared.lock();
            shared.done_cv.notify_one();
        }
    }
}

/// Records that a worker's call panicked, keeping the first payload for the caller to re-raise.
fn report_panic(shared: &Shared, payload: Box<dyn Any + Send>) {
    let mut slot = shared
        .worker_payload
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let extra = if slot.is_none() {
        *slot = Some(payload);
        None
    } else {
        Some(payload)
    };
    drop(slot);
    shared.worker_panicked.store(true, Ordering::Release);
    drop_payload(extra);
}

/// Drops a panic payload whose `Drop` may itself panic: on a worker that would unwind it before
/// it counts itself finished (the caller would wait for ever), on the caller it would abort
/// mid-unwind. That second panic is caught and leaked.
fn drop_payload(payload: Option<Box<dyn Any + Send>>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

impl Drop for Pool {
    /// Tells every worker to exit and joins them.
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // A forked child: the workers stayed in the parent, and joining (or detaching)
            // their thread ids here would fail. Their handles are forgotten instead.
            std::mem::forget(std::mem::take(&mut self.workers));
            return;
        }
        self.shared.lock().shutdown = true;
        self.shared.work_cv.notify_all();
        for handle in self.workers.drain(..) {
            // A worker never panics outside `catch_unwind`, so `join` only fails if the runtime
            // itself failed; there is nothing left to clean up in that case.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
