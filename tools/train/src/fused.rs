//! Fused CPU kernels, with their backward passes, for the elementwise-heavy pieces of the ViT:
//! parameter-free LayerNorm, exact-erf GELU, softmax over the last dimension, and the per-column
//! affine maps (bias add, LayerNorm's γ/β). Composed from candle's primitives each was several
//! passes forward and more backward — every broadcast's gradient a strided reduction — which took
//! most of a training step on a 2-core host. The forwards are the runtime's own kernels
//! (`tinv::cpu::kernels`), so trainer and runtime compute the same function by construction.
//! f32 only.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
};
use tinv::cpu::kernels;

/// The f32 slice a contiguous layout covers.
fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("fused ops take f32")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("fused ops take contiguous tensors"),
    }
}

fn last_dim(l: &Layout) -> usize {
    l.shape().dims().last().copied().unwrap_or(1).max(1)
}

/// `f(input, result, row length)` on a zeroed result of the input's shape: the body of the
/// row-wise forward kernels here.
fn map1(
    s: &CpuStorage,
    l: &Layout,
    f: impl FnOnce(&[f32], &mut [f32], usize),
) -> Result<(CpuStorage, Shape)> {
    let x = slice(s, l)?;
    let mut y = vec![0f32; x.len()];
    f(x, &mut y, last_dim(l));
    Ok((CpuStorage::F32(y), l.shape().clone()))
}

/// `f(row of a, row of b, row of the result)` over the last-dimension rows of two tensors of
/// one shape: the body of every backward kernel here.
fn rows2(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    f: impl Fn(&[f32], &[f32], &mut [f32]),
) -> Result<(CpuStorage, Shape)> {
    let (a, b, d) = (slice(s1, l1)?, slice(s2, l2)?, last_dim(l1));
    if a.len() != b.len() {
        bail!("fused backward: {} vs {} elements", a.len(), b.len());
    }
    let mut out = vec![0f32; a.len()];
    let rows = a.chunks_exact(d).zip(b.chunks_exact(d));
    for ((ar, br), o) in rows.zip(out.chunks_exact_mut(d)) {
        f(ar, br, o);
    }
    Ok((CpuStorage::F32(out), l1.shape().clone()))
}

/// The row-wise ops over the last dimension. As `CustomOp1`s they are the forward (the runtime's
/// kernels); wrapped in [`RowGrad`] their backward.
#[derive(Clone, Copy)]
enum Row {
    /// Parameter-free LayerNorm `(x − mean) / sqrt(var + ε)`.
    LayerNorm(f32),
    /// Exact-erf GELU `x·Φ(x)`.
    Gelu,
    /// Softmax.
    Softmax,
}

impl CustomOp1 for Row {
    fn name(&self) -> &'static str {
        match self {
            Row::LayerNorm(_) => "tinv-layer-norm",
            Row::Gelu => "tinv-gelu-erf",
            Row::Softmax => "tinv-softmax",
        }
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        map1(s, l, |x, y, d| match *self {
            Row::LayerNorm(eps) => kernels::layernorm_rows(x, y, d, eps),
            Row::Gelu => {
                y.copy_from_slice(x);
                kernels::gelu_erf(y);
            }
            Row::Softmax => {
                y.copy_from_slice(x);
                kernels::softmax_rows(y, x.len() / d, d, d);
            }
        })
    }
    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        // Softmax's gradient is a function of its output, the others' of their input.
        let saved = if matches!(self, Row::Softmax) { y } else { x };
        Ok(Some(
            saved
                .contiguous()?
                .apply_op2_no_bwd(&dy.contiguous()?, &RowGrad(*self))?,
        ))
    }
}

/// The backward kernel of a [`Row`] op on (its saved tensor, upstream gradient `g`), row by row:
/// - LayerNorm, on x: `dx = (g − mean(g) − x̂·mean(g·x̂)) / σ`;
/// - GELU, on x: `dx = g·(Φ(x) + x·φ(x))`, with the runtime's erf;
/// - softmax, on y: `dx = y·(g − Σ y·g)`.
struct RowGrad(Row);

