//! A recording double of [`Device`] (tests only). It hands out 256-aligned fake addresses,
//! keeps host copies of what is written so reads return it, records the copies made under
//! capture into the graph and replays them at launch (engines are not simulated), tracks live
//! allocations, streams and graphs, and records every call. `mark` lets a test interleave the shim double's call count
//! with device calls, so "these enqueues happened inside this capture" can be asserted.

use super::device::{Device, DeviceError, DevicePtr, GpuInfo, Graph, Pinned, Stream};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// One recorded device call; `at` fields carry the shim's call count at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevCall {
    /// `alloc(bytes)` → ptr.
    Alloc(u64, DevicePtr),
    /// `free(ptr)`.
    Free(DevicePtr),
    /// `stream_create` → stream.
    StreamCreate(Stream),
    /// `stream_destroy`.
    StreamDestroy(Stream),
    /// `memcpy_htod(dst, len)`.
    Htod(DevicePtr, usize),
    /// `memcpy_dtoh(src, len)`.
    Dtoh(DevicePtr, usize),
    /// `pinned_alloc(bytes)` → buffer.
    PinnedAlloc(u64, Pinned),
    /// `pinned_free`.
    PinnedFree(Pinned),
    /// `pinned_write(buf, len)`.
    PinnedWrite(Pinned, usize),
    /// `pinned_read(buf, len)`.
    PinnedRead(Pinned, usize),
    /// `copy_to_device(dst, src, bytes)`.
    ToDevice(DevicePtr, Pinned, u64),
    /// `copy_to_host(dst, src, bytes)`.
    ToHost(Pinned, DevicePtr, u64),
    /// `begin_capture` when the shim had made `at` calls.
    BeginCapture {
        /// The shim's call count.
        at: usize,
    },
    /// `end_capture` → graph, when the shim had made `at` calls.
    EndCapture {
        /// The instantiated graph.
        graph: Graph,
        /// The shim's call count.
        at: usize,
    },
    /// `abort_capture`.
    AbortCapture,
    /// `launch(graph)`.
    Launch(Graph),
    /// `graph_destroy`.
    GraphDestroy(Graph),
    /// `sync`.
    Sync,
    /// `make_current`, with the mark (e.g. the shim double's call count) at that moment.
    MakeCurrent(usize),
}

/// A copy a graph replays when launched (the double does not run engines, only copies).
#[derive(Clone)]
enum CopyOp {
    ToDevice(DevicePtr, Pinned, usize),
    ToHost(Pinned, DevicePtr, usize),
}

#[derive(Default)]
struct State {
    pinned: HashMap<usize, Vec<u8>>,
    captured: Vec<CopyOp>,
    graph_copies: HashMap<usize, Vec<CopyOp>>,
    next: u64,
    live: BTreeMap<DevicePtr, u64>,
    memory: BTreeMap<DevicePtr, Vec<u8>>,
    streams: HashSet<usize>,
    graphs: HashSet<usize>,
    capturing: bool,
    calls: Vec<DevCall>,
    fail: HashSet<&'static str>,
}

/// The recording device double.
pub struct RecordingDevice {
    state: Mutex<State>,
    mark: Box<dyn Fn() -> usize + Send + Sync>,
}

