//! The controller's networks as host weights, their inference exactly as the runtime computes it
//! (`src/control/mod.rs`: level 1 = argmax of the policy logits, lowest index on ties; level 2 =
//! continue iff the RNN output is > 0, never past the deepest path), and their export to
//! checkpoint tensors (PyTorch `[out, in]` orientation, names of docs/FORMAT.md).
//!
//! Training standardizes the features (φ̃ = (φ − μ)/σ); the export folds that into the first
//! layers, so the file's predictor and policy read raw φ as the runtime computes it.

use crate::tensors::HostTensor;

/// Exit-RNN input width: `[p_max, entropy/ln K, margin, λ, k/(P−1)]`.
pub const EXIT_IN: usize = tinv::control::EXIT_FEATURES;

/// A two-layer perceptron `relu(x·W₁ᵀ + b₁)·W₂ᵀ + b₂`, weights `[out, in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// `[hidden, in]`.
    pub w1: Vec<f32>,
    /// `[hidden]`.
    pub b1: Vec<f32>,
    /// `[out, hidden]`.
    pub w2: Vec<f32>,
    /// `[out]`.
    pub b2: Vec<f32>,
}

/// `out[o] = b[o] + Σᵢ x[i]·w[o, i]`, summed in the runtime's order (i ascending, from b).
fn affine(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
    for (o, (dst, bias)) in out.iter_mut().zip(b).enumerate() {
        let row = &w[o * x.len()..(o + 1) * x.len()];
        let mut acc = *bias;
        for (xi, wi) in x.iter().zip(row) {
            acc += xi * wi;
        }
        *dst = acc;
    }
}

impl Mlp {
    /// Input width.
    pub fn inputs(&self) -> usize {
        self.w1.len() / self.b1.len().max(1)
    }
    /// Output scores for one input.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut h = vec![0f32; self.b1.len()];
        affine(x, &self.w1, &self.b1, &mut h);
        h.iter_mut().for_each(|v| *v = v.max(0.0));
        let mut out = vec![0f32; self.b2.len()];
        affine(&h, &self.w2, &self.b2, &mut out);
        out
    }

    /// Softmax of the output scores (the predictor's probability per path).
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let mut v = self.forward(x);
        let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0;
        for x in v.iter_mut() {
            *x = (*x - m).exp();
            s += *x;
        }
        v.iter_mut().for_each(|x| *x /= s);
        v
    }

    /// Folds a standardization of the first `mean.len()` inputs into the first layer: the
    /// result computes on raw inputs what `self` computes on `(x − mean)/std`.
    pub fn fold_standardization(&self, mean: &[f32], std: &[f32]) -> Mlp {
        let inp = self.inputs();
        let mut m = self.clone();
        for o in 0..self.b1.len() {
            let row = &mut m.w1[o * inp..(o + 1) * inp];
            let mut shift = 0f64;
            for j in 0..mean.len() {
                row[j] /= std[j];
                shift += f64::from(row[j]) * f64::from(mean[j]);
            }
            m.b1[o] -= shift as f32;
        }
        m
    }
}

/// The level-2 Elman RNN: `h = tanh(Wx·e + Wh·h_prev + b)`, `c = w_o·h + b_o`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExitRnn {
    /// `[hr, 5]`.
    pub wx: Vec<f32>,
    /// `[hr, hr]`.
    pub wh: Vec<f32>,
    /// `[hr]`.
    pub b: Vec<f32>,
    /// `[1, hr]`.
    pub wo: Vec<f32>,
    /// `[1]`.
    pub bo: f32,
}