const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// Mean and 1/σ of one row, summed in order (the runtime's LayerNorm sums in vector lanes, so the
/// two differ in the last bits; the trainer's gradients were computed this way for the shipped
/// default model).
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl RowGrad {
    fn row(&self, sr: &[f32], gr: &[f32], out: &mut [f32]) {
        match self.0 {
            Row::LayerNorm(eps) => {
                let (mean, rstd) = moments(sr, eps);
                let (mut g_mean, mut gx_mean) = (0f32, 0f32);
                for (v, g) in sr.iter().zip(gr) {
                    g_mean += g;
                    gx_mean += g * (v - mean) * rstd;
                }
                g_mean /= sr.len() as f32;
                gx_mean /= sr.len() as f32;
                for ((o, v), g) in out.iter_mut().zip(sr).zip(gr) {
                    *o = (g - g_mean - (v - mean) * rstd * gx_mean) * rstd;
                }
            }
            Row::Gelu => {
                for ((o, &v), g) in out.iter_mut().zip(sr).zip(gr) {
                    let cdf = 0.5 * (1.0 + kernels::erf(v * std::f32::consts::FRAC_1_SQRT_2));
                    *o = g * (cdf + v * FRAC_1_SQRT_2PI * (-0.5 * v * v).exp());
                }
            }
            Row::Softmax => {
                let dot: f32 = sr.iter().zip(gr).map(|(a, b)| a * b).sum();
                for ((o, a), g) in out.iter_mut().zip(sr).zip(gr) {
                    *o = a * (g - dot);
                }
            }
        }
    }
}

impl CustomOp2 for RowGrad {
    fn name(&self) -> &'static str {
        match self.0 {
            Row::LayerNorm(_) => "tinv-layer-norm-grad",
            Row::Gelu => "tinv-gelu-erf-grad",
            Row::Softmax => "tinv-softmax-grad",
        }
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        rows2((s1, l1), (s2, l2), |sr, gr, out| self.row(sr, gr, out))
    }
}

/// Parameter-free LayerNorm over the last dimension: `(x − mean) / sqrt(var + ε)`.
pub fn layer_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Row::LayerNorm(eps as f32))
}

/// Exact-erf GELU: `x·Φ(x)`.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Row::Gelu)
}

/// Softmax over the last dimension.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Row::Softmax)
}

/// Column sums of a `[rows, n]` matrix (the gradient of a broadcast over rows).
struct ColSum;

impl CustomOp1 for ColSum {
    fn name(&self) -> &'static str {
        "tinv-column-sum"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, n) = (slice(s, l)?, last_dim(l));
        let mut sum = vec![0f32; n];
        for row in x.chunks_exact(n) {
            for (a, v) in sum.iter_mut().zip(row) {
                *a += v;
            }
        }
        Ok((CpuStorage::F32(sum), Shape::from(n)))
    }
}

fn col_sum(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&ColSum)
}

/// `x·γ + β` per column of the last dimension; γ = 1 when `None` (a bias add).
fn affine_fwd(
    (s, l): (&CpuStorage, &Layout),
    g: Option<&[f32]>,
    b: &[f32],
) -> Result<(CpuStorage, Shape)> {
    let n = last_dim(l);
    if b.len() != n || g.is_some_and(|g| g.len() != n) {
        bail!("affine: {n} columns, β of {}", b.len());
    }
    map1(s, l, |x, y, n| {
        for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
            match g {
                Some(g) => {
                    for (((o, v), gv), bv) in yr.iter_mut().zip(xr).zip(g).zip(b) {
                        *o = v * gv + bv;
                    }
                }
                None => {
                    for ((o, v), bv) in yr.iter_mut().zip(xr).zip(b) {
                        *o = v + bv;
                    }
                }
            }
        }
    })
}

/// `y = x·γ + β` per column of the last dimension (LayerNorm's affine).
struct Affine;

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "tinv-affine"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        affine_fwd((s1, l1), Some(slice(s2, l2)?), slice(s3, l3)?)
    }
    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = g.elem_count();
        let dy2 = dy.contiguous()?.reshape(((), n))?;
        let dx = dy.broadcast_mul(g)?;
        let dg = col_sum(&(&dy2 * x.contiguous()?.reshape(((), n))?)?)?;
        Ok((Some(dx), Some(dg), Some(col_sum(&dy2)?)))
    }
}

/// `x·γ + β` over the last dimension (γ, β of its length).
pub fn affine(x: &Tensor, g: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&g.contiguous()?, &b.contiguous()?, Affine)
}

