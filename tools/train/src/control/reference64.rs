//! The controller's networks and optimizer written again in f64 for the tests (perceptron,
//! exit RNN step, central-difference gradients, Adam with clipping): the reference that PPO's
//! loops and the exit RNN's warm start are checked against.

use super::nets::{ExitRnn, Mlp, EXIT_IN};

/// `(inputs, hidden, outputs)` of a perceptron.
pub(crate) type Shape = (usize, usize, usize);

pub(crate) fn mlp_len((i, h, o): Shape) -> usize {
    h * i + h + o * h + o
}

/// A host perceptron's parameters in `MlpVars`' order (`w1`, `b1`, `w2`, `b2`).
pub(crate) fn flat(m: &Mlp) -> Vec<f64> {
    m.w1.iter()
        .chain(&m.b1)
        .chain(&m.w2)
        .chain(&m.b2)
        .map(|&v| f64::from(v))
        .collect()
}

/// `relu(x·W₁ᵀ + b₁)·W₂ᵀ + b₂` over the flat parameters `th`.
pub(crate) fn mlp64(th: &[f64], (i, h, o): Shape, x: &[f64]) -> Vec<f64> {
    let (w1, rest) = th.split_at(h * i);
    let (b1, rest) = rest.split_at(h);
    let (w2, b2) = rest.split_at(o * h);
    let hid: Vec<f64> = (0..h)
        .map(|u| (b1[u] + (0..i).map(|j| w1[u * i + j] * x[j]).sum::<f64>()).max(0.0))
        .collect();
    (0..o)
        .map(|k| b2[k] + (0..h).map(|u| w2[k * h + u] * hid[u]).sum::<f64>())
        .collect()
}

/// Central differences of `loss` at `th`.
pub(crate) fn gradient(th: &[f64], loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut t = th.to_vec();
    let h = 1e-6;
    (0..th.len())
        .map(|j| {
            t[j] = th[j] + h;
            let up = loss(&t);
            t[j] = th[j] - h;
            let down = loss(&t);
            t[j] = th[j];
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Adam in f64 with the gradient clipped to global norm 1.
pub(crate) struct Adam64 {
    m: Vec<f64>,
    s: Vec<f64>,
    t: i32,
    lr: f64,
}

impl Adam64 {
    pub(crate) fn new(len: usize, lr: f64) -> Adam64 {
        Adam64 {
            m: vec![0.0; len],
            s: vec![0.0; len],
            t: 0,
            lr,
        }
    }
    pub(crate) fn step(&mut self, th: &mut [f64], g: &[f64]) {
        self.t += 1;
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let scale = if norm > 1.0 { 1.0 / norm } else { 1.0 };
        let (c1, c2) = (1.0 - 0.9f64.powi(self.t), 1.0 - 0.999f64.powi(self.t));
        for j in 0..th.len() {
            let gj = g[j] * scale;
            self.m[j] = 0.9 * self.m[j] + 0.1 * gj;
            self.s[j] = 0.999 * self.s[j] + 0.001 * gj * gj;
            th[j] -= self.lr * (self.m[j] / c1) / ((self.s[j] / c2).sqrt() + 1e-8);
        }
    }
}

/// The largest difference between `got` and `want`; infinite where either is not a number
/// (`f64::max` would pass over it).
pub(crate) fn max_diff(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| {
            let d = (a - b).abs();
            if d.is_nan() {
                f64::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f64::max)
}

/// The exit RNN's parameters in `RnnVars`' order (`wx`, `wh`, `b`, `wo`, `bo`).
pub(crate) fn flat_rnn(r: &ExitRnn) -> Vec<f64> {
    r.wx.iter()
        .chain(&r.wh)
        .chain(&r.b)
        .chain(&r.wo)
        .chain([&r.bo])
        .map(|&v| f64::from(v))
        .collect()
}

/// One step of the exit RNN over flat parameters: `h ← tanh(b + Wx·x + Wh·h)`, returns
/// `bo + wo·h`.
pub(crate) fn rnn64(th: &[f64], hr: usize, x: &[f64; EXIT_IN], h: &mut [f64]) -> f64 {
    let (wx, rest) = th.split_at(hr * EXIT_IN);
    let (wh, rest) = rest.split_at(hr * hr);
    let (b, rest) = rest.split_at(hr);
    let (wo, bo) = rest.split_at(hr);
    let next: Vec<f64> = (0..hr)
        .map(|u| {
            let from_x: f64 = (0..EXIT_IN).map(|j| wx[u * EXIT_IN + j] * x[j]).sum();
            let from_h: f64 = (0..hr).map(|j| wh[u * hr + j] * h[j]).sum();
            (b[u] + from_x + from_h).tanh()
        })
        .collect();
    h.copy_from_slice(&next);
    bo[0] + (0..hr).map(|u| wo[u] * h[u]).sum::<f64>()
}

/// `ln σ(c)`.
pub(crate) fn ln_sigmoid(c: f64) -> f64 {
    -(1.0 + (-c).exp()).ln()
}