impl ExitRnn {
    /// Hidden width.
    pub fn hidden(&self) -> usize {
        self.b.len()
    }
    /// One step: updates `h` in place and returns the output `c`. The sums run in the runtime's
    /// order (`b`, then the inputs, then the previous state).
    pub fn step(&self, e: &[f32; EXIT_IN], h: &mut [f32]) -> f32 {
        let hr = self.hidden();
        let mut t = vec![0f32; hr];
        for (o, dst) in t.iter_mut().enumerate() {
            let mut acc = self.b[o];
            for (i, ei) in e.iter().enumerate() {
                acc += ei * self.wx[o * EXIT_IN + i];
            }
            *dst = acc;
        }
        for (i, hi) in h.iter().enumerate() {
            for (o, dst) in t.iter_mut().enumerate() {
                *dst += hi * self.wh[o * hr + i];
            }
        }
        for (hv, tv) in h.iter_mut().zip(&t) {
            *hv = tv.tanh();
        }
        let mut c = self.bo;
        for (hv, w) in h.iter().zip(&self.wo) {
            c += hv * w;
        }
        c
    }

    /// Level 2 from path `k` on (fresh state) given every exit's statistics `stats[j]`: the
    /// final path index and how many decisions were computed.
    pub fn run_from(&self, mut k: usize, stats: &[(f32, f32, f32)], lambda: f32) -> (usize, usize) {
        let p = stats.len();
        let mut h = vec![0f32; self.hidden()];
        let mut decisions = 0;
        while k + 1 < p {
            decisions += 1;
            if self.step(&exit_input(stats[k], lambda, k, p), &mut h) <= 0.0 {
                break;
            }
            k += 1;
        }
        (k, decisions)
    }
}

/// The exit features of path index `k` of `p`: `[p_max, entropy/ln K, margin, λ, k/(P−1)]`.
pub fn exit_input(stats: (f32, f32, f32), lambda: f32, k: usize, p: usize) -> [f32; EXIT_IN] {
    let pos = if p > 1 {
        k as f32 / (p - 1) as f32
    } else {
        0.0
    };
    [stats.0, stats.1, stats.2, lambda, pos]
}

/// The whole controller, in file form (predictor and policy read raw features).
#[derive(Clone, Debug, PartialEq)]
pub struct Controller {
    /// Paths P.
    pub p: usize,
    /// Complexity predictor: F → Hp → P.
    pub pred: Mlp,
    /// Level-1 policy of `adaptive` mode (the start path; level 2 follows): F + P + 1 → Hq → P.
    pub policy: Mlp,
    /// Up-front policy of `graph` mode (the one path that runs; nothing follows): same shape.
    /// `None` in checkpoints from before it existed: `graph` then uses `policy`.
    pub graph: Option<Mlp>,
    /// Level-2 exit RNN.
    pub rnn: ExitRnn,
}

/// The level-1 input `[φ, softmax(predictor(φ)), λ]` of both up-front policies.
pub fn level1_input(pred: &Mlp, phi: &[f32], lambda: f32) -> Vec<f32> {
    let mut z = phi.to_vec();
    z.extend(pred.probabilities(phi));
    z.push(lambda);
    z
}

impl Controller {
    /// The up-front policy a mode runs (the runtime's `CtrlW::up_front`): `graph` mode's own
    /// when there is one, else the level-1 policy.
    pub fn up_front(&self, graph: bool) -> &Mlp {
        match &self.graph {
            Some(g) if graph => g,
            _ => &self.policy,
        }
    }

    /// Level 1 on raw features `phi`: the start path index of `adaptive` mode.
    pub fn decide_start(&self, phi: &[f32], lambda: f32) -> usize {
        self.decide(false, phi, lambda)
    }

    /// The up-front decision of `graph` mode: the one path to run.
    pub fn decide_graph(&self, phi: &[f32], lambda: f32) -> usize {
        self.decide(true, phi, lambda)
    }

    fn decide(&self, graph: bool, phi: &[f32], lambda: f32) -> usize {
        let z = level1_input(&self.pred, phi, lambda);
        tinv::control::argmax(&self.up_front(graph).forward(&z))
    }

    /// Runs one input through both levels given the statistics of every exit (`stats[j]`):
    /// returns the final path index and how many level-2 decisions were computed.
    pub fn run(&self, phi: &[f32], stats: &[(f32, f32, f32)], lambda: f32) -> (usize, usize) {
        self.rnn
            .run_from(self.decide_start(phi, lambda), stats, lambda)
    }

