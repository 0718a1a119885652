//! [`Device`] over the CUDA driver API with cudarc (dynamic loading, CUDA 11.4 bindings: the
//! oldest target, JetPack 5.1). libcuda is probed first because cudarc panics when it is missing.

use super::device::{Device, DeviceError, DevicePtr, GpuInfo, Graph, Pinned, Stream};
use cudarc::driver::{result, sys, CudaContext};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The device's primary context (what TensorRT's runtime API uses) and the graphs instantiated
/// on it. Graph handles index `graphs`, so a stale handle is an error, not a dangling pointer.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    graphs: Mutex<HashMap<usize, GraphExec>>,
    pinned: Mutex<HashMap<usize, PinnedBuf>>,
}

/// A `cuMemHostAlloc` block.
struct PinnedBuf {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

// SAFETY: page-locked host memory is plain memory; access is serialized by the `pinned` mutex
// for host copies, and device copies are ordered on the session's one stream.
unsafe impl Send for PinnedBuf {}

/// A `CUgraphExec` and the `CUgraph` it came from, destroyed together.
struct GraphExec {
    exec: sys::CUgraphExec,
    graph: sys::CUgraph,
}

// SAFETY: CUDA graph objects may be used from any thread as long as calls on one graph are
// serialized, which the `graphs` mutex does for destroy; launches of one exec are serialized by
// the backend (one session, one thread, one stream).
unsafe impl Send for GraphExec {}

fn err(op: &'static str, e: impl std::fmt::Display) -> DeviceError {
    DeviceError {
        op,
        message: e.to_string(),
    }
}

impl CudaDevice {
    /// Opens GPU `ordinal`: probes libcuda (an error, not cudarc's panic, when it is absent),
    /// retains the primary context and makes it current on this thread.
    pub fn open(ordinal: usize) -> Result<CudaDevice, DeviceError> {
        // SAFETY: only tries to dlopen libcuda by its usual names.
        if !unsafe { sys::is_culib_present() } {
            return Err(err("init", "libcuda (the NVIDIA driver) is not installed"));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| err("init", e))?;
        Ok(CudaDevice {
            ctx,
            graphs: Mutex::new(HashMap::new()),
            pinned: Mutex::new(HashMap::new()),
        })
    }

    fn bind(&self, op: &'static str) -> Result<(), DeviceError> {
        self.ctx.bind_to_thread().map_err(|e| err(op, e))
    }

    fn pinned(&self) -> MutexGuard<'_, HashMap<usize, PinnedBuf>> {
        // Same reasoning as `graphs`.
        self.pinned.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The block of `buf` if it holds at least `bytes`.
    fn block(
        &self,
        op: &'static str,
        buf: Pinned,
        bytes: usize,
    ) -> Result<(*mut std::ffi::c_void, usize), DeviceError> {
        let map = self.pinned();
        let b = map
            .get(&buf.0)
            .ok_or_else(|| err(op, "unknown pinned buffer"))?;
        if bytes > b.len {
            return Err(err(
                op,
                format!("{bytes} bytes exceed the pinned buffer's {}", b.len),
            ));
        }
        Ok((b.ptr, b.len))
    }

    fn graphs(&self) -> MutexGuard<'_, HashMap<usize, GraphExec>> {
        // The map stays consistent even if a holder panicked (inserts/removes are single calls).
        self.graphs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn raw(stream: Stream) -> sys::CUstream {
    stream.0 as sys::CUstream
}

impl Device for CudaDevice {
    fn info(&self) -> Result<GpuInfo, DeviceError> {
        let name = self.ctx.name().map_err(|e| err("info", e))?;
        let (major, minor) = self.ctx.compute_capability().map_err(|e| err("info", e))?;
        let total = self.ctx.total_mem().map_err(|e| err("info", e))?;
        let sms = self
            .ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| err("info", e))?;
        let cc = (
            u32::try_from(major).unwrap_or(0),
            u32::try_from(minor).unwrap_or(0),
        );
        Ok(GpuInfo {
            name,
            compute_capability: cc,
            total_memory: total as u64,
            sms: u32::try_from(sms).unwrap_or(0),
        })
    }

