//! The CPU backend against the naive f64 reference (tests/common/reference.rs), on random models:
//! every path, batches that mix paths, resumption, modes, and argument errors.

mod common;

use common::reference::forward_all_exits;
use std::sync::Arc;
use tinv::format::DType;
use tinv::{synth, Mode, Model, OpenOptions, Session, SessionOptions};

fn model(controller: bool) -> Arc<Model> {
    model_seeded(controller, 7)
}

/// The model of [`model`] with the weights of another seed. Seed 7's random controller starts
/// every input at the deepest path; seed 1's starts some shallower, and its exit RNN both stops
/// and escalates them, so the exit decisions run.
fn model_seeded(controller: bool, seed: u64) -> Arc<Model> {
    open_synth(
        &synth::config(16, 3, 4, 32, 4, 2, 7, &[1, 2, 4], controller),
        seed,
    )
}

/// A random f32 model of `cfg` with the weights of `seed`, opened with every checksum verified.
fn open_synth(cfg: &tinv::Config, seed: u64) -> Arc<Model> {
    Arc::new(
        Model::from_bytes(
            &synth::random_model(cfg, seed, DType::F32),
            &OpenOptions::default().verify(true),
        )
        .unwrap(),
    )
}

fn max_diff(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn every_path_matches_reference() {
    let m = model(false);
    let c = m.config().clone();
    let x = synth::random_inputs(&c, 3, 11);
    let mut s = Session::new(m.clone(), SessionOptions::default().max_batch(3)).unwrap();
    for (k, &depth) in c.depths.iter().enumerate() {
        let mut out = vec![0f32; 3 * c.classes];
        let stats = s.infer_depth(&x, 3, depth, &mut out).unwrap().to_vec();
        for i in 0..3 {
            let want = &forward_all_exits(&m, &x[i * c.input_len()..(i + 1) * c.input_len()])[k];
            let d = max_diff(&out[i * c.classes..(i + 1) * c.classes], want);
            assert!(d < 1e-4, "path {depth} input {i}: max |Δ| {d}");
            assert_eq!(stats[i].depth, depth);
            let want_flops = m.costs()[k].backbone_flops;
            assert_eq!(stats[i].flops, want_flops);
        }
    }
}

#[test]
fn all_exits_pass_matches_reference_and_single_paths() {
    let m = model(false);
    let c = m.config().clone();
    let x = synth::random_inputs(&c, 2, 5);
    let mut s = Session::new(m.clone(), SessionOptions::default().max_batch(2)).unwrap();
    let p = c.depths.len();
    let mut all = vec![0f32; 2 * p * c.classes];
    s.infer_all_exits(&x, 2, &mut all).unwrap();
    for i in 0..2 {
        let want = forward_all_exits(&m, &x[i * c.input_len()..(i + 1) * c.input_len()]);
        for k in 0..p {
            let got = &all[(i * p + k) * c.classes..(i * p + k + 1) * c.classes];
            assert!(max_diff(got, &want[k]) < 1e-4);
        }
    }
    // A full-depth pass: each input answers at the deepest exit, having continued past the
    // p − 1 shallower ones.
    for st in s.last_stats() {
        assert_eq!((st.depth, st.path), (*c.depths.last().unwrap(), p - 1));
        assert_eq!(st.escalations as usize, p - 1);
    }
}

#[test]
fn threshold_mode_escalates_and_resumes_without_recompute() {
    let m = model(false);
    let c = m.config().clone();
    let x = synth::random_inputs(&c, 4, 9);
    let mut s = Session::new(
        m.clone(),
        SessionOptions::default()
            .max_batch(4)
            .mode(Mode::Threshold(1.0)),
    )
    .unwrap();
    // τ = 1: no exit of this random model is certain (max softmax < 1 in f32), so every input
    // walks all exits to the deepest.
    let mut out = vec![0f32; 4 * c.classes];
    let stats = s.infer(&x, 4, &mut out).unwrap().to_vec();
    let full = m.costs().last().unwrap().backbone_flops;
    let exits = 2 * (c.dim * c.classes) as u64 * (c.depths.len() as u64 - 1);
    for (i, st) in stats.iter().enumerate() {
        assert_eq!(st.depth, 4);
        assert_eq!(st.escalations, 2);
        // Resumed: blocks counted once; only the extra exit heads are added.
        assert_eq!(st.flops, full + exits);
        let want = &forward_all_exits(&m, &x[i * c.input_len()..(i + 1) * c.input_len()])[2];
        assert!(max_diff(&out[i * c.classes..(i + 1) * c.classes], want) < 1e-4);
    }
    // τ = 0: the first exit always answers.
    s.set_mode(Mode::Threshold(0.0)).unwrap();
    let stats = s.infer(&x, 4, &mut out).unwrap();
    assert!(stats.iter().all(|st| st.depth == 1 && st.escalations == 0));
}

#[test]
fn mixed_batch_equals_one_by_one() {
    let m = model(true);
    let c = m.config().clone();
    let n = 6;
    let x = synth::random_inputs(&c, n, 21);
    for mode in [Mode::Adaptive, Mode::Graph, Mode::Threshold(0.5)] {
        for budget in [0.0, 0.5, 1.0] {
            let opts = SessionOptions::default()
                .max_batch(n)
                .mode(mode)
                .budget(budget);
            let mut batched = Session::new(m.clone(), opts.clone()).unwrap();
            let mut single = Session::new(m.clone(), opts.clone().max_batch(1)).unwrap();
            let mut out = vec![0f32; n * c.classes];
            let stats = batched.infer(&x, n, &mut out).unwrap().to_vec();
            for i in 0..n {
                let mut o1 = vec![0f32; c.classes];
                let s1 = single
                    .infer(&x[i * c.input_len()..(i + 1) * c.input_len()], 1, &mut o1)
                    .unwrap()[0];
                assert_eq!(stats[i].depth, s1.depth, "{mode:?} λ={budget} input {i}");
                assert_eq!(stats[i].flops, s1.flops);
                let k = c.path_index(s1.depth).unwrap();
                let want =
                    &forward_all_exits(&m, &x[i * c.input_len()..(i + 1) * c.input_len()])[k];
                assert!(max_diff(&out[i * c.classes..(i + 1) * c.classes], want) < 1e-4);
                assert!(max_diff(&o1, want) < 1e-4);
            }
        }
    }
}

// A session may move to another thread (the docs say so); this fails to compile if it cannot.
const _: fn() = || {
    fn movable<T: Send>() {}
    movable::<Session>();
    movable::<Model>();
};

#[test]
fn bad_arguments_are_errors() {
    let m = model(true);
    let c = m.config().clone();
    let mut s = Session::new(m.clone(), SessionOptions::default().max_batch(2)).unwrap();
    let x = synth::random_inputs(&c, 2, 1);
    let mut out = vec![0f32; 2 * c.classes];
    let msg = |r: tinv::Result<&[tinv::Stats]>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg(s.infer(&x, 3, &mut out)).contains("batch 3"));
    assert!(msg(s.infer(&x[1..], 2, &mut out)).contains("floats"));
    assert!(msg(s.infer(&x, 2, &mut out[1..])).contains("logits buffer"));
    assert!(msg(s.infer_depth(&x, 2, 3, &mut out)).contains("depth 3 is not a path"));
    let mut bad = x.clone();
    bad[c.input_len() + 5] = f32::NAN;
    assert!(msg(s.infer(&bad, 2, &mut out)).contains("(input 1, element 5) is NaN"));
    // Each kind its own variant, so that a caller tells a bad frame from a bad buffer without
    // reading the message (the C statuses come from them).
    use tinv::Error;
    assert!(matches!(
        s.infer(&x, 3, &mut out),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        s.infer(&x[1..], 2, &mut out),
        Err(Error::InputLength(_))
    ));
    assert!(matches!(
        s.infer(&x, 2, &mut out[1..]),
        Err(Error::BufferTooSmall(_))
    ));
    assert!(matches!(
        s.infer(&bad, 2, &mut out),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        s.infer_depth(&x, 2, 3, &mut out),
        Err(Error::InvalidArgument(_))
    ));
    // Finite but far outside [0, 1]: the normalization overflows and the logits come out NaN,
    // which is an error (Error::Numeric), not an answer; a failed call leaves no stats. From
    // about 1e19 a LayerNorm's variance overflows: that too must be NaN, not a row of zeros
    // (which gave the same finite logits for every such input).
    for big in [-3e38f32, 1e19, -1e30] {
        let huge: Vec<f32> = (0..x.len())
            .map(|i| if i % 2 == 1 { big } else { 0.0 })
            .collect();
        for mode in [Mode::Adaptive, Mode::Graph, Mode::Threshold(0.5)] {
            s.set_mode(mode).unwrap();
            let r = s.infer(&huge, 2, &mut out);
            assert!(
                matches!(r, Err(tinv::Error::Numeric(_))),
                "{big} {mode:?}: {r:?}"
            );
            assert!(s.last_stats().is_empty());
        }
    }
    let huge: Vec<f32> = (0..x.len())
        .map(|i| if i % 2 == 1 { -3e38 } else { 0.0 })
        .collect();
    assert!(matches!(
        s.infer_depth(&huge[..c.input_len()], 1, 1, &mut out),
        Err(tinv::Error::Numeric(_))
    ));
    // last_stats holds the last call's inputs only (a batch 2 then a batch 1 call: one entry).
    s.infer(&x, 2, &mut out).unwrap();
    assert_eq!(s.last_stats().len(), 2);
    s.infer(&x[..c.input_len()], 1, &mut out).unwrap();
    assert_eq!(s.last_stats().len(), 1);
    assert!(s.set_budget(1.5).is_err());
    assert!(Mode::parse("threshold:2").is_err());
    assert_eq!(Mode::parse("threshold:0.7").unwrap(), Mode::Threshold(0.7));
    assert!(Session::new(m, SessionOptions::default().max_batch(0)).is_err());
}

