//! The folding math on tiny cases computed by hand, plus the identities it rests on checked
//! numerically against the unfolded operations.

use tinv_fold::folding::{
    fold_norm_linear, patch_conv_to_gemm, plain_linear, qkv_column_scale, split_pos_embed,
};

#[test]
fn layer_norm_fold_by_hand() {
    // W = [[1, 2], [3, 4]] ([out, in]), b = [0.5, −1], γ = [2, 3], β = [1, −1].
    // W'[i][o] = γ[i]·W[o][i] = [[2·1, 2·3], [3·2, 3·4]] = [[2, 6], [6, 12]]
    // b'[o] = b[o] + Σᵢ W[o][i]·β[i] = [0.5 + (1 − 2), −1 + (3 − 4)] = [−0.5, −2]
    let l = fold_norm_linear(
        &[1.0, 2.0, 3.0, 4.0],
        Some(&[0.5, -1.0]),
        &[2.0, 3.0],
        &[1.0, -1.0],
        &[1.0, 1.0],
    );
    assert_eq!(l.weight, vec![2.0, 6.0, 6.0, 12.0]);
    assert_eq!(l.bias, vec![-0.5, -2.0]);
}

#[test]
fn layer_norm_fold_without_bias_uses_zeros() {
    // Same W, γ, β; no bias: b' = W·β = [−1, −1].
    let l = fold_norm_linear(
        &[1.0, 2.0, 3.0, 4.0],
        None,
        &[2.0, 3.0],
        &[1.0, -1.0],
        &[1.0, 1.0],
    );
    assert_eq!(l.bias, vec![-1.0, -1.0]);
}

#[test]
fn q_scale_by_hand() {
    // dim 4, 2 heads → head_dim 2 → Q columns × 1/√2, K and V columns × 1.
    let s = qkv_column_scale(4, 2);
    assert_eq!(s.len(), 12);
    let q = 1.0 / 2f64.sqrt();
    assert!(s[..4].iter().all(|v| (*v - q).abs() < 1e-15), "{s:?}");
    assert!(s[4..].iter().all(|v| *v == 1.0), "{s:?}");
    // dim 2, heads 1 → hd 2: a 6×2 qkv with γ = 1, β = 0 and bias 1: Q rows halve by √2.
    let w: Vec<f32> = (1..=12).map(|v| v as f32).collect();
    let l = fold_norm_linear(
        &w,
        Some(&[1.0; 6]),
        &[1.0, 1.0],
        &[0.0, 0.0],
        &qkv_column_scale(2, 1),
    );
    // W' is [in=2, out=6]: W'[i][o] = W[o][i]·s[o]; W[0] = [1, 2] (a Q row), W[2] = [5, 6] (K).
    let r = 1.0 / 2f32.sqrt();
    assert!((l.weight[0] - r).abs() < 1e-7); // W'[0][0] = 1·r
    assert!((l.weight[6] - 2.0 * r).abs() < 1e-7); // W'[1][0] = 2·r
    assert_eq!(l.weight[2], 5.0); // W'[0][2] = 5 (K, unscaled)
    assert_eq!(l.weight[8], 6.0); // W'[1][2] = 6
    assert!((l.bias[1] - r).abs() < 1e-7 && l.bias[2] == 1.0 && l.bias[5] == 1.0);
}

#[test]
fn patch_reshape_by_hand() {
    // D = 2, C = 2, p = 2; w[d][c][ky][kx] = 1000d + 100c + 10ky + kx.
    let mut w = Vec::new();
    for d in 0..2 {
        for c in 0..2 {
            for ky in 0..2 {
                for kx in 0..2 {
                    w.push((1000 * d + 100 * c + 10 * ky + kx) as f32);
                }
            }
        }
    }
    let g = patch_conv_to_gemm(&w, 2, 2, 2);
    // [C·p·p, D] = [8, 2]; row c·4 + ky·2 + kx, column d.
    assert_eq!(g.len(), 16);
    for c in 0..2 {
        for ky in 0..2 {
            for kx in 0..2 {
                for d in 0..2 {
                    let row = c * 4 + ky * 2 + kx;
                    assert_eq!(g[row * 2 + d], (1000 * d + 100 * c + 10 * ky + kx) as f32);
                }
            }
        }
    }
    assert_eq!(g[6 * 2 + 1], 1110.0); // row 6 = (c 1, ky 1, kx 0), column 1
}

