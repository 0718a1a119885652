//! Trainable (candle) versions of the controller's networks, with a small Adam, used by the
//! predictor's supervised training and by PPO. They convert to and from the host form in
//! `nets.rs`, which is what inference and the checkpoint use.

use super::nets::{ExitRnn, Mlp, EXIT_IN};
use crate::rng::Rng;
use candle_core::{backprop::GradStore, Device, Result, Tensor, Var, D};

fn var(rng: &mut Rng, shape: (usize, usize), std: f64) -> Result<Var> {
    let data: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| (rng.normal() * std) as f32)
        .collect();
    Var::from_vec(data, shape, &Device::Cpu)
}

fn zeros(n: usize) -> Result<Var> {
    Var::zeros(n, candle_core::DType::F32, &Device::Cpu)
}

fn host(v: &Var) -> Result<Vec<f32>> {
    v.flatten_all()?.to_vec1::<f32>()
}

/// A trainable two-layer perceptron (ReLU), weights `[out, in]`.
pub struct MlpVars {
    /// `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`.
    pub v: [Var; 4],
}

impl MlpVars {
    /// He-initialized first layer, small second layer.
    pub fn new(inp: usize, hidden: usize, out: usize, rng: &mut Rng) -> Result<MlpVars> {
        Ok(MlpVars {
            v: [
                var(rng, (hidden, inp), (2.0 / inp as f64).sqrt())?,
                zeros(hidden)?,
                var(rng, (out, hidden), 0.01)?,
                zeros(out)?,
            ],
        })
    }
    /// `[b, in] → [b, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = x
            .matmul(&self.v[0].t()?)?
            .broadcast_add(&self.v[1])?
            .relu()?;
        h.matmul(&self.v[2].t()?)?.broadcast_add(&self.v[3])
    }
    /// Trainable copy of a host network.
    pub fn from_host(m: &Mlp) -> Result<MlpVars> {
        let (h, o) = (m.b1.len(), m.b2.len());
        let t = |v: &[f32], shape: (usize, usize)| Var::from_slice(v, shape, &Device::Cpu);
        Ok(MlpVars {
            v: [
                t(&m.w1, (h, m.inputs()))?,
                Var::from_slice(&m.b1, h, &Device::Cpu)?,
                t(&m.w2, (o, h))?,
                Var::from_slice(&m.b2, o, &Device::Cpu)?,
            ],
        })
    }
    /// Output width.
    pub fn outputs(&self) -> usize {
        self.v[3].elem_count()
    }
    /// Host copy.
    pub fn to_host(&self) -> Result<Mlp> {
        Ok(Mlp {
            w1: host(&self.v[0])?,
            b1: host(&self.v[1])?,
            w2: host(&self.v[2])?,
            b2: host(&self.v[3])?,
        })
    }
    /// The variables.
    pub fn vars(&self) -> Vec<Var> {
        self.v.to_vec()
    }
}

/// The trainable exit RNN.
pub struct RnnVars {
    /// `wx [hr,5]`, `wh [hr,hr]`, `b [hr]`, `wo [1,hr]`, `bo [1]`.
    pub v: [Var; 5],
}

impl RnnVars {
    /// Small random initialization; the output bias starts at `bias` (its sign is the initial
    /// decision).
    pub fn new(hr: usize, rng: &mut Rng) -> Result<RnnVars> {
        Ok(RnnVars {
            v: [
                var(rng, (hr, EXIT_IN), (1.0 / EXIT_IN as f64).sqrt())?,
                var(rng, (hr, hr), 0.1 / (hr as f64).sqrt())?,
                zeros(hr)?,
                var(rng, (1, hr), 0.1)?,
                zeros(1)?,
            ],
        })
    }
    /// Outputs `c_t` `[T, b]` for inputs `[T, b, 5]`, the state starting at zero.
    pub fn forward(&self, e: &Tensor) -> Result<Tensor> {
        let (t, b, _) = e.dims3()?;
        let hr = self.v[2].dim(0)?;
        let mut h = Tensor::zeros((b, hr), candle_core::DType::F32, &Device::Cpu)?;
        let mut outs = Vec::with_capacity(t);
        for s in 0..t {
            let x = e.get(s)?;
            h = (x.matmul(&self.v[0].t()?)? + h.matmul(&self.v[1].t()?)?)?
                .broadcast_add(&self.v[2])?
                .tanh()?;
            outs.push(
                h.matmul(&self.v[3].t()?)?
                    .broadcast_add(&self.v[4])?
                    .squeeze(D::Minus1)?,
            );
        }
        Tensor::stack(&outs, 0)
    }
    /// Host copy.
    pub fn to_host(&self) -> Result<ExitRnn> {
        Ok(ExitRnn {
            wx: host(&self.v[0])?,
            wh: host(&self.v[1])?,
            b: host(&self.v[2])?,
            wo: host(&self.v[3])?,
            bo: host(&self.v[4])?.first().copied().unwrap_or(0.0),
        })
    }
    /// The variables.
    pub fn vars(&self) -> Vec<Var> {
        self.v.to_vec()
    }
}

