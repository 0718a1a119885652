//! The C ABI of `libtinv.so` / `libtinv.a`, declared in `include/tinv.h` (read that for the
//! contract of each function; docs/C_API.md for building and linking).
//!
//! Shape of every export: `tinv_<object>_<verb>`, arguments in the order object, inputs,
//! outputs, each buffer followed by its length, a [`Status`] returned, outputs written only on
//! success. Each body runs inside `status::ffi_boundary!`, which checks the pointer arguments
//! for NULL and catches panics. Handles are registry ids, never pointers (see `registry.rs`).

// Everything here handles values a C caller chose: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod logging;
mod registry;
mod session;
pub mod status;

pub use logging::*;
pub use session::*;
pub use status::Status;

use crate::model::{Model, OpenOptions};
use registry::{Kind, Registry};
use status::{ffi_boundary, Fail};
use std::ffi::{c_char, c_void, CStr};
use std::sync::Arc;

/// Opaque model handle (`tinv_model` in C). Never dereferenced: its address is a registry id.
#[repr(C)]
pub struct TinvModel {
    _opaque: [u8; 0],
}

/// Opaque session handle (`tinv_session` in C). Never dereferenced: its address is a registry id.
#[repr(C)]
pub struct TinvSession {
    _opaque: [u8; 0],
}

/// `TINV_BACKEND_AUTO`: TensorRT when built in and the model's engines open, else the CPU
/// (decided when the model is opened; `tinv_model_backend` reports the result).
pub const BACKEND_AUTO: u32 = 0;
/// `TINV_BACKEND_CPU`: the CPU reference backend.
pub const BACKEND_CPU: u32 = 1;
/// `TINV_BACKEND_TENSORRT`: NVIDIA TensorRT.
pub const BACKEND_TENSORRT: u32 = 2;

/// Options for opening a model (`tinv_model_options`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModelOptions {
    /// `sizeof(tinv_model_options)`; the only value accepted today is `size_of::<ModelOptions>()`.
    pub struct_size: u32,
    /// A `tinv_backend` value.
    pub backend: u32,
    /// Nonzero: recompute every tensor checksum at open.
    pub verify: u32,
    /// Zero (reserved for future flags).
    pub reserved: u32,
    /// Directory of built TensorRT engines; NULL = `plans/` beside the model file
    /// (`tinv_model_open`), none (`tinv_model_open_bytes`). Unused by the CPU backend.
    pub engines_dir: *const c_char,
}

/// What a model handle holds.
pub(crate) struct ModelObj {
    pub(crate) model: Arc<Model>,
    /// What every session on this model runs on: `Cpu` or `TensorRt`, decided at open (an
    /// `AUTO` request resolved there), never `Auto`.
    pub(crate) backend: crate::Backend,
    /// Where the TensorRT engines are (absolute), if anywhere.
    pub(crate) engines: Option<std::path::PathBuf>,
}

pub(crate) static MODELS: Registry<ModelObj> = Registry::new(Kind::Model);

