//! A deliberately naive f64 forward of a folded model, written from docs/FORMAT.md alone and
//! sharing no code with the runtime's kernels: the independent reference for CPU-backend tests.
#![allow(dead_code)]
// Index loops on purpose: the reference mirrors the formulas, not idiomatic iteration.
#![allow(clippy::needless_range_loop)]

use tinv::Model;

fn linear(x: &[f64], rows: usize, w: &[f32], b: &[f32], k: usize, n: usize) -> Vec<f64> {
    let mut y = vec![0f64; rows * n];
    for r in 0..rows {
        for j in 0..n {
            let mut s = b[j] as f64;
            for i in 0..k {
                s += x[r * k + i] * w[i * n + j] as f64;
            }
            y[r * n + j] = s;
        }
    }
    y
}

fn layernorm(x: &[f64], d: usize, eps: f64) -> Vec<f64> {
    let mut y = vec![0f64; x.len()];
    for (xr, yr) in x.chunks(d).zip(y.chunks_mut(d)) {
        let m = xr.iter().sum::<f64>() / d as f64;
        let v = xr.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / d as f64;
        for (o, a) in yr.iter_mut().zip(xr) {
            *o = (a - m) / (v + eps).sqrt();
        }
    }
    y
}

#[path = "erf64.rs"]
mod erf64;
pub use erf64::erf;

/// Logits of every exit (`paths × classes`) for one raw input (CHW in [0, 1]).
pub fn forward_all_exits(model: &Model, input: &[f32]) -> Vec<Vec<f64>> {
    let c = model.config();
    let (d, n, hd, p) = (c.dim, c.tokens(), c.head_dim(), c.patch);
    let s = model.stem();
    let gw = c.image_w / p;
    let cpp = c.channels * p * p;
    let mut patches = vec![0f64; c.patches() * cpp];
    for py in 0..c.image_h / p {
        for px in 0..gw {
            for ch in 0..c.channels {
                for ky in 0..p {
                    for kx in 0..p {
                        let v = input
                            [ch * c.image_h * c.image_w + (py * p + ky) * c.image_w + px * p + kx];
                        patches[(py * gw + px) * cpp + ch * p * p + ky * p + kx] =
                            (v as f64 - c.mean[ch] as f64) / c.std[ch] as f64;
                    }
                }
            }
        }
    }
    let emb = linear(
        &patches,
        c.patches(),
        model.w(s.patch_w),
        model.w(s.patch_b),
        cpp,
        d,
    );
    let mut x = vec![0f64; n * d];
    for j in 0..d {
        x[j] = model.w(s.cls)[j] as f64;
    }
    for t in 0..c.patches() {
        for j in 0..d {
            x[(t + 1) * d + j] = emb[t * d + j] + model.w(s.pos)[t * d + j] as f64;
        }
    }
    let eps = c.ln_eps as f64;
    let mut exits = Vec::new();
    for (i, b) in model.blocks().iter().enumerate() {
        let y = layernorm(&x, d, eps);
        let qkv = linear(&y, n, model.w(b.qkv_w), model.w(b.qkv_b), d, 3 * d);
        let mut att = vec![0f64; n * d];
        for h in 0..c.heads {
            for q in 0..n {
                let mut sc: Vec<f64> = (0..n)
                    .map(|k| {
                        (0..hd)
                            .map(|e| qkv[q * 3 * d + h * hd + e] * qkv[k * 3 * d + d + h * hd + e])
                            .sum()
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = sc.iter().map(|v| (v - m).exp()).sum();
                sc.iter_mut().for_each(|v| *v = (*v - m).exp() / z);
                for e in 0..hd {
                    att[q * d + h * hd + e] = (0..n)
                        .map(|k| sc[k] * qkv[k * 3 * d + 2 * d + h * hd + e])
                        .sum();
                }
            }
        }
        let pr = linear(&att, n, model.w(b.proj_w), model.w(b.proj_b), d, d);
        x.iter_mut().zip(&pr).for_each(|(a, b)| *a += b);
        let y = layernorm(&x, d, eps);
        let mut hdn = linear(&y, n, model.w(b.fc1_w), model.w(b.fc1_b), d, c.mlp_hidden);
        for v in hdn.iter_mut() {
            *v = match c.gelu {
                tinv::model::Gelu::Erf => 0.5 * *v * (1.0 + erf(*v / 2f64.sqrt())),
                tinv::model::Gelu::Tanh => {
                    0.5 * *v
                        * (1.0
                            + ((2.0 / std::f64::consts::PI).sqrt() * (*v + 0.044715 * v.powi(3)))
                                .tanh())
                }
                other => panic!("the reference has no {other:?} GELU"),
            };
        }
        let f2 = linear(&hdn, n, model.w(b.fc2_w), model.w(b.fc2_b), c.mlp_hidden, d);
        x.iter_mut().zip(&f2).for_each(|(a, b)| *a += b);
        if let Some(k) = c.path_index(i + 1) {
            let e = model.exits()[k];
            let cls = layernorm(&x[..d], d, eps);
            exits.push(linear(&cls, 1, model.w(e.w), model.w(e.b), d, c.classes));
        }
    }
    exits
}
