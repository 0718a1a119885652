//! AdamW with decoupled weight decay, global gradient-norm clipping, and the warm-up + cosine
//! learning-rate schedule. Written here (not candle-nn's) so its moments can be checkpointed and
//! resumed exactly.

use crate::tensors::HostTensor;
use candle_core::{backprop::GradStore, Result, Tensor, Var};

/// Optimizer state: first and second moments per variable, and the step count.
pub struct AdamW {
    /// Moments `(m, v)` per variable, same order as the variables.
    moments: Vec<(Tensor, Tensor)>,
    /// Whether each variable gets weight decay (matrices except cls/pos embeddings).
    decay: Vec<bool>,
    /// Steps taken.
    pub step: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl AdamW {
    /// Fresh state for `vars` (name, variable).
    pub fn new(vars: &[(String, Var)]) -> Result<AdamW> {
        let moments = vars
            .iter()
            .map(|(_, v)| Ok((v.zeros_like()?, v.zeros_like()?)))
            .collect::<Result<Vec<_>>>()?;
        let decay = vars
            .iter()
            .map(|(n, v)| v.rank() >= 2 && n != "cls_token" && n != "pos_embed")
            .collect();
        Ok(AdamW {
            moments,
            decay,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    }

    /// Global L2 norm of the gradients of `vars`.
    pub fn grad_norm(vars: &[(String, Var)], grads: &GradStore) -> Result<f64> {
        let mut sq = 0f64;
        for (_, v) in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        Ok(sq.sqrt())
    }

    /// One update with learning rate `lr`, gradients scaled by `scale` (clipping).
    pub fn update(
        &mut self,
        vars: &[(String, Var)],
        grads: &GradStore,
        lr: f64,
        wd: f64,
        scale: f64,
    ) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        for (((_, var), (m, v)), &decay) in
            vars.iter().zip(self.moments.iter_mut()).zip(&self.decay)
        {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = (g * scale)?;
            *m = ((&*m * b1)? + (&g * (1.0 - b1))?)?;
            *v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let upd = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + self.eps)?)?;
            let mut theta = var.as_tensor().clone();
            if decay && wd > 0.0 {
                theta = (theta * (1.0 - lr * wd))?;
            }
            var.set(&(theta - (upd * lr)?)?)?;
        }
        Ok(())
    }

    /// The moments as host tensors `opt.m.<name>` / `opt.v.<name>`.
    pub fn to_host(&self, vars: &[(String, Var)]) -> Result<Vec<HostTensor>> {
        let mut out = Vec::new();
        for ((name, var), (m, v)) in vars.iter().zip(&self.moments) {
            for (tag, t) in [("m", m), ("v", v)] {
                out.push(HostTensor {
                    name: format!("opt.{tag}.{name}"),
                    shape: var.dims().to_vec(),
                    data: t.flatten_all()?.to_vec1::<f32>()?,
                });
            }
        }
        Ok(out)
    }

    /// Restores moments saved by [`AdamW::to_host`].
    pub fn load_host(
        &mut self,
        vars: &[(String, Var)],
        ts: &[HostTensor],
        step: usize,
    ) -> std::result::Result<(), String> {
        for ((name, var), mv) in vars.iter().zip(self.moments.iter_mut()) {
            for (tag, slot) in [("m", &mut mv.0), ("v", &mut mv.1)] {
                let key = format!("opt.{tag}.{name}");
                let t = crate::tensors::find(ts, &key)
                    .ok_or_else(|| format!("optimizer state '{key}' missing"))?;
                *slot = Tensor::from_slice(&t.data, var.dims(), var.device())
                    .map_err(|e| format!("{key}: {e}"))?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Learning rate at `step` of `total`: linear warm-up over `warmup` steps to `peak`, then cosine
/// decay to `min`.
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f64, min: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let t = ((step - warmup) as f64 / span as f64).min(1.0);
    min + 0.5 * (peak - min) * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_shape() {
        assert!((lr_at(0, 100, 10, 1.0, 0.0) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 100, 10, 1.0, 0.0) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, 100, 10, 1.0, 0.0) - 1.0).abs() < 1e-12);
        assert!((lr_at(55, 100, 10, 1.0, 0.0) - 0.5).abs() < 1e-12);
        assert!((lr_at(100, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn adamw_first_step_is_lr_times_sign() {
        // After one step Adam moves every coordinate by lr·g/|g| (bias-corrected), whatever |g|.
        let var = Var::from_slice(&[1f32, -2.0], 2, &candle_core::Device::Cpu).unwrap();
        let vars = vec![("b".to_string(), var.clone())];
        let loss = (var.as_tensor()
            * &Tensor::new(&[3f32, -0.5], &candle_core::Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = AdamW::new(&vars).unwrap();
        opt.update(&vars, &grads, 0.1, 0.0, 1.0).unwrap();
        let v = var.as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            (v[0] - 0.9).abs() < 1e-5 && (v[1] + 1.9).abs() < 1e-5,
            "{v:?}"
        );
    }
}