impl RecordingDevice {
    /// A double whose capture records carry `mark()` (e.g. the shim double's call count).
    pub fn new(mark: impl Fn() -> usize + Send + Sync + 'static) -> Arc<RecordingDevice> {
        let state = State {
            next: 0x7f00_0000_0000,
            ..State::default()
        };
        Arc::new(RecordingDevice {
            state: Mutex::new(state),
            mark: Box::new(mark),
        })
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<DevCall> {
        self.st().calls.clone()
    }

    /// The next call of `op` (`alloc`, `launch`, `end_capture`, …) fails once.
    pub fn fail_next(&self, op: &'static str) {
        self.st().fail.insert(op);
    }

    /// Live allocations (device and pinned), streams and graphs (all zero after everything is
    /// dropped).
    pub fn live(&self) -> (usize, usize, usize) {
        let st = self.st();
        (
            st.live.len() + st.pinned.len(),
            st.streams.len(),
            st.graphs.len(),
        )
    }

    /// Runs one copy now (outside a capture, or when a graph is launched).
    fn apply(st: &mut State, c: &CopyOp) -> Result<(), DeviceError> {
        match c {
            CopyOp::ToDevice(dst, src, n) => {
                let bytes = st
                    .pinned
                    .get(&src.0)
                    .and_then(|b| b.get(..*n))
                    .map(<[u8]>::to_vec);
                let bytes = bytes.ok_or_else(|| DeviceError {
                    op: "copy_to_device",
                    message: "bad pinned range".into(),
                })?;
                if !Self::inside(st, *dst, *n) {
                    return Err(DeviceError {
                        op: "copy_to_device",
                        message: format!("{dst:#x}+{n} is outside any allocation"),
                    });
                }
                st.memory.insert(*dst, bytes);
            }
            CopyOp::ToHost(dst, src, n) => {
                if !Self::inside(st, *src, *n) {
                    return Err(DeviceError {
                        op: "copy_to_host",
                        message: format!("{src:#x}+{n} is outside any allocation"),
                    });
                }
                let data = st.memory.get(src).cloned().unwrap_or_default();
                let buf = st.pinned.get_mut(&dst.0).filter(|b| b.len() >= *n);
                let buf = buf.ok_or_else(|| DeviceError {
                    op: "copy_to_host",
                    message: "bad pinned range".into(),
                })?;
                let k = data.len().min(*n);
                buf[..k].copy_from_slice(&data[..k]);
            }
        }
        Ok(())
    }

    fn copy(st: &mut State, c: CopyOp) -> Result<(), DeviceError> {
        if st.capturing {
            st.captured.push(c);
            Ok(())
        } else {
            Self::apply(st, &c)
        }
    }

    /// Bytes last written at exactly `ptr` by `memcpy_htod`.
    pub fn written(&self, ptr: DevicePtr) -> Option<Vec<u8>> {
        self.st().memory.get(&ptr).cloned()
    }

    /// Makes `bytes` readable at `ptr` (what a kernel would have written there).
    pub fn put(&self, ptr: DevicePtr, bytes: &[u8]) {
        self.st().memory.insert(ptr, bytes.to_vec());
    }

    fn check(st: &mut State, op: &'static str) -> Result<(), DeviceError> {
        if st.fail.remove(op) {
            return Err(DeviceError {
                op,
                message: "injected failure".into(),
            });
        }
        Ok(())
    }

    /// Whether [ptr, ptr+len) lies inside one live allocation.
    fn inside(st: &State, ptr: DevicePtr, len: usize) -> bool {
        st.live
            .range(..=ptr)
            .next_back()
            .is_some_and(|(&base, &size)| ptr + len as u64 <= base + size)
    }
}

impl Device for RecordingDevice {
    fn info(&self) -> Result<GpuInfo, DeviceError> {
        Ok(GpuInfo {
            name: "Xavier".into(),
            compute_capability: (7, 2),
            total_memory: 32 << 30,
            sms: 8,
        })
    }

    fn alloc(&self, bytes: u64) -> Result<DevicePtr, DeviceError> {
        let st = &mut *self.st();
        Self::check(st, "alloc")?;
        if bytes == 0 {
            return Err(DeviceError {
                op: "alloc",
                message: "zero bytes".into(),
            });
        }
        let ptr = st.next;
        st.next += bytes.div_ceil(4096) * 4096 + 4096; // a gap so overruns are detectable
        st.live.insert(ptr, bytes);
        st.calls.push(DevCall::Alloc(bytes, ptr));
        Ok(ptr)
    }

    fn free(&self, ptr: DevicePtr) {
        let st = &mut *self.st();
        st.calls.push(DevCall::Free(ptr));
        st.live.remove(&ptr);
    }

    fn stream_create(&self) -> Result<Stream, DeviceError> {
        let st = &mut *self.st();
        Self::check(st, "stream_create")?;
        let s = Stream(0x5000 + st.streams.len() + st.calls.len());
        st.streams.insert(s.0);
        st.calls.push(DevCall::StreamCreate(s));
        Ok(s)
    }

    fn stream_destroy(&self, stream: Stream) {
        let st = &mut *self.st();
        st.calls.push(DevCall::StreamDestroy(stream));
        st.streams.remove(&stream.0);
    }

    fn memcpy_htod(&self, dst: DevicePtr, src: &[u8], _stream: Stream) -> Result<(), DeviceError> {
        let st = &mut *self.st();
        st.calls.push(DevCall::Htod(dst, src.len()));
        Self::check(st, "memcpy_htod")?;
        if !Self::inside(st, dst, src.len()) {
            return Err(DeviceError {
                op: "memcpy_htod",
                message: format!("{dst:#x}+{} is outside any allocation", src.len()),
            });
        }
        st.memory.insert(dst, src.to_vec());
        Ok(())
    }

    fn memcpy_dtoh(
        &self,
        dst: &mut [u8],
        src: DevicePtr,
        _stream: Stream,
    ) -> Result<(), DeviceError> {
        let st = &mut *self.st();
        st.calls.push(DevCall::Dtoh(src, dst.len()));
        Self::check(st, "memcpy_dtoh")?;
        if !Self::inside(st, src, dst.len()) {
            return Err(DeviceError {
                op: "memcpy_dtoh",
                message: format!("{src:#x}+{} is outside any allocation", dst.len()),
            });
        }
        if let Some(bytes) = st.memory.get(&src) {
            let n = bytes.len().min(dst.len());
            dst[..n].copy_from_slice(&bytes[..n]);
        }
        Ok(())
    }