    fn alloc(&self, bytes: u64) -> Result<DevicePtr, DeviceError> {
        self.bind("alloc")?;
        let n = usize::try_from(bytes)
            .map_err(|_| err("alloc", format!("{bytes} bytes exceed the address space")))?;
        // SAFETY: plain cuMemAlloc on the bound primary context; returns ≥256-byte aligned memory.
        unsafe { result::malloc_sync(n.max(1)) }.map_err(|e| err("alloc", e))
    }

    fn free(&self, ptr: DevicePtr) {
        if self.bind("free").is_ok() {
            // SAFETY: `ptr` came from `alloc` and the backend frees it once, after its stream synced.
            let _ = unsafe { result::free_sync(ptr) };
        }
    }

    fn stream_create(&self) -> Result<Stream, DeviceError> {
        self.bind("stream_create")?;
        let s = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(|e| err("stream_create", e))?;
        Ok(Stream(s as usize))
    }

    fn stream_destroy(&self, stream: Stream) {
        if self.bind("stream_destroy").is_ok() {
            // SAFETY: the stream came from `stream_create` and is destroyed once.
            let _ = unsafe { result::stream::destroy(raw(stream)) };
        }
    }

    fn memcpy_htod(&self, dst: DevicePtr, src: &[u8], stream: Stream) -> Result<(), DeviceError> {
        self.bind("memcpy_htod")?;
        // SAFETY: dst has room for src (the backend sizes every buffer from the manifest); the
        // stream is synchronized before returning, so `src` may be reused afterwards.
        unsafe {
            result::memcpy_htod_async(dst, src, raw(stream)).map_err(|e| err("memcpy_htod", e))?;
            result::stream::synchronize(raw(stream)).map_err(|e| err("memcpy_htod", e))
        }
    }

    fn memcpy_dtoh(
        &self,
        dst: &mut [u8],
        src: DevicePtr,
        stream: Stream,
    ) -> Result<(), DeviceError> {
        self.bind("memcpy_dtoh")?;
        // SAFETY: src holds at least dst.len() bytes; the sync makes `dst` complete on return.
        unsafe {
            result::memcpy_dtoh_async(dst, src, raw(stream)).map_err(|e| err("memcpy_dtoh", e))?;
            result::stream::synchronize(raw(stream)).map_err(|e| err("memcpy_dtoh", e))
        }
    }

    fn pinned_alloc(&self, bytes: u64) -> Result<Pinned, DeviceError> {
        self.bind("pinned_alloc")?;
        let n = usize::try_from(bytes)
            .map_err(|_| err("pinned_alloc", "size exceeds the address space"))?;
        // SAFETY: cuMemHostAlloc with default flags on the bound context.
        let ptr =
            unsafe { result::malloc_host(n.max(1), 0) }.map_err(|e| err("pinned_alloc", e))?;
        self.pinned()
            .insert(ptr as usize, PinnedBuf { ptr, len: n });
        Ok(Pinned(ptr as usize))
    }

    fn pinned_free(&self, buf: Pinned) {
        let Some(b) = self.pinned().remove(&buf.0) else {
            return;
        };
        if self.bind("pinned_free").is_ok() {
            // SAFETY: removed from the map, so freed exactly once; came from malloc_host.
            let _ = unsafe { result::free_host(b.ptr) };
        }
    }

    fn pinned_write(&self, buf: Pinned, src: &[u8]) -> Result<(), DeviceError> {
        let (ptr, _) = self.block("pinned_write", buf, src.len())?;
        // SAFETY: the block holds at least src.len() bytes (checked) and does not overlap `src`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), ptr.cast::<u8>(), src.len()) };
        Ok(())
    }

