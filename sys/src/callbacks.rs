//! C callbacks the shim calls: TensorRT's log into `log`, build progress into a Rust closure.

use crate::Progress;
use std::ffi::{c_char, c_void, CStr};

/// Routes TensorRT's log into `log` under target `tensorrt`.
pub(crate) unsafe extern "C" fn log_to_rust(_user: *mut c_void, severity: i32, msg: *const c_char) {
    if msg.is_null() {
        return;
    }
    // SAFETY: the shim passes a NUL-terminated string valid for this call.
    let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    let level = match severity {
        0 | 1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        _ => log::Level::Debug,
    };
    // A panicking logger must not unwind into C++ (that aborts the process): the message is
    // dropped instead.
    let _ = std::panic::catch_unwind(|| log::log!(target: "tensorrt", level, "{text}"));
}

/// C trampoline for build progress: `user` is a `*mut Progress`.
pub(crate) unsafe extern "C" fn progress_to_rust(
    user: *mut c_void,
    phase: *const c_char,
    step: i32,
    steps: i32,
) -> i32 {
    if user.is_null() || phase.is_null() {
        return 1;
    }
    // SAFETY: `user` is the `&mut Progress` passed by build_from_onnx_file, alive for the call.
    let callback = unsafe { &mut *user.cast::<Progress<'_>>() };
    // SAFETY: the shim passes a NUL-terminated phase name valid for this call.
    let phase = unsafe { CStr::from_ptr(phase) }.to_string_lossy();
    // A panicking closure must not unwind into C++ (that aborts the process): it cancels the
    // build instead.
    let go = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        callback(&phase, step, steps)
    }));
    i32::from(go.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_progress_closure_cancels_instead_of_unwinding_into_c() {
        let mut calls = 0;
        let mut f = |_: &str, _: i32, _: i32| -> bool {
            calls += 1;
            panic!("user code failed")
        };
        let mut progress: Progress<'_> = &mut f;
        let user = (&mut progress as *mut Progress<'_>).cast::<c_void>();
        // SAFETY: `user` points at a live `Progress`; the phase is NUL-terminated.
        let r = unsafe { progress_to_rust(user, c"build".as_ptr(), 1, 2) };
        assert_eq!(r, 0, "a panic cancels the build");
        let mut ok = |p: &str, s: i32, n: i32| p == "parse" && s == 1 && n == 2;
        let mut progress: Progress<'_> = &mut ok;
        let user = (&mut progress as *mut Progress<'_>).cast::<c_void>();
        // SAFETY: as above.
        assert_eq!(
            unsafe { progress_to_rust(user, c"parse".as_ptr(), 1, 2) },
            1
        );
        assert_eq!(calls, 1);
    }
}
