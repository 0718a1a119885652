//! The backend's orchestration on a real GPU: the CUDA device of [`super::cuda`] under the
//! TensorRT shim's recording double (no TensorRT library is needed; its engines compute
//! nothing). What the doubles of `backend_tests` cannot show is checked here against the
//! driver itself: the weights land on the GPU byte for byte at the addresses the engines are
//! given, the captured graphs copy the input to the engines' input buffer and their output back
//! through pinned memory on every replay, `segments` escalation delivers the deeper head's
//! output, and opening and dropping models and sessions does not leak device memory.
//!
//! `#[ignore]`d: they need an NVIDIA driver and GPU (`cargo test --features tensorrt --lib --
//! --ignored cuda_`).

use super::backend::TrtModel;
use super::backend_tests::{opts, rig, Rig};
use super::cuda::CudaDevice;
use super::device::{Device, Stream};
use super::fixtures::{sample, segments};
use super::manifest::{Gpu, Manifest};
use super::session::TrtSession;
use super::TrtError;
use cudarc::driver::result;
use std::sync::Arc;
use tinv_sys::ShimApi;

/// Device memory in use, from the driver (`total − free`).
fn used() -> u64 {
    let (free, total) = result::mem_get_info().expect("cuMemGetInfo");
    (total - free) as u64
}

fn gpu() -> Arc<CudaDevice> {
    Arc::new(CudaDevice::open(0).expect("an NVIDIA GPU and driver"))
}

/// The GPU and a rig whose manifest was built for it.
fn on_this_gpu(mut m: Manifest) -> (Arc<CudaDevice>, Rig) {
    let dev = gpu();
    let info = dev.info().unwrap();
    eprintln!(
        "GPU {:?}, compute capability {:?}, {} SMs, {} MiB",
        info.name,
        info.compute_capability,
        info.sms,
        info.total_memory >> 20
    );
    m.gpu = Gpu {
        name: info.name,
        compute_capability: info.compute_capability,
        sms: info.sms,
    };
    (dev, rig(m))
}

fn open(dev: &Arc<CudaDevice>, r: &Rig) -> Result<Arc<TrtModel>, TrtError> {
    let shim: Arc<dyn ShimApi> = r.shim.clone();
    TrtModel::open(
        shim,
        dev.clone(),
        r.manifest.clone(),
        &opts(&r.manifest),
        &r.files,
    )
    .map(Arc::new)
}

fn read(dev: &CudaDevice, ptr: u64, len: usize, s: Stream) -> Vec<u8> {
    let mut v = vec![0u8; len];
    dev.memcpy_dtoh(&mut v, ptr, s).unwrap();
    v
}

fn bytes(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + seed * 31) % 251) as u8)
        .collect()
}

