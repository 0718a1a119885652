//! The real [`ShimApi`]: dlopens `libtinv_trt<MAJOR>.so` for the TensorRT found on the machine.

use crate::bindings::{self as b, TinvTrtShim};
use crate::callbacks::{log_to_rust, progress_to_rust};
use crate::handles::Handles;
use crate::{
    BuildOptions, ContextHandle, DType, DevicePtr, EngineHandle, IoMode, IoTensor, Precision,
    Progress, RawStream, ShimApi, ShimError, TrtVersion,
};
use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// TensorRT majors tried in order: the newest stable first, then 11 (x86 GPUs), then 8
/// (JetPack 5.1/6.0).
const MAJORS: [u32; 3] = [10, 11, 8];

/// The loaded shim, its `tinv_trt_lib` (libnvinfer + logger + IRuntime) and the version found.
///
/// `Send + Sync`: the shim's lib handle is documented thread-safe for the calls made through
/// `&self`; contexts are only ever used by the one session that owns them.
pub struct Shim {
    api: TinvTrtShim,
    lib: *mut b::tinv_trt_lib,
    version: TrtVersion,
    path: PathBuf,
    /// `Shim::load`'s own handle on libnvinfer, kept so the probe never unloads it.
    probe: Option<libloading::Library>,
    /// Every engine and context this shim handed out and has not freed (see [`Handles`]).
    handles: Handles,
}

// SAFETY: tinv_trt_lib is immutable after open except the lazy parser dlopen (guarded by a mutex
// in the shim). TensorRT's developer guide allows one runtime/engine to be used from several
// threads as long as each execution context is used by one thread; contexts here belong to one
// session (one thread). Each build call creates its own IBuilder.
unsafe impl Send for Shim {}
// SAFETY: see `Send`; every method takes `&self` and the shim serializes what is shared.
unsafe impl Sync for Shim {}

impl Shim {
    /// Loads the shim for the installed TensorRT: for each major in 10, 11, 8 whose
    /// `libnvinfer.so.<major>` dlopens, tries `libtinv_trt<major>.so` from `$TINV_TRT_SHIM_DIR`
    /// (not in a setuid process), the folder of `libtinv.so` (or of the executable tinv is linked
    /// into), the build output folder (binaries of that build only), then the loader's search
    /// path (`crate::search`).
    pub fn load() -> Result<Shim, ShimError> {
        if !cfg!(tinv_trt_shim_built) && crate::search::env_dir().is_none() {
            return Err(ShimError::NotBuilt);
        }
        let mut attempts = Vec::new();
        let mut refused = Vec::new();
        let libs = MAJORS.map(|major| (major, format!("libnvinfer.so.{major}")));
        for &(major, ref nvinfer) in &libs {
            // SAFETY: loading libnvinfer runs its initializers, which is what using TensorRT means.
            let probe = match unsafe { libloading::Library::new(nvinfer) } {
                Ok(lib) => lib,
                Err(e) => {
                    refused.push((nvinfer.as_str(), e.to_string()));
                    continue;
                }
            };
            for candidate in crate::search::shim_candidates(major) {
                match Shim::load_from(&candidate, major, None) {
                    Ok(mut shim) => {
                        // Held for the Shim's lifetime: dropping it now would unload TensorRT
                        // (and run its finalizers) just before the shim loads it again.
                        shim.probe = Some(probe);
                        return Ok(shim);
                    }
                    Err(e) => attempts.push(format!("{}: {e}", candidate.display())),
                }
            }
        }
        if refused.len() == libs.len() {
            return Err(ShimError::Load(not_loaded(&refused)));
        }
        Err(ShimError::Load(attempts.join("; ")))
    }

    /// The process-wide shim: loaded on first use and kept for the process's lifetime (the
    /// shim's logger must outlive TensorRT, which may keep the first logger it was given). A
    /// failed load is remembered too, so a missing TensorRT costs one probe per process.
    pub fn shared() -> Result<Arc<Shim>, ShimError> {
        static SHARED: OnceLock<Result<Arc<Shim>, ShimError>> = OnceLock::new();
        SHARED.get_or_init(|| Shim::load().map(Arc::new)).clone()
    }

