//! The live-handle table of a loaded [`Shim`](crate::Shim): every engine and context it handed
//! out and has not freed.
//!
//! Handles are plain integers (the objects' addresses), so each call checks its handle here
//! first: a forged, foreign or freed handle is an error (or ignored by the frees), never a
//! pointer dereferenced. A freed handle whose address the allocator has since given to a new
//! object passes. Each entry counts the calls using it:
//! - a call marks its handle in use for its duration (a context creation marks its engine), so
//!   nothing it uses is freed under it;
//! - a free marks its handle dying (no new call may start on it), waits until the calls already
//!   on it have returned, then frees it; an engine's free does the same for its contexts, a
//!   context being created included.
//!
//! The table's lock is held only to look up and count, never while TensorRT runs: a session
//! being created (one context per path, each a TensorRT allocation) or closed does not stall the
//! calls of other sessions. (A reader-writer lock held across the calls did: with a free
//! queued, std's lock makes new readers wait behind the writer, and the writer behind the
//! creation.) TensorRT allows contexts to be created and used concurrently, each context by one
//! thread at a time (a session owns its contexts).

use crate::ShimError;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Handles {
    table: Mutex<Table>,
    /// Signalled whenever a call stops using a handle.
    released: Condvar,
}

#[derive(Default)]
struct Table {
    engines: HashMap<usize, Entry>,
    /// Context → its engine and its entry.
    contexts: HashMap<usize, (usize, Entry)>,
    /// Contexts recorded so far: each context's entry takes the next number as its `gen`.
    created: u64,
}

#[derive(Default, Clone, Copy)]
struct Entry {
    /// Calls using the handle now (for an engine, also the creations of its contexts).
    busy: usize,
    /// A free has begun: no new call may start.
    dying: bool,
    /// A context's own free has begun ([`Handles::free_context`]): it frees the context, and an
    /// engine's free begun meanwhile waits for it instead of taking the context along.
    freeing: bool,
    /// Which context this is, of those that had its address: the allocator may give a freed
    /// context's address to a new one before the old free has forgotten its entry.
    gen: u64,
}

fn unknown(what: &str, handle: usize) -> ShimError {
    ShimError::Argument(format!(
        "{what} handle {handle:#x} is not live in this shim (freed, or from elsewhere)"
    ))
}

/// Which handle a call uses.
#[derive(Clone, Copy)]
enum Handle {
    Engine(usize),
    Context(usize),
}

impl Table {
    fn entry(&mut self, h: Handle) -> Option<&mut Entry> {
        match h {
            Handle::Engine(e) => self.engines.get_mut(&e),
            Handle::Context(c) => self.contexts.get_mut(&c).map(|(_, entry)| entry),
        }
    }

    /// Marks `h` dying (no new call may start on it); false when it is not live, or another
    /// free of it has begun.
    fn kill(&mut self, h: Handle) -> bool {
        match self.entry(h) {
            Some(e) if !e.dying => {
                e.dying = true;
                true
            }
            _ => false,
        }
    }
}

impl Handles {
    /// The table, whatever a panic elsewhere left: every update is a few field writes that
    /// cannot panic half-way.
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new engine.
    pub(crate) fn add_engine(&self, engine: usize) {
        self.lock().engines.insert(engine, Entry::default());
    }

    /// Marks `h` in use (an error if it is not live or is being freed).
    fn acquire(&self, h: Handle) -> Result<(), ShimError> {
        match self.lock().entry(h) {
            Some(e) if !e.dying => {
                e.busy += 1;
                Ok(())
            }
            _ => Err(match h {
                Handle::Engine(e) => unknown("engine", e),
                Handle::Context(c) => unknown("context", c),
            }),
        }
    }

    /// Ends a use of `h` begun by [`Handles::acquire`].
    fn release(&self, table: &mut Table, h: Handle) {
        if let Some(e) = table.entry(h) {
            e.busy = e.busy.saturating_sub(1);
        }
        self.released.notify_all();
    }

