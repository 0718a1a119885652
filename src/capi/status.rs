//! The C ABI's one status type, the thread-local last-error message, and the boundary every
//! export runs inside (panics caught, errors turned into a status plus a message).

use crate::error::Error;
use crate::format::FormatError;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Every status a `tinv_*` function returns (`tinv_status` in `tinv.h`).
///
/// Numbers are grouped in families of 100 (argument 1xx, file/format 2xx, device/backend 3xx,
/// resources 4xx, internal 9xx) and are never reused: a code keeps its meaning in every later
/// version.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArg = 100,
    /// An argument is out of range (batch, depth, budget, threshold, mode, backend, option value).
    InvalidArg = 101,
    /// An output buffer is smaller than the result.
    BufferTooSmall = 102,
    /// The input element count is not `batch × C × H × W`.
    InputLength = 103,
    /// The input holds a NaN or an infinity.
    InvalidInput = 104,
    /// A handle is stale (freed), was never issued, or is of the other kind.
    InvalidHandle = 105,
    /// An options struct's `struct_size` is not one this library knows.
    OptionsVersion = 106,
    /// Another thread is inside a call on the same session.
    SessionBusy = 107,
    /// The logits came out NaN or infinite (an input far outside [0, 1], or non-finite weights).
    Numeric = 108,
    /// The model file could not be opened or read.
    Io = 200,
    /// The bytes are not a valid `.tinv` file.
    Format = 201,
    /// A tensor checksum did not match (`verify` option).
    Checksum = 202,
    /// The file is valid but does not describe a model this runtime can run.
    Model = 203,
    /// The requested backend is not built into this library or not usable on this machine.
    BackendUnavailable = 300,
    /// The backend failed while running.
    Backend = 301,
    /// The TensorRT engines were built for another model, TensorRT, GPU or exporter: rebuild.
    EnginesStale = 302,
    /// Host memory for a session (its arena or batch-sized buffers), or for the f32 copies of an
    /// f16 model's tensors, could not be allocated.
    OutOfMemory = 400,
    /// More than 2^20 live handles of one kind (models or sessions).
    OutOfHandles = 401,
    /// A Rust panic was caught at the boundary (a bug in tinv; please report it).
    Panic = 900,
    /// An internal invariant failed (a bug in tinv).
    Internal = 901,
}

/// Every status with its static description, in header order (tests iterate over it).
pub const ALL: &[(Status, &CStr)] = &[
    (Status::Ok, c"ok"),
    (Status::NullArg, c"a required pointer argument is NULL"),
    (Status::InvalidArg, c"an argument is out of range"),
    (Status::BufferTooSmall, c"an output buffer is too small"),
    (
        Status::InputLength,
        c"input element count is not batch x C x H x W",
    ),
    (Status::InvalidInput, c"input holds NaN or infinity"),
    (Status::InvalidHandle, c"stale, freed or foreign handle"),
    (
        Status::OptionsVersion,
        c"options struct_size not supported by this library",
    ),
    (Status::SessionBusy, c"session is in use by another thread"),
    (Status::Numeric, c"logits are NaN or infinite"),
    (Status::Io, c"model file could not be read"),
    (Status::Format, c"not a valid .tinv file"),
    (Status::Checksum, c"checksum mismatch"),
    (Status::Model, c"model not supported by this runtime"),
    (
        Status::BackendUnavailable,
        c"backend not built or not available",
    ),
    (Status::Backend, c"backend failed"),
    (
        Status::EnginesStale,
        c"engines built for another model, TensorRT, GPU or exporter",
    ),
    (Status::OutOfMemory, c"out of memory"),
    (Status::OutOfHandles, c"too many live handles"),
    (Status::Panic, c"internal panic caught at the C boundary"),
    (Status::Internal, c"internal error"),
];

impl Status {
    /// The status for a raw code, if it is one.
    pub fn from_code(code: u32) -> Option<Status> {
        ALL.iter().map(|(s, _)| *s).find(|s| *s as u32 == code)
    }

    /// Static NUL-terminated text for the status.
    pub fn text(self) -> &'static CStr {
        ALL.iter()
            .find(|(s, _)| *s == self)
            .map_or(c"unknown status", |(_, t)| t)
    }
}