    /// Loads a specific shim library built for `major` and opens TensorRT through it;
    /// `nvinfer` overrides the library the shim dlopens (default `libnvinfer.so.<major>`).
    pub fn load_from(path: &Path, major: u32, nvinfer: Option<&Path>) -> Result<Shim, ShimError> {
        let nvinfer = nvinfer
            .map(|p| p.to_str().and_then(|s| CString::new(s).ok()))
            .map(|p| {
                p.ok_or_else(|| {
                    ShimError::Argument("libnvinfer path is not valid UTF-8 without NUL".into())
                })
            })
            .transpose()?;
        // SAFETY: the library is our own shim; `--dynamic-link-require-all` makes `new` fail
        // unless every symbol of tinv_trt.h resolves, so each fn pointer is valid.
        let api = unsafe { TinvTrtShim::new(path) }.map_err(|e| ShimError::Load(e.to_string()))?;
        // SAFETY: no-argument getters of the shim.
        let (abi, header_major) =
            unsafe { (api.tinv_trt_abi_version(), api.tinv_trt_header_major()) };
        if abi != b::TINV_TRT_ABI_VERSION {
            return Err(ShimError::Load(format!(
                "shim ABI {abi}, these bindings expect {}",
                b::TINV_TRT_ABI_VERSION
            )));
        }
        if u32::try_from(header_major).ok() != Some(major) {
            return Err(ShimError::Load(format!(
                "shim built for TensorRT {header_major}, wanted {major}"
            )));
        }
        let mut err = new_error();
        let mut lib = std::ptr::null_mut();
        // SAFETY: NULL paths select libnvinfer.so.<major>; `log_to_rust` is a valid callback
        // that ignores its user pointer; `lib` and `err` are valid out-pointers.
        let status = unsafe {
            api.tinv_trt_lib_open(
                nvinfer.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                std::ptr::null(),
                Some(log_to_rust),
                std::ptr::null_mut(),
                b::tinv_trt_severity_TINV_TRT_SEVERITY_INFO as i32,
                &mut lib,
                &mut err,
            )
        };
        check("tinv_trt_lib_open", status, &err)?;
        let mut v = b::tinv_trt_version {
            major: 0,
            minor: 0,
            patch: 0,
            raw: 0,
        };
        // SAFETY: `lib` was just opened; `v` and `err` are valid.
        let status = unsafe { api.tinv_trt_lib_version(lib, &mut v, &mut err) };
        if let Err(e) = check("tinv_trt_lib_version", status, &err) {
            // SAFETY: `lib` came from tinv_trt_lib_open and is not used after this.
            unsafe { api.tinv_trt_lib_free(lib) };
            return Err(e);
        }
        let version = TrtVersion {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            raw: v.raw,
        };
        log::info!("TensorRT {version} loaded through {}", path.display());
        Ok(Shim {
            api,
            lib,
            version,
            path: path.to_path_buf(),
            probe: None,
            handles: Handles::default(),
        })
    }

    /// The shim library built with this crate for `major`, if any (`None` when tinv-sys was
    /// compiled without TensorRT headers).
    pub fn built_shim() -> Option<(u32, PathBuf)> {
        let major = option_env!("TINV_TRT_SHIM_BUILT_MAJOR")?.parse().ok()?;
        let dir = option_env!("TINV_TRT_SHIM_BUILD_DIR")?;
        Some((major, Path::new(dir).join(format!("libtinv_trt{major}.so"))))
    }

    /// The shim library in use.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        // What the callers left: contexts before their engines, engines before the runtime.
        let api = &self.api;
        self.handles.free_all(
            // SAFETY: a live context of this shim, forgotten by the table.
            |c| unsafe { api.tinv_trt_context_free(c as *mut b::tinv_trt_context) },
            // SAFETY: a live engine of this shim, its contexts freed first.
            |e| unsafe { api.tinv_trt_engine_free(e as *mut b::tinv_trt_engine) },
        );
        // SAFETY: `lib` came from tinv_trt_lib_open; every engine of it is freed above.
        unsafe { self.api.tinv_trt_lib_free(self.lib) };
    }
}