/// `x + β` over the last dimension (a linear layer's bias).
pub fn bias_add(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&b.contiguous()?, BiasAdd)
}

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "tinv-bias-add"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        affine_fwd((s1, l1), None, slice(s2, l2)?)
    }
    fn bwd(
        &self,
        _x: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let db = col_sum(&dy.contiguous()?.reshape(((), b.elem_count()))?)?;
        Ok((Some(dy.clone()), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    /// Forward values and input gradients (for a fixed random upstream gradient) of a fused op
    /// and of the same function composed from candle's primitives.
    fn compare(fused: fn(&Tensor) -> Result<Tensor>, composed: fn(&Tensor) -> Result<Tensor>) {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, (3, 5, 7), &dev).unwrap())).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 5, 7), &dev).unwrap();
        let run = |f: fn(&Tensor) -> Result<Tensor>| {
            let y = f(x.as_tensor()).unwrap();
            let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let dx = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
            (
                y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                dx.to_vec1::<f32>().unwrap(),
            )
        };
        let ((y1, g1), (y2, g2)) = (run(fused), run(composed));
        let worst = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max)
        };
        assert!(
            worst(&y1, &y2) < 1e-5,
            "forward differs by {}",
            worst(&y1, &y2)
        );
        assert!(
            worst(&g1, &g2) < 1e-4,
            "gradient differs by {}",
            worst(&g1, &g2)
        );
    }

    #[test]
    fn layer_norm_matches_the_composed_form() {
        compare(
            |x| layer_norm(x, 1e-6),
            |x| {
                let mean = (x.sum_keepdim(D::Minus1)? / 7.0)?;
                let xc = x.broadcast_sub(&mean)?;
                let var = (xc.sqr()?.sum_keepdim(D::Minus1)? / 7.0)?;
                xc.broadcast_div(&(var + 1e-6)?.sqrt()?)
            },
        );
    }

    /// LayerNorm's gradient on the rows where its moments are delicate, against the composed
    /// form: rows far from 0 (x = 1000 + N(0, 1): the variance as E[x²] − mean² would cancel
    /// away) and rows whose variance is about ε (x = N(0, (10⁻³)²): `var − ε` in place of
    /// `var + ε` would divide by about 0).
    #[test]
    fn layer_norm_gradient_on_offset_and_near_constant_rows() {
        let dev = Device::Cpu;
        for (offset, scale, tol) in [(1000f32, 1f32, 2e-2f32), (0.0, 1e-3, 5e-2)] {
            let x0 = (Tensor::randn(0f32, scale, (4, 7), &dev).unwrap() + offset as f64).unwrap();
            let x = Var::from_tensor(&x0).unwrap();
            let w = Tensor::randn(0f32, 1.0, (4, 7), &dev).unwrap();
            let grad = |y: Tensor| {
                let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let dx = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
                dx.to_vec1::<f32>().unwrap()
            };
            let ours = grad(layer_norm(x.as_tensor(), 1e-6).unwrap());
            let theirs = grad({
                let x = x.as_tensor();
                let mean = (x.sum_keepdim(D::Minus1).unwrap() / 7.0).unwrap();
                let xc = x.broadcast_sub(&mean).unwrap();
                let var = (xc.sqr().unwrap().sum_keepdim(D::Minus1).unwrap() / 7.0).unwrap();
                xc.broadcast_div(&(var + 1e-6).unwrap().sqrt().unwrap())
                    .unwrap()
            });
            let big = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (a, b) in ours.iter().zip(&theirs) {
                assert!(
                    (a - b).abs() <= tol * big,
                    "offset {offset}, scale {scale}: {a} vs {b}"
                );
            }
        }
    }

    /// γ and β must each have one value per column: either one wrong is refused.
    #[test]
    fn affine_refuses_a_gamma_or_beta_of_another_length() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
        let (g3, b3) = (
            Tensor::ones(3, candle_core::DType::F32, &dev).unwrap(),
            Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap(),
        );
        let (g2, b2) = (
            Tensor::ones(2, candle_core::DType::F32, &dev).unwrap(),
            Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap(),
        );
        assert!(affine(&x, &g3, &b3).is_ok());
        assert!(affine(&x, &g2, &b3).is_err());
        assert!(affine(&x, &g3, &b2).is_err());
        assert!(bias_add(&x, &b2).is_err());
    }

    #[test]
    fn gelu_matches_candle() {
        compare(gelu_erf, |x| x.gelu_erf());
    }

    #[test]
    fn affine_and_bias_add_match_broadcasts() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 5, 7), &dev).unwrap()).unwrap();
        let g = Var::from_tensor(&Tensor::randn(1f32, 0.5, 7, &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.5, 7, &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 5, 7), &dev).unwrap();
        let grads = |y: Tensor, with_g: bool| {
            let gs = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let mut v = vec![y];
            let mut vars = vec![&x, &b];
            if with_g {
                vars.push(&g);
            }
            for var in vars {
                v.push(gs.get(var.as_tensor()).unwrap().clone());
            }
            v.iter()
                .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect::<Vec<_>>()
        };
        let (xt, gt, bt) = (x.as_tensor(), g.as_tensor(), b.as_tensor());
        let pairs = [
            (
                grads(affine(xt, gt, bt).unwrap(), true),
                grads(
                    xt.broadcast_mul(gt).unwrap().broadcast_add(bt).unwrap(),
                    true,
                ),
            ),
            (
                grads(bias_add(xt, bt).unwrap(), false),
                grads(xt.broadcast_add(bt).unwrap(), false),
            ),
        ];
        for (ours, theirs) in pairs {
            for (a, c) in ours.iter().zip(&theirs) {
                let worst = a
                    .iter()
                    .zip(c)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 1e-5, "differs by {worst}");
            }
        }
    }

    #[test]
    fn softmax_matches_candle() {
        compare(softmax, |x| candle_nn::ops::softmax(x, D::Minus1));
    }
}
