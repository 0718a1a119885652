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
    log::log!(target: "tensorrt", level, "{text}");
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
    i32::from(callback(&phase, step, steps))
}
