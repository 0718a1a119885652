//! A tiny persistent thread pool that runs one borrowed closure on every thread, without
//! allocating per call.
//!
//! [`Pool::new`] spawns `threads - 1` workers once (when a session opens); [`Pool::run`] hands
//! them a type-erased pointer to the caller's closure, runs the closure as thread 0 on the
//! calling thread, and returns when every thread is done. Workers spin briefly after a job (the
//! next kernel of a forward pass usually follows within microseconds), then park on a condvar.
//! A panic in the closure, on any thread, is caught, the other threads still finish, and the
//! panic is raised again on the caller.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker (or the waiting caller) polls before parking: long enough to bridge the
/// gap between two kernels of one forward pass (a condvar wake-up costs tens of µs), short enough
/// not to steal a shared core from other processes for long.
const SPIN_TIME: Duration = Duration::from_micros(50);

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

/// Calls the closure behind `data` with thread index `i`.
///
/// # Safety
/// `data` must point to a live `F`.
unsafe fn call_closure<F: Fn(usize) + Sync>(data: *const (), i: usize) {
    // SAFETY: the caller guarantees `data` is the address of a live `F` (see `Pool::run`).
    let f = unsafe { &*data.cast::<F>() };
    f(i);
}

/// State changed under the mutex.
struct State {
    /// Incremented once per job; a worker runs each epoch exactly once.
    epoch: u64,
    job: Option<Job>,
    shutdown: bool,
}

/// Everything the caller and the workers share.
struct Shared {
    state: Mutex<State>,
    /// Mirror of `State::epoch`, read without the lock while spinning.
    epoch: AtomicU64,
    /// Workers that have not yet finished the current job.
    pending: AtomicUsize,
    /// Set by a worker whose call panicked; cleared by `run`.
    worker_panicked: AtomicBool,
    /// Workers parked on `work_cv` (changed under the mutex): `run` skips the wake-up system
    /// call when every worker is still spinning, as it is between the kernels of a forward pass.
    parked: AtomicUsize,
    /// The caller is parked on `done_cv` (set under the mutex): the last worker skips the
    /// wake-up otherwise.
    caller_parked: AtomicBool,
    /// Wakes workers (new job or shutdown).
    work_cv: Condvar,
    /// Wakes the caller when `pending` reaches 0.
    done_cv: Condvar,
}

// SAFETY: `Job::data` is only dereferenced by workers between the caller publishing a job and
// the caller observing `pending == 0`; during that window the closure is alive and `Sync`
// (enforced by `Pool::run`'s bound), so sharing the pointer across threads is sound.
unsafe impl Send for Job {}

impl Shared {
    /// Locks the state, ignoring poisoning: no code holding this lock can panic (it only reads
    /// and writes plain fields), so a poisoned state is still consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fixed set of threads that run one closure on every thread per [`Pool::run`] call.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes `run`; a call that finds it taken (a nested or concurrent `run`) runs the
    /// closure for every index on its own thread instead of deadlocking.
    run_lock: Mutex<()>,
}

