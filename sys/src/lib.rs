//! `tinv-sys`: tinv's door to TensorRT.
//!
//! Three layers, none of which links TensorRT:
//! - `shim/tinv_trt.h` + `shim/tinv_trt.cpp`: our own pure-C interface over TensorRT's C++ API,
//!   compiled by `build.rs` into `libtinv_trt<MAJOR>.so` when headers are found. The shim dlopens
//!   libnvinfer / libnvonnxparser itself.
//! - [`bindings`]: bindgen output for `tinv_trt.h` only (checked in; see README.md).
//! - [`Shim`]: dlopens the shim matching the installed libnvinfer and implements [`ShimApi`],
//!   the small safe-ish trait the TensorRT backend is written against. A recording double of the
//!   same trait (`double::RecordingShim`, feature `test-double`) lets the backend be tested
//!   without a GPU.
//!
//! Handles ([`EngineHandle`], [`ContextHandle`]) are plain tokens: whoever creates one frees it
//! through the same [`ShimApi`], contexts before their engine.

#![warn(missing_docs)]

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    missing_docs,
    clippy::all
)]
pub mod bindings;
mod callbacks;
#[cfg(any(test, feature = "test-double"))]
pub mod double;
mod handles;
mod loader;
mod search;

pub use loader::Shim;

use std::fmt;
use std::path::Path;

/// Every failure of a shim call. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimError {
    /// tinv-sys was compiled without TensorRT headers, so no shim library exists.
    NotBuilt,
    /// No usable libnvinfer / shim pair could be loaded; one line per attempt.
    Load(String),
    /// A shim call failed: the function, the shim's status code and its message.
    Call {
        /// The shim function, e.g. `tinv_trt_engine_deserialize`.
        function: &'static str,
        /// The `tinv_trt_status` code.
        status: i32,
        /// The shim's one-line message (TensorRT's own log lines included).
        message: String,
    },
    /// An argument cannot be passed to C (a name with a NUL byte, a rank above 8, …).
    Argument(String),
}

impl fmt::Display for ShimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShimError::NotBuilt => write!(
                f,
                "TensorRT shim not built: tinv-sys was compiled without TensorRT headers \
                 (set TENSORRT_ROOT or TENSORRT_INCLUDE_DIR and CUDA_INCLUDE_DIR, then rebuild \
                 with --features tensorrt; see docs/JETSON.md)"
            ),
            ShimError::Load(m) => write!(f, "cannot load TensorRT: {m}"),
            ShimError::Call {
                function,
                status,
                message,
            } => {
                write!(f, "{function} failed ({}): {message}", status_name(*status))
            }
            ShimError::Argument(m) => write!(f, "invalid argument to the TensorRT shim: {m}"),
        }
    }
}

impl std::error::Error for ShimError {}

/// The name of a `tinv_trt_status` code (for messages).
pub fn status_name(status: i32) -> &'static str {
    match status {
        0 => "ok",
        1 => "invalid argument",
        2 => "library not loadable",
        3 => "TensorRT version mismatch",
        4 => "TensorRT error",
        5 => "unknown tensor",
        6 => "unsupported by this TensorRT",
        7 => "C++ exception",
        8 => "out of host memory",
        9 => "ONNX parse error",
        _ => "unknown status",
    }
}

/// A TensorRT library version as decoded by the shim from `getInferLibVersion()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrtVersion {
    /// Major (8, 10, 11).
    pub major: i32,
    /// Minor.
    pub minor: i32,
    /// Patch.
    pub patch: i32,
    /// The raw integer in the library's own encoding.
    pub raw: i32,
}

