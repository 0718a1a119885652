//! Inference allocates nothing: a counting global allocator watches every call after the
//! session is open — batch 1 and batch > 1, every path, adaptive, graph, threshold, all-exits,
//! one and two threads.
//!
//! The allocator counts every thread of the process, so this test runs without libtest's
//! harness (`harness = false` in Cargo.toml): the harness's own threads allocated now and then
//! on a loaded machine and made it fail for allocations tinv never made.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tinv::format::DType;
use tinv::{synth, Mode, Model, OpenOptions, Session, SessionOptions};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    inference_never_allocates();
    println!("no_alloc: inference_never_allocates ... ok");
}

fn inference_never_allocates() {
    let cfg = synth::config(16, 3, 4, 32, 4, 2, 7, &[1, 2, 4], true);
    let model = Arc::new(
        Model::from_bytes(
            &synth::random_model(&cfg, 3, DType::F32),
            &OpenOptions::default(),
        )
        .unwrap(),
    );
    let n = 5;
    let x = synth::random_inputs(&cfg, n, 4);
    let p = cfg.depths.len();
    let mut out = vec![0f32; n * p * cfg.classes];
    for threads in [1, 2] {
        for b in [1, n] {
            let modes = [Mode::Adaptive, Mode::Graph, Mode::Threshold(0.9)];
            let mut s = Session::new(
                model.clone(),
                SessionOptions::default().max_batch(n).threads(threads),
            )
            .unwrap();
            // One warm-up call (thread start-up of the pool happens at open, not here).
            s.infer(&x[..b * cfg.input_len()], b, &mut out).unwrap();
            let before = ALLOCS.load(Ordering::SeqCst);
            for mode in modes {
                s.set_mode(mode).unwrap();
                for budget in [0.0, 0.5, 1.0] {
                    s.set_budget(budget).unwrap();
                    s.infer(&x[..b * cfg.input_len()], b, &mut out).unwrap();
                }
            }
            for &d in &cfg.depths {
                s.infer_depth(&x[..b * cfg.input_len()], b, d, &mut out)
                    .unwrap();
            }
            s.infer_all_exits(&x[..b * cfg.input_len()], b, &mut out)
                .unwrap();
            let after = ALLOCS.load(Ordering::SeqCst);
            assert_eq!(
                after - before,
                0,
                "{} allocations with {threads} threads, batch {b}",
                after - before
            );
        }
    }
}