    fn pinned_read(&self, buf: Pinned, dst: &mut [u8]) -> Result<(), DeviceError> {
        let (ptr, _) = self.block("pinned_read", buf, dst.len())?;
        // SAFETY: the block holds at least dst.len() bytes (checked) and does not overlap `dst`.
        unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn copy_to_device(
        &self,
        dst: DevicePtr,
        src: Pinned,
        bytes: u64,
        stream: Stream,
    ) -> Result<(), DeviceError> {
        let n = usize::try_from(bytes)
            .map_err(|_| err("copy_to_device", "size exceeds the address space"))?;
        let (ptr, _) = self.block("copy_to_device", src, n)?;
        self.bind("copy_to_device")?;
        // SAFETY: `ptr` is page-locked and holds n bytes; dst is sized by the backend.
        unsafe { sys::cuMemcpyHtoDAsync_v2(dst, ptr, n, raw(stream)).result() }
            .map_err(|e| err("copy_to_device", e))
    }

    fn copy_to_host(
        &self,
        dst: Pinned,
        src: DevicePtr,
        bytes: u64,
        stream: Stream,
    ) -> Result<(), DeviceError> {
        let n = usize::try_from(bytes)
            .map_err(|_| err("copy_to_host", "size exceeds the address space"))?;
        let (ptr, _) = self.block("copy_to_host", dst, n)?;
        self.bind("copy_to_host")?;
        // SAFETY: `ptr` is page-locked and holds n bytes; src is sized by the backend.
        unsafe { sys::cuMemcpyDtoHAsync_v2(ptr, src, n, raw(stream)).result() }
            .map_err(|e| err("copy_to_host", e))
    }

    fn begin_capture(&self, stream: Stream) -> Result<(), DeviceError> {
        self.bind("begin_capture")?;
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        // SAFETY: a valid, non-default stream from `stream_create`.
        unsafe { result::stream::begin_capture(raw(stream), mode) }
            .map_err(|e| err("begin_capture", e))
    }

    fn end_capture(&self, stream: Stream) -> Result<Graph, DeviceError> {
        self.bind("end_capture")?;
        // SAFETY: the stream is capturing (begin_capture succeeded).
        let graph = unsafe { result::stream::end_capture(raw(stream)) }
            .map_err(|e| err("end_capture", e))?;
        if graph.is_null() {
            return Err(err("end_capture", "the capture produced no graph"));
        }
        // SAFETY: `graph` is the valid graph just captured.
        let exec =
            match unsafe { result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) } {
                Ok(exec) => exec,
                Err(e) => {
                    // SAFETY: destroy the graph we own; it was never instantiated.
                    let _ = unsafe { result::graph::destroy(graph) };
                    return Err(err("graph_instantiate", e));
                }
            };
        let id = exec as usize;
        self.graphs().insert(id, GraphExec { exec, graph });
        Ok(Graph(id))
    }

    fn abort_capture(&self, stream: Stream) {
        if self.bind("abort_capture").is_err() {
            return;
        }
        // SAFETY: ending a capture invalidated by an error returns an error or a partial graph;
        // a partial graph is ours to destroy.
        if let Ok(graph) = unsafe { result::stream::end_capture(raw(stream)) } {
            if !graph.is_null() {
                // SAFETY: see above.
                let _ = unsafe { result::graph::destroy(graph) };
            }
        }
    }

    fn launch(&self, graph: Graph, stream: Stream) -> Result<(), DeviceError> {
        self.bind("launch")?;
        let exec = self
            .graphs()
            .get(&graph.0)
            .map(|g| g.exec)
            .ok_or_else(|| err("launch", "unknown graph"))?;
        // SAFETY: `exec` is alive (still in the map) and the stream is valid.
        unsafe { result::graph::launch(exec, raw(stream)) }.map_err(|e| err("launch", e))
    }

    fn make_current(&self) {
        let _ = self.bind("make_current");
    }

    fn graph_destroy(&self, graph: Graph) {
        let Some(g) = self.graphs().remove(&graph.0) else {
            return;
        };
        if self.bind("graph_destroy").is_ok() {
            // SAFETY: removed from the map, so destroyed exactly once.
            unsafe {
                let _ = result::graph::exec_destroy(g.exec);
                let _ = result::graph::destroy(g.graph);
            }
        }
    }