/// Plain Adam (no weight decay) over a list of variables, with gradient-norm clipping.
pub struct Adam {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    s: Vec<Tensor>,
    t: i32,
    lr: f64,
}

impl Adam {
    /// Adam with learning rate `lr`.
    pub fn new(vars: Vec<Var>, lr: f64) -> Result<Adam> {
        let m = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let s = m.clone();
        Ok(Adam {
            vars,
            m,
            s,
            t: 0,
            lr,
        })
    }
    /// One step on `grads`, clipped to global norm `clip`.
    pub fn step(&mut self, grads: &GradStore, clip: f64) -> Result<()> {
        self.t += 1;
        let mut sq = 0f64;
        for v in &self.vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        let scale = if sq.sqrt() > clip {
            clip / sq.sqrt()
        } else {
            1.0
        };
        let (c1, c2) = (1.0 - 0.9f64.powi(self.t), 1.0 - 0.999f64.powi(self.t));
        for ((v, m), s) in self
            .vars
            .iter()
            .zip(self.m.iter_mut())
            .zip(self.s.iter_mut())
        {
            let Some(g) = grads.get(v.as_tensor()) else {
                continue;
            };
            let g = (g * scale)?;
            *m = ((&*m * 0.9)? + (&g * 0.1)?)?;
            *s = ((&*s * 0.999)? + (g.sqr()? * 0.001)?)?;
            let upd = ((&*m / c1)? / ((&*s / c2)?.sqrt()? + 1e-8)?)?;
            v.set(&(v.as_tensor() - (upd * self.lr)?)?)?;
        }
        Ok(())
    }
}