impl Pool {
    /// Creates a pool of `threads` threads (the caller counts as one, so `threads - 1` workers
    /// are spawned; `0` is treated as `1`). If the OS refuses a thread, the pool keeps the ones
    /// it got; [`Pool::threads`] reports the real count.
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                epoch: 0,
                job: None,
                shutdown: false,
            }),
            epoch: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
            parked: AtomicUsize::new(0),
            caller_parked: AtomicBool::new(false),
            work_cv: Condvar::new(),
            done_cv: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(threads.saturating_sub(1));
        for index in 1..threads.max(1) {
            let worker_shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("tinv-pool-{index}"))
                .spawn(move || worker_loop(&worker_shared, index));
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
        Pool {
            shared,
            workers,
            run_lock: Mutex::new(()),
        }
    }

    /// Number of threads `run` uses, the caller included (at least 1).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(thread_index)` once for every index in `0..self.threads()` (index 0 on the
    /// calling thread) and returns when all calls have returned. Does not allocate.
    ///
    /// If any call panics, the others still run to completion and the panic is then resumed on
    /// the caller (the caller's own panic payload if it panicked, else a new panic naming the
    /// worker failure). A nested or concurrent call runs every index sequentially on its own
    /// thread rather than waiting.
    pub fn run<F: Fn(usize) + Sync>(&self, f: F) {
        let n = self.threads();
        if n == 1 {
            f(0);
            return;
        }
        let _guard = match self.run_lock.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                (0..n).for_each(&f);
                return;
            }
        };
        let shared = &*self.shared;
        shared.pending.store(n - 1, Ordering::SeqCst);
        {
            let mut st = shared.lock();
            st.job = Some(Job {
                data: (&f as *const F).cast::<()>(),
                call: call_closure::<F>,
            });
            st.epoch += 1;
            shared.epoch.store(st.epoch, Ordering::Release);
        }
        // A worker increments `parked` under the mutex before it waits, after checking the
        // epoch under the same mutex: either it saw the new epoch, or its increment is visible
        // here.
        if shared.parked.load(Ordering::SeqCst) > 0 {
            shared.work_cv.notify_all();
        }

        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));

        // SAFETY (why `f` outlives the job): the workers dereference `Job::data` (the address of
        // `f`, a local of this frame) only before they decrement `pending`. We return or unwind
        // out of this frame only after `pending == 0` below, and our own call was wrapped in
        // `catch_unwind`, so no path leaves this frame while a worker can still touch `f`.
        wait_all_done(shared);
        shared.lock().job = None;

        let worker_failed = shared.worker_panicked.swap(false, Ordering::AcqRel);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if worker_failed {
            // Re-raise on the caller, as std::thread::scope does; the C ABI boundary catches it.
            #[allow(clippy::panic)]
            {
                panic!("a thread-pool worker panicked while running a job");
            }
        }
    }
}

/// Below this many floats a row-wise kernel runs on the caller alone: waking the pool costs more.
const MIN_PARALLEL_FLOATS: usize = 16 * 1024;

/// Thread `t`'s share of `units` units, as a range.
fn share(units: usize, t: usize, threads: usize) -> std::ops::Range<usize> {
    units * t / threads..units * (t + 1) / threads
}

impl Pool {
    /// Runs `f` on disjoint parts of `data` made of whole rows of `width` floats, one part per
    /// thread (on the caller alone when `data` is small). For row-wise kernels (GELU).
    pub fn rows_mut<F: Fn(&mut [f32]) + Sync>(&self, data: &mut [f32], width: usize, f: F) {
        let threads = self.threads();
        if threads == 1 || data.len() < MIN_PARALLEL_FLOATS || width == 0 {
            f(data);
            return;
        }
        let rows = data.len() / width;
        let base = RowsPtr(data.as_mut_ptr());
        self.run(|t| {
            let r = share(rows, t, threads);
            // SAFETY: the row ranges of different `t` are disjoint and inside `data` (rows ·
            // width ≤ data.len()), which stays borrowed until `run` returns.
            let part = unsafe {
                std::slice::from_raw_parts_mut(base.at(r.start * width), r.len() * width)
            };
            f(part);
        });
    }