/// A failure inside an export: the status and its one-line message.
#[derive(Debug)]
pub struct Fail {
    /// The status returned to the caller.
    pub status: Status,
    /// The message `tinv_last_error()` returns.
    pub msg: String,
}

impl Fail {
    /// A failure with `status` and `msg`.
    pub fn new(status: Status, msg: impl Into<String>) -> Fail {
        Fail {
            status,
            msg: msg.into(),
        }
    }
    /// `TINV_ERR_NULL_ARG` naming the argument.
    pub fn null(function: &str, arg: &str) -> Fail {
        Fail::new(
            Status::NullArg,
            format!("{function}: argument '{arg}' is NULL"),
        )
    }
    /// `TINV_ERR_INVALID_ARG`: a pointer not aligned for its type, naming the argument.
    pub fn misaligned(function: &str, arg: &str) -> Fail {
        Fail::new(
            Status::InvalidArg,
            format!("{function}: argument '{arg}' is misaligned for its type"),
        )
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        let status = match &e {
            Error::Io { .. } => Status::Io,
            Error::Format {
                error:
                    FormatError::ChecksumMismatch { .. }
                    | FormatError::MetaChecksumMismatch { .. }
                    | FormatError::ContentHashMismatch { .. },
                ..
            } => Status::Checksum,
            Error::Format { .. } => Status::Format,
            Error::Model { .. } => Status::Model,
            Error::InvalidArgument(_) => Status::InvalidArg,
            Error::InputLength(_) => Status::InputLength,
            Error::BufferTooSmall(_) => Status::BufferTooSmall,
            Error::InvalidInput(_) => Status::InvalidInput,
            Error::Backend(_) => Status::Backend,
            Error::EnginesStale(_) => Status::EnginesStale,
            Error::OutOfMemory(_) => Status::OutOfMemory,
            Error::Numeric(_) => Status::Numeric,
            Error::Internal(_) => Status::Internal,
        };
        Fail::new(status, e.to_string())
    }
}

/// Capacity of the last-error buffer, NUL included; longer messages are cut at a character
/// boundary and end in "...".
const MSG_CAP: usize = 1024;

thread_local! {
    /// This thread's last error message, NUL-terminated; starts with NUL after a successful call.
    /// A fixed array rather than a `Vec`: a thread-local without `Drop` registers no destructor,
    /// so not even a thread's first call into tinv allocates on the success path.
    static LAST_ERROR: RefCell<[u8; MSG_CAP]> = const { RefCell::new([0; MSG_CAP]) };
}

static EMPTY: &CStr = c"";

/// A message byte as it may appear in a one-line C string: NUL and line breaks become spaces.
pub fn one_line(b: u8) -> u8 {
    if matches!(b, 0 | b'\n' | b'\r') {
        b' '
    } else {
        b
    }
}

/// Stores `msg` as this thread's last error (NULs and line breaks, from a path perhaps, become
/// spaces: the message is one C string of one line); `""` clears it.
pub fn set_last_error(msg: &str) {
    // `try_with` fails only while the thread is being torn down; the message is then dropped.
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            let e = &mut *e;
            let mut len = msg.len();
            let cut = len > MSG_CAP - 1;
            if cut {
                len = MSG_CAP - 4;
                while !msg.is_char_boundary(len) {
                    len -= 1;
                }
            }
            let (head, tail) = e.split_at_mut(len);
            for (d, s) in head.iter_mut().zip(msg.bytes()) {
                *d = one_line(s);
            }
            let end: &[u8] = if cut { b"...\0" } else { b"\0" };
            if let Some(t) = tail.get_mut(..end.len()) {
                t.copy_from_slice(end);
            }
        }
    });
}

/// Pointer to this thread's last error, valid until this thread's next call into tinv.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|e| match e.try_borrow() {
            // The buffer always holds a NUL: cleared, or ended by `set_last_error`.
            Ok(b) => b.as_ptr().cast(),
            _ => EMPTY.as_ptr(),
        })
        .unwrap_or(EMPTY.as_ptr())
}

thread_local! {
    /// How many exports this thread is inside (a log callback may call `tinv_set_log_callback`).
    static INSIDE: Cell<u32> = const { Cell::new(0) };
}