    /// The checkpoint tensors (`ctrl.*`, `[out, in]` orientation).
    pub fn to_tensors(&self) -> Vec<HostTensor> {
        let t = |name: &str, shape: &[usize], data: &[f32]| HostTensor {
            name: name.into(),
            shape: shape.to_vec(),
            data: data.to_vec(),
        };
        let (hp, hq, hr, p) = (
            self.pred.b1.len(),
            self.policy.b1.len(),
            self.rnn.hidden(),
            self.p,
        );
        let (f, z) = (self.pred.inputs(), self.policy.inputs());
        let mut v = vec![
            t("ctrl.pred.fc1.weight", &[hp, f], &self.pred.w1),
            t("ctrl.pred.fc1.bias", &[hp], &self.pred.b1),
            t("ctrl.pred.fc2.weight", &[p, hp], &self.pred.w2),
            t("ctrl.pred.fc2.bias", &[p], &self.pred.b2),
            t("ctrl.policy.fc1.weight", &[hq, z], &self.policy.w1),
            t("ctrl.policy.fc1.bias", &[hq], &self.policy.b1),
            t("ctrl.policy.fc2.weight", &[p, hq], &self.policy.w2),
            t("ctrl.policy.fc2.bias", &[p], &self.policy.b2),
            t("ctrl.exit.wx", &[hr, EXIT_IN], &self.rnn.wx),
            t("ctrl.exit.wh", &[hr, hr], &self.rnn.wh),
            t("ctrl.exit.b", &[hr], &self.rnn.b),
            t("ctrl.exit.out.weight", &[1, hr], &self.rnn.wo),
            t("ctrl.exit.out.bias", &[1], &[self.rnn.bo]),
        ];
        if let Some(g) = &self.graph {
            let hg = g.b1.len();
            v.extend([
                t("ctrl.graph.fc1.weight", &[hg, z], &g.w1),
                t("ctrl.graph.fc1.bias", &[hg], &g.b1),
                t("ctrl.graph.fc2.weight", &[p, hg], &g.w2),
                t("ctrl.graph.fc2.bias", &[p], &g.b2),
            ]);
        }
        v
    }