/// Two and three threads split GEMMs, attention (3 heads: query rows are cut into blocks),
/// LayerNorm and GELU rows; every element is still computed by one thread in the same order, so
/// the logits equal the one-thread logits exactly, and the f64 reference within 1e-4.
#[test]
fn threads_give_the_one_thread_logits() {
    // 65 tokens × dim 96 × batch 3: LayerNorm and GELU rows are large enough to be split.
    let cfg = synth::config(32, 3, 4, 96, 2, 3, 5, &[1, 2], false);
    let m = open_synth(&cfg, 3);
    let c = m.config().clone();
    let x = synth::random_inputs(&c, 3, 4);
    let run = |threads: usize| -> Vec<Vec<f32>> {
        let mut s = Session::new(
            m.clone(),
            SessionOptions::default().max_batch(3).threads(threads),
        )
        .unwrap();
        c.depths
            .iter()
            .map(|&d| {
                let mut out = vec![0f32; 3 * c.classes];
                s.infer_depth(&x, 3, d, &mut out).unwrap();
                out
            })
            .collect()
    };
    let one = run(1);
    for (k, out) in one.iter().enumerate() {
        for i in 0..3 {
            let want = &forward_all_exits(&m, &x[i * c.input_len()..(i + 1) * c.input_len()])[k];
            let d = max_diff(&out[i * c.classes..(i + 1) * c.classes], want);
            assert!(d < 1e-4, "path {k} input {i}: max |Δ| {d}");
        }
    }
    for threads in [2, 3] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}

