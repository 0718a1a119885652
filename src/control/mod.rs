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
    }

    /// 8×8 grey, patch 4, D 16, 2 blocks, 3 classes, paths [1, 2], a controller when `ctrl`;
    /// `seed` draws its weights.
    fn ctrl_model(seed: u64, ctrl: bool) -> Model {
        let mut cfg = crate::synth::config(8, 1, 4, 16, 2, 2, 3, &[1, 2], true);
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

    #[test]
    fn argmax_ties_and_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
        assert_eq!(argmax(&[0.0, f32::NAN, 2.0]), 2);
    }
}