#[test]
fn split_pos_embed_by_hand() {
    // D = 2, 2 patches: pos_embed = [[10, 20], [1, 2], [3, 4]], cls = [0.5, −0.5].
    let (cls, pos) = split_pos_embed(&[0.5, -0.5], &[10.0, 20.0, 1.0, 2.0, 3.0, 4.0], 2);
    assert_eq!(cls, vec![10.5, 19.5]);
    assert_eq!(pos, vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn plain_linear_transposes() {
    // W = [[1, 2, 3], [4, 5, 6]] ([out 2, in 3]) → [in 3, out 2].
    let l = plain_linear(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[7.0, 8.0]);
    assert_eq!(l.weight, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(l.bias, vec![7.0, 8.0]);
}

/// Numeric identity: linear(LayerNorm_γβ(x)) == folded(parameter-free LayerNorm(x)), with a
/// column scale, on random values (f64 ground truth, f32 folded weights).
#[test]
fn folded_norm_linear_equals_norm_then_linear() {
    let mut rng = tinv::synth::Rng::new(42);
    let (n_in, n_out) = (13, 9);
    let w = rng.vec(n_in * n_out, 0.5);
    let b = rng.vec(n_out, 0.3);
    let g: Vec<f32> = (0..n_in).map(|_| 1.0 + rng.sym(0.1)).collect();
    let be = rng.vec(n_in, 0.1);
    let scale: Vec<f64> = (0..n_out).map(|o| if o < 3 { 0.37 } else { 1.0 }).collect();
    let l = fold_norm_linear(&w, Some(&b), &g, &be, &scale);
    for _ in 0..5 {
        let x: Vec<f64> = (0..n_in).map(|_| f64::from(rng.sym(2.0))).collect();
        let m = x.iter().sum::<f64>() / n_in as f64;
        let v = x.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n_in as f64;
        let n: Vec<f64> = x.iter().map(|a| (a - m) / (v + 1e-6).sqrt()).collect();
        for o in 0..n_out {
            let unfolded: f64 = (0..n_in)
                .map(|i| f64::from(w[o * n_in + i]) * (n[i] * f64::from(g[i]) + f64::from(be[i])))
                .sum::<f64>()
                + f64::from(b[o]);
            let folded: f64 = (0..n_in)
                .map(|i| f64::from(l.weight[i * n_out + o]) * n[i])
                .sum::<f64>()
                + f64::from(l.bias[o]);
            let want = unfolded * scale[o];
            assert!((folded - want).abs() < 1e-5, "o={o}: {folded} vs {want}");
        }
    }
}

/// Numeric identity: the patch convolution at one patch == the GEMM row product.
#[test]
fn patch_gemm_equals_convolution() {
    let mut rng = tinv::synth::Rng::new(9);
    let (d, c, p, h, wd) = (5, 3, 2, 4, 6);
    let w = rng.vec(d * c * p * p, 1.0);
    let img = rng.vec(c * h * wd, 1.0);
    let g = patch_conv_to_gemm(&w, d, c, p);
    let (py, px) = (1, 2); // patch at rows 2..4, cols 4..6
    for o in 0..d {
        let mut conv = 0.0f64;
        let mut gemm = 0.0f64;
        for ch in 0..c {
            for ky in 0..p {
                for kx in 0..p {
                    let pix = f64::from(img[ch * h * wd + (py * p + ky) * wd + px * p + kx]);
                    conv += f64::from(w[((o * c + ch) * p + ky) * p + kx]) * pix;
                    gemm += f64::from(g[(ch * p * p + ky * p + kx) * d + o]) * pix;
                }
            }
        }
        assert!((conv - gemm).abs() < 1e-12);
    }
}
