//! `Session::run_trt` (the TensorRT half of `Session::run`) over the recording doubles of the
//! shim and the device (src/trt/backend_tests.rs): the engines compute nothing, so each path's
//! logits are what a test puts at its output buffer, and the decisions, the logits written and
//! the stats charged are checked against the CPU backend on the same model or by hand.

use super::*;
use crate::format::DType;
use crate::trt::backend_tests::{rig, Rig};
use crate::trt::fixtures::{sample, segments};
use crate::trt::manifest::Manifest;
use crate::trt::session::TrtSession;
use crate::{synth, OpenOptions};

const K: usize = 10;

/// 1×28×28 inputs, 10 classes, paths of depth 1 and 2: the fixtures' engine interface.
fn model() -> Arc<Model> {
    let cfg = synth::config(28, 1, 7, 16, 2, 2, K, &[1, 2], false);
    let bytes = synth::random_model(&cfg, 1, DType::F32);
    Arc::new(Model::from_bytes(&bytes, &OpenOptions::default()).unwrap())
}

/// Two different inputs in [0, 1].
fn inputs() -> Vec<f32> {
    (0..2 * 784).map(|i| (i % 97) as f32 / 96.0).collect()
}

/// A session of `model()` whose TensorRT side runs the engines of `m` on the doubles.
fn trt_session(m: Manifest, mode: Mode) -> (Session, Rig) {
    let r = rig(m);
    let engines = r.open().unwrap();
    let opts = SessionOptions::default().max_batch(2).mode(mode);
    let mut s = Session::new(model(), opts).unwrap();
    s.trt = Some(backend::Trt {
        session: TrtSession::new(engines).unwrap(),
        out: vec![0u8; K * 4],
    });
    assert_eq!(s.backend(), Backend::TensorRt);
    (s, r)
}

/// The device address tensor `name` is bound to (the rig holds one session's contexts).
fn bound(r: &Rig, name: &str) -> u64 {
    r.contexts()
        .into_iter()
        .find_map(|c| r.address(c, name))
        .unwrap()
}

/// Makes `logits` what the engines "wrote" to output tensor `name`.
fn put(r: &Rig, name: &str, logits: &[f32]) {
    let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    r.device.put(bound(r, name), &bytes);
}

/// Logits whose softmax maximum is far below 1 (class 3 the largest).
fn unsure() -> Vec<f32> {
    (0..K).map(|c| if c == 3 { 0.5 } else { 0.0 }).collect()
}

/// Distinct logits, class 7 the largest.
fn deep() -> Vec<f32> {
    (0..K)
        .map(|c| if c == 7 { 2.0 } else { c as f32 / 10.0 })
        .collect()
}

/// Softmax maximum in f64.
fn confidence(l: &[f32]) -> f32 {
    let m = l.iter().fold(f64::MIN, |a, &v| a.max(f64::from(v)));
    let sum: f64 = l.iter().map(|&v| (f64::from(v) - m).exp()).sum();
    (1.0 / sum) as f32
}

/// The CPU backend's stats for the same inputs in `mode` (no TensorRT side).
fn cpu_stats(mode: Mode) -> Vec<Stats> {
    let mut s = Session::new(model(), SessionOptions::default().max_batch(2).mode(mode)).unwrap();
    let mut out = vec![0.0; 2 * K];
    s.infer(&inputs(), 2, &mut out).unwrap().to_vec()
}

fn cpu_depth_stats(depth: usize) -> Stats {
    let mut s = Session::new(model(), SessionOptions::default().max_batch(2)).unwrap();
    let mut out = vec![0.0; 2 * K];
    s.infer_depth(&inputs(), 2, depth, &mut out).unwrap()[0]
}

/// `segments`, threshold 1: exit 1 is unsure, so both inputs resume to path 2, whose logits
/// they answer with. The charges are the CPU backend's for inputs that escalate once.
#[test]
fn segments_escalation_answers_at_the_deeper_exit_and_charges_as_the_cpu_does() {
    let (mut s, r) = trt_session(segments(), Mode::Threshold(1.0));
    put(&r, "logits1", &unsure());
    put(&r, "logits2", &deep());
    let mut out = vec![f32::NAN; 2 * K + 3];
    let t0 = std::time::Instant::now();
    let stats = s.infer(&inputs(), 2, &mut out).unwrap().to_vec();
    let call_us = t0.elapsed().as_secs_f64() * 1e6;
    // In µs: within the call, and not a millionth of it (a margin for a preempted caller).
    for t in &stats {
        assert!(
            t.latency_us <= call_us && t.latency_us >= call_us / 100.0,
            "{t:?} {call_us}"
        );
    }
    for i in 0..2 {
        assert_eq!(out[i * K..(i + 1) * K], deep()[..], "input {i}");
    }
    assert!(out[2 * K..].iter().all(|v| v.is_nan()), "past the batch");
    let cpu = cpu_stats(Mode::Threshold(1.0));
    for (t, c) in stats.iter().zip(&cpu) {
        assert_eq!(c.escalations, 1, "the CPU reference escalates too");
        assert_eq!(
            (t.start_depth, t.depth, t.path, t.escalations),
            (1, 2, 1, 1)
        );
        assert_eq!((t.flops, t.weight_bytes), (c.flops, c.weight_bytes));
        assert_eq!(t.class, 7);
        assert!((t.confidence - confidence(&deep())).abs() < 1e-6);
        assert_eq!(t.predicted_path, None);
    }
    // The last input staged is input 2 (floats 784..1568), as little-endian bytes.
    let image = bound(&r, "image");
    let want: Vec<u8> = inputs()[784..]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(r.device.written(image), Some(want));
}

