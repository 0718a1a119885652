//! The dual-path training loss: cross-entropy at every exit, plus distillation from the deepest
//! exit (the teacher, detached) into every shallower one — softened-logit KL at temperature T
//! (scaled by T²) and class-token feature matching on *normalized* features (1 − cosine of the
//! layer-normed tokens; raw-feature MSE diverges, as the project's reference experiment found).

use crate::config::Hyper;
use crate::vit::{layer_norm, PathOut};
use candle_core::{Result, Tensor, D};
use candle_nn::ops::{log_softmax, softmax};

/// The loss and its parts (means over the exits that have them), for logging.
pub struct Loss {
    /// What the optimizer minimizes.
    pub total: Tensor,
    /// Cross-entropy over the exits: their mean, or weighted mean with `Hyper::exit_weights`.
    pub ce: f32,
    /// Mean T²·KL(teacher ‖ student) over the shallow exits.
    pub kd: f32,
    /// Mean (1 − cos) over the shallow exits.
    pub feat: f32,
}

/// `T²·KL(softmax(t/T) ‖ softmax(s/T))`, mean over the batch.
pub fn soft_kl(student: &Tensor, teacher: &Tensor, temp: f64) -> Result<Tensor> {
    let ls = log_softmax(&(student / temp)?, D::Minus1)?;
    let lt = log_softmax(&(teacher / temp)?, D::Minus1)?;
    let pt = softmax(&(teacher / temp)?, D::Minus1)?;
    let kl = (pt * (lt - ls)?)?.sum(D::Minus1)?.mean_all()?;
    kl * (temp * temp)
}

/// `1 − cos(LN(s), LN(t))`, mean over the batch (LN parameter-free, ε 1e-6).
pub fn feature_match(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    let s = layer_norm(student, 1e-6)?;
    let t = layer_norm(teacher, 1e-6)?;
    let dot = (&s * &t)?.sum(D::Minus1)?;
    let ns = s.sqr()?.sum(D::Minus1)?;
    let nt = t.sqr()?.sum(D::Minus1)?;
    let cos = (dot / ((ns * nt)? + 1e-12)?.sqrt()?)?;
    (1.0 - cos)?.mean_all()
}

/// The distillation weight factor at optimizer step `step`: ramps from 0 to 1 over
/// `h.distill_ramp` steps.
pub fn distill_factor(h: &Hyper, step: usize) -> f64 {
    if h.distill_ramp == 0 {
        1.0
    } else {
        (step as f64 / h.distill_ramp as f64).min(1.0)
    }
}