#[test]
fn adaptive_charges_each_decision_that_runs_and_none_at_the_deepest_exit() {
    use tinv::model::flops::{controller_exit_flops, controller_up_front_flops};
    let m = model_seeded(true, 1);
    let c = m.config().clone();
    let w = *m.ctrl().unwrap();
    let (up, step) = (
        controller_up_front_flops(&c, &w, false),
        controller_exit_flops(&c, &w),
    );
    let (n, p) = (32, c.depths.len());
    let x = synth::random_inputs(&c, n, 33);
    let mut out = vec![0f32; n * c.classes];
    let (mut deepest, mut decided, mut escalated) = (0, 0, 0);
    for budget in [0.0, 0.3, 1.0] {
        let opts = SessionOptions::default().max_batch(n).budget(budget);
        let mut s = Session::new(m.clone(), opts).unwrap();
        for st in s.infer(&x, n, &mut out).unwrap() {
            // A decision at every exit reached except the deepest, which has nothing after it.
            let decisions = st.escalations as u64 + u64::from(st.path + 1 < p);
            let want = m.costs()[st.path].backbone_flops
                + st.escalations as u64 * m.costs()[0].exit_flops
                + up
                + decisions * step;
            assert_eq!(st.flops, want, "λ={budget} path {}", st.path);
            deepest += usize::from(st.path + 1 == p);
            decided += decisions;
            escalated += st.escalations;
        }
    }
    assert!(deepest > 0, "some inputs must reach the deepest exit");
    assert!(
        decided > 0 && escalated > 0,
        "the exit RNN must decide and escalate"
    );
}

