//! The folded forward of docs/FORMAT.md in f64, independent of the runtime's kernels.

use super::reference::gelu;

/// The folded forward of docs/FORMAT.md in f64, reading the `.tinv` bytes through the format
/// parser only (no runtime kernels): parameter-free LayerNorm, `Y = X·W + b` with `[in, out]`
/// weights, scores without a scale (1/√hd is in Q). Separates "the file is right" from "the
/// runtime's kernels are right" when a comparison fails.
pub fn folded_forward(file: &[u8], x: &[f32], depth: usize) -> Vec<f64> {
    let index = tinv::format::parse(file).expect("valid .tinv");
    let cfg = tinv::Config::from_meta(&index.meta).expect("valid config");
    let w = |name: &str| -> Vec<f64> {
        let t = index
            .tensor(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let raw = &file[t.offset..t.offset + t.nbytes];
        match t.dtype {
            tinv::format::DType::F32 => raw
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            tinv::format::DType::F16 => raw
                .chunks_exact(2)
                .map(|b| f64::from(half::f16::from_le_bytes([b[0], b[1]]).to_f32()))
                .collect(),
            other => panic!("{name}: dtype {other:?} not read by this test"),
        }
    };
    let lin = |x: &[f64], wt: &[f64], b: &[f64]| -> Vec<f64> {
        let n_out = b.len();
        let mut y = b.to_vec();
        for (i, xi) in x.iter().enumerate() {
            for o in 0..n_out {
                y[o] += xi * wt[i * n_out + o];
            }
        }
        y
    };
    let ln = |x: &[f64]| -> Vec<f64> {
        let n = x.len() as f64;
        let m = x.iter().sum::<f64>() / n;
        let v = x.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n;
        let inv = 1.0 / (v + f64::from(cfg.ln_eps)).sqrt();
        x.iter().map(|a| (a - m) * inv).collect()
    };
    let (c, p, d, hw) = (cfg.channels, cfg.patch, cfg.dim, cfg.image_h * cfg.image_w);
    let xn: Vec<f64> = (0..x.len())
        .map(|i| (f64::from(x[i]) - f64::from(cfg.mean[i / hw])) / f64::from(cfg.std[i / hw]))
        .collect();
    let (pw, pb, pos) = (w("stem.patch.weight"), w("stem.patch.bias"), w("stem.pos"));
    let mut tok = vec![w("stem.cls")];
    let gw = cfg.image_w / p;
    for n in 0..cfg.patches() {
        let (py, px) = (n / gw, n % gw);
        let mut col = Vec::with_capacity(c * p * p);
        for ch in 0..c {
            for ky in 0..p {
                for kx in 0..p {
                    col.push(xn[ch * hw + (py * p + ky) * cfg.image_w + px * p + kx]);
                }
            }
        }
        let mut e = lin(&col, &pw, &pb);
        e.iter_mut()
            .zip(&pos[n * d..(n + 1) * d])
            .for_each(|(a, b)| *a += b);
        tok.push(e);
    }
    let hd = cfg.head_dim();
    for i in 0..depth {
        let g = |s: &str| w(&format!("blk.{i}.{s}"));
        let (qw, qb) = (g("qkv.weight"), g("qkv.bias"));
        let qkv: Vec<Vec<f64>> = tok.iter().map(|t| lin(&ln(t), &qw, &qb)).collect();
        let nt = tok.len();
        let mut attn = vec![vec![0.0; d]; nt];
        for h in 0..cfg.heads {
            for (qi, out) in attn.iter_mut().enumerate() {
                let s: Vec<f64> = (0..nt)
                    .map(|kj| {
                        (0..hd)
                            .map(|j| qkv[qi][h * hd + j] * qkv[kj][d + h * hd + j])
                            .sum()
                    })
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (kj, ev) in e.iter().enumerate() {
                    for j in 0..hd {
                        out[h * hd + j] += ev / z * qkv[kj][2 * d + h * hd + j];
                    }
                }
            }
        }
        let (prw, prb) = (g("proj.weight"), g("proj.bias"));
        let (f1w, f1b, f2w, f2b) = (
            g("fc1.weight"),
            g("fc1.bias"),
            g("fc2.weight"),
            g("fc2.bias"),
        );
        let tanh = cfg.gelu == tinv::model::Gelu::Tanh;
        for (t, a) in tok.iter_mut().zip(&attn) {
            lin(a, &prw, &prb)
                .iter()
                .zip(t.iter_mut())
                .for_each(|(y, t)| *t += y);
            let hdn: Vec<f64> = lin(&ln(t), &f1w, &f1b)
                .into_iter()
                .map(|v| gelu(v, tanh))
                .collect();
            lin(&hdn, &f2w, &f2b)
                .iter()
                .zip(t.iter_mut())
                .for_each(|(y, t)| *t += y);
        }
    }
    lin(
        &ln(&tok[0]),
        &w(&format!("exit.{depth}.head.weight")),
        &w(&format!("exit.{depth}.head.bias")),
    )
}

/// Largest |a − b| of two f64 vectors.
pub fn max_abs_diff64(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