/// Marks this thread as inside an export while it lives: the thread cannot be cancelled (see
/// [`boundary`]) and a panic on it goes to the log, not to stderr ([`quiet_panics`]).
struct Inside {
    #[cfg(target_os = "linux")]
    cancel_state: std::ffi::c_int,
}

#[cfg(target_os = "linux")]
extern "C" {
    // POSIX; in glibc and musl, which std links. Not a cancellation point itself.
    fn pthread_setcancelstate(state: std::ffi::c_int, old: *mut std::ffi::c_int)
        -> std::ffi::c_int;
}
/// `PTHREAD_CANCEL_DISABLE` in glibc's and musl's <pthread.h> (every Linux architecture).
#[cfg(target_os = "linux")]
const PTHREAD_CANCEL_DISABLE: std::ffi::c_int = 1;

impl Inside {
    fn enter() -> Inside {
        let _ = INSIDE.try_with(|d| d.set(d.get() + 1));
        #[cfg(target_os = "linux")]
        {
            let mut cancel_state = 0;
            // SAFETY: plain libc call on this thread with a valid out-pointer.
            unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut cancel_state) };
            Inside { cancel_state }
        }
        #[cfg(not(target_os = "linux"))]
        Inside {}
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        {
            let mut old = 0;
            // SAFETY: as in `enter`; restores the caller's state.
            unsafe { pthread_setcancelstate(self.cancel_state, &mut old) };
        }
        let _ = INSIDE.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Installs, once, a panic hook that sends a panic on a thread inside an export, or on one of
/// tinv's worker threads, to the log (the C caller's log callback, level 1) instead of Rust's
/// default printing to stderr: the header promises that the library prints nothing, and a
/// backtrace printed under `RUST_BACKTRACE` would stall a real-time thread. Any other panic
/// goes to the hook that was there before. (A hook the host installs later replaces this one.)
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // `set_hook` panics on a panicking thread (a Rust host freeing a handle in a `Drop` during
    // an unwind): the next export installs it instead.
    if std::thread::panicking() {
        return;
    }
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = INSIDE.try_with(|d| d.get() > 0).unwrap_or(false)
                || crate::cpu::pool::on_worker_thread();
            if ours {
                log::error!("internal panic (a bug in tinv; please report it): {info}");
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one export's body: catches a panic (→ [`Status::Panic`]), records the message of a
/// failure as the thread's last error, clears it on success. Meanwhile the thread's POSIX
/// cancellation is disabled: a cancel that arrives then takes effect at the thread's first
/// cancellation point after the call (glibc's forced unwind cannot pass through Rust frames: it
/// would abort the process), and a panic goes to the log (`quiet_panics`).
pub fn boundary(function: &str, body: impl FnOnce() -> Result<(), Fail>) -> Status {
    quiet_panics();
    let _inside = Inside::enter();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error("");
            Status::Ok
        }
        Ok(Err(f)) => {
            set_last_error(&f.msg);
            f.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            set_last_error(&format!("{function}: internal panic: {what}"));
            Status::Panic
        }
    }
}

