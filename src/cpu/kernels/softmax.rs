use super::math::exp_impl;
use super::{multiversion, LANES};

multiversion! {
    /// Softmax over each row of `cols` floats, in place (rows `stride` floats apart).
    pub fn softmax_rows(x: &mut [f32], rows: usize, cols: usize, stride: usize) {
        for r in 0..rows {
            let row = &mut x[r * stride..r * stride + cols];
            let m = row_max(row);
            // exp and the running sum in one pass over LANES-wide chunks (independent lanes, so
            // it vectorizes without reassociating), and the tail as one padded chunk rather than
            // a scalar loop: at ViT-Tiny's 197 columns the tail was a third of the work.
            let mut acc = [0f32; LANES];
            let mut chunks = row.chunks_exact_mut(LANES);
            for c in &mut chunks {
                for i in 0..LANES {
                    let e = exp_impl::<FMA>(c[i] - m);
                    c[i] = e;
                    acc[i] += e;
                }
            }
            let tail = chunks.into_remainder();
            if !tail.is_empty() {
                // Lanes past the row's end hold m (e^0, left out of the sum). Filled lane by lane
                // rather than by `copy_from_slice`, which became a call to `memcpy` per row.
                let len = tail.len();
                let mut pad: [f32; LANES] =
                    std::array::from_fn(|i| tail.get(i).copied().unwrap_or(m));
                for i in 0..LANES {
                    let e = exp_impl::<FMA>(pad[i] - m);
                    pad[i] = e;
                    acc[i] += if i < len { e } else { 0.0 };
                }
                for (t, p) in tail.iter_mut().zip(pad) {
                    *t = p;
                }
            }
            // The lanes are summed in order. Folding them in halves (as `row_max` does) would
            // shorten the chain of dependent additions from 15 to 4, but it saved only 4–10 %
            // here and it moves the sum's rounding: one test image of the default model changes
            // its depth-2 answer. The folded maximum and the `memcpy`-free tail keep every result
            // bit for bit and removed per-row overheads (AVX-512, one thread, alternated with
            // the code before: ViT-Tiny's 3 × 197 rows of 197, 63 → 51 µs; 816 rows of 17, as
            // in the Fashion-MNIST model, 42 → 23 µs).
            let inv = 1.0 / acc.iter().sum::<f32>();
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// Largest value of `row` (−∞ for an empty row; NaNs are passed over), in LANES independent
/// lanes. A comparison rather than `f32::max`, whose NaN rule costs a blend per step (as in
/// `math::clamp`). The lanes are folded in halves (lane i with lane i + 8, then i + 4, …): 4
/// dependent steps where a fold from the left takes 15, and without NaNs the maximum is the
/// same in any order (of −0 and +0 it may return either; `x − m` is then the same for every `x`
/// but −0, whose exponential is 1 either way).
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let max = |a: f32, b: f32| if b > a { b } else { a };
    let mut mx = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            mx[i] = max(mx[i], c[i]);
        }
    }
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            mx[i] = max(mx[i], mx[i + w]);
        }
        w /= 2;
    }
    let m = mx[0];
    chunks.remainder().iter().copied().fold(m, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_and_strided() {
        // Row [0, ln 3] -> [0.25, 0.75]; second row (stride 3) shifted by 100: same result.
        let mut x = [0.0, 3f32.ln(), 9.0, 100.0, 100.0 + 3f32.ln(), 9.0];
        softmax_rows(&mut x, 2, 2, 3);
        for (a, e) in x.iter().zip([0.25, 0.75, 9.0, 0.25, 0.75, 9.0]) {
            assert!((a - e).abs() < 1e-6, "{x:?}");
        }
    }

    #[test]
    fn long_row_matches_f64() {
        let n = 197;
        let mut x: Vec<f32> = (0..n).map(|i| ((i * 31) % 17) as f32 * 0.7 - 5.0).collect();
        let m = x.iter().copied().fold(f32::MIN, f32::max) as f64;
        let z: f64 = x.iter().map(|v| (*v as f64 - m).exp()).sum();
        let want: Vec<f64> = x.iter().map(|v| (*v as f64 - m).exp() / z).collect();
        softmax_rows(&mut x, 1, n, n);
        for (a, e) in x.iter().zip(want) {
            assert!((*a as f64 - e).abs() < 1e-7);
        }
    }
}
