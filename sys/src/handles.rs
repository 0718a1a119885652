//! The live-handle table of a loaded [`Shim`](crate::Shim): every engine and context it handed
//! out and has not freed.
//!
//! Handles are plain integers (the objects' addresses), so each call checks its handle here
//! first: a forged, foreign or freed handle is an error (or ignored by the frees), never a
//! pointer dereferenced. A freed handle whose address the allocator has since given to a new
//! object passes. Locking:
//! - calls that use a handle hold the read lock while they run, so nothing they use is freed
//!   under them;
//! - frees take the write lock, so they wait for those calls;
//! - creating a context holds the read lock too (its engine cannot be freed meanwhile) plus a
//!   mutex that lets one creation run at a time (TensorRT asks callers to serialize calls on one
//!   object), and records the new context under a lock of its own. So a session that is being
//!   created (one context per path, each a TensorRT allocation) does not stall the enqueues of
//!   sessions already running, as it would under the write lock.

use crate::ShimError;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Handles {
    live: RwLock<Live>,
    /// Held by the one context creation that runs at a time.
    creating: Mutex<()>,
}

#[derive(Default)]
struct Live {
    engines: HashSet<usize>,
    /// Context → its engine. A mutex of its own so that creation inserts under the read lock.
    contexts: Mutex<HashMap<usize, usize>>,
}

/// A lock a panic left poisoned still guards consistent data here: every update is one insert
/// or remove.
fn relock<G>(r: Result<G, std::sync::PoisonError<G>>) -> G {
    r.unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unknown(what: &str, handle: usize) -> ShimError {
    ShimError::Argument(format!(
        "{what} handle {handle:#x} is not live in this shim (freed, or from elsewhere)"
    ))
}

impl Live {
    fn contexts(&self) -> MutexGuard<'_, HashMap<usize, usize>> {
        relock(self.contexts.lock())
    }

    /// Forgets engine `engine` and its live contexts, returning those (to free before it);
    /// `None` when it was not live.
    fn take_engine(&mut self, engine: usize) -> Option<Vec<usize>> {
        if !self.engines.remove(&engine) {
            return None;
        }
        let contexts = relock(self.contexts.get_mut());
        let orphans: Vec<usize> = contexts
            .iter()
            .filter(|&(_, &e)| e == engine)
            .map(|(&c, _)| c)
            .collect();
        for c in &orphans {
            contexts.remove(c);
        }
        Some(orphans)
    }
}

impl Handles {
    fn read(&self) -> RwLockReadGuard<'_, Live> {
        relock(self.live.read())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Live> {
        relock(self.live.write())
    }

    /// Records a new engine.
    pub(crate) fn add_engine(&self, engine: usize) {
        self.write().engines.insert(engine);
    }

    /// Runs `f` if `engine` is live, with the read lock held (the engine stays live meanwhile).
    pub(crate) fn with_engine<T>(
        &self,
        engine: usize,
        f: impl FnOnce() -> Result<T, ShimError>,
    ) -> Result<T, ShimError> {
        let live = self.read();
        if !live.engines.contains(&engine) {
            return Err(unknown("engine", engine));
        }
        f()
    }

    /// Runs `f` if `ctx` is live, with the read lock held (the context stays live meanwhile).
    pub(crate) fn with_context<T>(
        &self,
        ctx: usize,
        f: impl FnOnce() -> Result<T, ShimError>,
    ) -> Result<T, ShimError> {
        let live = self.read();
        if !live.contexts().contains_key(&ctx) {
            return Err(unknown("context", ctx));
        }
        f()
    }

    /// Runs `create` (which makes a context of `engine`) if `engine` is live, and records the
    /// context it returns. Other calls, on any handle, run meanwhile; frees wait.
    pub(crate) fn create_context(
        &self,
        engine: usize,
        create: impl FnOnce() -> Result<usize, ShimError>,
    ) -> Result<usize, ShimError> {
        let live = self.read();
        if !live.engines.contains(&engine) {
            return Err(unknown("engine", engine));
        }
        let one_at_a_time = relock(self.creating.lock());
        let ctx = create()?;
        live.contexts().insert(ctx, engine);
        drop(one_at_a_time);
        Ok(ctx)
    }

    /// Forgets `ctx` and passes it to `free`, once no call is using it; false (and `free` not
    /// called) when it is not live.
    pub(crate) fn free_context(&self, ctx: usize, free: impl FnOnce(usize)) -> bool {
        let mut live = self.write();
        if relock(live.contexts.get_mut()).remove(&ctx).is_none() {
            return false;
        }
        free(ctx);
        true
    }

