//! The two-level controller (docs/FORMAT.md, "Controller"): level 1 picks the starting path from
//! cheap host features before anything runs; level 2, a small RNN over the exits a run reaches,
//! may continue to the next path. Inference only; all buffers come from [`CtrlScratch`],
//! allocated once per session.

mod features;

pub use features::{feature_flops, feature_len, features_v1, FEATURES_V1};

use crate::error::{Error, Result};
use crate::model::{CtrlW, Model};

/// Number of level-2 exit features: `[p_max, entropy/ln K, margin, λ, k/(P−1)]`.
pub const EXIT_FEATURES: usize = 5;

/// Per-session controller buffers.
pub struct CtrlScratch {
    feat: Vec<f32>,
    hidden: Vec<f32>,
    z: Vec<f32>,
    /// Predictor output of the last `decide_start` (probability per path).
    pub pred: Vec<f32>,
    scores: Vec<f32>,
    rnn_tmp: Vec<f32>,
}

impl CtrlScratch {
    /// Buffers for `model`'s controller (empty if it has none).
    pub fn new(model: &Model) -> CtrlScratch {
        let [feat, hidden, z, pred, scores, rnn_tmp] = Self::sizes(model);
        CtrlScratch {
            feat: vec![0.0; feat],
            hidden: vec![0.0; hidden],
            z: vec![0.0; z],
            pred: vec![0.0; pred],
            scores: vec![0.0; scores],
            rnn_tmp: vec![0.0; rnn_tmp],
        }
    }

    /// The lengths of the buffers `new` makes for `model`, in field order.
    fn sizes(model: &Model) -> [usize; 6] {
        let c = model.config();
        let p = c.depths.len();
        let f = feature_len(c.channels);
        let (hp, hq, hr) = model
            .ctrl()
            .map_or((0, 0, 0), |w| (w.hp, w.hq.max(w.hg), w.hr));
        [f, hp.max(hq), f + p + 1, p, p, hr]
    }

    fn lens(&self) -> [usize; 6] {
        [
            self.feat.len(),
            self.hidden.len(),
            self.z.len(),
            self.pred.len(),
            self.scores.len(),
            self.rnn_tmp.len(),
        ]
    }
}

/// `out = x·W + b` for a row vector `x` and `W` stored `[in, out]`.
fn affine(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
    out.copy_from_slice(b);
    for (xi, row) in x.iter().zip(w.chunks_exact(out.len())) {
        for (o, wv) in out.iter_mut().zip(row) {
            *o += xi * wv;
        }
    }
}

fn softmax_in_place(v: &mut [f32]) {
    let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for x in v.iter_mut() {
        *x = (*x - m).exp();
        s += *x;
    }
    v.iter_mut().for_each(|x| *x /= s);
}

/// Index of the largest value, lowest index on ties (NaN never wins).
pub fn argmax(v: &[f32]) -> usize {
    let (mut best, mut bv) = (0, f32::NEG_INFINITY);
    for (i, &x) in v.iter().enumerate() {
        if x > bv {
            (best, bv) = (i, x);
        }
    }
    best
}

/// The controller's numbers came out NaN or infinite: a decision taken from them would be
/// arbitrary (NaN never wins an argmax), so the call fails instead of routing by accident.
fn not_finite(what: &str) -> Error {
    Error::Numeric(format!(
        "the controller's {what} is not finite: the input is far outside [0, 1] or the \
         controller's weights are not finite"
    ))
}

/// [`not_finite`] unless every value of `v` is finite.
fn all_finite(v: &[f32], what: &str) -> Result<()> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(not_finite(what))
    }
}

/// Logits of the exit of path `k` that a stopping decision is about to read: not finite, the
/// statistics would be garbage (p_max 0 escalates under any threshold), so the call fails with
/// [`Error::Numeric`] instead of routing by accident.
pub fn finite_exit(model: &Model, k: usize, logits: &[f32]) -> Result<()> {
    match logits.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(j) => Err(Error::Numeric(format!(
            "logit {j} of the depth-{} exit is {}: the input is far outside [0, 1] or the \
             weights are not finite",
            model.config().depths.get(k).copied().unwrap_or(0),
            logits[j]
        ))),
    }
}