/// One model + session life on the GPU with `sample()`'s per-path engines, checking what the
/// device holds at each step.
fn per_path_life(dev: &Arc<CudaDevice>, r: &Rig, s0: Stream) {
    let before = used();
    let model = open(dev, r).unwrap();
    let mut s = TrtSession::new(model.clone()).unwrap();
    let grew = used().saturating_sub(before);
    assert!(
        grew >= 3_000_064,
        "the arena is on the device: {grew} bytes more in use"
    );
    // This session's two contexts are the latest the shim made.
    let all = r.contexts();
    let ctxs = &all[all.len() - 2..];
    for name in ["blk.0.fc.weight", "blk.0.fc.bias"] {
        let at = r.address(ctxs[1], name).unwrap();
        let want = &r.files.weights[name];
        assert_eq!(&read(dev, at, want.len(), s0), want, "{name} on the GPU");
    }
    let image_at = r.address(ctxs[0], "image").unwrap();
    let logits_at = r.address(ctxs[1], "logits").unwrap();
    let mut out = vec![0u8; s.output_len(1).unwrap()];
    // Each replay of path 2's graph copies this input in and the engine's output buffer out.
    for round in 0..3 {
        let (image, logits) = (bytes(3136, round), bytes(40, round + 100));
        dev.memcpy_htod(logits_at, &logits, s0).unwrap();
        dev.sync(s0).unwrap();
        let launched = s.run(1, &image, &mut out).unwrap();
        assert_eq!(launched.engines.to_vec(), [1]);
        assert_eq!(
            out, logits,
            "round {round}: the output buffer, through pinned memory"
        );
        assert_eq!(read(dev, image_at, 3136, s0), image, "round {round}: input");
    }
    // per-path escalation reruns path 2 (its graph) and returns its output.
    let short_at = r.address(ctxs[0], "logits").unwrap();
    s.run(0, &bytes(3136, 7), &mut out).unwrap();
    assert_eq!(out, read(dev, short_at, 40, s0));
    let deep = bytes(40, 9);
    dev.memcpy_htod(logits_at, &deep, s0).unwrap();
    dev.sync(s0).unwrap();
    let esc = s.escalate(0, &mut out).unwrap();
    assert_eq!((esc.engines.to_vec(), esc.rerun), (vec![1], true));
    assert_eq!(out, deep);
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver"]
fn cuda_per_path_weights_graphs_and_release_on_a_real_gpu() {
    let (dev, r) = on_this_gpu(sample());
    let s0 = dev.stream_create().unwrap();
    // The first life leaves the driver's small-allocation pool behind (2 MiB on an H200 with
    // driver 580), so a leak shows as growth over the lives after it.
    per_path_life(&dev, &r, s0);
    let settled = used();
    for _ in 0..4 {
        per_path_life(&dev, &r, s0);
    }
    let after = used();
    assert!(
        after <= settled,
        "device memory grows with each model and session: {settled} bytes in use after the \
         first, {after} after four more"
    );
    dev.stream_destroy(s0);
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver"]
fn cuda_segments_resume_with_and_without_graphs_on_a_real_gpu() {
    let (dev, r) = on_this_gpu(segments());
    let s0 = dev.stream_create().unwrap();
    let model = open(&dev, &r).unwrap();
    for graphs in [true, false] {
        let mut s = TrtSession::with_graphs(model.clone(), graphs).unwrap();
        // The latest contexts are this session's: seg1, head1, seg2, head2.
        let all = r.contexts();
        let ctxs = &all[all.len() - 4..];
        let (h1_seg1, h1_seg2) = (r.address(ctxs[0], "h1"), r.address(ctxs[2], "h1"));
        assert_eq!(h1_seg1, h1_seg2, "one buffer is the resume point");
        let (l1, l2) = (
            r.address(ctxs[1], "logits1").unwrap(),
            r.address(ctxs[3], "logits2").unwrap(),
        );
        let (first, second) = (bytes(40, 1), bytes(40, 2));
        dev.memcpy_htod(l1, &first, s0).unwrap();
        dev.memcpy_htod(l2, &second, s0).unwrap();
        dev.sync(s0).unwrap();
        let mut out = vec![0u8; 40];
        s.run(0, &bytes(3136, 3), &mut out).unwrap();
        assert_eq!(out, first, "graphs {graphs}: head 1's output");
        let esc = s.escalate(0, &mut out).unwrap();
        assert_eq!((esc.engines.to_vec(), esc.rerun), (vec![2, 3], false));
        assert_eq!(
            out, second,
            "graphs {graphs}: head 2's output after resuming"
        );
    }
    dev.stream_destroy(s0);
}

#[test]
#[ignore = "needs an NVIDIA GPU and driver"]
fn cuda_engines_for_another_gpu_are_refused_naming_this_one() {
    let dev = gpu();
    let (major, minor) = dev.info().unwrap().compute_capability;
    let r = rig(sample()); // built for a Xavier, compute capability 7.2
    match open(&dev, &r).map(|_| ()) {
        Err(TrtError::Mismatch { field, built, here }) => {
            assert_eq!(field, "gpu");
            assert_eq!(built, "compute capability 7.2");
            assert_eq!(here, format!("compute capability {major}.{minor}"));
        }
        other => panic!("expected a gpu mismatch, got {other:?}"),
    }
}

/// The median of `n` timed calls of `f`, in microseconds.
fn median_us(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut t: Vec<f64> = (0..n)
        .map(|i| {
            let start = std::time::Instant::now();
            f(i);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

/// What tinv adds around the engines per inference on this GPU, and what a switch of path
/// costs, for both layouts. The recording double's engines compute nothing, so a run here is
/// only tinv's own work: the input through pinned memory, one graph launch (or, without graphs,
/// the copies and enqueues one call at a time), the output back and the wait. Prints medians
/// and asserts no time (docs/JETSON.md records them). It asserts that every alternating run
/// returns its path's output buffer: in `segments` the two paths write different buffers
/// (`logits1`, `logits2`), so a run that launched the other path's graph fails; in `per-path`
/// both write the one buffer named `logits`.
#[test]
#[ignore = "needs an NVIDIA GPU and driver"]
fn cuda_time_runs_and_path_switches_on_a_real_gpu() {
    for (manifest, outputs) in [
        (sample(), ["logits", "logits"]),
        (segments(), ["logits1", "logits2"]),
    ] {
        let layout = manifest.layout;
        let engines = manifest.engines.len();
        let (dev, r) = on_this_gpu(manifest);
        let s0 = dev.stream_create().unwrap();
        let model = open(&dev, &r).unwrap();
        let image = bytes(3136, 5);
        for graphs in [true, false] {
            let mut s = TrtSession::with_graphs(model.clone(), graphs).unwrap();
            assert_eq!(s.uses_graphs(), graphs);
            let all = r.contexts();
            let ctxs = &all[all.len() - engines..];
            let at: Vec<u64> = outputs
                .iter()
                .map(|name| ctxs.iter().find_map(|&c| r.address(c, name)).unwrap())
                .collect();
            for (p, &a) in at.iter().enumerate() {
                dev.memcpy_htod(a, &bytes(40, 50 + p), s0).unwrap();
            }
            dev.sync(s0).unwrap();
            // Read back: in per-path the second write replaced the first.
            let want: Vec<Vec<u8>> = at.iter().map(|&a| read(&dev, a, 40, s0)).collect();
            assert_eq!(want[0] != want[1], at[0] != at[1], "{layout:?}");
            let mut out = vec![0u8; 40];
            for i in 0..500 {
                s.run(i % 2, &image, &mut out).unwrap();
            }
            let n = 5000;
            let same = median_us(n, |_| {
                s.run(1, &image, &mut out).unwrap();
            });
            let mut wrong = 0;
            let alternating = median_us(n, |i| {
                s.run(i % 2, &image, &mut out).unwrap();
                wrong += usize::from(out != want[i % 2]);
            });
            assert_eq!(
                wrong, 0,
                "{layout:?}, graphs {graphs}: runs that returned another buffer's bytes"
            );
            eprintln!(
                "{layout:?}, graphs {graphs}: one run, path repeated: median {same:.1} µs; paths \
                 alternated: median {alternating:.1} µs ({n} runs each)"
            );
        }
        dev.stream_destroy(s0);
    }
}