/// Fits `net` on the rows of `x` (`[n, in]`) for `epochs` passes in shuffled minibatches of 256
/// with Adam (learning rate 3e-3): `loss(logits, idx)` is the batch loss for the rows `idx`.
/// Returns the mean loss of every epoch.
pub fn fit(
    net: &MlpVars,
    x: &Tensor,
    epochs: usize,
    rng: &mut Rng,
    loss: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    let n = x.dim(0)?;
    let mut adam = Adam::new(net.vars(), 3e-3)?;
    let mut means = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let perm = rng.permutation(n);
        let mut tot = 0f32;
        for part in perm.chunks(256) {
            let idx = Tensor::from_vec(
                part.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                part.len(),
                x.device(),
            )?;
            let l = loss(&net.forward(&x.index_select(&idx, 0)?)?, &idx)?;
            tot += l.to_scalar::<f32>()? * part.len() as f32;
            adam.step(&l.backward()?, 1.0)?;
        }
        means.push(tot / n.max(1) as f32);
    }
    Ok(means)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trainable_mlp_computes_what_the_host_one_does_and_converts_back() {
        let m = Mlp {
            w1: vec![0.5, -1.0, 2.0, 0.25, 1.5, -0.5],
            b1: vec![0.1, -0.2],
            w2: vec![1.0, -1.0, 0.5, 2.0, -0.25, 0.75],
            b2: vec![0.3, -0.1, 0.0],
        };
        let v = MlpVars::from_host(&m).unwrap();
        assert_eq!((v.outputs(), v.vars().len()), (3, 4));
        assert_eq!(v.to_host().unwrap(), m);
        let rows = [[0.2f32, -0.4, 0.9], [1.0, 0.5, -2.0]];
        let x = Tensor::from_slice(rows.as_flattened(), (2, 3), &Device::Cpu).unwrap();
        let y = v.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        for (r, row) in rows.iter().enumerate() {
            let want = m.forward(row);
            for (a, b) in y[r].iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "row {r}: {:?} vs {want:?}", y[r]);
            }
        }
    }

    #[test]
    fn trainable_rnn_runs_the_host_recurrence_over_time() {
        let r = crate::control::nets::tests::two_unit_rnn();
        let var = |d: &[f32], s: (usize, usize)| Var::from_slice(d, s, &Device::Cpu).unwrap();
        let v = RnnVars {
            v: [
                var(&r.wx, (2, 5)),
                var(&r.wh, (2, 2)),
                Var::from_slice(&r.b, 2, &Device::Cpu).unwrap(),
                var(&r.wo, (1, 2)),
                Var::from_slice(&[r.bo], 1, &Device::Cpu).unwrap(),
            ],
        };
        assert_eq!(v.to_host().unwrap(), r);
        assert_eq!(v.vars().len(), 5);
        // Three steps of two sequences, [T, b, 5].
        let e: Vec<[f32; 5]> = (0..6)
            .map(|s| std::array::from_fn(|i| ((s * 5 + i) as f32 * 0.37).sin()))
            .collect();
        let et = Tensor::from_slice(e.as_flattened(), (3, 2, 5), &Device::Cpu).unwrap();
        let c = v.forward(&et).unwrap().to_vec2::<f32>().unwrap();
        for b in 0..2 {
            let mut h = vec![0f32; 2];
            for t in 0..3 {
                let want = r.step(&e[t * 2 + b], &mut h);
                assert!(
                    (c[t][b] - want).abs() < 1e-5,
                    "step {t} sequence {b}: {} vs {want}",
                    c[t][b]
                );
            }
        }
    }

    #[test]
    fn adam_steps_as_the_textbook_with_the_gradient_norm_clipped() {
        // Loss Σ x·g has gradient g. Adam: m ← 0.9m + 0.1g, s ← 0.999s + 0.001g², x ← x −
        // lr·(m / (1 − 0.9ᵗ)) / (√(s / (1 − 0.999ᵗ)) + 1e-8), g first scaled to global norm ≤
        // clip. Reference in f64.
        let x = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![x.clone()], 0.1).unwrap();
        let (mut want, mut m, mut s) = ([1.0f64, -2.0], [0f64; 2], [0f64; 2]);
        // Gradients (3, −4), norm 5, clipped to 1; then (1, 3), norm √10, clipped to 2.
        for (t, (g, clip)) in [([3.0f32, -4.0], 1.0), ([1.0, 3.0], 2.0)]
            .iter()
            .enumerate()
        {
            let gt = Tensor::from_slice(g, 2, &Device::Cpu).unwrap();
            let loss = (x.as_tensor() * &gt).unwrap().sum_all().unwrap();
            adam.step(&loss.backward().unwrap(), *clip).unwrap();
            let norm = g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
            let scale = (clip / norm).min(1.0);
            let tt = t as i32 + 1;
            for i in 0..2 {
                let gi = f64::from(g[i]) * scale;
                m[i] = 0.9 * m[i] + 0.1 * gi;
                s[i] = 0.999 * s[i] + 0.001 * gi * gi;
                let mh = m[i] / (1.0 - 0.9f64.powi(tt));
                let sh = s[i] / (1.0 - 0.999f64.powi(tt));
                want[i] -= 0.1 * mh / (sh.sqrt() + 1e-8);
            }
            let got = x.as_tensor().to_vec1::<f32>().unwrap();
            for i in 0..2 {
                assert!(
                    (f64::from(got[i]) - want[i]).abs() < 1e-5,
                    "step {tt}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn fit_reports_the_mean_loss_of_each_epoch() {
        // A loss that is the mean row index of the batch (plus 0 × the output, for a graph):
        // over an epoch of 300 rows in batches of 256 and 44, the size-weighted mean is the
        // mean index 149.5, whatever the shuffle.
        let mut rng = Rng::new(1, 0);
        let net = MlpVars::new(2, 3, 1, &mut rng).unwrap();
        let x = Tensor::zeros((300, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let means = fit(&net, &x, 2, &mut rng, |q, idx| {
            (q * 0.0)?.sum_all()? + idx.to_dtype(candle_core::DType::F32)?.mean_all()?
        })
        .unwrap();
        assert_eq!(means.len(), 2);
        for m in means {
            assert!((m - 149.5).abs() < 1e-3, "{m}");
        }
    }

    #[test]
    fn adam_with_a_gradient_below_epsilon_still_steps_downhill() {
        // g = 1e-9: m̂ = 1e-9, √ŝ = 1e-9, so the step is lr · 1e-9 / (1e-9 + 1e-8) = 0.1 / 11.
        let x = Var::from_slice(&[1.0f32], 1, &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![x.clone()], 0.1).unwrap();
        let loss = (x.as_tensor() * 1e-9).unwrap().sum_all().unwrap();
        adam.step(&loss.backward().unwrap(), 1.0).unwrap();
        let got = x.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((f64::from(got) - (1.0 - 0.1 / 11.0)).abs() < 1e-5, "{got}");
    }

    #[test]
    fn initial_weights_have_the_stated_scales() {
        // He initialization of the first layer, std √(2 / inputs) = 0.2 for 50 inputs; the
        // second layer std 0.01; biases zero. 20 000 and 4 000 draws: the sample means and
        // deviations are within a few percent.
        let m = MlpVars::new(50, 400, 10, &mut Rng::new(7, 0))
            .unwrap()
            .to_host()
            .unwrap();
        let moments = |v: &[f32]| {
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
            let var = v
                .iter()
                .map(|&x| (f64::from(x) - mean).powi(2))
                .sum::<f64>()
                / n;
            (mean, var.sqrt())
        };
        let (m1, s1) = moments(&m.w1);
        assert!(m1.abs() < 0.01 && (s1 - 0.2).abs() < 0.01, "{m1} {s1}");
        let (m2, s2) = moments(&m.w2);
        assert!(m2.abs() < 0.001 && (s2 - 0.01).abs() < 0.001, "{m2} {s2}");
        assert!(m.b1.iter().chain(&m.b2).all(|&b| b == 0.0));
    }
}