/// `TINV_VERSION_STRING`, e.g. `"0.1.0"`.
#[no_mangle]
pub extern "C" fn tinv_version_string() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// `major × 1 000 000 + minor × 1000 + patch` of this library (`TINV_VERSION_NUMBER`).
#[no_mangle]
pub extern "C" fn tinv_version_number() -> u32 {
    let p = |s: &str| s.parse::<u32>().unwrap_or(0);
    p(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + p(env!("CARGO_PKG_VERSION_MINOR")) * 1000
        + p(env!("CARGO_PKG_VERSION_PATCH"))
}

/// Static text for a status code (`"unknown status"` for a code that is not one).
#[no_mangle]
pub extern "C" fn tinv_status_str(status: u32) -> *const c_char {
    Status::from_code(status)
        .map_or(c"unknown status", Status::text)
        .as_ptr()
}

/// This thread's last error message: `""` after a successful call.
#[no_mangle]
pub extern "C" fn tinv_last_error() -> *const c_char {
    status::last_error_ptr()
}

/// Default model options.
#[no_mangle]
pub extern "C" fn tinv_model_options_default() -> ModelOptions {
    ModelOptions {
        struct_size: std::mem::size_of::<ModelOptions>() as u32,
        backend: BACKEND_AUTO,
        verify: 0,
        reserved: 0,
        engines_dir: std::ptr::null(),
    }
}

/// Reads an options struct after checking its `struct_size`; NULL = `default`.
///
/// # Safety
/// `p` is NULL or points to a readable `T` whose first field is a `u32` struct size.
pub(crate) unsafe fn read_options<T: Copy>(p: *const T, default: T, what: &str) -> Result<T, Fail> {
    if p.is_null() {
        return Ok(default);
    }
    if !p.is_aligned() {
        return Err(Fail::new(
            Status::InvalidArg,
            format!("{what} pointer is misaligned"),
        ));
    }
    // SAFETY: non-null and aligned; the caller passes a pointer to at least the leading u32.
    let size = unsafe { p.cast::<u32>().read() };
    if size as usize != std::mem::size_of::<T>() {
        return Err(Fail::new(
            Status::OptionsVersion,
            format!(
                "{what}.struct_size is {size}, this library (tinv {}) knows {} (fill it with {what}_default())",
                env!("CARGO_PKG_VERSION"),
                std::mem::size_of::<T>()
            ),
        ));
    }
    // SAFETY: the caller declared a struct of exactly this size and layout.
    Ok(unsafe { p.read() })
}

/// The backend requested in `o` (validated by [`open_options`] first).
fn requested_backend(o: &ModelOptions) -> crate::Backend {
    match o.backend {
        BACKEND_CPU => crate::Backend::Cpu,
        BACKEND_AUTO => crate::Backend::Auto,
        _ => crate::Backend::TensorRt,
    }
}

/// The engines folder of `o`, made absolute (so a later `chdir` changes nothing); when NULL,
/// `plans/` beside the model file for a model opened from a file, none for one from memory.
fn engines_folder(o: &ModelOptions, model: &Model) -> Result<Option<std::path::PathBuf>, Fail> {
    let explicit = if o.engines_dir.is_null() {
        None
    } else {
        // SAFETY: a non-null `engines_dir` is a NUL-terminated string by the header's contract.
        let bytes = unsafe { CStr::from_ptr(o.engines_dir) }.to_bytes();
        if bytes.is_empty() {
            return Err(Fail::new(
                Status::InvalidArg,
                "tinv_model_options.engines_dir is empty (NULL means the default folder)",
            ));
        }
        Some(os_path(bytes)?)
    };
    crate::backend::engines_dir(model, explicit.as_deref())
        .map(|d| {
            std::path::absolute(&d).map_err(|e| {
                Fail::new(
                    Status::InvalidArg,
                    format!("engines folder {}: {e}", d.display()),
                )
            })
        })
        .transpose()
}

fn open_options(o: &ModelOptions) -> Result<OpenOptions, Fail> {
    match o.backend {
        BACKEND_AUTO | BACKEND_CPU => {}
        BACKEND_TENSORRT if cfg!(feature = "tensorrt") => {}
        BACKEND_TENSORRT => {
            return Err(Fail::new(
                Status::BackendUnavailable,
                "TensorRT backend not built/available (this libtinv has the CPU backend only)",
            ))
        }
        b => {
            return Err(Fail::new(
                Status::InvalidArg,
                format!("backend {b} is not a tinv_backend"),
            ))
        }
    }
    if o.reserved != 0 {
        return Err(Fail::new(
            Status::InvalidArg,
            "tinv_model_options.reserved must be 0",
        ));
    }
    Ok(OpenOptions {
        verify: o.verify != 0,
    })
}

/// Decides the model's backend (opening its TensorRT engines when that is the answer, so a
/// missing or unusable engines folder fails here, not at `tinv_session_open`), then registers it.
fn register_model(model: Model, o: &ModelOptions, out: *mut *mut TinvModel) -> Result<(), Fail> {
    let requested = requested_backend(o);
    // Only a backend that may use TensorRT reads `engines_dir` (a CPU-only build's AUTO is the
    // CPU; its TENSORRT was refused by `open_options`).
    let engines = if requested == crate::Backend::Cpu || !cfg!(feature = "tensorrt") {
        None
    } else {
        engines_folder(o, &model)?
    };
    // The default folder goes to `resolve` as not named, so that its absence stays a debug
    // record, as for the Rust API: most CPU machines have no engines beside the model.
    let named = if o.engines_dir.is_null() {
        None
    } else {
        engines.as_deref()
    };
    let backend = crate::backend::resolve(&model, requested, named).map_err(|e| match e {
        // Its own status: the fix (rebuild) is one a program can apply.
        crate::Error::EnginesStale(_) => Fail::from(e),
        e => Fail::new(Status::BackendUnavailable, e.to_string()),
    })?;
    let h = MODELS.insert(ModelObj {
        model: Arc::new(model),
        backend,
        engines,
    })?;
    // SAFETY: `out` was checked non-null by the boundary; the caller provides a writable slot.
    unsafe { out.write(h as *mut TinvModel) };
    Ok(())
}

/// Opens a `.tinv` file (memory-mapped) → `*out`.
///
/// # Safety
/// `path` is a NUL-terminated string; `options` is NULL or a valid options struct; `out` is
/// writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_open(
    path: *const c_char,
    options: *const ModelOptions,
    out: *mut *mut TinvModel,
) -> Status {
    ffi_boundary!("tinv_model_open", [path, out], {
        // SAFETY: caller contract (documented in tinv.h).
        let o =
            unsafe { read_options(options, tinv_model_options_default(), "tinv_model_options") }?;
        let opts = open_options(&o)?;
        // SAFETY: `path` is non-null and NUL-terminated by contract.
        let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
        let model = Model::open(os_path(bytes)?, &opts)?;
        register_model(model, &o, out)
    })
}