    /// Runs `f` with `h` marked in use, if it is live.
    fn using<T>(
        &self,
        h: Handle,
        f: impl FnOnce() -> Result<T, ShimError>,
    ) -> Result<T, ShimError> {
        self.acquire(h)?;
        // Released even if `f` panics: the guard's drop runs during the unwind.
        struct Done<'a>(&'a Handles, Handle);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                let mut t = self.0.lock();
                self.0.release(&mut t, self.1);
            }
        }
        let _done = Done(self, h);
        f()
    }

    /// Runs `f` if `engine` is live; a free of it waits meanwhile.
    pub(crate) fn with_engine<T>(
        &self,
        engine: usize,
        f: impl FnOnce() -> Result<T, ShimError>,
    ) -> Result<T, ShimError> {
        self.using(Handle::Engine(engine), f)
    }

    /// Runs `f` if `ctx` is live; a free of it (or of its engine) waits meanwhile.
    pub(crate) fn with_context<T>(
        &self,
        ctx: usize,
        f: impl FnOnce() -> Result<T, ShimError>,
    ) -> Result<T, ShimError> {
        self.using(Handle::Context(ctx), f)
    }

    /// Runs `create` (which makes a context of `engine`) if `engine` is live, and records the
    /// context it returns. Calls on other handles run meanwhile; a free of `engine` waits and
    /// then frees the new context too.
    pub(crate) fn create_context(
        &self,
        engine: usize,
        create: impl FnOnce() -> Result<usize, ShimError>,
    ) -> Result<usize, ShimError> {
        let h = Handle::Engine(engine);
        self.acquire(h)?;
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(create));
        let mut t = self.lock();
        if let Ok(Ok(ctx)) = made {
            // A free of the engine that began meanwhile is waiting for this creation: the new
            // context is born dying, so that no call starts on it before that free takes it.
            let dying = t.engines.get(&engine).is_some_and(|e| e.dying);
            t.created += 1;
            let entry = Entry {
                dying,
                gen: t.created,
                ..Entry::default()
            };
            t.contexts.insert(ctx, (engine, entry));
        }
        self.release(&mut t, h);
        drop(t);
        made.unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Waits on the table until `done` holds.
    fn wait_until<'a>(
        &'a self,
        mut t: MutexGuard<'a, Table>,
        mut done: impl FnMut(&Table) -> bool,
    ) -> MutexGuard<'a, Table> {
        while !done(&t) {
            t = self
                .released
                .wait(t)
                .unwrap_or_else(PoisonError::into_inner);
        }
        t
    }

    /// Passes `ctx` to `free` once no call uses it, then forgets it; false (and `free` not
    /// called) when it is not live. The entry stays, counted as in use, while `free` runs: a
    /// free of its engine meanwhile waits, so the engine is never destroyed before it.
    pub(crate) fn free_context(&self, ctx: usize, free: impl FnOnce(usize)) -> bool {
        let mut t = self.lock();
        if !t.kill(Handle::Context(ctx)) {
            return false;
        }
        let gen = match t.contexts.get_mut(&ctx) {
            Some((_, e)) => {
                e.freeing = true;
                e.gen
            }
            None => return false,
        };
        // The context is alive until `free` runs, so its address still names this entry.
        let mut t = self.wait_until(t, |t| t.contexts.get(&ctx).is_none_or(|(_, e)| e.busy == 0));
        match t.contexts.get_mut(&ctx) {
            Some((_, e)) => e.busy = 1,
            // Not reached: an entry marked `freeing` is removed only by this free (an engine's
            // free waits for it, and `free_all` cannot run meanwhile). Never freed twice.
            None => {
                debug_assert!(false, "a context's entry vanished during its free");
                return true;
            }
        }
        drop(t);
        // Forgotten (and the waiters told) even if `free` panics. Only our own entry, by its
        // `gen`: once `free` has returned, the allocator may give the address to a context
        // another thread creates (and a third may already be freeing that one).
        struct Forget<'a>(&'a Handles, usize, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                let mut t = self.0.lock();
                if t.contexts
                    .get(&self.1)
                    .is_some_and(|(_, e)| e.gen == self.2)
                {
                    t.contexts.remove(&self.1);
                }
                drop(t);
                self.0.released.notify_all();
            }
        }
        let _forget = Forget(self, ctx, gen);
        free(ctx);
        true
    }

    /// Forgets `engine` and its contexts once no call uses any of them (creations of its
    /// contexts included) and the frees of its contexts already under way have returned,
    /// passing each context left to `free_context` and then the engine to `free_engine`; false
    /// (nothing called) when the engine is not live.
    pub(crate) fn free_engine(
        &self,
        engine: usize,
        free_context: impl FnMut(usize),
        free_engine: impl FnOnce(usize),
    ) -> bool {
        let mut t = self.lock();
        if !t.kill(Handle::Engine(engine)) {
            return false;
        }
        for (_, (e, entry)) in t.contexts.iter_mut() {
            if *e == engine {
                entry.dying = true;
            }
        }
        let mut t = self.wait_until(t, |t| {
            t.engines.get(&engine).is_none_or(|e| e.busy == 0)
                && t.contexts
                    .values()
                    .all(|(e, entry)| *e != engine || (entry.busy == 0 && !entry.freeing))
        });
        t.engines.remove(&engine);
        let mut orphans: Vec<usize> = t
            .contexts
            .iter()
            .filter(|(_, (e, _))| *e == engine)
            .map(|(&c, _)| c)
            .collect();
        orphans.sort_unstable();
        for c in &orphans {
            t.contexts.remove(c);
        }
        drop(t);
        orphans.into_iter().for_each(free_context);
        free_engine(engine);
        true
    }

    /// Frees everything still live, each engine's contexts before it (the shim's `Drop`: no
    /// call can be running).
    pub(crate) fn free_all(
        &mut self,
        mut free_context: impl FnMut(usize),
        mut free_engine: impl FnMut(usize),
    ) {
        let t = self.table.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut contexts: Vec<(usize, usize)> =
            t.contexts.drain().map(|(c, (e, _))| (c, e)).collect();
        contexts.sort_unstable();
        let mut engines: Vec<usize> = t.engines.drain().map(|(e, _)| e).collect();
        engines.sort_unstable();
        for e in engines {
            contexts
                .iter()
                .filter(|&&(_, owner)| owner == e)
                .for_each(|&(c, _)| free_context(c));
            free_engine(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Handles;
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const PATIENCE: Duration = Duration::from_secs(20);

    fn table(engines: &[usize], contexts: &[(usize, usize)]) -> Handles {
        let h = Handles::default();
        for &e in engines {
            h.add_engine(e);
        }
        for &(c, e) in contexts {
            h.create_context(e, || Ok(c)).unwrap();
        }
        h
    }

    type Log = Arc<Mutex<Vec<(&'static str, usize)>>>;

    fn logger(log: &Log, what: &'static str) -> impl FnMut(usize) {
        let log = Arc::clone(log);
        move |x| log.lock().unwrap().push((what, x))
    }

    #[test]
    fn each_handle_is_freed_once_and_an_engines_contexts_with_it_first() {
        let h = table(
            &[0x100, 0x200],
            &[(0x10, 0x100), (0x20, 0x100), (0x30, 0x200)],
        );
        let log: Log = Arc::default();
        assert!(h.free_context(0x10, logger(&log, "ctx")));
        assert!(
            !h.free_context(0x10, logger(&log, "ctx")),
            "a second free is refused"
        );
        assert!(
            !h.free_context(0x99, logger(&log, "ctx")),
            "a forged context is refused"
        );
        assert!(
            h.with_context(0x10, || Ok(())).is_err(),
            "a freed context is refused"
        );
        // Engine 0x100 goes with its remaining context, that context first; 0x200's stays.
        assert!(h.free_engine(0x100, logger(&log, "ctx"), logger(&log, "engine")));
        assert!(!h.free_engine(0x100, logger(&log, "ctx"), logger(&log, "engine")));
        assert!(!h.free_engine(0x999, logger(&log, "ctx"), logger(&log, "engine")));
        assert_eq!(
            *log.lock().unwrap(),
            [("ctx", 0x10), ("ctx", 0x20), ("engine", 0x100)]
        );
        assert!(h.with_context(0x30, || Ok(())).is_ok());
        assert!(h.with_engine(0x100, || Ok(())).is_err());
        assert!(h
            .create_context(0x100, || panic!("not called for a freed engine"))
            .is_err());
        let mut h = h;
        log.lock().unwrap().clear();
        h.free_all(logger(&log, "ctx"), logger(&log, "engine"));
        assert_eq!(*log.lock().unwrap(), [("ctx", 0x30), ("engine", 0x200)]);
    }

    /// Runs `op` on a thread and returns once `op` has called the `hold` it is given (inside
    /// the table operation it runs); `hold` returns when the returned sender sends.
    fn held<T: Send + 'static>(
        op: impl FnOnce(&dyn Fn()) -> T + Send + 'static,
    ) -> (mpsc::Sender<()>, std::thread::JoinHandle<T>) {
        let (started, wait_started) = mpsc::channel();
        let (finish, wait_finish) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            op(&|| {
                started.send(()).unwrap();
                let _ = wait_finish.recv_timeout(PATIENCE);
            })
        });
        wait_started.recv().unwrap();
        (finish, t)
    }

    /// Runs `create_context(engine)` on a thread whose creation lasts until `finish` is sent.
    fn slow_creation(
        h: &Arc<Handles>,
        engine: usize,
        ctx: usize,
    ) -> (
        mpsc::Sender<()>,
        std::thread::JoinHandle<Result<usize, crate::ShimError>>,
    ) {
        let h = Arc::clone(h);
        held(move |hold| {
            h.create_context(engine, || {
                hold();
                Ok(ctx)
            })
        })
    }

    /// Runs `f` on a thread and says whether it returned within the patience.
    fn returns(f: impl FnOnce() + Send + 'static) -> bool {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        rx.recv_timeout(PATIENCE).is_ok()
    }

    #[test]
    fn a_context_being_created_stalls_no_call_and_no_free_of_other_handles() {
        let h = Arc::new(table(
            &[0x100, 0x200],
            &[(0x10, 0x100), (0x11, 0x100), (0x20, 0x200)],
        ));
        let (finish, creator) = slow_creation(&h, 0x100, 0x12);
        // Meanwhile: a call on another context of the same engine, a free of one (it waited
        // behind the creation once a reader-writer lock was held across it), a call after that
        // free, and a whole other engine freed.
        let h2 = Arc::clone(&h);
        assert!(returns(move || {
            h2.with_context(0x10, || Ok(())).unwrap();
            assert!(h2.free_context(0x11, |_| {}));
            h2.with_context(0x10, || Ok(())).unwrap();
            assert!(h2.free_engine(0x200, |_| {}, |_| {}));
        }));
        finish.send(()).unwrap();
        assert_eq!(creator.join().unwrap().unwrap(), 0x12);
        assert!(h.with_context(0x12, || Ok(())).is_ok());
    }

    #[test]
    fn an_engine_is_freed_after_a_creation_from_it_and_takes_the_new_context_along() {
        let h = Arc::new(table(&[0x100], &[]));
        let log: Log = Arc::default();
        let (finish, creator) = slow_creation(&h, 0x100, 0x20);
        let (h2, l1, l2) = (Arc::clone(&h), logger(&log, "ctx"), logger(&log, "engine"));
        let freer = std::thread::spawn(move || h2.free_engine(0x100, l1, l2));
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            log.lock().unwrap().is_empty(),
            "the free waits for the creation"
        );
        finish.send(()).unwrap();
        assert_eq!(creator.join().unwrap().unwrap(), 0x20);
        assert!(freer.join().unwrap());
        assert_eq!(*log.lock().unwrap(), [("ctx", 0x20), ("engine", 0x100)]);
        assert!(h.with_context(0x20, || Ok(())).is_err());
    }

    #[test]
    fn an_engine_free_waits_for_a_context_free_under_way() {
        let h = Arc::new(table(&[0x100], &[(0x10, 0x100)]));
        let log: Log = Arc::default();
        let (h1, l1) = (Arc::clone(&h), Arc::clone(&log));
        let (finish, ctx_free) = held(move |hold| {
            h1.free_context(0x10, |c| {
                hold();
                l1.lock().unwrap().push(("ctx", c));
            })
        });
        let (h2, l2, l3) = (Arc::clone(&h), logger(&log, "ctx"), logger(&log, "engine"));
        let engine_free = std::thread::spawn(move || h2.free_engine(0x100, l2, l3));
        std::thread::sleep(Duration::from_millis(100));
        assert!(log.lock().unwrap().is_empty(), "the engine went first");
        finish.send(()).unwrap();
        assert!(ctx_free.join().unwrap());
        assert!(engine_free.join().unwrap());
        assert_eq!(*log.lock().unwrap(), [("ctx", 0x10), ("engine", 0x100)]);
    }

    #[test]
    fn a_free_waits_for_the_calls_on_its_handle_and_refuses_new_ones() {
        let h = Arc::new(table(&[0x100], &[(0x10, 0x100)]));
        let log: Log = Arc::default();
        let (h1, l1) = (Arc::clone(&h), Arc::clone(&log));
        let (finish, call) = held(move |hold| {
            h1.with_context(0x10, || {
                hold();
                l1.lock().unwrap().push(("call", 0x10));
                Ok(())
            })
        });
        let (h2, l2) = (Arc::clone(&h), logger(&log, "ctx"));
        let freer = std::thread::spawn(move || h2.free_context(0x10, l2));
        // Once the free has begun (a sleep alone could be outlasted by a loaded machine's
        // scheduler), no new call is taken.
        while !h.lock().contexts[&0x10].1.dying {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            h.with_context(0x10, || Ok(())).is_err(),
            "a context being freed takes no new call"
        );
        finish.send(()).unwrap();
        call.join().unwrap().unwrap();
        assert!(freer.join().unwrap());
        assert_eq!(*log.lock().unwrap(), [("call", 0x10), ("ctx", 0x10)]);
    }

    /// A context free waiting for a call on its context, and its engine's free begun
    /// meanwhile: when the call returns, whichever free takes the lock first, the context is
    /// freed once and before its engine. (When the engine's free came first, it took the
    /// context along, and the context's free, finding its entry gone, freed it again.)
    #[test]
    fn a_context_free_and_its_engines_free_waiting_on_one_call_free_the_context_once() {
        let h = Arc::new(table(&[0x100], &[(0x10, 0x100)]));
        let log: Log = Arc::default();
        let busy = |n| h.lock().contexts.get_mut(&0x10).unwrap().1.busy = n;
        // A call on the context is under way.
        busy(1);
        let (h1, l1) = (Arc::clone(&h), logger(&log, "ctx"));
        let ctx_free = std::thread::spawn(move || h1.free_context(0x10, l1));
        // Once the entry is dying, the context's free waits on the condvar (it has let go of
        // the lock).
        while !h.lock().contexts[&0x10].1.dying {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The call returns, and the engine's free takes the lock before the context's free
        // wakes: the wake-up is held back (no notify) so that it comes first.
        busy(0);
        let (h2, l2, l3) = (Arc::clone(&h), logger(&log, "ctx"), logger(&log, "engine"));
        let (tx, rx) = mpsc::channel();
        let engine_free = std::thread::spawn(move || {
            let freed = h2.free_engine(0x100, l2, l3);
            let _ = tx.send(());
            freed
        });
        // It may return (it does not wait for a free of the context under way) or wait: both
        // are fine, as long as the context is freed once, before the engine.
        let _ = rx.recv_timeout(Duration::from_millis(200));
        h.released.notify_all();
        assert!(ctx_free.join().unwrap());
        assert!(engine_free.join().unwrap());
        assert_eq!(*log.lock().unwrap(), [("ctx", 0x10), ("engine", 0x100)]);
    }

    /// A context created at the address of one just freed, before that free has forgotten it
    /// (the allocator reuses the address as soon as `tinv_trt_context_free` returns): the new
    /// context stays live, and its engine's free frees it. (The free forgot the new entry:
    /// calls on the new context were refused, and its engine was freed before it.)
    #[test]
    fn a_context_created_at_the_address_of_one_being_freed_stays_live() {
        let h = Arc::new(table(&[0x100], &[(0x10, 0x100)]));
        let log: Log = Arc::default();
        let (h1, l1) = (Arc::clone(&h), Arc::clone(&log));
        assert!(h.free_context(0x10, move |c| {
            l1.lock().unwrap().push(("ctx", c));
            assert_eq!(h1.create_context(0x100, || Ok(0x10)).unwrap(), 0x10);
        }));
        assert!(
            h.with_context(0x10, || Ok(())).is_ok(),
            "the new context was forgotten"
        );
        assert!(h.free_engine(0x100, logger(&log, "ctx"), logger(&log, "engine")));
        assert_eq!(
            *log.lock().unwrap(),
            [("ctx", 0x10), ("ctx", 0x10), ("engine", 0x100)]
        );
    }

    /// A context free whose address the allocator reused for a new context, which a third
    /// thread is already freeing (waiting for a call on it), when the first free forgets its
    /// entry: only the first context's entry goes. (Matching on `freeing` alone, the first free
    /// forgot the new context: its free then freed nothing, and its engine's free did not wait
    /// for the call on it.)
    #[test]
    fn a_finished_free_does_not_forget_a_newer_context_being_freed() {
        let h = Arc::new(table(&[0x100], &[(0x10, 0x100)]));
        let log: Log = Arc::default();
        let (h1, l1) = (Arc::clone(&h), Arc::clone(&log));
        let second: Arc<Mutex<Option<std::thread::JoinHandle<bool>>>> = Arc::default();
        let s2 = Arc::clone(&second);
        assert!(h.free_context(0x10, move |c| {
            l1.lock().unwrap().push(("ctx", c));
            assert_eq!(h1.create_context(0x100, || Ok(0x10)).unwrap(), 0x10);
            // A call on the new context is under way, and its free waits for it.
            h1.lock().contexts.get_mut(&0x10).unwrap().1.busy = 1;
            let (h2, l2) = (Arc::clone(&h1), logger(&l1, "ctx2"));
            let t = std::thread::spawn(move || h2.free_context(0x10, l2));
            while !h1.lock().contexts[&0x10].1.freeing {
                std::thread::sleep(Duration::from_millis(1));
            }
            *s2.lock().unwrap() = Some(t);
        }));
        assert!(
            h.lock().contexts.contains_key(&0x10),
            "the first free forgot the new context"
        );
        // The call on the new context returns; its free goes ahead.
        h.lock().contexts.get_mut(&0x10).unwrap().1.busy = 0;
        h.released.notify_all();
        let t = second.lock().unwrap().take().unwrap();
        assert!(t.join().unwrap());
        assert!(h.free_engine(0x100, logger(&log, "orphan"), logger(&log, "engine")));
        assert_eq!(
            *log.lock().unwrap(),
            [("ctx", 0x10), ("ctx2", 0x10), ("engine", 0x100)]
        );
    }
}
