//! `tinv_set_log_callback`: the library's `log` records (a worker thread the OS refused, why
//! `TINV_BACKEND_AUTO` chose the CPU, what TensorRT said) handed to a C function, so a robot's
//! own logging (ROS 2's, syslog) sees them. Without a callback nothing is printed: a library does
//! not write to a host's stderr on its own.

use super::status::{ffi_boundary, Fail, Status};
use std::ffi::{c_char, c_void};
use std::sync::{OnceLock, PoisonError, RwLock};

/// `tinv_log_callback`: level (1 error … 5 trace), a NUL-terminated one-line message valid for
/// the call only, and the caller's `user_data`.
pub type LogCallback =
    Option<unsafe extern "C" fn(level: u32, message: *const c_char, user_data: *mut c_void)>;

#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(u32, *const c_char, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the pointer is the caller's, handed back to the caller's own function and never read
// here; the header requires that both may be used from any thread.
unsafe impl Send for Sink {}
// SAFETY: as for `Send`: nothing here dereferences `user_data`.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

struct CLogger;

impl log::Log for CLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Copied out so that the lock is not held while the callback runs (it may set a new one).
        let sink = *SINK.read().unwrap_or_else(PoisonError::into_inner);
        let Some(sink) = sink else { return };
        // log's levels are numbered as the header's: Error 1 … Trace 5.
        let level = record.level() as u32;
        let mut msg: Vec<u8> = format!("tinv: {}", record.args())
            .bytes()
            .map(|b| if b == 0 || b == b'\n' { b' ' } else { b })
            .collect();
        msg.push(0);
        // SAFETY: a function the caller registered with this signature; the message is
        // NUL-terminated and lives until the call returns, as the header promises.
        unsafe { (sink.callback)(level, msg.as_ptr().cast(), sink.user_data) };
    }

    fn flush(&self) {}
}

static LOGGER: CLogger = CLogger;
/// Whether `log::set_logger` took ours (it can be set once per process).
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Routes log records up to `max_level` (0 off … 5 trace) to `callback`; NULL stops it.
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
        let sink = callback.map(|callback| Sink {
            callback,
            user_data,
        });
        *SINK.write().unwrap_or_else(PoisonError::into_inner) = sink;
        log::set_max_level(if sink.is_some() {
            filter
        } else {
            log::LevelFilter::Off
        });
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