/// `segments`, threshold 0: every input stops at the first exit, with the CPU's charges.
#[test]
fn an_input_that_stops_at_the_first_exit_is_charged_as_the_cpu_does() {
    let (mut s, r) = trt_session(segments(), Mode::Threshold(0.0));
    put(&r, "logits1", &unsure());
    put(&r, "logits2", &deep());
    let mut out = vec![f32::NAN; 2 * K];
    let stats = s.infer(&inputs(), 2, &mut out).unwrap().to_vec();
    assert_eq!(out[..K], unsure()[..]);
    assert_eq!(out[K..], unsure()[..]);
    let cpu = cpu_stats(Mode::Threshold(0.0));
    for (t, c) in stats.iter().zip(&cpu) {
        assert_eq!((t.depth, t.path, t.escalations, t.class), (1, 0, 0, 3));
        assert_eq!((t.flops, t.weight_bytes), (c.flops, c.weight_bytes));
    }
}

/// `per-path`: the escalation reruns path 2 from the image, so its FLOPs are those of a run at
/// depth 1 and one at depth 2 (the threshold rule charges nothing); its weight bytes count
/// every tensor read once (docs/ARCHITECTURE.md), as when the CPU resumes.
#[test]
fn a_per_path_rerun_charges_both_runs_flops_and_each_tensor_once() {
    let (mut s, r) = trt_session(sample(), Mode::Threshold(1.0));
    put(&r, "logits", &unsure());
    let mut out = vec![f32::NAN; 2 * K];
    let stats = s.infer(&inputs(), 2, &mut out).unwrap().to_vec();
    let cpu = cpu_stats(Mode::Threshold(1.0));
    let (d1, d2) = (cpu_depth_stats(1), cpu_depth_stats(2));
    for (t, c) in stats.iter().zip(&cpu) {
        assert_eq!((t.depth, t.path, t.escalations, t.class), (2, 1, 1, 3));
        assert_eq!(t.flops, d1.flops + d2.flops);
        assert_eq!(t.weight_bytes, c.weight_bytes);
    }
    assert_eq!(out[K..], unsure()[..]);
}

/// The all-exits pass writes `batch × paths × classes` logits, input-major, and escalates
/// every input to the deepest exit.
#[test]
fn all_exits_writes_every_exit_of_every_input() {
    let (mut s, r) = trt_session(segments(), Mode::Adaptive);
    put(&r, "logits1", &unsure());
    put(&r, "logits2", &deep());
    let mut out = vec![f32::NAN; 2 * 2 * K + 1];
    let stats = s.infer_all_exits(&inputs(), 2, &mut out).unwrap().to_vec();
    for i in 0..2 {
        assert_eq!(out[(2 * i) * K..(2 * i + 1) * K], unsure()[..], "{i}");
        assert_eq!(out[(2 * i + 1) * K..(2 * i + 2) * K], deep()[..], "{i}");
        assert_eq!((stats[i].escalations, stats[i].depth), (1, 2));
    }
    assert!(out[4 * K].is_nan());
    let mut cpu = Session::new(model(), SessionOptions::default().max_batch(2)).unwrap();
    let mut cpu_out = vec![0.0; 4 * K];
    let c = cpu.infer_all_exits(&inputs(), 2, &mut cpu_out).unwrap();
    assert_eq!(
        (stats[0].flops, stats[0].weight_bytes),
        (c[0].flops, c[0].weight_bytes)
    );
}

/// A fixed depth starts and ends at that path: one run, no escalation.
#[test]
fn a_fixed_depth_runs_that_path_once() {
    let (mut s, r) = trt_session(segments(), Mode::Adaptive);
    put(&r, "logits1", &unsure());
    put(&r, "logits2", &deep());
    let mut out = vec![f32::NAN; 2 * K];
    let stats = s.infer_depth(&inputs(), 2, 2, &mut out).unwrap().to_vec();
    assert_eq!(out[K..], deep()[..]);
    let d2 = cpu_depth_stats(2);
    for t in &stats {
        assert_eq!((t.start_depth, t.depth, t.escalations), (2, 2, 0));
        assert_eq!((t.flops, t.weight_bytes), (d2.flops, d2.weight_bytes));
    }
}
