//! The device interface: every CUDA call the TensorRT backend makes (allocation, copies, the one
//! stream, graph capture/instantiate/launch) goes through [`Device`], implemented with cudarc in
//! `cuda.rs` and by a recording double in tests. Handles are plain integers so the TensorRT shim
//! can receive them (`CUstream` and `cudaStream_t` are the same handle).

use std::fmt;

/// A device address (`CUdeviceptr`), 256-byte aligned when it comes from [`Device::alloc`].
pub type DevicePtr = u64;

/// A CUDA stream handle as an integer (never 0, the legacy default stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stream(pub usize);

/// An instantiated CUDA graph (`CUgraphExec`) owned by the device implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Graph(pub usize);

/// Page-locked host memory owned by the device implementation (a staging buffer that captured
/// graphs copy from and to: its address is frozen into them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pinned(pub usize);

/// The GPU in use, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// Device name.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (u32, u32),
    /// Total device memory in bytes.
    pub total_memory: u64,
    /// Streaming multiprocessors.
    pub sms: u32,
}

/// A failed device call: the operation and the driver's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceError {
    /// What was attempted (`alloc`, `memcpy_htod`, `end_capture`, …).
    pub op: &'static str,
    /// The driver's message.
    pub message: String,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CUDA {} failed: {}", self.op, self.message)
    }
}

impl std::error::Error for DeviceError {}

/// Every CUDA operation the TensorRT backend needs. Implementations keep the device's primary
/// context current on the calling thread (TensorRT uses the runtime API, which needs it).
pub trait Device: Send + Sync {
    /// The GPU in use.
    fn info(&self) -> Result<GpuInfo, DeviceError>;
    /// Allocates `bytes` (> 0) of device memory, 256-byte aligned.
    fn alloc(&self, bytes: u64) -> Result<DevicePtr, DeviceError>;
    /// Frees memory from [`Device::alloc`].
    fn free(&self, ptr: DevicePtr);
    /// Creates a non-blocking stream (never the legacy default stream).
    fn stream_create(&self) -> Result<Stream, DeviceError>;
    /// Destroys a stream.
    fn stream_destroy(&self, stream: Stream);
    /// Copies `src` to `dst` on `stream`; returns once `src` may be reused.
    fn memcpy_htod(&self, dst: DevicePtr, src: &[u8], stream: Stream) -> Result<(), DeviceError>;
    /// Copies `src` to `dst` on `stream` and waits for it.
    fn memcpy_dtoh(
        &self,
        dst: &mut [u8],
        src: DevicePtr,
        stream: Stream,
    ) -> Result<(), DeviceError>;
    /// Allocates `bytes` (> 0) of page-locked host memory.
    fn pinned_alloc(&self, bytes: u64) -> Result<Pinned, DeviceError>;
    /// Frees memory from [`Device::pinned_alloc`].
    fn pinned_free(&self, buf: Pinned);
    /// Copies `src` into the start of `buf` (a host copy; no work on the GPU may be using it).
    fn pinned_write(&self, buf: Pinned, src: &[u8]) -> Result<(), DeviceError>;
    /// Copies the start of `buf` into `dst` (a host copy, after the stream was synchronized).
    fn pinned_read(&self, buf: Pinned, dst: &mut [u8]) -> Result<(), DeviceError>;
    /// Enqueues a copy of `bytes` from `src` to `dst` on `stream` without waiting; capturable.
    fn copy_to_device(
        &self,
        dst: DevicePtr,
        src: Pinned,
        bytes: u64,
        stream: Stream,
    ) -> Result<(), DeviceError>;
    /// Enqueues a copy of `bytes` from `src` to `dst` on `stream` without waiting; capturable.
    fn copy_to_host(
        &self,
        dst: Pinned,
        src: DevicePtr,
        bytes: u64,
        stream: Stream,
    ) -> Result<(), DeviceError>;
    /// Starts capturing `stream` (thread-local mode, so other threads' allocations do not
    /// invalidate the capture).
    fn begin_capture(&self, stream: Stream) -> Result<(), DeviceError>;
    /// Ends the capture and instantiates the graph.
    fn end_capture(&self, stream: Stream) -> Result<Graph, DeviceError>;
    /// Ends a capture after a failure inside it and discards the partial graph, leaving the
    /// stream out of capture mode (what trtexec's `endCaptureOnError` does). Never fails. The
    /// driver API keeps no sticky "last error" to clear; TensorRT's own CUDA runtime may, out of
    /// reach here: the fallback's direct run after a failed capture is checked for that reason
    /// (`capture_or_fall_back`).
    fn abort_capture(&self, stream: Stream);
    /// Launches an instantiated graph on `stream`.
    fn launch(&self, graph: Graph, stream: Stream) -> Result<(), DeviceError>;
    /// Destroys an instantiated graph.
    fn graph_destroy(&self, graph: Graph);
    /// Waits for all work on `stream`.
    fn sync(&self, stream: Stream) -> Result<(), DeviceError>;
    /// Makes the device's context current on the calling thread, best effort: before the shim
    /// frees engines and contexts, whose TensorRT destructors release device memory through
    /// the runtime API on whatever thread drops the last handle.
    fn make_current(&self);
}
