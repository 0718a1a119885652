//! The UNFOLDED reference forward: timm's `VisionTransformer` written out literally in f64
//! (LayerNorm with γ/β, a separate 1/√hd score scale, class token concatenated before the
//! position embedding, the exit norm applied to the class token). Reads checkpoint tensors only.

use super::{Spec, Tensors};

/// erf to ~1e-12 absolute: Taylor series for |x| < 4 (its cancellation costs ~1e-12 there),
/// asymptotic erfc series beyond (erfc(4) ≈ 1.5e-8, so its truncation error is far below f32).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let v = if z < 4.0 {
        let (mut term, mut sum, mut n) = (z, z, 0.0f64);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -z * z / n;
            sum += term / (2.0 * n + 1.0);
            if n > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let z2 = z * z;
        let series = 1.0 - 1.0 / (2.0 * z2) + 3.0 / (4.0 * z2 * z2) - 15.0 / (8.0 * z2 * z2 * z2);
        1.0 - (-z2).exp() / (z * std::f64::consts::PI.sqrt()) * series
    };
    v.copysign(x)
}

pub fn gelu(x: f64, tanh: bool) -> f64 {
    if tanh {
        let k = (2.0 / std::f64::consts::PI).sqrt();
        0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
    } else {
        0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
    }
}

fn get<'a>(t: &'a Tensors, name: &str) -> &'a [f32] {
    &t.get(name)
        .unwrap_or_else(|| panic!("reference needs {name}"))
        .1
}

fn layer_norm(x: &[f64], g: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    x.iter()
        .enumerate()
        .map(|(i, v)| (v - mean) * inv * f64::from(g[i]) + f64::from(b[i]))
        .collect()
}

/// PyTorch `nn.Linear`: `y = x·Wᵀ + b`, W `[out, in]`.
fn torch_linear(x: &[f64], w: &[f32], b: Option<&[f32]>, n_out: usize) -> Vec<f64> {
    let n_in = x.len();
    (0..n_out)
        .map(|o| {
            let row = &w[o * n_in..(o + 1) * n_in];
            let s: f64 = row.iter().zip(x).map(|(w, x)| f64::from(*w) * x).sum();
            s + b.map_or(0.0, |b| f64::from(b[o]))
        })
        .collect()
}

/// timm's forward on raw pixels `x` (CHW in [0, 1]); returns the logits of the exit at `depth`
/// (`depth == blocks` uses `norm`/`head`, others `exits.{depth}.*`).
pub fn reference_forward(t: &Tensors, s: &Spec, x: &[f32], depth: usize) -> Vec<f64> {
    let (c, p, d, hw) = (s.channels, s.patch, s.dim, s.image_h * s.image_w);
    let xn: Vec<f64> = (0..x.len())
        .map(|i| (f64::from(x[i]) - s.mean[i / hw]) / s.std[i / hw])
        .collect();
    let pw = get(t, "patch_embed.proj.weight");
    let pb = get(t, "patch_embed.proj.bias");
    let pos = get(t, "pos_embed");
    let cls = get(t, "cls_token");
    let (gh, gw) = (s.image_h / p, s.image_w / p);
    // Tokens: [cls, patch (0,0), patch (0,1), …], then + pos_embed.
    let mut tok: Vec<Vec<f64>> = vec![cls.iter().map(|v| f64::from(*v)).collect()];
    for py in 0..gh {
        for px in 0..gw {
            let mut e: Vec<f64> = pb.iter().map(|v| f64::from(*v)).collect();
            for (o, eo) in e.iter_mut().enumerate() {
                for ch in 0..c {
                    for ky in 0..p {
                        for kx in 0..p {
                            let wv = pw[((o * c + ch) * p + ky) * p + kx];
                            let xv = xn[ch * hw + (py * p + ky) * s.image_w + px * p + kx];
                            *eo += f64::from(wv) * xv;
                        }
                    }
                }
            }
            tok.push(e);
        }
    }
    for (n, tv) in tok.iter_mut().enumerate() {
        for (j, v) in tv.iter_mut().enumerate() {
            *v += f64::from(pos[n * d + j]);
        }
    }
    let (heads, hd) = (s.heads, s.dim / s.heads);
    let scale = (hd as f64).powf(-0.5);
    for i in 0..depth {
        let g = |n: &str| get(t, &format!("blocks.{i}.{n}"));
        let qkv_b = t
            .get(&format!("blocks.{i}.attn.qkv.bias"))
            .map(|v| v.1.as_slice());
        let qkv: Vec<Vec<f64>> = tok
            .iter()
            .map(|x| {
                let y = layer_norm(x, g("norm1.weight"), g("norm1.bias"), s.eps);
                torch_linear(&y, g("attn.qkv.weight"), qkv_b, 3 * d)
            })
            .collect();
        let nt = tok.len();
        let mut attn = vec![vec![0.0f64; d]; nt];
        for h in 0..heads {
            for (qi, out) in attn.iter_mut().enumerate() {
                let q = &qkv[qi][h * hd..(h + 1) * hd];
                let scores: Vec<f64> = (0..nt)
                    .map(|kj| {
                        let k = &qkv[kj][d + h * hd..d + (h + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() * scale
                    })
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (kj, ev) in e.iter().enumerate() {
                    let v = &qkv[kj][2 * d + h * hd..2 * d + (h + 1) * hd];
                    for (j, vv) in v.iter().enumerate() {
                        out[h * hd + j] += ev / z * vv;
                    }
                }
            }
        }
        for (x, a) in tok.iter_mut().zip(&attn) {
            let y = torch_linear(a, g("attn.proj.weight"), Some(g("attn.proj.bias")), d);
            x.iter_mut().zip(&y).for_each(|(x, y)| *x += y);
        }
        for x in tok.iter_mut() {
            let y = layer_norm(x, g("norm2.weight"), g("norm2.bias"), s.eps);
            let hdn: Vec<f64> =
                torch_linear(&y, g("mlp.fc1.weight"), Some(g("mlp.fc1.bias")), s.mlp)
                    .into_iter()
                    .map(|v| gelu(v, s.tanh_gelu))
                    .collect();
            let y = torch_linear(&hdn, g("mlp.fc2.weight"), Some(g("mlp.fc2.bias")), d);
            x.iter_mut().zip(&y).for_each(|(x, y)| *x += y);
        }
    }
    let prefix = if depth == s.blocks {
        String::new()
    } else {
        format!("exits.{depth}.")
    };
    let g = |n: &str| get(t, &format!("{prefix}{n}"));
    let y = layer_norm(&tok[0], g("norm.weight"), g("norm.bias"), s.eps);
    torch_linear(&y, g("head.weight"), Some(g("head.bias")), s.classes)
}