/// Opens a model from `len` bytes at `data` (copied; the buffer may be freed after the call).
///
/// # Safety
/// `data` points to `len` readable bytes; `options` is NULL or valid; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_open_bytes(
    data: *const c_void,
    len: usize,
    options: *const ModelOptions,
    out: *mut *mut TinvModel,
) -> Status {
    ffi_boundary!("tinv_model_open_bytes", [data, out], {
        // SAFETY: caller contract.
        let o =
            unsafe { read_options(options, tinv_model_options_default(), "tinv_model_options") }?;
        let opts = open_options(&o)?;
        if len > isize::MAX as usize {
            return Err(Fail::new(
                Status::InvalidArg,
                format!("len {len} exceeds isize::MAX"),
            ));
        }
        // SAFETY: `data` is non-null and points to `len` readable bytes by contract.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        register_model(Model::from_bytes(bytes, &opts)?, &o, out)
    })
}

#[cfg(unix)]
fn os_path(bytes: &[u8]) -> Result<std::path::PathBuf, Fail> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::ffi::OsStr::from_bytes(bytes).into())
}

#[cfg(not(unix))]
fn os_path(bytes: &[u8]) -> Result<std::path::PathBuf, Fail> {
    std::str::from_utf8(bytes)
        .map(Into::into)
        .map_err(|_| Fail::new(Status::InvalidArg, "path is not valid UTF-8"))
}

/// Unregisters a model; NULL is a no-op. Sessions opened on it keep the weights alive.
///
/// # Safety
/// None beyond passing a value this library returned (any value is checked).
#[no_mangle]
pub unsafe extern "C" fn tinv_model_free(model: *mut TinvModel) -> Status {
    ffi_boundary!("tinv_model_free", [], {
        if !model.is_null() {
            drop(MODELS.remove(model as usize)?);
        }
        Ok(())
    })
}

pub(crate) fn model_of(h: *const TinvModel) -> Result<Arc<ModelObj>, Fail> {
    MODELS.get(h as usize)
}

