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
        // Peak 2, floor 0.5: halfway through the decay, min + (peak − min)·(1 + cos(π/2))/2 =
        // 1.25; a quarter of the way, 0.5 + 0.75·(1 + cos(π/4)) = 1.780330…
        assert!((lr_at(55, 100, 10, 2.0, 0.5) - 1.25).abs() < 1e-12);
        let q = 0.5 + 0.75 * (1.0 + std::f64::consts::FRAC_1_SQRT_2);
        assert!((lr_at(33, 108, 8, 2.0, 0.5) - q).abs() < 1e-12);
    }

    /// The gradients of `Σ cᵢ·xᵢ` over `vars`, `cᵢ` each variable's constant `c`.
    fn grads_of(vars: &[(String, Var)], c: f32) -> GradStore {
        let mut loss = Tensor::new(0f32, &candle_core::Device::Cpu).unwrap();
        for (_, v) in vars {
            let t = (v.as_tensor() * f64::from(c)).unwrap().sum_all().unwrap();
            loss = (loss + t).unwrap();
        }
        loss.backward().unwrap()
    }

    #[test]
    fn grad_norm_is_the_l2_norm_over_every_variable() {
        let dev = candle_core::Device::Cpu;
        let a = Var::from_slice(&[1f32, 2.0], 2, &dev).unwrap();
        let b = Var::from_slice(&[0f32; 4], (2, 2), &dev).unwrap();
        let unused = Var::from_slice(&[5f32], 1, &dev).unwrap();
        let vars = vec![
            ("a".to_string(), a.clone()),
            ("b".to_string(), b.clone()),
            ("u".to_string(), unused),
        ];
        let ca = Tensor::new(&[3f32, -4.0], &dev).unwrap();
        let cb = Tensor::new(&[[1f32, 2.0], [-2.0, 4.0]], &dev).unwrap();
        let loss = ((a.as_tensor() * &ca).unwrap().sum_all().unwrap()
            + (b.as_tensor() * &cb).unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        // √(9 + 16 + 1 + 4 + 4 + 16) = √50; the variable without a gradient adds nothing.
        let n = AdamW::grad_norm(&vars, &grads).unwrap();
        assert!((n - 50f64.sqrt()).abs() < 1e-9, "{n}");
    }

    /// AdamW (Loshchilov & Hutter) by hand in f64, β 0.9 / 0.999, ε 1e-8: after the gradients
    /// `gs` (clip scale applied), `θ ← θ·(1 − lr·wd) − lr·m̂/(√v̂ + ε)` each step, where `m =
    /// 0.9 m + 0.1 g`, `v = 0.999 v + 0.001 g²`, `m̂ = m/(1 − 0.9^t)`, `v̂ = v/(1 − 0.999^t)`.
    fn adamw_ref(theta: f64, gs: &[f64], lr: f64, wd: f64) -> f64 {
        let (mut th, mut m, mut v) = (theta, 0.0, 0.0);
        for (t, &g) in (1..).zip(gs) {
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let mh = m / (1.0 - 0.9f64.powi(t));
            let vh = v / (1.0 - 0.999f64.powi(t));
            th = th * (1.0 - lr * wd) - lr * mh / (vh.sqrt() + 1e-8);
        }
        th
    }

    #[test]
    fn adamw_steps_decay_and_resume_follow_the_definition() {
        let dev = candle_core::Device::Cpu;
        let init_w = [1f32, -2.0, 0.5, 4.0];
        let init_b = [1f32, -2.0];
        let fresh = || {
            vec![
                (
                    "w".to_string(),
                    Var::from_slice(&init_w, (2, 2), &dev).unwrap(),
                ),
                ("b".to_string(), Var::from_slice(&init_b, 2, &dev).unwrap()),
            ]
        };
        // Gradient 1, then 3 clipped by scale 0.5 (1.5), then 2; lr 0.1, wd 0.5. The decay is
        // for matrices only (rank ≥ 2): the bias `b` moves by Adam alone.
        let (lr, wd) = (0.1, 0.5);
        let steps = [(1f32, 1.0), (3.0, 0.5), (2.0, 1.0)];
        let check = |vars: &[(String, Var)], n: usize| {
            let gs: Vec<f64> = steps[..n].iter().map(|&(g, s)| f64::from(g) * s).collect();
            for (k, (init, decay)) in [(&init_w[..], wd), (&init_b[..], 0.0)].iter().enumerate() {
                let got = vars[k].1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (g, &i) in got.iter().zip(init.iter()) {
                    let e = adamw_ref(f64::from(i), &gs, lr, *decay);
                    assert!(
                        (f64::from(*g) - e).abs() < 1e-5,
                        "{} after {n} steps: {g} vs {e}",
                        vars[k].0
                    );
                }
            }
        };
        let vars = fresh();
        let mut opt = AdamW::new(&vars).unwrap();
        for &(g, s) in &steps[..2] {
            opt.update(&vars, &grads_of(&vars, g), lr, wd, s).unwrap();
        }
        check(&vars, 2);
        // The moments as saved: `opt.m.<name>` = m2, `opt.v.<name>` = v2 for every element.
        let saved = opt.to_host(&vars).unwrap();
        let names: Vec<&str> = saved.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["opt.m.w", "opt.v.w", "opt.m.b", "opt.v.b"]);
        let (m2, v2) = (0.9 * 0.1 + 0.1 * 1.5, 0.999 * 0.001 + 0.001 * 1.5 * 1.5);
        for (t, want) in saved.iter().zip([m2, v2, m2, v2]) {
            assert!(
                t.data.iter().all(|&x| (f64::from(x) - want).abs() < 1e-7),
                "{}",
                t.name
            );
        }
        // A fresh optimizer given them and the step resumes exactly: the third step lands where
        // three uninterrupted steps do.
        let mut resumed = AdamW::new(&vars).unwrap();
        resumed.load_host(&vars, &saved, opt.step).unwrap();
        let (g, s) = steps[2];
        resumed
            .update(&vars, &grads_of(&vars, g), lr, wd, s)
            .unwrap();
        check(&vars, 3);
        assert!(resumed.load_host(&vars, &saved[1..], 2).is_err());
    }

    #[test]
    fn epsilon_bounds_the_step_of_a_tiny_gradient() {
        // g = 1e-8 = ε: after one step m̂ = g and √v̂ = g, so the step is lr·g/(g + ε) = lr/2.
        let var = Var::from_slice(&[1f32], 1, &candle_core::Device::Cpu).unwrap();
        let vars = vec![("b".to_string(), var.clone())];
        let mut opt = AdamW::new(&vars).unwrap();
        opt.update(&vars, &grads_of(&vars, 1e-8), 0.1, 0.0, 1.0)
            .unwrap();
        let v = var.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((f64::from(v) - 0.95).abs() < 1e-6, "{v}");
    }
}