/// Refuses controller weights of another model (they resolve to empty slices here) and scratch
/// buffers sized for another model: the products below assume both fit `model`.
fn check_parts(model: &Model, w: &CtrlW, s: &CtrlScratch) -> Result<()> {
    if model.ctrl() != Some(w) {
        return Err(Error::arg(
            "controller weights of another model (or a model without a controller)",
        ));
    }
    if s.lens() != CtrlScratch::sizes(model) {
        return Err(Error::arg(
            "controller scratch made for another model (CtrlScratch::new(model))",
        ));
    }
    Ok(())
}

/// A budget λ the policies were trained for: in [0, 1] (NaN is not, and would otherwise come
/// back as a non-finite controller output blamed on the input or the weights).
fn check_budget(budget: f32) -> Result<()> {
    if (0.0..=1.0).contains(&budget) {
        Ok(())
    } else {
        Err(Error::arg(format!("budget {budget} not in [0, 1]")))
    }
}

/// Level 1: the path index to start with for one raw input (CHW in [0, 1]) — in `graph` mode
/// (`graph = true`) the one path that runs, decided by its own up-front policy when the file has
/// one. Leaves the predictor's output in `s.pred`. [`Error::InvalidArgument`] when `input` is
/// not one input of `model`'s size, `budget` not in [0, 1], or `w` or `s` are not `model`'s;
/// [`Error::Numeric`] when the predictor's or the policy's hidden layer or output is not
/// finite.
pub fn decide_start(
    model: &Model,
    w: &CtrlW,
    input: &[f32],
    budget: f32,
    graph: bool,
    s: &mut CtrlScratch,
) -> Result<usize> {
    check_parts(model, w, s)?;
    check_budget(budget)?;
    let c = model.config();
    let p = c.depths.len();
    let f = s.feat.len();
    if !features_v1(input, c.channels, c.image_h, c.image_w, &mut s.feat) {
        // Routing on the previous input's features would be a wrong answer that looks right.
        return Err(Error::arg(format!(
            "controller input has {} floats, the model takes {}",
            input.len(),
            c.input_len()
        )));
    }
    let hp = &mut s.hidden[..w.hp];
    affine(&s.feat, model.w(w.pred[0]), model.w(w.pred[1]), hp);
    // Checked before the ReLU: `max(0.0)` turns NaN into 0, which would hide NaN weights.
    all_finite(hp, "complexity predictor's hidden layer")?;
    hp.iter_mut().for_each(|v| *v = v.max(0.0));
    affine(hp, model.w(w.pred[2]), model.w(w.pred[3]), &mut s.pred);
    softmax_in_place(&mut s.pred);
    all_finite(&s.pred, "complexity predictor's output")?;
    s.z[..f].copy_from_slice(&s.feat);
    s.z[f..f + p].copy_from_slice(&s.pred);
    s.z[f + p] = budget;
    let (pol, h) = w.up_front(graph);
    let hq = &mut s.hidden[..h];
    affine(&s.z, model.w(pol[0]), model.w(pol[1]), hq);
    all_finite(hq, "up-front policy's hidden layer")?;
    hq.iter_mut().for_each(|v| *v = v.max(0.0));
    affine(hq, model.w(pol[2]), model.w(pol[3]), &mut s.scores);
    all_finite(&s.scores, "up-front policy's score")?;
    Ok(argmax(&s.scores))
}

/// Statistics of one exit's logits: `(p_max, entropy / ln K, p_max − p_second)`.
pub fn exit_stats(logits: &[f32]) -> (f32, f32, f32) {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f32 = logits.iter().map(|l| (l - m).exp()).sum();
    let (mut p1, mut p2, mut ent) = (0f32, 0f32, 0f32);
    for l in logits {
        let p = (l - m).exp() / z;
        if p > p1 {
            p2 = p1;
            p1 = p;
        } else if p > p2 {
            p2 = p;
        }
        if p > 0.0 {
            ent -= p * p.ln();
        }
    }
    let k = logits.len() as f32;
    let norm = if k > 1.0 { ent / k.ln() } else { 0.0 };
    (p1, norm, p1 - p2)
}