/// Every export's body goes through this macro: NULL and alignment checks of the named pointer
/// arguments (→ `TINV_ERR_NULL_ARG` / `TINV_ERR_INVALID_ARG` naming the argument; writing
/// through a misaligned pointer would be undefined behaviour in Rust), then the body inside
/// [`boundary`]. Handles are opaque types of alignment 1: never misaligned.
macro_rules! ffi_boundary {
    ($function:expr, [$($ptr:ident),*], $body:block) => {
        $crate::capi::status::boundary($function, move || {
            $(
                if $ptr.is_null() {
                    return Err($crate::capi::status::Fail::null($function, stringify!($ptr)));
                }
                if !$ptr.is_aligned() {
                    return Err($crate::capi::status::Fail::misaligned($function, stringify!($ptr)));
                }
            )*
            $body
        })
    };
}
pub(crate) use ffi_boundary;

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        // SAFETY: the pointer is this thread's NUL-terminated message, read before any other call.
        unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panic_becomes_status_and_message() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let s = boundary("tinv_test", || panic!("boom {}", 7));
        std::panic::set_hook(prev);
        assert_eq!(s, Status::Panic);
        assert_eq!(last(), "tinv_test: internal panic: boom 7");
        assert_eq!(boundary("tinv_test", || Ok(())), Status::Ok);
        assert_eq!(last(), "");
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        // 1023 bytes and the NUL fill the 1024-byte buffer: kept whole.
        let fits = "a".repeat(1023);
        set_last_error(&fits);
        assert_eq!(last(), fits);
        // One byte more: the first 1020 bytes and "...".
        set_last_error(&"b".repeat(1024));
        assert_eq!(last(), format!("{}...", "b".repeat(1020)));
        // A two-byte character across byte 1020 goes whole, not half of it.
        set_last_error(&format!("{}é{}", "c".repeat(1019), "d".repeat(10)));
        assert_eq!(last(), format!("{}...", "c".repeat(1019)));
        set_last_error("a\nb\rc\0d");
        assert_eq!(last(), "a b c d");
    }

    #[test]
    fn null_check_names_the_argument() {
        let p: *const u8 = std::ptr::null();
        let q: *const u8 = b"x".as_ptr();
        let s = ffi_boundary!("tinv_f", [q, p], { Ok(()) });
        assert_eq!(s, Status::NullArg);
        assert_eq!(last(), "tinv_f: argument 'p' is NULL");
    }

    #[test]
    fn alignment_check_names_the_argument() {
        let words = [0usize; 2];
        // One byte into a usize: a pointer no `usize` may be written through.
        let odd = words.as_ptr().cast::<u8>().wrapping_add(1).cast::<usize>();
        let s = ffi_boundary!("tinv_f", [odd], { Ok(()) });
        assert_eq!(s, Status::InvalidArg);
        assert_eq!(last(), "tinv_f: argument 'odd' is misaligned for its type");
        let fine = words.as_ptr();
        assert_eq!(ffi_boundary!("tinv_f", [fine], { Ok(()) }), Status::Ok);
    }

    #[test]
    fn codes_are_unique_and_families_hold() {
        for (i, (a, _)) in ALL.iter().enumerate() {
            assert_eq!(Status::from_code(*a as u32), Some(*a));
            for (b, _) in &ALL[i + 1..] {
                assert_ne!(*a as u32, *b as u32);
            }
        }
        // Header order is numeric order, so each family of a hundred is one run: the resources
        // (4xx) hold no bug (9xx) and the bugs hold nothing else.
        for w in ALL.windows(2) {
            assert!(
                (w[0].0 as u32) < (w[1].0 as u32),
                "{:?} before {:?}",
                w[0].0,
                w[1].0
            );
        }
        let bugs: Vec<_> = ALL
            .iter()
            .filter(|(s, _)| *s as u32 >= 900)
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(bugs, [Status::Panic, Status::Internal]);
        assert_eq!(Status::OutOfHandles as u32 / 100, 4);
        assert_eq!(Status::from_code(5), None);
        assert_eq!(Status::Checksum.text(), c"checksum mismatch");
    }

    #[test]
    fn checksum_error_maps_to_its_own_status() {
        let e = Error::Format {
            path: "m.tinv".into(),
            error: FormatError::ChecksumMismatch {
                tensor: "stem.cls".into(),
                expected: 1,
                found: 2,
            },
        };
        assert_eq!(Fail::from(e).status, Status::Checksum);
        let e = Error::Format {
            path: "m.tinv".into(),
            error: FormatError::MetaChecksumMismatch {
                expected: Some(1),
                found: 2,
            },
        };
        assert_eq!(Fail::from(e).status, Status::Checksum);
        assert_eq!(
            Fail::from(Error::Backend("x".into())).status,
            Status::Backend
        );
        // Engines built for something else: the one backend failure a program can fix itself.
        let stale = Fail::from(Error::EnginesStale("field `tensorrt`".into()));
        assert_eq!(
            (stale.status, stale.status as u32),
            (Status::EnginesStale, 302)
        );
        // An invariant that failed is a bug, reported as one (it came back as BACKEND).
        assert_eq!(
            Fail::from(Error::Internal("x".into())).status,
            Status::Internal
        );
    }
}