    fn pinned_alloc(&self, bytes: u64) -> Result<Pinned, DeviceError> {
        let st = &mut *self.st();
        Self::check(st, "pinned_alloc")?;
        let p = Pinned(0x1_0000 + st.calls.len());
        st.pinned.insert(p.0, vec![0; bytes as usize]);
        st.calls.push(DevCall::PinnedAlloc(bytes, p));
        Ok(p)
    }

    fn pinned_free(&self, buf: Pinned) {
        let st = &mut *self.st();
        st.calls.push(DevCall::PinnedFree(buf));
        st.pinned.remove(&buf.0);
    }

    fn pinned_write(&self, buf: Pinned, src: &[u8]) -> Result<(), DeviceError> {
        let st = &mut *self.st();
        st.calls.push(DevCall::PinnedWrite(buf, src.len()));
        Self::check(st, "pinned_write")?;
        let b = st.pinned.get_mut(&buf.0).filter(|b| b.len() >= src.len());
        let b = b.ok_or_else(|| DeviceError {
            op: "pinned_write",
            message: "overrun".into(),
        })?;
        b[..src.len()].copy_from_slice(src);
        Ok(())
    }

    fn pinned_read(&self, buf: Pinned, dst: &mut [u8]) -> Result<(), DeviceError> {
        let st = &mut *self.st();
        st.calls.push(DevCall::PinnedRead(buf, dst.len()));
        Self::check(st, "pinned_read")?;
        let b = st.pinned.get(&buf.0).and_then(|b| b.get(..dst.len()));
        let b = b.ok_or_else(|| DeviceError {
            op: "pinned_read",
            message: "overrun".into(),
        })?;
        dst.copy_from_slice(b);
        Ok(())
    }

    fn copy_to_device(
        &self,
        dst: DevicePtr,
        src: Pinned,
        bytes: u64,
        _stream: Stream,
    ) -> Result<(), DeviceError> {
        let st = &mut *self.st();
        st.calls.push(DevCall::ToDevice(dst, src, bytes));
        Self::check(st, "copy_to_device")?;
        Self::copy(st, CopyOp::ToDevice(dst, src, bytes as usize))
    }

    fn copy_to_host(
        &self,
        dst: Pinned,
        src: DevicePtr,
        bytes: u64,
        _stream: Stream,
    ) -> Result<(), DeviceError> {
        let st = &mut *self.st();
        st.calls.push(DevCall::ToHost(dst, src, bytes));
        Self::check(st, "copy_to_host")?;
        Self::copy(st, CopyOp::ToHost(dst, src, bytes as usize))
    }

    fn begin_capture(&self, _stream: Stream) -> Result<(), DeviceError> {
        let at = (self.mark)();
        let st = &mut *self.st();
        Self::check(st, "begin_capture")?;
        if st.capturing {
            return Err(DeviceError {
                op: "begin_capture",
                message: "already capturing".into(),
            });
        }
        st.capturing = true;
        st.captured.clear();
        st.calls.push(DevCall::BeginCapture { at });
        Ok(())
    }

    fn end_capture(&self, _stream: Stream) -> Result<Graph, DeviceError> {
        let at = (self.mark)();
        let st = &mut *self.st();
        st.capturing = false;
        Self::check(st, "end_capture")?;
        let graph = Graph(0x9000 + st.calls.len());
        st.graphs.insert(graph.0);
        let copies = std::mem::take(&mut st.captured);
        st.graph_copies.insert(graph.0, copies);
        st.calls.push(DevCall::EndCapture { graph, at });
        Ok(graph)
    }

    fn abort_capture(&self, _stream: Stream) {
        let st = &mut *self.st();
        st.capturing = false;
        st.captured.clear();
        st.calls.push(DevCall::AbortCapture);
    }

    fn launch(&self, graph: Graph, _stream: Stream) -> Result<(), DeviceError> {
        let st = &mut *self.st();
        st.calls.push(DevCall::Launch(graph));
        Self::check(st, "launch")?;
        if !st.graphs.contains(&graph.0) {
            return Err(DeviceError {
                op: "launch",
                message: "unknown graph".into(),
            });
        }
        // Replay the graph's copies in capture order (the engines' kernels are not simulated).
        for c in st.graph_copies.get(&graph.0).cloned().unwrap_or_default() {
            Self::apply(st, &c)?;
        }
        Ok(())
    }

    fn graph_destroy(&self, graph: Graph) {
        let st = &mut *self.st();
        st.calls.push(DevCall::GraphDestroy(graph));
        st.graphs.remove(&graph.0);
        st.graph_copies.remove(&graph.0);
    }

    fn make_current(&self) {
        let mark = (self.mark)();
        self.st().calls.push(DevCall::MakeCurrent(mark));
    }

    fn sync(&self, _stream: Stream) -> Result<(), DeviceError> {
        let st = &mut *self.st();
        st.calls.push(DevCall::Sync);
        Self::check(st, "sync")
    }
}
