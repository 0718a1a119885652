//! The folding math: pure functions from checkpoint tensors (PyTorch `[out, in]` orientation) to
//! the folded tensors of `docs/FORMAT.md` (`[in, out]`, norms and scales folded in).
//!
//! Why folding is exact: a pre-norm layer computes `y = W·(γ ⊙ n + β) + b` with `n` the
//! parameter-free normalized input. That equals `(W·diag(γ))·n + (b + W·β)`, so the runtime only
//! normalizes and multiplies by `W' = diag(γ)·Wᵀ` (stored `[in, out]`) with bias `b' = b + W·β`.
//! Scaling output columns (1/√head_dim on the Q columns) commutes with everything downstream of
//! a linear layer's output. Each folded value is computed in f64 and rounded to f32 once.

/// Transposes a row-major `[rows, cols]` matrix into `[cols, rows]`.
///
/// # Panics
/// If `w.len() != rows · cols` (callers check tensor shapes first; see `assemble`).
pub fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(w.len(), rows * cols, "transpose: length is not rows × cols");
    let mut t = vec![0.0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// A linear layer in the folded orientation: `weight` is `[in, out]` row-major, `bias` `[out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// `[in, out]`, row-major.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
}

/// Folds a LayerNorm's `γ`, `β` (each `[in]`) into the linear layer that follows it, and
/// multiplies output column `o` by `col_scale[o]`.
///
/// `w` is PyTorch's `[out, in]`; `b` is `[out]` (`None` = no bias, i.e. zeros). Returns
/// `W'[i][o] = γ[i]·W[o][i]·s[o]` and `b'[o] = (b[o] + Σᵢ W[o][i]·β[i])·s[o]`.
///
/// # Panics
/// Unless the lengths are `out·in`, `out`, `in`, `in`, `out` (callers check tensor shapes first).
pub fn fold_norm_linear(
    w: &[f32],
    b: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    col_scale: &[f64],
) -> Linear {
    let (n_in, n_out) = (gamma.len(), col_scale.len());
    assert!(
        w.len() == n_in * n_out && beta.len() == n_in && b.iter().all(|b| b.len() == n_out),
        "fold_norm_linear: tensor lengths disagree"
    );
    let mut weight = vec![0.0f32; n_in * n_out];
    let mut bias = vec![0.0f32; n_out];
    for o in 0..n_out {
        let row = &w[o * n_in..(o + 1) * n_in];
        let s = col_scale[o];
        let mut acc = b.map_or(0.0, |b| f64::from(b[o]));
        for i in 0..n_in {
            let wv = f64::from(row[i]);
            acc += wv * f64::from(beta[i]);
            weight[i * n_out + o] = (f64::from(gamma[i]) * wv * s) as f32;
        }
        bias[o] = (acc * s) as f32;
    }
    Linear { weight, bias }
}

/// A linear layer with nothing to fold: transposes `w` (`[out, in]`) to `[in, out]`.
///
/// # Panics
/// If `w.len()` is not a multiple of `b.len()`.
pub fn plain_linear(w: &[f32], b: &[f32]) -> Linear {
    let n_out = b.len();
    let n_in = w.len().checked_div(n_out).unwrap_or(0);
    Linear {
        weight: transpose(w, n_out, n_in),
        bias: b.to_vec(),
    }
}

/// Output-column scales of the fused QKV projection (`[Q | K | V]`, each `dim` wide): the Q
/// columns get `1/√head_dim` (the attention's score scale, moved into the weights), K and V 1.
pub fn qkv_column_scale(dim: usize, heads: usize) -> Vec<f64> {
    let hd = (dim / heads.max(1)) as f64;
    let q = 1.0 / hd.sqrt();
    (0..3 * dim)
        .map(|c| if c < dim { q } else { 1.0 })
        .collect()
}

/// The patch convolution (`[D, C, p, p]`, stride = kernel = p) as a GEMM weight `[C·p·p, D]`
/// whose row `c·p·p + ky·p + kx` multiplies pixel `(c, ky, kx)` of a patch.
///
/// The convolution weight flattened is `[D, C·p·p]` with exactly that inner index, so the GEMM
/// weight is its transpose.
///
/// # Panics
/// If `w.len() != dim · channels · patch²`.
pub fn patch_conv_to_gemm(w: &[f32], dim: usize, channels: usize, patch: usize) -> Vec<f32> {
    transpose(w, dim, channels * patch * patch)
}

/// The class token with its position embedding (`pos_embed[0, 0]`) pre-added, and the patch
/// position embeddings `pos_embed[0, 1:]` (`[patches, D]`). `pos_embed` is `[1 + patches, D]`.
///
/// # Panics
/// If `cls` is not `dim` long or `pos_embed` is shorter than `dim`.
pub fn split_pos_embed(cls: &[f32], pos_embed: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    assert!(
        cls.len() == dim && pos_embed.len() >= dim,
        "split_pos_embed: lengths disagree"
    );
    let cls_pos = cls
        .iter()
        .zip(&pos_embed[..dim])
        .map(|(c, p)| c + p)
        .collect();
    (cls_pos, pos_embed[dim..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_moves_each_element() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        let t = transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        assert_eq!(t, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