/// Writes `v` to `out`. SAFETY contract: `out` is non-null and writable (boundary-checked).
unsafe fn put<T>(out: *mut T, v: T) {
    // SAFETY: see the function contract.
    unsafe { out.write(v) }
}

/// Input shape: channels, height, width (inputs are f32 CHW, values in [0, 1]).
///
/// # Safety
/// Output pointers are writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_input_shape(
    model: *const TinvModel,
    channels: *mut usize,
    height: *mut usize,
    width: *mut usize,
) -> Status {
    ffi_boundary!(
        "tinv_model_input_shape",
        [model, channels, height, width],
        {
            let m = model_of(model)?;
            let c = m.model.config();
            // SAFETY: all three were checked non-null; writable by contract.
            unsafe {
                put(channels, c.channels);
                put(height, c.image_h);
                put(width, c.image_w);
            }
            Ok(())
        }
    )
}

/// Floats per input (`C × H × W`).
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_input_len(model: *const TinvModel, out: *mut usize) -> Status {
    ffi_boundary!("tinv_model_input_len", [model, out], {
        let m = model_of(model)?;
        // SAFETY: checked non-null; writable by contract.
        unsafe { put(out, m.model.config().input_len()) };
        Ok(())
    })
}

/// `TINV_PIXELS_GRAY8`: one byte per pixel.
pub const PIXELS_GRAY8: u32 = 0;
/// `TINV_PIXELS_RGB8`: red, green, blue.
pub const PIXELS_RGB8: u32 = 1;
/// `TINV_PIXELS_BGR8`: blue, green, red.
pub const PIXELS_BGR8: u32 = 2;
/// `TINV_PIXELS_RGBA8`: red, green, blue, alpha (dropped).
pub const PIXELS_RGBA8: u32 = 3;
/// `TINV_PIXELS_BGRA8`: blue, green, red, alpha (dropped).
pub const PIXELS_BGRA8: u32 = 4;

/// Converts an 8-bit image of the model's size into its input (`crate::pixels::to_input`).
///
/// # Safety
/// `pixels` is NULL or points to `stride × (height − 1) + width × bytes per pixel` readable
/// bytes; `out` is NULL or points to `out_len` writable floats.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn tinv_model_image_input(
    model: *const TinvModel,
    pixels: *const u8,
    width: usize,
    height: usize,
    stride: usize,
    format: u32,
    out: *mut f32,
    out_len: usize,
) -> Status {
    use crate::pixels::{to_input, PixelFormat};
    ffi_boundary!("tinv_model_image_input", [model, pixels, out], {
        let m = model_of(model)?;
        let format = match format {
            PIXELS_GRAY8 => PixelFormat::Gray8,
            PIXELS_RGB8 => PixelFormat::Rgb8,
            PIXELS_BGR8 => PixelFormat::Bgr8,
            PIXELS_RGBA8 => PixelFormat::Rgba8,
            PIXELS_BGRA8 => PixelFormat::Bgra8,
            other => {
                return Err(Fail::new(
                    Status::InvalidArg,
                    format!("pixel format {other} is not a tinv_pixels"),
                ))
            }
        };
        let cfg = m.model.config();
        // The bytes the caller vouches for, checked (size, stride, overflow) before a slice is
        // formed from them.
        let len = crate::pixels::image_bytes(cfg, width, height, stride, format)?;
        if out_len < cfg.input_len() {
            return Err(Fail::new(
                Status::BufferTooSmall,
                format!(
                    "out_len is {out_len}, the input is {} floats",
                    cfg.input_len()
                ),
            ));
        }
        // A shared and a mutable slice over the same bytes would be undefined behaviour, and
        // converting in place (bytes at the tail of the float buffer) is a natural C habit.
        let (px_at, out_at) = (pixels as usize, out as usize);
        let out_bytes = cfg.input_len() * std::mem::size_of::<f32>();
        if px_at < out_at.saturating_add(out_bytes) && out_at < px_at.saturating_add(len) {
            return Err(Fail::new(
                Status::InvalidArg,
                "tinv_model_image_input: 'pixels' and 'out' overlap",
            ));
        }
        // SAFETY: non-null and aligned (the boundary); the caller's contract gives `len`
        // readable bytes (`len` within isize, for the model's own size, `image_bytes`) and
        // `out_len` writable floats, of which the input's length (a validated model's,
        // ≤ out_len) are used; the two ranges do not overlap (checked above).
        let (px, dst) = unsafe {
            (
                std::slice::from_raw_parts(pixels, len),
                std::slice::from_raw_parts_mut(out, cfg.input_len()),
            )
        };
        Ok(to_input(cfg, px, width, height, stride, format, dst)?)
    })
}