/// `Stats::weight_bytes` against the file's own table: the bytes of every tensor an input's run
/// reads, each once (stem, blocks to its depth, every exit head from its start path on, the
/// predictor and its mode's up-front policy, and the exit RNN only when it made a decision).
#[test]
fn weight_bytes_are_the_bytes_of_the_tensors_read() {
    let (mut no_decision, mut decided) = (0, 0);
    // Seed 7's controller starts every input at the deepest path, seed 1's some above it.
    for m in [model(true), model_seeded(true, 1)] {
        let c = m.config().clone();
        let p = c.depths.len();
        let bytes = |prefix: &str| -> u64 {
            m.index()
                .tensors
                .iter()
                .filter(|t| t.name.starts_with(prefix))
                .map(|t| t.nbytes as u64)
                .sum()
        };
        assert!(bytes("ctrl.exit.") > 0 && bytes("ctrl.pred.") > 0);
        let n = 32;
        let x = synth::random_inputs(&c, n, 34);
        let mut out = vec![0f32; n * c.classes];
        for mode in [Mode::Adaptive, Mode::Graph] {
            for budget in [0.0, 0.3, 1.0] {
                let opts = SessionOptions::default()
                    .max_batch(n)
                    .mode(mode)
                    .budget(budget);
                let mut s = Session::new(m.clone(), opts).unwrap();
                for st in s.infer(&x, n, &mut out).unwrap() {
                    let start = c.depths.iter().position(|&d| d == st.start_depth).unwrap();
                    assert!(
                        matches!(st.predicted_path, Some(k) if k < p),
                        "the predictor ran: {st:?}"
                    );
                    let policy = match mode {
                        Mode::Graph if bytes("ctrl.graph.") > 0 => bytes("ctrl.graph."),
                        _ => bytes("ctrl.policy."),
                    };
                    let mut want = bytes("ctrl.pred.") + policy + bytes("stem.");
                    want += (0..st.depth)
                        .map(|b| bytes(&format!("blk.{b}.")))
                        .sum::<u64>();
                    want += (start..=st.path)
                        .map(|j| bytes(&format!("exit.{}.", c.depths[j])))
                        .sum::<u64>();
                    if mode == Mode::Adaptive && start + 1 < p {
                        want += bytes("ctrl.exit.");
                    }
                    no_decision += usize::from(mode == Mode::Adaptive && start + 1 == p);
                    decided += usize::from(mode == Mode::Adaptive && start + 1 < p);
                    assert_eq!(st.weight_bytes, want, "{mode:?} λ={budget}: {st:?}");
                }
            }
        }
    }
    assert!(
        no_decision > 0 && decided > 0,
        "some adaptive inputs must start at the deepest path, and some above it"
    );
}

