//! Level-1 controller features (`tinv.features.v1`): cheap statistics of the raw input, computed
//! on the host before any path runs. `docs/FORMAT.md` defines them; the trainer calls this same
//! function so training and inference see identical numbers.

/// Identifier of the feature set stored in `ctrl.features`.
pub const FEATURES_V1: &str = "tinv.features.v1";

/// Thumbnail grid side.
const GRID: usize = 4;

/// Number of features for `channels` input channels.
pub fn feature_len(channels: usize) -> usize {
    // Saturating: an absurd channel count gives a length no slice has, not a wrapped one.
    channels.saturating_mul(GRID * GRID).saturating_add(4)
}

/// FLOPs charged for computing the features of one `c×h×w` input.
pub fn feature_flops(c: usize, h: usize, w: usize) -> u64 {
    6u64.saturating_mul(c.saturating_mul(h).saturating_mul(w) as u64)
}

/// Computes the features of one raw input `x` (CHW, values in [0, 1]) into `out`
/// (`feature_len(c)` floats). Allocation-free. Returns `false` (and leaves `out` untouched) if the
/// slice lengths do not match the dimensions.
pub fn features_v1(x: &[f32], c: usize, h: usize, w: usize, out: &mut [f32]) -> bool {
    let n = c.checked_mul(h).and_then(|v| v.checked_mul(w));
    if n != Some(x.len()) || out.len() != feature_len(c) || h == 0 || w == 0 {
        return false;
    }
    let (mut sum, mut sum_sq, mut dx, mut dy) = (0f64, 0f64, 0f64, 0f64);
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for gy in 0..GRID {
            let (y0, y1) = (gy * h / GRID, (gy + 1) * h / GRID);
            for gx in 0..GRID {
                let (x0, x1) = (gx * w / GRID, (gx + 1) * w / GRID);
                let mut s = 0f64;
                for row in plane[y0 * w..y1 * w].chunks_exact(w) {
                    s += row[x0..x1].iter().map(|&v| f64::from(v)).sum::<f64>();
                }
                let n = (y1 - y0) * (x1 - x0);
                out[ch * GRID * GRID + gy * GRID + gx] =
                    if n == 0 { 0.0 } else { (s / n as f64) as f32 };
            }
        }
        for (yi, row) in plane.chunks_exact(w).enumerate() {
            for (xi, &v) in row.iter().enumerate() {
                let v = f64::from(v);
                sum += v;
                sum_sq += v * v;
                if xi + 1 < w {
                    dx += (f64::from(row[xi + 1]) - v).abs();
                }
                if yi + 1 < h {
                    dy += (f64::from(plane[(yi + 1) * w + xi]) - v).abs();
                }
            }
        }
    }
    let n = (c * h * w) as f64;
    let mean = sum / n;
    let var = (sum_sq / n - mean * mean).max(0.0);
    let pairs_x = (c * h * (w - 1)) as f64;
    let pairs_y = (c * (h - 1) * w) as f64;
    let base = GRID * GRID * c;
    out[base] = mean as f32;
    out[base + 1] = var.sqrt() as f32;
    out[base + 2] = if pairs_x > 0.0 {
        (dx / pairs_x) as f32
    } else {
        0.0
    };
    out[base + 3] = if pairs_y > 0.0 {
        (dy / pairs_y) as f32
    } else {
        0.0
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_8x8() {
        // Left half 1, right half 0: thumbnail columns 0,1 are 1 and 2,3 are 0.
        let (h, w) = (8, 8);
        let x: Vec<f32> = (0..h * w)
            .map(|i| if i % w < 4 { 1.0 } else { 0.0 })
            .collect();
        let mut f = vec![0.0; feature_len(1)];
        assert!(features_v1(&x, 1, h, w, &mut f));
        for gy in 0..4 {
            assert_eq!(&f[gy * 4..gy * 4 + 4], &[1.0, 1.0, 0.0, 0.0]);
        }
        assert!((f[16] - 0.5).abs() < 1e-7); // mean
        assert!((f[17] - 0.5).abs() < 1e-7); // std of a 50/50 0-1 image
                                             // One edge per row among 7 horizontal pairs; no vertical change.
        assert!((f[18] - 1.0 / 7.0).abs() < 1e-7);
        assert_eq!(f[19], 0.0);
    }

    /// The features as docs/FORMAT.md defines them, in f64, one pixel at a time: thumbnail
    /// cells by their floor bounds, the standard deviation in two passes.
    fn reference(x: &[f32], c: usize, h: usize, w: usize) -> Vec<f64> {
        let at = |ch: usize, y: usize, xx: usize| f64::from(x[(ch * h + y) * w + xx]);
        let mut f = Vec::new();
        for ch in 0..c {
            for gy in 0..4 {
                for gx in 0..4 {
                    let mut cell = Vec::new();
                    for y in gy * h / 4..(gy + 1) * h / 4 {
                        for xx in gx * w / 4..(gx + 1) * w / 4 {
                            cell.push(at(ch, y, xx));
                        }
                    }
                    let n = cell.len() as f64;
                    f.push(if cell.is_empty() {
                        0.0
                    } else {
                        cell.iter().sum::<f64>() / n
                    });
                }
            }
        }
        let all: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let var = all.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let (mut dx, mut nx, mut dy, mut ny) = (0.0, 0.0, 0.0, 0.0);
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    if xx + 1 < w {
                        dx += (at(ch, y, xx + 1) - at(ch, y, xx)).abs();
                        nx += 1.0;
                    }
                    if y + 1 < h {
                        dy += (at(ch, y + 1, xx) - at(ch, y, xx)).abs();
                        ny += 1.0;
                    }
                }
            }
        }
        let per = |d: f64, n: f64| if n > 0.0 { d / n } else { 0.0 };
        f.extend([mean, var.sqrt(), per(dx, nx), per(dy, ny)]);
        f
    }

    #[test]
    fn match_the_documented_definition_on_uneven_and_tiny_images() {
        let mut r = crate::synth::Rng::new(3);
        // Sides that 4 does not divide, several channels, cells with no pixel, no pairs at all.
        for (c, h, w) in [(3, 7, 10), (2, 16, 9), (1, 3, 5), (2, 1, 1), (1, 1, 6)] {
            let x: Vec<f32> = (0..c * h * w).map(|_| r.uniform()).collect();
            let mut f = vec![f32::NAN; feature_len(c)];
            assert!(features_v1(&x, c, h, w, &mut f));
            let want = reference(&x, c, h, w);
            assert_eq!(f.len(), want.len());
            for (i, (a, b)) in f.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-6,
                    "{c}x{h}x{w} feature {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn rejects_wrong_lengths() {
        let mut f = vec![0.0; feature_len(1)];
        assert!(!features_v1(&[0.0; 10], 1, 4, 4, &mut f));
        assert!(!features_v1(&[0.0; 16], 1, 4, 4, &mut f[..3]));
        // Dimensions whose products overflow: false, not a wrapped length that matches.
        let mut four = [0.0; 4];
        assert!(!features_v1(&[], 1 << 63, 2, 1, &mut four));
        assert!(!features_v1(&[], usize::MAX, usize::MAX, 2, &mut four));
        // No rows or no columns: no pixel to average, so false with `out` untouched.
        let mut f = vec![7.0; feature_len(2)];
        assert!(!features_v1(&[], 2, 0, 4, &mut f));
        assert!(!features_v1(&[], 2, 4, 0, &mut f));
        assert!(f.iter().all(|&v| v == 7.0));
        assert_eq!(feature_len(usize::MAX), usize::MAX);
        assert_eq!(feature_flops(usize::MAX, 2, 1), u64::MAX);
        assert_eq!(feature_flops(1, 28, 28), 6 * 784);
    }
}