    /// Forgets `engine` and its live contexts, passing each context to `free_context` and then
    /// the engine to `free_engine`, once no call is using them; false (nothing called) when the
    /// engine is not live.
    pub(crate) fn free_engine(
        &self,
        engine: usize,
        free_context: impl FnMut(usize),
        free_engine: impl FnOnce(usize),
    ) -> bool {
        let mut live = self.write();
        let Some(orphans) = live.take_engine(engine) else {
            return false;
        };
        orphans.into_iter().for_each(free_context);
        free_engine(engine);
        true
    }

    /// Frees everything still live, each engine's contexts before it (the shim's `Drop`).
    pub(crate) fn free_all(
        &mut self,
        mut free_context: impl FnMut(usize),
        mut free_engine: impl FnMut(usize),
    ) {
        let live = relock(self.live.get_mut());
        let engines: Vec<usize> = live.engines.iter().copied().collect();
        for e in engines {
            if let Some(orphans) = live.take_engine(e) {
                orphans.into_iter().for_each(&mut free_context);
                free_engine(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Handles;
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

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

    #[test]
    fn each_handle_is_freed_once_and_an_engines_contexts_with_it_first() {
        let h = table(
            &[0x100, 0x200],
            &[(0x10, 0x100), (0x20, 0x100), (0x30, 0x200)],
        );
        let freed = Mutex::new(Vec::new());
        let log = |what: &'static str| {
            let freed = &freed;
            move |x: usize| freed.lock().unwrap().push((what, x))
        };
        assert!(h.free_context(0x10, log("ctx")));
        assert!(
            !h.free_context(0x10, log("ctx")),
            "a second free is refused"
        );
        assert!(
            !h.free_context(0x99, log("ctx")),
            "a forged context is refused"
        );
        assert!(
            h.with_context(0x10, || Ok(())).is_err(),
            "a freed context is refused"
        );
        // Engine 0x100 goes with its remaining context, that context first; 0x200's stays.
        assert!(h.free_engine(0x100, log("ctx"), log("engine")));
        assert!(!h.free_engine(0x100, log("ctx"), log("engine")));
        assert!(!h.free_engine(0x999, log("ctx"), log("engine")));
        assert_eq!(
            *freed.lock().unwrap(),
            [("ctx", 0x10), ("ctx", 0x20), ("engine", 0x100)]
        );
        assert!(h.with_context(0x30, || Ok(())).is_ok());
        assert!(h.with_engine(0x100, || Ok(())).is_err());
        assert!(h
            .create_context(0x100, || panic!("not called for a freed engine"))
            .is_err());
        let mut h = h;
        freed.lock().unwrap().clear();
        h.free_all(log("ctx"), log("engine"));
        assert_eq!(*freed.lock().unwrap(), [("ctx", 0x30), ("engine", 0x200)]);
    }

    #[test]
    fn a_context_being_created_does_not_stall_calls_on_other_contexts() {
        let h = Arc::new(table(&[0x100], &[(0x10, 0x100)]));
        let (started, wait_started) = mpsc::channel();
        let (done, wait_done) = mpsc::channel::<()>();
        let creator = {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                h.create_context(0x100, || {
                    started.send(()).unwrap();
                    // The creation ends only once the other thread's call has run: under a
                    // lock that excluded it, this would time out.
                    wait_done
                        .recv_timeout(Duration::from_secs(20))
                        .map_err(|_| crate::ShimError::Argument("call stalled".into()))?;
                    Ok(0x20)
                })
            })
        };
        wait_started.recv().unwrap();
        h.with_context(0x10, || Ok(())).unwrap();
        done.send(()).unwrap();
        assert_eq!(creator.join().unwrap().unwrap(), 0x20);
        assert!(h.with_context(0x20, || Ok(())).is_ok());
    }

    #[test]
    fn an_engine_is_freed_only_after_a_context_being_created_from_it_is_recorded() {
        let h = Arc::new(table(&[0x100], &[]));
        let freed = Arc::new(Mutex::new(Vec::new()));
        let (started, wait_started) = mpsc::channel();
        let creator = {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                h.create_context(0x100, || {
                    started.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                    Ok(0x20)
                })
            })
        };
        wait_started.recv().unwrap();
        let (f1, f2) = (Arc::clone(&freed), Arc::clone(&freed));
        assert!(h.free_engine(
            0x100,
            move |c| f1.lock().unwrap().push(c),
            move |e| f2.lock().unwrap().push(e)
        ));
        assert_eq!(creator.join().unwrap().unwrap(), 0x20);
        // The free waited for the creation, so it freed the new context before its engine.
        assert_eq!(*freed.lock().unwrap(), [0x20, 0x100]);
    }
}