/// The error when no `libnvinfer.so.<major>` loads, from each library's dlerror text. A library
/// that is there but does not load (a dependency such as the CUDA runtime or cuDNN missing, another
/// architecture) is named first with its reason: "not installed" would send the user the wrong way.
fn not_loaded(refused: &[(&str, String)]) -> String {
    // dlerror names the file it could not find: the one asked for when that is absent, a
    // dependency when the library is there but one of its own is not (glibc: "libcudnn.so.8:
    // cannot open shared object file: No such file or directory"; musl: "Error loading shared
    // library libcudnn.so.8: No such file or directory (needed by /usr/lib/libnvinfer.so.8)").
    let absent = |lib: &str, e: &str| {
        e.contains(lib) && e.contains("No such file") && !e.contains("(needed by")
    };
    let broken: Vec<String> = refused
        .iter()
        .filter(|(lib, e)| !absent(lib, e))
        .map(|(lib, e)| format!("{lib}: {e}"))
        .collect();
    if !broken.is_empty() {
        return format!(
            "TensorRT is installed but does not load (a library it needs is missing or of \
             another architecture; check LD_LIBRARY_PATH): {}",
            broken.join("; ")
        );
    }
    let names: Vec<&str> = refused.iter().map(|(lib, _)| *lib).collect();
    format!(
        "not installed, or not on the loader's path (none of {} loads; JetPack installs it, \
         elsewhere add its lib folder to LD_LIBRARY_PATH)",
        names.join(", ")
    )
}

fn new_error() -> b::tinv_trt_error {
    b::tinv_trt_error {
        msg: [0; b::TINV_TRT_ERROR_LEN as usize],
    }
}