impl fmt::Display for TrtVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Element type of an engine I/O tensor (`tinv_trt_dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 8-bit signed integer.
    I8,
    /// 32-bit signed integer.
    I32,
    /// Boolean (one byte).
    Bool,
    /// 8-bit unsigned integer.
    U8,
    /// 8-bit float.
    Fp8,
    /// bfloat16.
    Bf16,
    /// 64-bit signed integer.
    I64,
    /// A type the shim interface does not name.
    Other,
}

impl DType {
    /// Maps a `tinv_trt_dtype` code.
    pub fn from_code(code: i32) -> DType {
        match code {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::I8,
            3 => DType::I32,
            4 => DType::Bool,
            5 => DType::U8,
            6 => DType::Fp8,
            7 => DType::Bf16,
            8 => DType::I64,
            _ => DType::Other,
        }
    }

    /// Bytes per element, or `None` for [`DType::Other`].
    pub fn size(self) -> Option<usize> {
        match self {
            DType::F32 | DType::I32 => Some(4),
            DType::F16 | DType::Bf16 => Some(2),
            DType::I8 | DType::Bool | DType::U8 | DType::Fp8 => Some(1),
            DType::I64 => Some(8),
            DType::Other => None,
        }
    }
}

/// Direction of an engine I/O tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// An input.
    Input,
    /// An output.
    Output,
}

/// One engine I/O tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoTensor {
    /// Tensor name.
    pub name: String,
    /// Input or output.
    pub mode: IoMode,
    /// Element type.
    pub dtype: DType,
    /// Shape as built (-1 marks a dynamic dimension).
    pub shape: Vec<i64>,
}

/// Precision requested from the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// FP32 everywhere.
    Fp32,
    /// FP16 allowed (TensorRT < 11); on 11 the ONNX types decide.
    Fp16,
}

/// Options of one engine build (see `tinv_trt_build_options` in `shim/tinv_trt.h`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Precision.
    pub precision: Precision,
    /// Workspace pool limit in bytes (0 = TensorRT's default).
    pub workspace_bytes: u64,
    /// Disable cuBLAS/cuBLASLt/cuDNN tactics (saves memory on Jetson).
    pub disable_external_tactics: bool,
    /// Auxiliary streams (`None` = TensorRT's heuristic); tinv uses `Some(0)`.
    pub max_aux_streams: Option<u32>,
    /// Layers whose name contains this run in FP32 (TensorRT 8.x/10.x only).
    pub fp32_layer_substring: Option<String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            precision: Precision::Fp16,
            workspace_bytes: 1 << 30,
            disable_external_tactics: true,
            max_aux_streams: Some(0),
            fp32_layer_substring: None,
        }
    }
}

/// Builder progress: `(phase, step, steps)`; step -1 = phase started. Return `false` to cancel
/// (TensorRT ≥ 10 reads the answer to a step's report; TensorRT 8 builds cannot be cancelled).
/// `Send`: TensorRT ≥ 10 calls it from its own builder threads (one at a time).
pub type Progress<'a> = &'a mut (dyn FnMut(&str, i32, i32) -> bool + Send);

/// A deserialized engine (a token; free it with [`ShimApi::engine_free`]). Only the shim that
/// handed it out accepts it, and only until it is freed: any other value is an error there (a
/// freed one too, unless the allocator has given its address to a new engine since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EngineHandle(pub usize);

/// An execution context without TensorRT-owned device memory (free with [`ShimApi::context_free`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContextHandle(pub usize);

/// A device address (`CUdeviceptr`).
pub type DevicePtr = u64;

/// A CUDA stream (`cudaStream_t` / `CUstream`) as an integer; never the legacy default stream (0).
pub type RawStream = usize;

/// What the TensorRT backend needs from TensorRT: implemented by [`Shim`] (the real library)
/// and by `double::RecordingShim` (tests). All device addresses must be 256-byte aligned.
pub trait ShimApi: Send + Sync {
    /// Version of the loaded TensorRT library.
    fn version(&self) -> TrtVersion;
    /// Deserialize a plan. The bytes may be released afterwards.
    fn deserialize(&self, plan: &[u8]) -> Result<EngineHandle, ShimError>;
    /// Destroy an engine; contexts of it still alive are destroyed first. A handle that is not
    /// live (freed already, or never handed out by this shim) is ignored with a warning.
    fn engine_free(&self, engine: EngineHandle);
    /// Every I/O tensor of the engine, in TensorRT's order.
    fn engine_io(&self, engine: EngineHandle) -> Result<Vec<IoTensor>, ShimError>;
    /// Activation/scratch bytes a context of this engine needs.
    fn engine_device_memory_size(&self, engine: EngineHandle) -> Result<u64, ShimError>;
    /// Create a context with user-managed device memory.
    fn context_create(&self, engine: EngineHandle) -> Result<ContextHandle, ShimError>;
    /// Destroy a context. A handle that is not live is ignored with a warning.
    fn context_free(&self, ctx: ContextHandle);
    /// Attach `size` bytes at `mem` as the context's activation memory.
    fn set_device_memory(
        &self,
        ctx: ContextHandle,
        mem: DevicePtr,
        size: u64,
    ) -> Result<(), ShimError>;
    /// Bind an I/O tensor to a device address.
    fn set_tensor_address(
        &self,
        ctx: ContextHandle,
        name: &str,
        addr: DevicePtr,
    ) -> Result<(), ShimError>;
    /// Set an input's runtime shape.
    fn set_input_shape(
        &self,
        ctx: ContextHandle,
        name: &str,
        shape: &[i64],
    ) -> Result<(), ShimError>;
    /// `enqueueV3` on `stream`.
    fn enqueue(&self, ctx: ContextHandle, stream: RawStream) -> Result<(), ShimError>;
    /// Parse an ONNX file and build a serialized plan for the current GPU.
    fn build_from_onnx_file(
        &self,
        onnx: &Path,
        opts: &BuildOptions,
        progress: Option<Progress<'_>>,
    ) -> Result<Vec<u8>, ShimError>;
}

#[cfg(test)]
mod tests {
    use super::bindings as b;
    use super::*;

    /// Every code of `shim/tinv_trt.h`, as bindgen read it, maps to the type it names.
    #[test]
    fn dtype_codes_are_the_headers() {
        let named = [
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_FLOAT, DType::F32, Some(4)),
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_HALF, DType::F16, Some(2)),
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_INT8, DType::I8, Some(1)),
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_INT32, DType::I32, Some(4)),
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_BOOL, DType::Bool, Some(1)),
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_UINT8, DType::U8, Some(1)),
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_FP8, DType::Fp8, Some(1)),
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_BF16, DType::Bf16, Some(2)),
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_INT64, DType::I64, Some(8)),
            (b::tinv_trt_dtype_TINV_TRT_DTYPE_OTHER, DType::Other, None),
        ];
        for (code, dtype, size) in named {
            assert_eq!(DType::from_code(code as i32), dtype, "code {code}");
            assert_eq!(dtype.size(), size, "{dtype:?}");
        }
        for code in [9, 254, -1] {
            assert_eq!(DType::from_code(code), DType::Other);
        }
    }

    /// Each status of the header has the name its comment gives it, in the error messages too.
    #[test]
    fn status_names_follow_the_header() {
        let named = [
            (b::tinv_trt_status_TINV_TRT_OK, "ok"),
            (b::tinv_trt_status_TINV_TRT_ERR_ARGUMENT, "invalid argument"),
            (b::tinv_trt_status_TINV_TRT_ERR_LOAD, "library not loadable"),
            (
                b::tinv_trt_status_TINV_TRT_ERR_VERSION,
                "TensorRT version mismatch",
            ),
            (b::tinv_trt_status_TINV_TRT_ERR_TENSORRT, "TensorRT error"),
            (
                b::tinv_trt_status_TINV_TRT_ERR_UNKNOWN_TENSOR,
                "unknown tensor",
            ),
            (
                b::tinv_trt_status_TINV_TRT_ERR_UNSUPPORTED,
                "unsupported by this TensorRT",
            ),
            (b::tinv_trt_status_TINV_TRT_ERR_EXCEPTION, "C++ exception"),
            (
                b::tinv_trt_status_TINV_TRT_ERR_NO_MEMORY,
                "out of host memory",
            ),
            (b::tinv_trt_status_TINV_TRT_ERR_PARSE, "ONNX parse error"),
        ];
        for (code, name) in named {
            assert_eq!(status_name(code as i32), name, "status {code}");
        }
        assert_eq!(status_name(10), "unknown status");
        assert_eq!(status_name(-1), "unknown status");
        let e = ShimError::Call {
            function: "tinv_trt_build",
            status: b::tinv_trt_status_TINV_TRT_ERR_PARSE as i32,
            message: "node 3: no such op".into(),
        };
        assert_eq!(
            e.to_string(),
            "tinv_trt_build failed (ONNX parse error): node 3: no such op"
        );
        let v = TrtVersion {
            major: 10,
            minor: 3,
            patch: 1,
            raw: 100301,
        };
        assert_eq!(v.to_string(), "10.3.1");
    }
}