/// Number of classes (logits per input).
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_num_classes(
    model: *const TinvModel,
    out: *mut usize,
) -> Status {
    ffi_boundary!("tinv_model_num_classes", [model, out], {
        let m = model_of(model)?;
        // SAFETY: checked non-null; writable by contract.
        unsafe { put(out, m.model.config().classes) };
        Ok(())
    })
}

/// Number of depth paths.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_num_paths(model: *const TinvModel, out: *mut usize) -> Status {
    ffi_boundary!("tinv_model_num_paths", [model, out], {
        let m = model_of(model)?;
        // SAFETY: checked non-null; writable by contract.
        unsafe { put(out, m.model.config().depths.len()) };
        Ok(())
    })
}

/// Depth and FLOPs per input (stem + blocks + exit head, no controller) of path `index`.
///
/// # Safety
/// Output pointers are writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_path_info(
    model: *const TinvModel,
    index: usize,
    depth: *mut usize,
    flops: *mut u64,
) -> Status {
    ffi_boundary!("tinv_model_path_info", [model, depth, flops], {
        let m = model_of(model)?;
        let costs = m.model.costs();
        let c = costs.get(index).ok_or_else(|| {
            Fail::new(
                Status::InvalidArg,
                format!("path index {index} not in 0..{}", costs.len()),
            )
        })?;
        // SAFETY: checked non-null; writable by contract.
        unsafe {
            put(depth, c.depth);
            put(flops, c.backbone_flops);
        }
        Ok(())
    })
}

/// Bytes of host weights (every tensor the CPU backend reads, controller included).
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_weight_bytes(model: *const TinvModel, out: *mut u64) -> Status {
    ffi_boundary!("tinv_model_weight_bytes", [model, out], {
        let m = model_of(model)?;
        let n: u64 = (m.model.index().tensors.iter())
            .filter(|t| t.flags & crate::format::FLAG_DEVICE == 0)
            .map(|t| t.nbytes as u64)
            .sum();
        // SAFETY: checked non-null; writable by contract.
        unsafe { put(out, n) };
        Ok(())
    })
}

/// The budget λ stored in the model (0 when it has no controller).
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_default_budget(
    model: *const TinvModel,
    out: *mut f32,
) -> Status {
    ffi_boundary!("tinv_model_default_budget", [model, out], {
        let m = model_of(model)?;
        let b = m.model.config().default_budget();
        // SAFETY: checked non-null; writable by contract.
        unsafe { put(out, b) };
        Ok(())
    })
}

/// The backend every session on the model runs on: `TINV_BACKEND_CPU` or
/// `TINV_BACKEND_TENSORRT` (an `AUTO` request resolved at open), never `AUTO`.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn tinv_model_backend(model: *const TinvModel, out: *mut u32) -> Status {
    ffi_boundary!("tinv_model_backend", [model, out], {
        let m = model_of(model)?;
        let b = match m.backend {
            crate::Backend::TensorRt => BACKEND_TENSORRT,
            crate::Backend::Cpu | crate::Backend::Auto => BACKEND_CPU,
        };
        // SAFETY: checked non-null; writable by contract.
        unsafe { put(out, b) };
        Ok(())
    })
}