fn message(err: &b::tinv_trt_error) -> String {
    // SAFETY: msg is a fixed array; CStr::from_bytes_until_nul stops at the first NUL or fails.
    let bytes: &[u8] =
        unsafe { std::slice::from_raw_parts(err.msg.as_ptr().cast(), err.msg.len()) };
    match CStr::from_bytes_until_nul(bytes) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn check(function: &'static str, status: i32, err: &b::tinv_trt_error) -> Result<(), ShimError> {
    if status == b::tinv_trt_status_TINV_TRT_OK as i32 {
        Ok(())
    } else {
        Err(ShimError::Call {
            function,
            status,
            message: message(err),
        })
    }
}

/// A success whose output breaks the header's promise (a NULL handle, name or plan; a rank
/// outside 0..=8): the TensorRT error the shim itself reports when TensorRT hands it NULL. Passed
/// on, a NULL handle was recorded as live (and collided with the next), a NULL name was read by
/// `CStr::from_ptr` (a crash), a NULL plan given to `slice::from_raw_parts` (undefined even for 0
/// bytes), and a rank of 9 cut to 8.
fn broken_promise(function: &'static str, message: String) -> ShimError {
    ShimError::Call {
        function,
        status: b::tinv_trt_status_TINV_TRT_ERR_TENSORRT as i32,
        message,
    }
}

/// `s` as a C string; `what` names it in the error when it holds a NUL byte.
fn c_string(what: &str, s: &str) -> Result<CString, ShimError> {
    CString::new(s).map_err(|_| ShimError::Argument(format!("{what} {s:?} contains a NUL byte")))
}

impl ShimApi for Shim {
    fn version(&self) -> TrtVersion {
        self.version
    }

    fn deserialize(&self, plan: &[u8]) -> Result<EngineHandle, ShimError> {
        let mut err = new_error();
        let mut engine = std::ptr::null_mut();
        // SAFETY: plan points to plan.len() readable bytes; out-pointers are valid.
        let status = unsafe {
            self.api.tinv_trt_engine_deserialize(
                self.lib,
                plan.as_ptr().cast(),
                plan.len(),
                &mut engine,
                &mut err,
            )
        };
        check("tinv_trt_engine_deserialize", status, &err)?;
        if engine.is_null() {
            return Err(broken_promise(
                "tinv_trt_engine_deserialize",
                "returned OK without an engine".into(),
            ));
        }
        self.handles.add_engine(engine as usize);
        Ok(EngineHandle(engine as usize))
    }

    fn engine_free(&self, engine: EngineHandle) {
        let api = &self.api;
        let freed = self.handles.free_engine(
            engine.0,
            // SAFETY: a live context of this shim, forgotten by the table.
            |c| unsafe { api.tinv_trt_context_free(c as *mut b::tinv_trt_context) },
            // SAFETY: a live engine of this shim, its contexts freed just before.
            |e| unsafe { api.tinv_trt_engine_free(e as *mut b::tinv_trt_engine) },
        );
        if !freed {
            log::warn!(
                "engine_free: engine handle {:#x} is not live in this shim",
                engine.0
            );
        }
    }

    fn engine_io(&self, engine: EngineHandle) -> Result<Vec<IoTensor>, ShimError> {
        self.handles.with_engine(engine.0, || {
            let e = engine.0 as *mut b::tinv_trt_engine;
            let mut err = new_error();
            let mut count = 0i32;
            // SAFETY: a live engine (checked above, kept live by the handle table) and out-pointers.
            check(
                "tinv_trt_engine_io_count",
                unsafe { self.api.tinv_trt_engine_io_count(e, &mut count, &mut err) },
                &err,
            )?;
            // Not sized by `count`: a shim's bogus count (2^31) must come back as the error of
            // its first missing tensor, not abort the process in the allocator.
            let mut out = Vec::new();
            for i in 0..count {
                let mut info = b::tinv_trt_io_info {
                    name: std::ptr::null(),
                    mode: 0,
                    dtype: 0,
                    shape: b::tinv_trt_dims {
                        nb_dims: 0,
                        d: [0; b::TINV_TRT_MAX_DIMS as usize],
                    },
                };
                // SAFETY: i is in [0, count); out-pointers are valid.
                let status = unsafe { self.api.tinv_trt_engine_io_info(e, i, &mut info, &mut err) };
                check("tinv_trt_engine_io_info", status, &err)?;
                if info.name.is_null() {
                    return Err(broken_promise(
                        "tinv_trt_engine_io_info",
                        format!("tensor {i} has no name"),
                    ));
                }
                // SAFETY: on success the shim returns the engine-owned NUL-terminated name
                // (not NULL: checked above).
                let name = unsafe { CStr::from_ptr(info.name) }
                    .to_string_lossy()
                    .into_owned();
                let mode = match info.mode {
                    1 => IoMode::Input,
                    2 => IoMode::Output,
                    m => {
                        return Err(ShimError::Call {
                            function: "tinv_trt_engine_io_info",
                            status: b::tinv_trt_status_TINV_TRT_ERR_TENSORRT as i32,
                            message: format!(
                                "tensor {name} has I/O mode {m} (neither input nor output)"
                            ),
                        })
                    }
                };
                // A rank outside the header's 0..=8 was cut to 8 (or read as 0): a wrong shape.
                let rank = usize::try_from(info.shape.nb_dims)
                    .ok()
                    .filter(|&r| r <= info.shape.d.len())
                    .ok_or_else(|| {
                        broken_promise(
                            "tinv_trt_engine_io_info",
                            format!(
                                "tensor {name} has rank {} (the header allows 0 to 8)",
                                info.shape.nb_dims
                            ),
                        )
                    })?;
                let shape = info.shape.d.get(..rank).unwrap_or(&[]).to_vec();
                out.push(IoTensor {
                    name,
                    mode,
                    dtype: DType::from_code(info.dtype),
                    shape,
                });
            }
            Ok(out)
        })
    }

    fn engine_device_memory_size(&self, engine: EngineHandle) -> Result<u64, ShimError> {
        self.handles.with_engine(engine.0, || {
            let e = engine.0 as *mut b::tinv_trt_engine;
            let mut err = new_error();
            let mut size = 0u64;
            // SAFETY: a live engine (checked above, kept live by the handle table) and out-pointers.
            let status = unsafe {
                self.api
                    .tinv_trt_engine_device_memory_size(e, &mut size, &mut err)
            };
            check("tinv_trt_engine_device_memory_size", status, &err)?;
            Ok(size)
        })
    }

    fn context_create(&self, engine: EngineHandle) -> Result<ContextHandle, ShimError> {
        let ctx = self.handles.create_context(engine.0, || {
            let e = engine.0 as *mut b::tinv_trt_engine;
            let mut err = new_error();
            let mut ctx = std::ptr::null_mut();
            // SAFETY: a live engine (checked by the table, kept live by it meanwhile) and
            // out-pointers.
            let status = unsafe { self.api.tinv_trt_context_create(e, &mut ctx, &mut err) };
            check("tinv_trt_context_create", status, &err)?;
            if ctx.is_null() {
                return Err(broken_promise(
                    "tinv_trt_context_create",
                    "returned OK without a context".into(),
                ));
            }
            Ok(ctx as usize)
        })?;
        Ok(ContextHandle(ctx))
    }

    fn context_free(&self, ctx: ContextHandle) {
        let api = &self.api;
        // SAFETY: a live context of this shim, forgotten by the table, used by no call now.
        let freed = self.handles.free_context(ctx.0, |c| unsafe {
            api.tinv_trt_context_free(c as *mut b::tinv_trt_context)
        });
        if !freed {
            log::warn!(
                "context_free: context handle {:#x} is not live in this shim",
                ctx.0
            );
        }
    }

    fn set_device_memory(
        &self,
        ctx: ContextHandle,
        mem: DevicePtr,
        size: u64,
    ) -> Result<(), ShimError> {
        self.handles.with_context(ctx.0, || {
            let c = ctx.0 as *mut b::tinv_trt_context;
            let mut err = new_error();
            // SAFETY: a live context (kept live by the handle table); a device address is passed
            // through as an opaque pointer; the shim checks it.
            let status = unsafe {
                self.api.tinv_trt_context_set_device_memory(
                    c,
                    mem as usize as *mut c_void,
                    size,
                    &mut err,
                )
            };
            check("tinv_trt_context_set_device_memory", status, &err)
        })
    }

    fn set_tensor_address(
        &self,
        ctx: ContextHandle,
        name: &str,
        addr: DevicePtr,
    ) -> Result<(), ShimError> {
        let name = c_string("tensor name", name)?;
        self.handles.with_context(ctx.0, || {
            let c = ctx.0 as *mut b::tinv_trt_context;
            let mut err = new_error();
            // SAFETY: a live context (kept live by the handle table), NUL-terminated name, opaque
            // device address.
            let status = unsafe {
                self.api.tinv_trt_context_set_tensor_address(
                    c,
                    name.as_ptr(),
                    addr as usize as *mut c_void,
                    &mut err,
                )
            };
            check("tinv_trt_context_set_tensor_address", status, &err)
        })
    }

    fn set_input_shape(
        &self,
        ctx: ContextHandle,
        name: &str,
        shape: &[i64],
    ) -> Result<(), ShimError> {
        let mut dims = b::tinv_trt_dims {
            nb_dims: 0,
            d: [0; b::TINV_TRT_MAX_DIMS as usize],
        };
        if shape.len() > dims.d.len() {
            return Err(ShimError::Argument(format!(
                "rank {} of {name} exceeds 8",
                shape.len()
            )));
        }
        dims.nb_dims = shape.len() as i32; // ≤ 8, checked above
        for (slot, &v) in dims.d.iter_mut().zip(shape) {
            *slot = v;
        }
        let name = c_string("tensor name", name)?;
        self.handles.with_context(ctx.0, || {
            let c = ctx.0 as *mut b::tinv_trt_context;
            let mut err = new_error();
            // SAFETY: a live context (kept live by the handle table), NUL-terminated name, dims on the
            // stack.
            let status = unsafe {
                self.api
                    .tinv_trt_context_set_input_shape(c, name.as_ptr(), &dims, &mut err)
            };
            check("tinv_trt_context_set_input_shape", status, &err)
        })
    }

    fn enqueue(&self, ctx: ContextHandle, stream: RawStream) -> Result<(), ShimError> {
        self.handles.with_context(ctx.0, || {
            let c = ctx.0 as *mut b::tinv_trt_context;
            let mut err = new_error();
            // SAFETY: a live context (kept live by the handle table); the stream is an opaque CUDA
            // handle owned by the caller.
            let status = unsafe {
                self.api
                    .tinv_trt_context_enqueue(c, stream as *mut c_void, &mut err)
            };
            check("tinv_trt_context_enqueue", status, &err)
        })
    }

    fn build_from_onnx_file(
        &self,
        onnx: &Path,
        opts: &BuildOptions,
        progress: Option<Progress<'_>>,
    ) -> Result<Vec<u8>, ShimError> {
        let path = onnx
            .to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| {
                ShimError::Argument(format!(
                    "ONNX path {} is not valid UTF-8 without NUL",
                    onnx.display()
                ))
            })?;
        let layers = opts
            .fp32_layer_substring
            .as_deref()
            .map(|s| c_string("FP32 layer-name substring", s))
            .transpose()?;
        // SAFETY: a zeroed options struct is valid input for the defaults function.
        let mut o: b::tinv_trt_build_options = unsafe { std::mem::zeroed() };
        // SAFETY: `o` is a valid out-pointer.
        unsafe { self.api.tinv_trt_build_options_default(&mut o) };
        o.precision = match opts.precision {
            Precision::Fp32 => b::tinv_trt_precision_TINV_TRT_PRECISION_FP32 as i32,
            Precision::Fp16 => b::tinv_trt_precision_TINV_TRT_PRECISION_FP16 as i32,
        };
        o.workspace_bytes = opts.workspace_bytes;
        o.disable_external_tactics = i32::from(opts.disable_external_tactics);
        o.max_aux_streams = opts
            .max_aux_streams
            .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
        o.fp32_layer_substring = layers.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let mut progress = progress;
        if let Some(p) = progress.as_mut() {
            o.progress = Some(progress_to_rust);
            o.progress_user = (p as *mut Progress<'_>).cast();
        }
        let mut buf = b::tinv_trt_buffer {
            data: std::ptr::null_mut(),
            size: 0,
        };
        let mut err = new_error();
        // SAFETY: all pointers are valid for the call; `progress` outlives it.
        let status = unsafe {
            self.api
                .tinv_trt_build_from_onnx_file(self.lib, path.as_ptr(), &o, &mut buf, &mut err)
        };
        check("tinv_trt_build_from_onnx_file", status, &err)?;
        if buf.data.is_null() {
            return Err(broken_promise(
                "tinv_trt_build_from_onnx_file",
                "returned OK without a plan".into(),
            ));
        }
        // SAFETY: on success buf holds `size` bytes malloc'ed by the shim (not NULL: checked
        // above), freed right after.
        let plan = unsafe { std::slice::from_raw_parts(buf.data.cast::<u8>(), buf.size) }.to_vec();
        // SAFETY: buf came from the build call.
        unsafe { self.api.tinv_trt_buffer_free(&mut buf) };
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::not_loaded;

    #[test]
    fn a_library_that_is_there_but_does_not_load_is_named_with_its_reason() {
        let absent =
            |lib: &str| format!("{lib}: cannot open shared object file: No such file or directory");
        let refused = [
            ("libnvinfer.so.10", absent("libnvinfer.so.10")),
            ("libnvinfer.so.11", absent("libnvinfer.so.11")),
            // JetPack 5.1's TensorRT without cuDNN on the loader's path: dlerror names cuDNN.
            (
                "libnvinfer.so.8",
                "libcudnn.so.8: cannot open shared object file: No such file or directory".into(),
            ),
        ];
        let m = not_loaded(&refused);
        assert!(
            m.starts_with("TensorRT is installed but does not load"),
            "{m}"
        );
        assert!(
            m.contains("libnvinfer.so.8: libcudnn.so.8: cannot open"),
            "{m}"
        );
        assert!(!m.contains("libnvinfer.so.10"), "{m}");
        // None there: "not installed", naming every library tried.
        let m = not_loaded(&refused[..2]);
        assert!(m.starts_with("not installed, or not on the loader's path (none of libnvinfer.so.10, libnvinfer.so.11 loads"), "{m}");
        // musl words a missing dependency with the library's name in "(needed by ...)".
        let musl = [(
            "libnvinfer.so.8",
            "Error loading shared library libcudnn.so.8: No such file or directory (needed by \
             /usr/lib/libnvinfer.so.8)"
                .to_string(),
        )];
        assert!(not_loaded(&musl).starts_with("TensorRT is installed but does not load"));
        // Another architecture is a reason too, not an absence.
        let wrong = [(
            "libnvinfer.so.10",
            "libnvinfer.so.10: wrong ELF class: ELFCLASS32".to_string(),
        )];
        assert!(not_loaded(&wrong).contains("wrong ELF class"));
    }
}
