//! The C ABI called from Rust, as several `capi_*` test files do.

/// This thread's last error message.
pub fn last_error() -> String {
    // SAFETY: the pointer is this thread's NUL-terminated message, read before the next call.
    unsafe { std::ffi::CStr::from_ptr(tinv::capi::tinv_last_error()) }
        .to_string_lossy()
        .into_owned()
}