    /// Runs `f(src part, dst part)` on matching parts of whole rows (`src` rows of `width`
    /// floats, `dst` rows of `dst_width`), one part per thread. For LayerNorm.
    pub fn rows_map<F: Fn(&[f32], &mut [f32]) + Sync>(
        &self,
        src: &[f32],
        width: usize,
        dst: &mut [f32],
        dst_width: usize,
        f: F,
    ) {
        let threads = self.threads();
        let rows = if width == 0 || dst_width == 0 {
            0
        } else {
            (src.len() / width).min(dst.len() / dst_width)
        };
        if threads == 1 || src.len() < MIN_PARALLEL_FLOATS || rows == 0 {
            f(src, dst);
            return;
        }
        let base = RowsPtr(dst.as_mut_ptr());
        self.run(|t| {
            let r = share(rows, t, threads);
            let input = &src[r.start * width..r.end * width];
            // SAFETY: as in `rows_mut`: disjoint row ranges of `dst`, inside it (rows ·
            // dst_width ≤ dst.len()), borrowed until `run` returns.
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
// buffer that stays mutably borrowed until `Pool::run` returns.
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

/// Blocks until every worker has finished the current job: spins, then waits on `done_cv`.
fn wait_all_done(shared: &Shared) {
    if spin_until(|| shared.pending.load(Ordering::Acquire) == 0) {
        return;
    }
    let mut st = shared.lock();
    // Store the flag, then read `pending`; the last worker decrements `pending`, then reads the
    // flag (all SeqCst): one of us sees the other. A worker that sees the flag notifies under
    // the lock, which we hold until `wait` releases it, so the wake-up cannot be missed.
    shared.caller_parked.store(true, Ordering::SeqCst);
    while shared.pending.load(Ordering::SeqCst) != 0 {
        st = shared.done_cv.wait(st).unwrap_or_else(|e| e.into_inner());
    }
    shared.caller_parked.store(false, Ordering::SeqCst);
}

/// The body of worker `index`: wait for an epoch, run the job, report, repeat until shutdown.
fn worker_loop(shared: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        spin_until(|| shared.epoch.load(Ordering::Acquire) != seen);
        let job = {
            let mut st = shared.lock();
            while st.epoch == seen && !st.shutdown {
                shared.parked.fetch_add(1, Ordering::SeqCst);
                st = shared.work_cv.wait(st).unwrap_or_else(|e| e.into_inner());
                shared.parked.fetch_sub(1, Ordering::SeqCst);
            }
            if st.shutdown {
                return;
            }
            seen = st.epoch;
            st.job
        };
        if let Some(job) = job {
            // SAFETY: `job` was published by `Pool::run`, which keeps the closure alive until
            // `pending` reaches 0, and we decrement `pending` only after this call returns.
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { (job.call)(job.data, index) }));
            if let Err(payload) = result {
                report_panic(shared, payload);
            }
        }
        if shared.pending.fetch_sub(1, Ordering::SeqCst) == 1
            && shared.caller_parked.load(Ordering::SeqCst)
        {
            let _st = shared.lock();
            shared.done_cv.notify_one();
        }
    }
}

/// Records that a worker's call panicked (the payload is dropped; `run` raises a new panic).
fn report_panic(shared: &Shared, payload: Box<dyn Any + Send>) {
    drop(payload);
    shared.worker_panicked.store(true, Ordering::Release);
}

impl Drop for Pool {
    /// Tells every worker to exit and joins them.
    fn drop(&mut self) {
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
mod tests {
    use super::Pool;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_index_runs_exactly_once_per_call() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads);
            assert_eq!(pool.threads(), threads);
            let hits: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..200 {
                pool.run(|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            for h in &hits {
                assert_eq!(h.load(Ordering::Relaxed), 200);
            }
        }
    }

    #[test]
    fn parked_workers_and_a_parked_caller_are_woken() {
        // Gaps longer than the spin time park the workers between calls; a slow worker parks
        // the caller. Every call must still run every index once (a missed wake-up hangs here).
        let pool = Pool::new(3);
        let hits = AtomicUsize::new(0);
        let pause = std::time::Duration::from_micros(300);
        for call in 0..40 {
            if call % 2 == 0 {
                std::thread::sleep(pause);
            }
            pool.run(|i| {
                if i == 1 && call % 3 == 0 {
                    std::thread::sleep(pause);
                }
                hits.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(hits.load(Ordering::Relaxed), 3 * (call + 1));
        }
    }

    #[test]
    fn worker_panic_is_raised_on_caller_and_pool_stays_usable() {
        let pool = Pool::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(|i| assert!(i != 1, "boom in worker"));
        }));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(|i| assert!(i != 0, "boom in caller"));
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn row_parts_cover_every_row_once_on_any_thread_count() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads);
            for rows in [1, 7, 300, 1000] {
                let width = 64;
                let mut v = vec![1f32; rows * width];
                pool.rows_mut(&mut v, width, |part| {
                    assert_eq!(part.len() % width, 0);
                    part.iter_mut().for_each(|x| *x += 1.0);
                });
                assert!(
                    v.iter().all(|&x| x == 2.0),
                    "{threads} threads, {rows} rows"
                );
                let src: Vec<f32> = (0..rows * width).map(|i| i as f32).collect();
                let mut dst = vec![0f32; rows];
                pool.rows_map(&src, width, &mut dst, 1, |s, d| {
                    for (row, o) in s.chunks_exact(width).zip(d.iter_mut()) {
                        *o = row[0];
                    }
                });
                let want: Vec<f32> = (0..rows).map(|r| (r * width) as f32).collect();
                assert_eq!(dst, want, "{threads} threads, {rows} rows");
            }
        }
    }

    #[test]
    fn nested_run_does_not_deadlock() {
        let pool = Pool::new(2);
        let count = AtomicUsize::new(0);
        pool.run(|_| {
            pool.run(|_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
        });
        // Outer: 2 threads; one of them holds the run lock, so each inner call runs 2 indices
        // sequentially or through the pool: 4 inner calls either way.
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }
}