/// `clean` (a model file) with the first value of tensor `name` set to NaN, opened without
/// `--verify` (the checksum would refuse the edit before anything runs).
fn with_nan(clean: &[u8], name: &str) -> Arc<Model> {
    let m = Model::from_bytes(clean, &OpenOptions::default()).unwrap();
    let t = m.index().tensors.iter().find(|t| t.name == name).unwrap();
    let mut bytes = clean.to_vec();
    bytes[t.offset..t.offset + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    Arc::new(Model::from_bytes(&bytes, &OpenOptions::default()).unwrap())
}

/// A controller whose weights are not finite decides nothing: NaN never wins an argmax, so its
/// routes would be arbitrary (always the first path, never an escalation) behind an `Ok`. Each
/// of its nets poisoned in turn makes the modes that consult it fail with `Error::Numeric`,
/// leaving no stats; a forced depth and the threshold rule, which do not consult it, still
/// answer. (Found by a review of the C ABI: `TINV_OK` with degenerate routing.)
#[test]
fn non_finite_controller_weights_are_an_error_not_a_route() {
    let cfg = synth::tiny(3, true);
    let clean = synth::random_model(&cfg, 5, DType::F32);
    let x = synth::random_inputs(&cfg, 2, 3);
    let mut out = vec![0f32; 2 * cfg.classes];
    // (tensor, the modes that consult it)
    let cases = [
        ("ctrl.pred.fc2.bias", &[Mode::Adaptive, Mode::Graph][..]),
        // Before the ReLU, which turned NaN into 0 (an `Ok` routed by the biases alone).
        ("ctrl.pred.fc1.weight", &[Mode::Adaptive, Mode::Graph][..]),
        ("ctrl.policy.fc1.weight", &[Mode::Adaptive][..]),
        ("ctrl.policy.fc2.bias", &[Mode::Adaptive][..]),
        ("ctrl.exit.b", &[Mode::Adaptive][..]),
        ("ctrl.exit.out.bias", &[Mode::Adaptive][..]),
    ];
    for (name, failing) in cases {
        let mut s = Session::new(
            with_nan(&clean, name),
            // λ = 0: the exit RNN would escalate at least sometimes; it must be asked.
            SessionOptions::default().max_batch(2).budget(0.0),
        )
        .unwrap();
        for mode in [Mode::Adaptive, Mode::Graph, Mode::Threshold(0.9)] {
            s.set_mode(mode).unwrap();
            let r = s.infer(&x, 2, &mut out);
            if failing.contains(&mode) {
                match r {
                    Err(tinv::Error::Numeric(m)) => assert!(m.contains("controller"), "{m}"),
                    other => panic!("{name} NaN, {mode:?}: {other:?}"),
                }
                assert!(s.last_stats().is_empty());
            } else {
                assert!(r.is_ok(), "{name} NaN, {mode:?}: {r:?}");
            }
        }
        assert!(s.infer_depth(&x, 2, 2, &mut out).is_ok(), "{name}");
    }
}

/// A shallower exit's logits that are not finite stop the call where a decision is taken from
/// them (the threshold rule, the exit RNN): its statistics came out as p_max = 0, which escalated
/// under any τ, and the deeper path answered `Ok`. A forced deeper depth does not read that exit.
#[test]
fn non_finite_logits_at_a_shallower_exit_are_an_error_not_a_route() {
    let cfg = synth::tiny(3, true);
    let clean = synth::random_model(&cfg, 5, DType::F32);
    let m = with_nan(&clean, "exit.1.head.weight");
    let mut s = Session::new(m, SessionOptions::default().max_batch(2)).unwrap();
    let x = synth::random_inputs(&cfg, 2, 3);
    let mut out = vec![0f32; 2 * cfg.classes];
    s.set_mode(Mode::Threshold(0.9)).unwrap();
    match s.infer(&x, 2, &mut out) {
        Err(tinv::Error::Numeric(m)) => {
            assert!(m.contains("logit 0 of the depth-1 exit is NaN"), "{m}")
        }
        other => panic!("threshold over a NaN exit: {other:?}"),
    }
    assert!(s.last_stats().is_empty());
    assert!(s.infer_depth(&x, 2, 2, &mut out).is_ok());
}

/// The all-exits pass checks every logit it writes: `batch × paths × classes` of them. Here only
/// the last logit of each input at the deepest exit is NaN (the last column of that head's
/// bias), in an output buffer of exactly that length.
#[test]
fn all_exits_reports_a_nan_in_the_last_logit() {
    let cfg = synth::tiny(3, false);
    let clean = synth::random_model(&cfg, 5, DType::F32);
    let m = Model::from_bytes(&clean, &OpenOptions::default()).unwrap();
    let t = m
        .index()
        .tensors
        .iter()
        .find(|t| t.name == "exit.2.head.bias");
    let at = t.unwrap().offset + 4 * (cfg.classes - 1);
    let mut bytes = clean.clone();
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let m = Arc::new(Model::from_bytes(&bytes, &OpenOptions::default()).unwrap());
    for b in [1, 2] {
        let mut s = Session::new(m.clone(), SessionOptions::default().max_batch(2)).unwrap();
        let x = synth::random_inputs(&cfg, b, 3);
        let mut out = vec![0f32; b * 2 * cfg.classes];
        match s.infer_all_exits(&x, b, &mut out) {
            Err(tinv::Error::Numeric(msg)) => assert!(msg.contains("logit 5 of input 0"), "{msg}"),
            other => panic!("batch {b}: {other:?}"),
        }
    }
}

/// `Mode::Threshold(1.0)` stops at an exit whose max softmax is exactly 1 (continue only while it
/// is < τ): with one class every exit is certain, so every input answers at the first path.
#[test]
fn threshold_one_stops_at_a_certain_exit() {
    let cfg = synth::tiny(1, false);
    let mut s = Session::new(open_synth(&cfg, 5), SessionOptions::default().max_batch(2)).unwrap();
    s.set_mode(Mode::Threshold(1.0)).unwrap();
    let x = synth::random_inputs(&cfg, 2, 3);
    let mut out = vec![0f32; 2];
    s.infer(&x, 2, &mut out).unwrap();
    for st in s.last_stats() {
        assert_eq!((st.path, st.depth, st.escalations), (0, 1, 0));
        assert_eq!(st.confidence, 1.0);
    }
}

/// `Session::new`'s limits at their ends: `max_batch` in 1..=4096 and `threads` in 1..=256, each
/// refused one past either end; an arena of exactly `max_arena_bytes` is allowed (the largest
/// the session may allocate) and one byte less refuses it. The accessors report what the
/// session was opened with.
#[test]
fn open_limits_hold_at_their_ends_and_the_accessors_report_the_options() {
    let cfg = synth::tiny(3, false);
    let m = open_synth(&cfg, 5);
    let open = |o: SessionOptions| Session::new(m.clone(), o);
    for (n, ok) in [
        (0, false),
        (1, true),
        (3, true),
        (4096, true),
        (4097, false),
    ] {
        match open(SessionOptions::default().max_batch(n)) {
            Ok(s) if ok => assert_eq!(s.max_batch(), n),
            Err(tinv::Error::InvalidArgument(e)) if !ok => assert!(e.contains("max_batch"), "{e}"),
            r => panic!("max_batch {n}: {:?}", r.map(|_| ())),
        }
    }
    for (n, ok) in [(0, false), (1, true), (3, true), (256, true), (257, false)] {
        match open(SessionOptions::default().threads(n)) {
            // 256 workers: only that it opens (the OS may refuse some; `threads` then says so).
            Ok(s) if ok => assert!(s.threads() == n || n == 256, "{n}: {}", s.threads()),
            Err(tinv::Error::InvalidArgument(e)) if !ok => assert!(e.contains("threads"), "{e}"),
            r => panic!("threads {n}: {:?}", r.map(|_| ())),
        }
    }
    let s = open(SessionOptions::default().max_batch(2)).unwrap();
    let need = s.arena_bytes();
    assert!(need > 0 && need % 4 == 0);
    let capped = |cap: usize| open(SessionOptions::default().max_batch(2).max_arena_bytes(cap));
    assert_eq!(capped(need).unwrap().arena_bytes(), need);
    match capped(need - 1) {
        Err(tinv::Error::InvalidArgument(e)) => assert!(e.contains("max_arena_bytes"), "{e}"),
        r => panic!("a cap one byte under the arena: {:?}", r.map(|_| ())),
    }
    // One plan per path, in path order.
    let depths: Vec<usize> = s.plans().iter().map(|p| p.depth).collect();
    assert_eq!(depths, cfg.depths);
    // The budget given, the one set, and the model's default (0 without a controller).
    let mut s = open(SessionOptions::default().budget(0.3)).unwrap();
    assert_eq!(s.budget(), 0.3);
    s.set_budget(0.7).unwrap();
    assert_eq!(s.budget(), 0.7);
    assert!(s.set_budget(-0.1).is_err());
    assert_eq!(s.budget(), 0.7, "a refused budget leaves the last one");
    s.set_mode(Mode::Graph).unwrap();
    assert_eq!(s.mode(), Mode::Graph);
    assert!(s.set_mode(Mode::Threshold(2.0)).is_err());
    assert_eq!(s.mode(), Mode::Graph);
    assert_eq!(open(SessionOptions::default()).unwrap().budget(), 0.0);
}

/// `Stats::latency_us` is the wall time of the whole call in µs, the same for every input of a
/// batch: within the time measured around the call, and most of it (what the call does outside
/// its own clock is a check of the logits). Up to five tries, for a preemption in that gap.
#[test]
fn latency_is_the_calls_wall_time_in_microseconds() {
    let m = model(false);
    let c = m.config().clone();
    let n = 4;
    let x = synth::random_inputs(&c, n, 2);
    let mut out = vec![0f32; n * c.classes];
    let mut s = Session::new(m, SessionOptions::default().max_batch(n)).unwrap();
    let mut tries = Vec::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let st = s.infer_depth(&x, n, 4, &mut out).unwrap().to_vec();
        let outer = t.elapsed().as_secs_f64() * 1e6;
        assert!(st.iter().all(|s| s.latency_us == st[0].latency_us));
        let us = st[0].latency_us;
        assert!(us > 0.0 && us <= outer, "{us} µs inside, {outer} µs around");
        tries.push((us, outer));
        if us >= 0.5 * outer {
            return;
        }
    }
    panic!("latency_us under half the call's wall time every time: {tries:?}");
}

/// `infer_all_exits` writes `batch × paths × classes` logits: a buffer one float shorter is
/// `BufferTooSmall` (checked before anything runs), one of exactly that length is enough. Here
/// 2 × 3 × 7 = 42 (more than `batch × (paths + classes)`, 20, or `batch × classes`, 14).
#[test]
fn all_exits_needs_batch_times_paths_times_classes_floats() {
    let m = model(false);
    let c = m.config().clone();
    let (b, p) = (2, c.depths.len());
    assert_eq!((p, c.classes), (3, 7));
    let x = synth::random_inputs(&c, b, 5);
    let mut s = Session::new(m, SessionOptions::default().max_batch(b)).unwrap();
    let mut out = vec![0f32; 42];
    match s.infer_all_exits(&x, b, &mut out[..41]) {
        Err(tinv::Error::BufferTooSmall(e)) => {
            assert!(e.contains("holds 41 floats, need 42"), "{e}")
        }
        r => panic!("41 floats for 42 logits: {:?}", r.map(|_| ())),
    }
    assert!(s.last_stats().is_empty());
    assert!(s.infer_all_exits(&x, b, &mut out).is_ok());
}
