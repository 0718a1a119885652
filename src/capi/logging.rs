//! `tinv_set_log_callback`: the library's `log` records (a worker thread the OS refused, why
//! `TINV_BACKEND_AUTO` chose the CPU, what TensorRT said) handed to a C function, so a robot's
//! own logging (ROS 2's, syslog) sees them. Without a callback nothing is printed: a library does
//! not write to a host's stderr on its own.

use super::status::{ffi_boundary, one_line, Fail, Status};
use std::cell::RefCell;
use std::ffi::{c_char, c_void};
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

/// `tinv_log_callback`: level (1 error … 5 trace), a NUL-terminated one-line message valid for
/// the call only, and the caller's `user_data`.
pub type LogCallback =
    Option<unsafe extern "C" fn(level: u32, message: *const c_char, user_data: *mut c_void)>;

struct Sink {
    callback: unsafe extern "C" fn(u32, *const c_char, *mut c_void),
    user_data: *mut c_void,
    /// The level this sink was registered with; `log::max_level` only filters early.
    max_level: log::LevelFilter,
}

// SAFETY: the pointer is the caller's, handed back to the caller's own function and never read
// here; the header requires that both may be used from any thread.
unsafe impl Send for Sink {}
// SAFETY: as for `Send`: nothing here dereferences `user_data`.
unsafe impl Sync for Sink {}

/// The registered sink. Each call holds a clone of its `Arc` while the callback runs, so the
/// strong count tells `tinv_set_log_callback` when the calls to a replaced sink have returned.
static SINK: RwLock<Option<Arc<Sink>>> = RwLock::new(None);

thread_local! {
    /// The sinks this thread is inside a call to (the callback may replace the sink, and must
    /// not wait for its own call to return).
    static CALLING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Waits until no thread but this one is inside a call to `old` (no new call can start: it is
/// no longer in `SINK`). Logging is rare and callbacks short, so a sleeping poll suffices.
fn wait_for_calls(old: Arc<Sink>) {
    let own = CALLING
        .try_with(|c| {
            let key = Arc::as_ptr(&old) as usize;
            c.borrow().iter().filter(|&&k| k == key).count()
        })
        .unwrap_or(0);
    while Arc::strong_count(&old) > 1 + own {
        std::thread::sleep(Duration::from_micros(50));
    }
    // Pairs with the Release decrement of each call's clone: the callbacks' effects are visible
    // to the caller, who may now free `user_data`.
    fence(Ordering::Acquire);
}

struct CLogger;

impl log::Log for CLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Cloned out so that the lock is not held while the callback runs (it may set a new
        // one); the clone marks the call as in flight for `wait_for_calls`.
        let sink = SINK.read().unwrap_or_else(PoisonError::into_inner).clone();
        let Some(sink) = sink else { return };
        if record.level() > sink.max_level {
            return;
        }
        // log's levels are numbered as the header's: Error 1 … Trace 5.
        let level = record.level() as u32;
        let mut msg: Vec<u8> = format!("tinv: {}", record.args())
            .bytes()
            .map(one_line)
            .collect();
        msg.push(0);
        let key = Arc::as_ptr(&sink) as usize;
        let _ = CALLING.try_with(|c| c.borrow_mut().push(key));
        // SAFETY: a function the caller registered with this signature; the message is
        // NUL-terminated and lives until the call returns, as the header promises.
        unsafe { (sink.callback)(level, msg.as_ptr().cast(), sink.user_data) };
        let _ = CALLING.try_with(|c| c.borrow_mut().pop());
    }

    fn flush(&self) {}
}

static LOGGER: CLogger = CLogger;
/// Whether `log::set_logger` took ours (it can be set once per process).
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Routes log records up to `max_level` (0 off … 5 trace) to `callback`; NULL stops it.
/// Returns once no other thread is inside a call to the callback it replaced.
///
/// # Safety
/// `callback`, if not NULL, must be callable from any thread with `user_data` until it is
/// replaced or the process ends.
#[no_mangle]
pub unsafe extern "C" fn tinv_set_log_callback(
    callback: LogCallback,
    user_data: *mut c_void,
    max_level: u32,
) -> Status {
    ffi_boundary!("tinv_set_log_callback", [], {
        // LevelFilter counts the same way, from Off (0) to Trace (5).
        let Some(filter) = usize::try_from(max_level)
            .ok()
            .and_then(|n| log::LevelFilter::iter().nth(n))
        else {
            return Err(Fail::new(
                Status::InvalidArg,
                format!("max_level {max_level} not in 0 (off) ..= 5 (trace)"),
            ));
        };
        if !*INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok()) {
            return Err(Fail::new(
                Status::InvalidArg,
                "another logger is already installed in this process (a Rust host's); tinv's \
                 records go to it",
            ));
        }
        let sink = callback.map(|callback| {
            Arc::new(Sink {
                callback,
                user_data,
                max_level: filter,
            })
        });
        let old = {
            let mut slot = SINK.write().unwrap_or_else(PoisonError::into_inner);
            // With the swap, under the lock: the level is the last installed sink's even when
            // an earlier call, waiting below for its old callback, returns after a later one
            // (set after the wait, a removal that waited turned off the next callback's records).
            log::set_max_level(sink.as_ref().map_or(log::LevelFilter::Off, |s| s.max_level));
            std::mem::replace(&mut *slot, sink)
        };
        if let Some(old) = old {
            wait_for_calls(old);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    /// The header's numbering (1 error … 5 trace, 0 off) is log's own, which the code relies on.
    #[test]
    fn levels_are_numbered_as_the_header_says() {
        assert_eq!(
            [log::Level::Error, log::Level::Trace].map(|l| l as u32),
            [1, 5]
        );
        let f: Vec<_> = log::LevelFilter::iter().collect();
        assert_eq!(
            (f.len(), f[0], f[2], f[5]),
            (
                6,
                log::LevelFilter::Off,
                log::LevelFilter::Warn,
                log::LevelFilter::Trace
            )
        );
    }
}