/// Level 2: after path `k`'s exit produced `logits`, whether to continue to path `k + 1`;
/// `None` at the deepest exit, where there is nothing to continue to and the RNN does not run.
/// `h` is this input's RNN state (`Hr` floats, zero before its first exit), updated in place.
/// [`Error::InvalidArgument`] when `w` or `s` are not `model`'s, `h` is not `Hr` floats,
/// `logits` not one per class, `k` not a path index or `budget` not in [0, 1];
/// [`Error::Numeric`] when the logits (below the deepest exit) or
/// the RNN's output are not finite.
#[allow(clippy::too_many_arguments)] // weights, inputs, state and scratch are all distinct
pub fn exit_continue(
    model: &Model,
    w: &CtrlW,
    logits: &[f32],
    k: usize,
    budget: f32,
    h: &mut [f32],
    s: &mut CtrlScratch,
) -> Result<Option<bool>> {
    check_parts(model, w, s)?;
    let p = model.config().depths.len();
    if h.len() != w.hr {
        return Err(Error::arg(format!(
            "exit RNN state has {} floats, the controller's RNN has {}",
            h.len(),
            w.hr
        )));
    }
    if logits.len() != model.config().classes {
        return Err(Error::arg(format!(
            "exit logits have {} values, the model has {} classes",
            logits.len(),
            model.config().classes
        )));
    }
    check_budget(budget)?;
    if k >= p {
        return Err(Error::arg(format!(
            "exit index {k} is not a path (the model has {p})"
        )));
    }
    if k + 1 == p {
        return Ok(None);
    }
    finite_exit(model, k, logits)?;
    let (pmax, ent, margin) = exit_stats(logits);
    let e = [pmax, ent, margin, budget, k as f32 / (p - 1) as f32];
    affine(&e, model.w(w.wx), model.w(w.b), &mut s.rnn_tmp);
    let wh = model.w(w.wh);
    for (hi, row) in h.iter().zip(wh.chunks_exact(w.hr)) {
        for (t, wv) in s.rnn_tmp.iter_mut().zip(row) {
            *t += hi * wv;
        }
    }
    for (hv, t) in h.iter_mut().zip(&s.rnn_tmp) {
        *hv = t.tanh();
    }
    let mut out = [0f32];
    affine(h, model.w(w.out_w), model.w(w.out_b), &mut out);
    all_finite(&out, "exit RNN's output")?;
    Ok(Some(out[0] > 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_stats_hand_computed() {
        // Two equal logits: p = 0.5 each, entropy ln 2 / ln 2 = 1, margin 0.
        let (p, e, m) = exit_stats(&[1.0, 1.0]);
        assert!((p - 0.5).abs() < 1e-6 && (e - 1.0).abs() < 1e-6 && m.abs() < 1e-6);
        // logits [ln 3, 0, 0]: p = [0.6, 0.2, 0.2].
        let (p, e, m) = exit_stats(&[3f32.ln(), 0.0, 0.0]);
        let ent = -(0.6f32 * 0.6f32.ln() + 0.4 * 0.2f32.ln()) / 3f32.ln();
        assert!((p - 0.6).abs() < 1e-6 && (e - ent).abs() < 1e-6 && (m - 0.4).abs() < 1e-6);
        // Logits 200 below the top: their e^−200 is 0 in f32, and a certain answer has entropy
        // 0 (0·ln 0 counts as 0, not NaN).
        assert_eq!(exit_stats(&[0.0, -200.0, -200.0]), (1.0, 0.0, 1.0));
        // One class: certain, entropy 0 (not 0 / ln 1).
        assert_eq!(exit_stats(&[2.5]), (1.0, 0.0, 1.0));
    }

    /// 8×8 grey, patch 4, D 16, 2 blocks, 3 classes, paths [1, 2], a controller when `ctrl`;
    /// `seed` draws its weights.
    fn ctrl_model(seed: u64, ctrl: bool) -> Model {
        let mut cfg = crate::synth::tiny(3, true);
        if !ctrl {
            cfg.controller = None;
        }
        let bytes = crate::synth::random_model(&cfg, seed, crate::format::DType::F32);
        Model::from_bytes(&bytes, &crate::OpenOptions::default()).unwrap()
    }

    #[test]
    fn decide_start_refuses_an_input_of_the_wrong_size() {
        let m = ctrl_model(1, true);
        let w = *m.ctrl().unwrap();
        let mut s = CtrlScratch::new(&m);
        let e = decide_start(&m, &w, &[0.5; 3], 0.3, false, &mut s).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument(msg) if msg.contains("3 floats") && msg.contains("64")),
            "{e}"
        );
        let ok = decide_start(&m, &w, &[0.5; 64], 0.3, false, &mut s).unwrap();
        assert!(ok < 2);
    }

    #[test]
    fn an_exit_that_is_not_a_path_and_a_budget_out_of_range_are_refused() {
        let m = ctrl_model(1, true);
        let w = *m.ctrl().unwrap();
        let mut s = CtrlScratch::new(&m);
        let mut h = vec![0.0; w.hr];
        let logits = [0.3, -0.2, 0.1];
        let arg = |r: Result<Option<bool>>| matches!(r, Err(Error::InvalidArgument(_)));
        // Exit 0 decides, exit 1 is the deepest (nothing to decide), 2 and usize::MAX are none.
        assert!(exit_continue(&m, &w, &logits, 0, 0.3, &mut h, &mut s)
            .unwrap()
            .is_some());
        assert_eq!(
            exit_continue(&m, &w, &logits, 1, 0.3, &mut h, &mut s).unwrap(),
            None
        );
        for k in [2, usize::MAX] {
            assert!(
                arg(exit_continue(&m, &w, &logits, k, 0.3, &mut h, &mut s)),
                "{k}"
            );
        }
        for b in [-0.1, 1.5, f32::NAN] {
            assert!(
                arg(exit_continue(&m, &w, &logits, 0, b, &mut h, &mut s)),
                "{b}"
            );
            let e = decide_start(&m, &w, &[0.5; 64], b, false, &mut s).unwrap_err();
            assert!(e.to_string().contains("not in [0, 1]"), "{e}");
        }
    }

    /// Parts of another model (the same configuration, other weights) were used as they were:
    /// another model's weights resolve to empty slices here, which panicked in a copy, and a
    /// short RNN state was quietly truncated.
    #[test]
    fn parts_of_another_model_are_refused() {
        let (a, b, bare) = (
            ctrl_model(1, true),
            ctrl_model(2, true),
            ctrl_model(3, false),
        );
        let wa = *a.ctrl().unwrap();
        let x = [0.5f32; 64];
        let arg = |r: Result<()>| match r {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("{other:?}"),
        };
        let m = arg(decide_start(&b, &wa, &x, 0.3, false, &mut CtrlScratch::new(&b)).map(|_| ()));
        assert!(m.starts_with("controller weights of another model"), "{m}");
        let m =
            arg(decide_start(&a, &wa, &x, 0.3, false, &mut CtrlScratch::new(&bare)).map(|_| ()));
        assert!(
            m.starts_with("controller scratch made for another model"),
            "{m}"
        );
        let mut s = CtrlScratch::new(&a);
        let mut h = vec![0f32; 1];
        let m = arg(exit_continue(&a, &wa, &[0.1, 0.2, 0.3], 0, 0.3, &mut h, &mut s).map(|_| ()));
        assert_eq!(
            m,
            format!(
                "exit RNN state has 1 floats, the controller's RNN has {}",
                wa.hr
            )
        );
        let mut h = vec![0f32; wa.hr];
        let m = arg(exit_continue(&a, &wa, &[0.1, 0.2], 0, 0.3, &mut h, &mut s).map(|_| ()));
        assert_eq!(m, "exit logits have 2 values, the model has 3 classes");
        assert!(
            exit_continue(&a, &wa, &[0.1, 0.2, 0.3], 0, 0.3, &mut h, &mut s)
                .unwrap()
                .is_some()
        );
        let nan = exit_continue(&a, &wa, &[0.1, f32::NAN, 0.3], 0, 0.3, &mut h, &mut s);
        assert!(matches!(nan, Err(Error::Numeric(_))), "{nan:?}");
    }

    /// `x·W + b` in f64 for `W` stored `[in, out]`, as docs/FORMAT.md writes the controller.
    fn ref_affine(x: &[f64], w: &[f32], b: &[f32]) -> Vec<f64> {
        let n = b.len();
        assert_eq!(w.len(), x.len() * n, "weight shape");
        (0..n)
            .map(|j| {
                let dot: f64 = (0..x.len()).map(|i| x[i] * f64::from(w[i * n + j])).sum();
                f64::from(b[j]) + dot
            })
            .collect()
    }

    /// `relu(x·W₁ + b₁)·W₂ + b₂` in f64.
    fn ref_mlp(m: &Model, r: [crate::model::WRef; 4], x: &[f64]) -> Vec<f64> {
        let h: Vec<f64> = ref_affine(x, m.w(r[0]), m.w(r[1]))
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        ref_affine(&h, m.w(r[2]), m.w(r[3]))
    }

    fn ref_softmax(v: &[f64]) -> Vec<f64> {
        let e: Vec<f64> = v.iter().map(|x| x.exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    }

    /// The index of the largest value and its lead over the second largest.
    fn ref_argmax(v: &[f64]) -> (usize, f64) {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
        (order[0], v[order[0]] - v[order[1]])
    }

    /// 8×8 grey, patch 4, D 16, 3 blocks, 3 classes, three paths [1, 2, 3] and a controller: a
    /// middle exit, where k/(P−1) is neither 0 nor 1 and the RNN state carries over. The f32
    /// tensors named in `set` get the values given (the data section is not checksummed at
    /// open).
    fn three_path_model(seed: u64, set: &[(&str, &[f32])]) -> Model {
        let cfg = crate::synth::config(8, 1, 4, 16, 3, 2, 3, &[1, 2, 3], true);
        let mut bytes = crate::synth::random_model(&cfg, seed, crate::format::DType::F32);
        let idx = crate::format::parse(&bytes).unwrap();
        for (name, values) in set {
            let t = idx.tensor(name).unwrap();
            assert_eq!(t.nbytes, 4 * values.len(), "{name}");
            let v: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            bytes[t.offset..t.offset + t.nbytes].copy_from_slice(&v);
        }
        Model::from_bytes(&bytes, &crate::OpenOptions::default()).unwrap()
    }

    #[test]
    fn the_start_path_follows_the_documented_predictor_and_policy() {
        let m = three_path_model(7, &[]);
        let w = *m.ctrl().unwrap();
        let c = m.config().clone();
        let mut s = CtrlScratch::new(&m);
        let inputs = crate::synth::random_inputs(&c, 6, 11);
        let mut starts = std::collections::BTreeSet::new();
        for (n, x) in inputs.chunks(c.input_len()).enumerate() {
            // Half the inputs dimmed, so that the features span more than one brightness.
            let x: Vec<f32> = x
                .iter()
                .map(|v| if n % 2 == 0 { *v } else { v * 0.2 })
                .collect();
            let mut phi = vec![0f32; feature_len(c.channels)];
            assert!(features_v1(&x, c.channels, c.image_h, c.image_w, &mut phi));
            let phi: Vec<f64> = phi.iter().map(|v| f64::from(*v)).collect();
            let pred = ref_softmax(&ref_mlp(&m, w.pred, &phi));
            for budget in [0.0f32, 0.3, 1.0] {
                for graph in [false, true] {
                    let what = format!("input {n}, budget {budget}, graph {graph}");
                    let mut z = phi.clone();
                    z.extend(&pred);
                    z.push(f64::from(budget));
                    let (want, lead) = ref_argmax(&ref_mlp(&m, w.up_front(graph).0, &z));
                    let got = decide_start(&m, &w, &x, budget, graph, &mut s).unwrap();
                    for (a, b) in s.pred.iter().zip(&pred) {
                        assert!((f64::from(*a) - b).abs() < 1e-5, "{what}: {:?}", s.pred);
                    }
                    // Scores closer than f32 can tell apart are not a test of the order.
                    if lead > 1e-4 {
                        assert_eq!(got, want, "{what}");
                        starts.insert(got);
                    }
                }
            }
        }
        assert!(starts.len() > 1, "every case starts at {starts:?}");
    }

    #[test]
    fn large_predictor_logits_do_not_overflow_its_softmax() {
        // Softmax is shift invariant: 100 added to every predictor logit leaves p (and the start
        // path) as it was, though e^200 overflows f32.
        let plain = three_path_model(7, &[]);
        let w = *plain.ctrl().unwrap();
        let bias: Vec<f32> = plain.w(w.pred[3]).iter().map(|v| v + 100.0).collect();
        let shifted = three_path_model(7, &[("ctrl.pred.fc2.bias", &bias)]);
        let x = crate::synth::random_inputs(plain.config(), 1, 11);
        let run = |m: &Model| {
            let mut s = CtrlScratch::new(m);
            let start = decide_start(m, m.ctrl().unwrap(), &x, 0.3, false, &mut s).unwrap();
            (start, s.pred)
        };
        let ((a, pa), (b, pb)) = (run(&plain), run(&shifted));
        assert_eq!(a, b);
        for (u, v) in pa.iter().zip(&pb) {
            assert!((u - v).abs() < 1e-4, "{pa:?} vs {pb:?}");
        }
    }

    #[test]
    fn an_exit_output_of_exactly_zero_stops() {
        // A zero output layer: c = 0 whatever the state, and a run continues only when c > 0.
        let hr = three_path_model(7, &[]).ctrl().unwrap().hr;
        let zero = vec![0f32; hr];
        let m = three_path_model(
            7,
            &[
                ("ctrl.exit.out.weight", &zero),
                ("ctrl.exit.out.bias", &[0.0]),
            ],
        );
        let w = *m.ctrl().unwrap();
        let mut s = CtrlScratch::new(&m);
        let mut h = vec![0f32; hr];
        for k in 0..2 {
            let got = exit_continue(&m, &w, &[0.3, -0.2, 0.1], k, 0.3, &mut h, &mut s);
            assert_eq!(got.unwrap(), Some(false), "exit {k}");
        }
    }

    #[test]
    fn the_exit_decision_follows_the_documented_recurrence() {
        // With seed 7, h·w_o lies in about [0.15, 0.4] over these cases: a bias of −0.27 puts
        // both decisions among them.
        let m = three_path_model(7, &[("ctrl.exit.out.bias", &[-0.27])]);
        let w = *m.ctrl().unwrap();
        let mut s = CtrlScratch::new(&m);
        let p = m.config().depths.len();
        let mut r = crate::synth::Rng::new(5);
        let mut decisions = std::collections::BTreeSet::new();
        for case in 0..8 {
            let budget = [0.0f32, 0.5, 1.0][case % 3];
            let mut h = vec![0f32; w.hr];
            let mut h_ref = vec![0f64; w.hr];
            for k in 0..p {
                // Sharper logits in some cases: p_max, entropy and margin over their range.
                let logits = r.vec(3, [0.5, 4.0][case % 2]);
                let got = exit_continue(&m, &w, &logits, k, budget, &mut h, &mut s).unwrap();
                if k + 1 == p {
                    assert_eq!(got, None, "case {case}: the deepest exit decides nothing");
                    continue;
                }
                // e = [p_max, entropy / ln K, p_max − p_second, λ, k/(P−1)], from the logits.
                let l: Vec<f64> = logits.iter().map(|v| f64::from(*v)).collect();
                let mut pr = ref_softmax(&l);
                let ent = -pr.iter().map(|q| q * q.ln()).sum::<f64>() / 3f64.ln();
                pr.sort_by(|a, b| b.total_cmp(a));
                let e = [
                    pr[0],
                    ent,
                    pr[0] - pr[1],
                    f64::from(budget),
                    k as f64 / (p - 1) as f64,
                ];
                // h = tanh(e·Wx + h_prev·Wh + b), c = h·w_o + b_o.
                let zero = vec![0f32; w.hr];
                let from_e = ref_affine(&e, m.w(w.wx), m.w(w.b));
                let from_h = ref_affine(&h_ref, m.w(w.wh), &zero);
                h_ref = from_e
                    .iter()
                    .zip(&from_h)
                    .map(|(a, b)| (a + b).tanh())
                    .collect();
                let c = ref_affine(&h_ref, m.w(w.out_w), m.w(w.out_b))[0];
                for (a, b) in h.iter().zip(&h_ref) {
                    assert!((f64::from(*a) - b).abs() < 1e-5, "case {case} k {k}: {h:?}");
                }
                if c.abs() > 1e-4 {
                    assert_eq!(got, Some(c > 0.0), "case {case} k {k}: c = {c}");
                    decisions.insert(c > 0.0);
                }
            }
        }
        assert_eq!(decisions.len(), 2, "only {decisions:?} decided");
    }

    #[test]
    fn argmax_ties_and_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
        assert_eq!(argmax(&[0.0, f32::NAN, 2.0]), 2);
    }
}
