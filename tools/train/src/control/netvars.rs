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