/// The full loss for one batch, the distillation terms scaled by `factor` (see
/// [`distill_factor`]).
pub fn multi_exit(outs: &[PathOut], labels: &Tensor, h: &Hyper, factor: f64) -> Result<Loss> {
    let p = outs.len();
    let Some(teacher) = outs.last() else {
        candle_core::bail!("no exits");
    };
    let t_logits = teacher.logits.detach();
    let t_cls = teacher.cls.detach();
    let equal = vec![1.0; p];
    let weights = if h.exit_weights.is_empty() {
        &equal
    } else {
        &h.exit_weights
    };
    if weights.len() != p {
        candle_core::bail!("{} exit weights for {p} exits", weights.len());
    }
    // A weight of 1 multiplies exactly, so equal weights give the plain mean bit for bit.
    let mut ce = Tensor::zeros((), candle_core::DType::F32, labels.device())?;
    for (o, &w) in outs.iter().zip(weights) {
        ce = (ce + (candle_nn::loss::cross_entropy(&o.logits, labels)? * w)?)?;
    }
    let ce = (ce / weights.iter().sum::<f64>())?;
    let mut total = ce.clone();
    let (mut kd_v, mut feat_v) = (0f32, 0f32);
    if p > 1 {
        let mut kd = Tensor::zeros((), candle_core::DType::F32, labels.device())?;
        let mut feat = kd.clone();
        for o in &outs[..p - 1] {
            kd = (kd + soft_kl(&o.logits, &t_logits, h.temperature)?)?;
            feat = (feat + feature_match(&o.cls, &t_cls)?)?;
        }
        let kd = (kd / (p - 1) as f64)?;
        let feat = (feat / (p - 1) as f64)?;
        kd_v = kd.to_scalar::<f32>()?;
        feat_v = feat.to_scalar::<f32>()?;
        total = ((total + (kd * (h.kd_weight * factor))?)? + (feat * (h.feat_weight * factor))?)?;
    }
    Ok(Loss {
        ce: ce.to_scalar::<f32>()?,
        kd: kd_v,
        feat: feat_v,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn kl_matches_hand_computation() {
        // Student uniform over 2 classes, teacher logits [ln 3, 0] at T = 1: p_t = [0.75, 0.25].
        let s = Tensor::new(&[[0f32, 0.0]], &Device::Cpu).unwrap();
        let t = Tensor::new(&[[3f32.ln(), 0.0]], &Device::Cpu).unwrap();
        let kl = soft_kl(&s, &t, 1.0).unwrap().to_scalar::<f32>().unwrap();
        let want = 0.75 * (0.75f32 / 0.5).ln() + 0.25 * (0.25f32 / 0.5).ln();
        assert!((kl - want).abs() < 1e-6, "{kl} vs {want}");
        // At T = 2 the logits halve and the result is scaled by 4.
        let kl2 = soft_kl(&s, &t, 2.0).unwrap().to_scalar::<f32>().unwrap();
        let pt = [3f32.sqrt() / (3f32.sqrt() + 1.0), 1.0 / (3f32.sqrt() + 1.0)];
        let want2 = 4.0 * (pt[0] * (pt[0] / 0.5).ln() + pt[1] * (pt[1] / 0.5).ln());
        assert!((kl2 - want2).abs() < 1e-5, "{kl2} vs {want2}");
    }

    #[test]
    fn feature_match_is_scale_free() {
        let s = Tensor::new(&[[1f32, 2.0, 3.0, 4.0]], &Device::Cpu).unwrap();
        let t = Tensor::new(&[[10f32, 20.0, 30.0, 40.0]], &Device::Cpu).unwrap();
        let f = feature_match(&s, &t).unwrap().to_scalar::<f32>().unwrap();
        assert!(f.abs() < 1e-5, "{f}");
        let r = Tensor::new(&[[4f32, 3.0, 2.0, 1.0]], &Device::Cpu).unwrap();
        let f = feature_match(&s, &r).unwrap().to_scalar::<f32>().unwrap();
        assert!((f - 2.0).abs() < 1e-5, "reversed ramp has cos -1: {f}");
        // A constant class token (the collapse `distill_ramp` guards against) normalizes to 0:
        // the 1e-12 under the root keeps cos at 0 / 1e-6 = 0, not 0 / 0.
        let c = Tensor::new(&[[2f32, 2.0, 2.0, 2.0]], &Device::Cpu).unwrap();
        let f = feature_match(&c, &t).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(f, 1.0);
    }

    #[test]
    fn exit_weights_give_the_weighted_mean_of_the_cross_entropies() {
        // Two exits over 2 classes, label 0: uniform logits (CE ln 2) and [ln 3, 0] (CE ln 4/3).
        let dev = Device::Cpu;
        let out = |l: [f32; 2]| PathOut {
            logits: Tensor::new(&[l], &dev).unwrap(),
            cls: Tensor::new(&[[1f32, 2.0]], &dev).unwrap(),
        };
        let outs = [out([0.0, 0.0]), out([3f32.ln(), 0.0])];
        let labels = Tensor::new(&[0u32], &dev).unwrap();
        let (a, b) = (2f32.ln(), (4f32 / 3.0).ln());
        let mut h = Hyper::default();
        let ce = |h: &Hyper| multi_exit(&outs, &labels, h, 0.0).unwrap().ce;
        assert!((ce(&h) - (a + b) / 2.0).abs() < 1e-6);
        h.exit_weights = vec![1.0, 3.0];
        assert!((ce(&h) - (a + 3.0 * b) / 4.0).abs() < 1e-6, "{}", ce(&h));
        h.exit_weights = vec![1.0];
        assert!(
            multi_exit(&outs, &labels, &h, 0.0).is_err(),
            "one weight per exit"
        );
    }

    #[test]
    fn kl_softens_the_student_too() {
        // Teacher uniform, student [2 ln 3, 0] at T = 2: softened, q_s = [3/4, 1/4], p_t = [1/2,
        // 1/2], so T²·KL = 4·(½ ln(½ / ¾) + ½ ln(½ / ¼)) = 2 ln(4/3).
        let s = Tensor::new(&[[2.0 * 3f32.ln(), 0.0]], &Device::Cpu).unwrap();
        let t = Tensor::new(&[[0f32, 0.0]], &Device::Cpu).unwrap();
        let kl = soft_kl(&s, &t, 2.0).unwrap().to_scalar::<f32>().unwrap();
        let want = 2.0 * (4f64 / 3.0).ln();
        assert!((f64::from(kl) - want).abs() < 1e-6, "{kl} vs {want}");
    }

    #[test]
    fn distill_factor_ramps_linearly_then_holds() {
        let h = |ramp| Hyper {
            distill_ramp: ramp,
            ..Hyper::default()
        };
        assert_eq!(distill_factor(&h(0), 0), 1.0);
        assert_eq!(distill_factor(&h(0), 7), 1.0);
        assert_eq!(distill_factor(&h(1000), 0), 0.0);
        assert_eq!(distill_factor(&h(1000), 250), 0.25);
        assert_eq!(distill_factor(&h(1000), 1000), 1.0);
        assert_eq!(distill_factor(&h(1000), 5000), 1.0);
    }

    /// The definitions of docs and comments above, written again plainly in f64 for one image.
    fn ce_ref(l: &[f64], label: usize) -> f64 {
        let lse = l.iter().map(|v| v.exp()).sum::<f64>().ln();
        lse - l[label]
    }
    fn soft_ref(l: &[f64], t: f64) -> Vec<f64> {
        let z: f64 = l.iter().map(|v| (v / t).exp()).sum();
        l.iter().map(|v| (v / t).exp() / z).collect()
    }
    fn kl_ref(s: &[f64], te: &[f64], t: f64) -> f64 {
        let (q, p) = (soft_ref(s, t), soft_ref(te, t));
        t * t * p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum::<f64>()
    }
    fn ln_ref(x: &[f64]) -> Vec<f64> {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        x.iter().map(|v| (v - mean) / (var + 1e-6).sqrt()).collect()
    }
    fn feat_ref(s: &[f64], t: &[f64]) -> f64 {
        let (s, t) = (ln_ref(s), ln_ref(t));
        let dot: f64 = s.iter().zip(&t).map(|(a, b)| a * b).sum();
        let n = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        1.0 - dot / (n(&s) * n(&t))
    }

    #[test]
    fn the_total_adds_the_distillation_of_every_shallow_exit_scaled_by_its_weight() {
        // Three exits over 3 classes, one image of label 1; the last exit is the teacher.
        let dev = Device::Cpu;
        let logits = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.5], [-0.3, 1.2, 0.4]];
        let cls = [
            [1.0, -2.0, 0.5, 3.0],
            [0.2, 0.1, -0.7, 1.1],
            [2.0, 1.0, -1.0, 0.0],
        ];
        let outs: Vec<PathOut> = logits
            .iter()
            .zip(&cls)
            .map(|(l, c)| PathOut {
                logits: Tensor::new(&[l.map(|v| v as f32)], &dev).unwrap(),
                cls: Tensor::new(&[c.map(|v| v as f32)], &dev).unwrap(),
            })
            .collect();
        let labels = Tensor::new(&[1u32], &dev).unwrap();
        let h = Hyper {
            temperature: 3.0,
            kd_weight: 0.5,
            feat_weight: 0.25,
            ..Hyper::default()
        };
        let factor = 0.8;
        let l = multi_exit(&outs, &labels, &h, factor).unwrap();
        let ce = logits.iter().map(|l| ce_ref(l, 1)).sum::<f64>() / 3.0;
        let kd = (kl_ref(&logits[0], &logits[2], 3.0) + kl_ref(&logits[1], &logits[2], 3.0)) / 2.0;
        let feat = (feat_ref(&cls[0], &cls[2]) + feat_ref(&cls[1], &cls[2])) / 2.0;
        let total = ce + 0.5 * factor * kd + 0.25 * factor * feat;
        let got = [l.ce, l.kd, l.feat, l.total.to_scalar::<f32>().unwrap()];
        for (name, g, w) in [
            ("ce", got[0], ce),
            ("kd", got[1], kd),
            ("feat", got[2], feat),
        ]
        .into_iter()
        .chain([("total", got[3], total)])
        {
            assert!(
                (f64::from(g) - w).abs() < 1e-5 * w.abs().max(1.0),
                "{name}: {g} vs {w}"
            );
        }
        // A teacher whose class token is constant normalizes to 0: cos 0 with every student,
        // 1 − cos = 1 for each of the two (the teacher is not matched against itself, where
        // the 1e-12 under the root would give it 1 too).
        let mut flat = outs;
        flat[2].cls = Tensor::new(&[[0.5f32; 4]], &dev).unwrap();
        let l = multi_exit(&flat, &labels, &h, factor).unwrap();
        assert_eq!(l.feat, 1.0);
        let outs = flat;
        // One exit: no teacher to learn from, the total is its cross-entropy.
        let l = multi_exit(&outs[2..], &labels, &h, factor).unwrap();
        let ce = ce_ref(&logits[2], 1);
        assert_eq!((l.kd, l.feat), (0.0, 0.0));
        assert!((f64::from(l.total.to_scalar::<f32>().unwrap()) - ce).abs() < 1e-6);
    }

    #[test]
    fn distillation_gradients_match_finite_differences() {
        // d/ds of both terms, teacher fixed: candle's backward against central differences.
        let s0 = [0.3f32, -1.2, 0.8, 2.0, -0.4, 0.1];
        let t = Tensor::new(&[[1.0f32, 0.5, -0.7], [0.2, -1.5, 0.9]], &Device::Cpu).unwrap();
        type Term = fn(&Tensor, &Tensor) -> Result<Tensor>;
        let terms: [(&str, Term); 2] = [
            ("kl", |s, t| soft_kl(s, t, 2.0)),
            ("feat", |s, t| feature_match(s, t)),
        ];
        for (name, f) in terms {
            let v = candle_core::Var::from_slice(&s0, (2, 3), &Device::Cpu).unwrap();
            let g = f(v.as_tensor(), &t).unwrap().backward().unwrap();
            let g = g
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for j in 0..s0.len() {
                let at = |d: f32| {
                    let mut s = s0;
                    s[j] += d;
                    let st = Tensor::from_slice(&s, (2, 3), &Device::Cpu).unwrap();
                    f64::from(f(&st, &t).unwrap().to_scalar::<f32>().unwrap())
                };
                let num = (at(1e-2) - at(-1e-2)) / 2e-2;
                let ana = f64::from(g[j]);
                assert!(
                    (num - ana).abs() < 2e-3 + 2e-2 * num.abs(),
                    "{name}[{j}]: {ana} vs {num}"
                );
            }
        }
    }
}