    fn sync(&self, stream: Stream) -> Result<(), DeviceError> {
        self.bind("sync")?;
        // SAFETY: a valid stream from `stream_create`.
        unsafe { result::stream::synchronize(raw(stream)) }.map_err(|e| err("sync", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs only on a machine with an NVIDIA driver (`cargo test -- --ignored cuda_`): uploads,
    /// captures two device-to-device copies into a graph, launches it twice and reads back.
    #[test]
    #[ignore = "needs an NVIDIA GPU and driver"]
    fn cuda_device_round_trip_and_graph_replay() {
        let dev = CudaDevice::open(0).expect("a GPU");
        let info = dev.info().unwrap();
        eprintln!(
            "GPU {} cc {:?} {} MiB",
            info.name,
            info.compute_capability,
            info.total_memory >> 20
        );
        let s = dev.stream_create().unwrap();
        let (a, b, c) = (
            dev.alloc(4096).unwrap(),
            dev.alloc(4096).unwrap(),
            dev.alloc(4096).unwrap(),
        );
        assert!([a, b, c].iter().all(|p| p.is_multiple_of(256)));
        let input: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        dev.memcpy_htod(a, &input, s).unwrap();
        dev.begin_capture(s).unwrap();
        // SAFETY: a, b, c are 4096-byte device buffers; the copies are captured, not run.
        unsafe {
            result::memcpy_dtod_async(b, a, 4096, raw(s)).unwrap();
            result::memcpy_dtod_async(c, b, 4096, raw(s)).unwrap();
        }
        let g = dev.end_capture(s).unwrap();
        let mut out = vec![0u8; 4096];
        dev.memcpy_dtoh(&mut out, c, s).unwrap();
        assert!(
            out.iter().all(|&x| x == 0) || out != input,
            "capture must not have executed the copies"
        );
        dev.launch(g, s).unwrap();
        dev.sync(s).unwrap();
        dev.memcpy_dtoh(&mut out, c, s).unwrap();
        assert_eq!(out, input);
        // Replay after changing the source: the graph reads the same (frozen) addresses.
        let input2: Vec<u8> = input.iter().map(|x| x ^ 0xff).collect();
        dev.memcpy_htod(a, &input2, s).unwrap();
        dev.launch(g, s).unwrap();
        dev.memcpy_dtoh(&mut out, c, s).unwrap();
        assert_eq!(out, input2);
        dev.graph_destroy(g);
        assert!(dev.launch(g, s).is_err(), "a destroyed graph is rejected");
        // Pinned staging copies captured into a graph: host → a → host, replayed twice.
        let (pin_in, pin_out) = (
            dev.pinned_alloc(4096).unwrap(),
            dev.pinned_alloc(4096).unwrap(),
        );
        dev.begin_capture(s).unwrap();
        dev.copy_to_device(a, pin_in, 4096, s).unwrap();
        dev.copy_to_host(pin_out, a, 4096, s).unwrap();
        let g2 = dev.end_capture(s).unwrap();
        for data in [&input, &input2] {
            dev.pinned_write(pin_in, data).unwrap();
            dev.launch(g2, s).unwrap();
            dev.sync(s).unwrap();
            dev.pinned_read(pin_out, &mut out).unwrap();
            assert_eq!(&out, data);
        }
        assert!(
            dev.pinned_write(pin_in, &[0u8; 4097]).is_err(),
            "overrun refused"
        );
        dev.graph_destroy(g2);
        dev.pinned_free(pin_in);
        dev.pinned_free(pin_out);
        // An aborted capture leaves the stream usable.
        dev.begin_capture(s).unwrap();
        dev.abort_capture(s);
        dev.memcpy_htod(a, &input, s).unwrap();
        for p in [a, b, c] {
            dev.free(p);
        }
        dev.stream_destroy(s);
    }
}