    /// Reads the controller back from checkpoint tensors.
    pub fn from_tensors(ts: &[HostTensor], p: usize) -> Result<Controller, String> {
        let shape = |n: &str| -> Result<Vec<usize>, String> {
            crate::tensors::find(ts, n)
                .map(|t| t.shape.clone())
                .ok_or_else(|| format!("tensor '{n}' missing"))
        };
        // Every shape is checked against the others before any forward can index with it.
        let (hp, f) = match shape("ctrl.pred.fc1.weight")?[..] {
            [hp, f] => (hp, f),
            _ => return Err("ctrl.pred.fc1.weight must be 2-D".into()),
        };
        let hq = shape("ctrl.policy.fc1.weight")?
            .first()
            .copied()
            .unwrap_or(0);
        let hr = shape("ctrl.exit.wh")?.first().copied().unwrap_or(0);
        // All four graph-policy tensors or none, as the runtime reads them.
        let has_graph = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
            .iter()
            .any(|t| crate::tensors::find(ts, &format!("ctrl.graph.{t}")).is_some());
        let hg = if has_graph {
            shape("ctrl.graph.fc1.weight")?
                .first()
                .copied()
                .unwrap_or(0)
        } else {
            0
        };
        let mut want: Vec<(&str, Vec<usize>)> = vec![
            ("ctrl.pred.fc1.weight", vec![hp, f]),
            ("ctrl.pred.fc1.bias", vec![hp]),
            ("ctrl.pred.fc2.weight", vec![p, hp]),
            ("ctrl.pred.fc2.bias", vec![p]),
            ("ctrl.policy.fc1.weight", vec![hq, f + p + 1]),
            ("ctrl.policy.fc1.bias", vec![hq]),
            ("ctrl.policy.fc2.weight", vec![p, hq]),
            ("ctrl.policy.fc2.bias", vec![p]),
            ("ctrl.exit.wx", vec![hr, EXIT_IN]),
            ("ctrl.exit.wh", vec![hr, hr]),
            ("ctrl.exit.b", vec![hr]),
            ("ctrl.exit.out.weight", vec![1, hr]),
            ("ctrl.exit.out.bias", vec![1]),
        ];
        if has_graph {
            want.extend([
                ("ctrl.graph.fc1.weight", vec![hg, f + p + 1]),
                ("ctrl.graph.fc1.bias", vec![hg]),
                ("ctrl.graph.fc2.weight", vec![p, hg]),
                ("ctrl.graph.fc2.bias", vec![p]),
            ]);
        }
        for (n, w) in &want {
            let got = shape(n)?;
            if &got != w {
                return Err(format!("tensor '{n}' has shape {got:?}, expected {w:?}"));
            }
            // As tinv-fold and the runtime refuse it: a NaN weight decides nothing.
            let data = crate::tensors::find(ts, n).map_or(&[][..], |t| &t.data[..]);
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "tensor '{n}' holds {} at element {i}; retrain the controller",
                    data[i]
                ));
            }
        }
        let get = |n: &str| -> Result<Vec<f32>, String> {
            crate::tensors::find(ts, n)
                .map(|t| t.data.clone())
                .ok_or_else(|| format!("tensor '{n}' missing"))
        };
        let mlp = |pre: &str| -> Result<Mlp, String> {
            Ok(Mlp {
                w1: get(&format!("{pre}.fc1.weight"))?,
                b1: get(&format!("{pre}.fc1.bias"))?,
                w2: get(&format!("{pre}.fc2.weight"))?,
                b2: get(&format!("{pre}.fc2.bias"))?,
            })
        };
        let bo = get("ctrl.exit.out.bias")?;
        Ok(Controller {
            p,
            pred: mlp("ctrl.pred")?,
            policy: mlp("ctrl.policy")?,
            graph: if has_graph {
                Some(mlp("ctrl.graph")?)
            } else {
                None
            },
            rnn: ExitRnn {
                wx: get("ctrl.exit.wx")?,
                wh: get("ctrl.exit.wh")?,
                b: get("ctrl.exit.b")?,
                wo: get("ctrl.exit.out.weight")?,
                bo: bo.first().copied().ok_or("ctrl.exit.out.bias is empty")?,
            },
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An exit RNN of two hidden units with hand-picked weights (Wh not symmetric), for the
    /// tests that work its recurrence out by hand.
    pub(in crate::control) fn two_unit_rnn() -> ExitRnn {
        ExitRnn {
            wx: vec![1.0, 0.5, 0.0, -1.0, 0.25, -0.5, 0.0, 2.0, 1.0, 0.0],
            wh: vec![0.5, -1.5, 0.75, 0.25],
            b: vec![0.1, -0.2],
            wo: vec![2.0, -3.0],
            bo: 0.5,
        }
    }

    #[test]
    fn folding_standardization_is_exact_enough() {
        let m = Mlp {
            w1: vec![0.5, -1.0, 2.0, 0.25, 1.5, -0.5],
            b1: vec![0.1, -0.2],
            w2: vec![1.0, -1.0],
            b2: vec![0.3],
        };
        let (mean, std) = ([0.2f32, 0.4], [0.1f32, 0.5]);
        let x = [0.35f32, 0.1, 0.7];
        let xs = [(x[0] - mean[0]) / std[0], (x[1] - mean[1]) / std[1], x[2]];
        let a = m.forward(&xs);
        let b = m.fold_standardization(&mean, &std).forward(&x);
        assert!((a[0] - b[0]).abs() < 1e-5, "{a:?} vs {b:?}");
    }

    #[test]
    fn folding_every_input_of_every_unit() {
        // All three inputs standardized, two hidden units, two outputs: every output of the
        // folded net on raw x equals the net's on (x − mean) / std.
        let m = Mlp {
            w1: vec![0.5, -1.0, 2.0, 0.25, 1.5, -0.5],
            b1: vec![0.1, -0.2],
            w2: vec![1.0, -1.0, 0.5, 2.0],
            b2: vec![0.3, -0.1],
        };
        let (mean, std) = ([0.2f32, 0.4, -0.3], [0.1f32, 0.5, 2.0]);
        let folded = m.fold_standardization(&mean, &std);
        for x in [[0.35f32, 0.1, 0.7], [-0.2, 0.9, 0.0]] {
            let xs: Vec<f32> = (0..3).map(|j| (x[j] - mean[j]) / std[j]).collect();
            let (a, b) = (m.forward(&xs), folded.forward(&x));
            assert_eq!((a.len(), b.len()), (2, 2));
            for (u, v) in a.iter().zip(&b) {
                assert!((u - v).abs() < 1e-5, "{x:?}: {a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn rnn_step_hand_computed() {
        // hr = 1: h = tanh(b + Σ wx·e + wh·h), c = wo·h + bo.
        let r = ExitRnn {
            wx: vec![1.0, 0.0, 0.0, 0.0, 0.0],
            wh: vec![2.0],
            b: vec![-0.5],
            wo: vec![3.0],
            bo: -1.0,
        };
        let mut h = vec![0.0];
        let c = r.step(&[0.9, 0.0, 0.0, 0.0, 0.0], &mut h);
        assert!(
            (h[0] - 0.4f32.tanh()).abs() < 1e-7 && (c - (3.0 * 0.4f32.tanh() - 1.0)).abs() < 1e-6
        );
        let h0 = h[0];
        r.step(&[0.0; 5], &mut h);
        assert!((h[0] - (-0.5 + 2.0 * h0).tanh()).abs() < 1e-7);
    }

    #[test]
    fn probabilities_are_the_softmax_of_the_scores() {
        // One hidden unit relu(x₀ − x₁), outputs (h, 2h, 0) + (0, 0, 1): for x = (2, 1), h = 1
        // and the scores are (1, 2, 1).
        let m = Mlp {
            w1: vec![1.0, -1.0],
            b1: vec![0.0],
            w2: vec![1.0, 2.0, 0.0],
            b2: vec![0.0, 0.0, 1.0],
        };
        assert_eq!(m.inputs(), 2);
        assert_eq!(m.forward(&[2.0, 1.0]), [1.0, 2.0, 1.0]);
        let e = 1f64.exp();
        let want = [1.0 / (2.0 + e), e / (2.0 + e), 1.0 / (2.0 + e)];
        let got = m.probabilities(&[2.0, 1.0]);
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // Large scores do not overflow (the maximum is subtracted first).
        let big = Mlp {
            b2: vec![1000.0, 1000.0, 0.0],
            ..m
        };
        let got = big.probabilities(&[0.0, 5.0]);
        assert!((got[0] - 0.5).abs() < 1e-6 && (got[1] - 0.5).abs() < 1e-6 && got[2] == 0.0);
    }

    #[test]
    fn exit_input_position_is_k_over_p_minus_one() {
        let s = (0.75, 0.25, 0.5);
        assert_eq!(exit_input(s, 0.1, 1, 3), [0.75, 0.25, 0.5, 0.1, 0.5]);
        assert_eq!(exit_input(s, 0.1, 3, 4), [0.75, 0.25, 0.5, 0.1, 1.0]);
        // One path: position 0, not 0/0.
        assert_eq!(exit_input(s, 0.1, 0, 1), [0.75, 0.25, 0.5, 0.1, 0.0]);
    }

    #[test]
    fn rnn_step_with_two_units_in_f64() {
        // h = tanh(b + Wx·e + Wh·h_prev), c = bo + wo·h, [out, in] rows; Wh not symmetric.
        let r = two_unit_rnn();
        assert_eq!(r.hidden(), 2);
        let e = [0.9f32, 0.3, 0.6, 0.2, 0.5];
        let mut h = vec![0.4f32, -0.3];
        let c = r.step(&e, &mut h);
        let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        let (wx, wh, b, e64) = (f(&r.wx), f(&r.wh), f(&r.b), f(&e));
        let prev = [0.4f64, -0.3];
        let want: Vec<f64> = (0..2)
            .map(|o| {
                let x: f64 = (0..5).map(|i| wx[o * 5 + i] * e64[i]).sum();
                let hh: f64 = (0..2).map(|i| wh[o * 2 + i] * prev[i]).sum();
                (b[o] + x + hh).tanh()
            })
            .collect();
        for o in 0..2 {
            assert!(
                (f64::from(h[o]) - want[o]).abs() < 1e-6,
                "{h:?} vs {want:?}"
            );
        }
        let want_c = 0.5 + 2.0 * want[0] - 3.0 * want[1];
        assert!((f64::from(c) - want_c).abs() < 1e-5, "{c} vs {want_c}");
    }

    #[test]
    fn controller_tensors_read_back_and_bad_ones_are_refused() {
        let mlp = |i: usize, h: usize, o: usize, s: f32| Mlp {
            w1: (0..h * i).map(|v| s + v as f32).collect(),
            b1: (0..h).map(|v| -s - v as f32).collect(),
            w2: (0..o * h).map(|v| 2.0 * s + v as f32).collect(),
            b2: (0..o).map(|v| 3.0 * s + v as f32).collect(),
        };
        // F = 4, P = 2: predictor 4 → 3 → 2, policies [φ, p, λ] = 7 → 5 and 7 → 6, RNN 2 units.
        let c = Controller {
            p: 2,
            pred: mlp(4, 3, 2, 0.5),
            policy: mlp(7, 5, 2, 1.5),
            graph: Some(mlp(7, 6, 2, 2.5)),
            rnn: ExitRnn {
                wx: (0..10).map(|v| v as f32).collect(),
                wh: vec![1.0, 2.0, 3.0, 4.0],
                b: vec![5.0, 6.0],
                wo: vec![7.0, 8.0],
                bo: 9.0,
            },
        };
        let ts = c.to_tensors();
        let shape = |n: &str| ts.iter().find(|t| t.name == n).map(|t| t.shape.clone());
        assert_eq!(ts.len(), 17);
        assert_eq!(shape("ctrl.pred.fc1.weight"), Some(vec![3, 4]));
        assert_eq!(shape("ctrl.policy.fc1.weight"), Some(vec![5, 7]));
        assert_eq!(shape("ctrl.graph.fc2.weight"), Some(vec![2, 6]));
        assert_eq!(shape("ctrl.exit.wx"), Some(vec![2, 5]));
        assert_eq!(Controller::from_tensors(&ts, 2), Ok(c.clone()));
        // Without the graph policy: None, and `graph` mode runs the level-1 policy.
        let old: Vec<HostTensor> = ts
            .iter()
            .filter(|t| !t.name.starts_with("ctrl.graph."))
            .cloned()
            .collect();
        let back = Controller::from_tensors(&old, 2).unwrap();
        assert_eq!(back.graph, None);
        assert_eq!(back.up_front(true), &c.policy);
        assert_eq!(c.up_front(true), c.graph.as_ref().unwrap());
        assert_eq!(c.up_front(false), &c.policy);
        // A wrong shape, a NaN, a 1-D predictor.
        let with = |name: &str, f: &dyn Fn(&mut HostTensor)| -> Vec<HostTensor> {
            let mut v = ts.clone();
            v.iter_mut().filter(|t| t.name == name).for_each(f);
            v
        };
        let bad = with("ctrl.exit.b", &|t| {
            t.shape = vec![3];
            t.data.push(0.0);
        });
        assert_eq!(
            Controller::from_tensors(&bad, 2),
            Err("tensor 'ctrl.exit.b' has shape [3], expected [2]".into())
        );
        let bad = with("ctrl.policy.fc2.bias", &|t| t.data[1] = f32::NAN);
        assert_eq!(
            Controller::from_tensors(&bad, 2),
            Err(
                "tensor 'ctrl.policy.fc2.bias' holds NaN at element 1; retrain the controller"
                    .into()
            )
        );
        let bad = with("ctrl.pred.fc1.weight", &|t| t.shape = vec![12]);
        assert_eq!(
            Controller::from_tensors(&bad, 2),
            Err("ctrl.pred.fc1.weight must be 2-D".into())
        );
    }
}
