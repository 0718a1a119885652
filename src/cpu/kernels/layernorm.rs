use super::{multiversion, LANES};

multiversion! {
    /// Parameter-free LayerNorm of `rows` rows of `dim` floats: `(x − mean) / sqrt(var + eps)`
    /// (population variance, two passes). γ/β are folded into the next linear layer.
    ///
    /// A row whose variance overflows f32 (deviations above about 1.8e19) comes out NaN: `1/∞`
    /// would make it all zeros, a constant the rest of the network turns into finite logits
    /// that no longer depend on the input, where NaN surfaces as `Error::Numeric`.
    pub fn layernorm_rows(x: &[f32], out: &mut [f32], dim: usize, eps: f32) {
        for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let mean = lane_sum(xr, |v| v) / dim as f32;
            let var = lane_sum(xr, |v| (v - mean) * (v - mean)) / dim as f32;
            let inv = if var.is_finite() {
                1.0 / (var + eps).sqrt()
            } else {
                f32::NAN
            };
            for (o, v) in or.iter_mut().zip(xr) {
                *o = (v - mean) * inv;
            }
        }
    }
}

/// Σ f(x) with `LANES` independent accumulators, so the loop vectorizes.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for v in tail {
        s += f(*v);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_row() {
        // x = [1, 2, 3, 4]: mean 2.5, var 1.25.
        let mut out = [0f32; 4];
        layernorm_rows(&[1.0, 2.0, 3.0, 4.0], &mut out, 4, 0.0);
        let s = 1.25f32.sqrt();
        for (o, e) in out.iter().zip([-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]) {
            assert!((o - e).abs() < 1e-6);
        }
    }

    #[test]
    fn an_overflowing_variance_gives_nan_not_zeros() {
        let mut out = [0f32; 4];
        layernorm_rows(&[3e19, -3e19, 0.0, 0.0], &mut out, 4, 1e-6);
        assert!(out.iter().all(|v| v.is_nan()), "{out:?}");
        // Just below the overflow the row normalizes: 2e18 / sqrt(2e36) = sqrt(2).
        layernorm_rows(&[1e18, -1e18, 0.0, 0.0], &mut out, 4, 1e-6);
        assert!((out[0] - 2f32.sqrt()).abs() < 1e-5, "{out:?}");
    }

    #[test]
    fn matches_f64_on_long_rows() {
        let dim = 37 + 3 * LANES;
        let x: Vec<f32> = (0..dim * 3)
            .map(|i| ((i * 7919) % 113) as f32 * 0.1 - 3.0)
            .collect();
        let mut out = vec![0f32; x.len()];
        layernorm_rows(&x, &mut out, dim, 1e-6);
        for (xr, or) in x.chunks(dim).zip(out.chunks(dim)) {
            let m = xr.iter().map(|v| *v as f64).sum::<f64>() / dim as f64;
            let v = xr.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / dim as f64;
            for (a, o) in xr.iter().zip(or) {
                assert!(((*a as f64 - m) / (v + 1e-6).sqrt() - *o as f64).abs() < 1e-5);
            }
        }
    }
}
