//! An independent, straightforward f64 forward pass written from docs/FORMAT.md's folded math
//! (no code shared with the runtime or the exporter): the yardstick ONNX Runtime is held to.

use tinv::model::WRef;
use tinv::Model;

/// Weight reader: f32 values as stored, or rounded to f16 first (what FP16-input graphs see).
pub struct Weights<'a> {
    pub model: &'a Model,
    pub round_f16: bool,
}

impl Weights<'_> {
    pub fn get(&self, r: WRef) -> Vec<f64> {
        self.model
            .w(r)
            .iter()
            .map(|&v| {
                if self.round_f16 {
                    f64::from(half::f16::from_f32(v).to_f32())
                } else {
                    f64::from(v)
                }
            })
            .collect()
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7, far inside the test tolerances).
pub fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

fn gelu(x: f64, tanh: bool) -> f64 {
    if tanh {
        let k = (2.0 / std::f64::consts::PI).sqrt();
        0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
    } else {
        0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
    }
}

fn layer_norm(v: &[f64], eps: f64) -> Vec<f64> {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let sd = (var + eps).sqrt();
    v.iter().map(|x| (x - mean) / sd).collect()
}

/// `x·W + b` with `W` stored `[in, out]` row-major.
fn affine(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let out = b.len();
    let mut y = b.to_vec();
    for (i, xi) in x.iter().enumerate() {
        for (o, yo) in y.iter_mut().enumerate() {
            *yo += xi * w[i * out + o];
        }
    }
    y
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// Logits of path `depth` for one raw CHW image in [0, 1].
pub fn forward(w: &Weights, image: &[f32], depth: usize) -> Vec<f64> {
    let m = w.model;
    let c = m.config();
    let (ch, h, wd, p, d) = (c.channels, c.image_h, c.image_w, c.patch, c.dim);
    let (gh, gw) = (h / p, wd / p);
    let eps = f64::from(c.ln_eps);
    let s = m.stem();
    let (pw, pb, cls, pos) = (
        w.get(s.patch_w),
        w.get(s.patch_b),
        w.get(s.cls),
        w.get(s.pos),
    );
    let mut tokens = vec![cls];
    for py in 0..gh {
        for px in 0..gw {
            let mut row = vec![0.0; ch * p * p];
            for cc in 0..ch {
                for ky in 0..p {
                    for kx in 0..p {
                        let raw = f64::from(image[cc * h * wd + (py * p + ky) * wd + px * p + kx]);
                        row[cc * p * p + ky * p + kx] =
                            (raw - f64::from(c.mean[cc])) / f64::from(c.std[cc]);
                    }
                }
            }
            let r = py * gw + px;
            let mut t = affine(&row, &pw, &pb);
            t.iter_mut()
                .zip(&pos[r * d..(r + 1) * d])
                .for_each(|(a, b)| *a += b);
            tokens.push(t);
        }
    }
    let (heads, hd) = (c.heads, c.head_dim());
    let tanh = c.gelu == tinv::model::Gelu::Tanh;
    for bw in &m.blocks()[..depth] {
        let (qw, qb) = (w.get(bw.qkv_w), w.get(bw.qkv_b));
        let qkv: Vec<Vec<f64>> = tokens
            .iter()
            .map(|t| affine(&layer_norm(t, eps), &qw, &qb))
            .collect();
        let n = tokens.len();
        let mut ctx = vec![vec![0.0; d]; n];
        for hh in 0..heads {
            for i in 0..n {
                let q = &qkv[i][hh * hd..(hh + 1) * hd];
                let scores: Vec<f64> = (0..n)
                    .map(|j| {
                        let k = &qkv[j][d + hh * hd..d + (hh + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum()
                    })
                    .collect();
                let a = softmax(&scores);
                for (j, aj) in a.iter().enumerate() {
                    let v = &qkv[j][2 * d + hh * hd..2 * d + (hh + 1) * hd];
                    for e in 0..hd {
                        ctx[i][hh * hd + e] += aj * v[e];
                    }
                }
            }
        }
        let (prw, prb) = (w.get(bw.proj_w), w.get(bw.proj_b));
        let (f1w, f1b, f2w, f2b) = (
            w.get(bw.fc1_w),
            w.get(bw.fc1_b),
            w.get(bw.fc2_w),
            w.get(bw.fc2_b),
        );
        for (t, cx) in tokens.iter_mut().zip(&ctx) {
            let o = affine(cx, &prw, &prb);
            t.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let hid: Vec<f64> = affine(&layer_norm(t, eps), &f1w, &f1b)
                .into_iter()
                .map(|x| gelu(x, tanh))
                .collect();
            let o = affine(&hid, &f2w, &f2b);
            t.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
    }
    let k = c
        .path_index(depth)
        .expect("depth is a path of the test model");
    let e = m.exits()[k];
    affine(&layer_norm(&tokens[0], eps), &w.get(e.w), &w.get(e.b))
}

/// Level-1 controller for one feature vector φ and budget λ: (predictor probabilities, scores),
/// the scores of `graph` mode's own policy when `graph` and the model has one.
pub fn controller(w: &Weights, phi: &[f32], budget: f32, graph: bool) -> (Vec<f64>, Vec<f64>) {
    let cw = w.model.ctrl().expect("test model has a controller");
    let phi: Vec<f64> = phi.iter().map(|v| f64::from(*v)).collect();
    let mlp = |x: &[f64], r: [WRef; 4]| {
        let h: Vec<f64> = affine(x, &w.get(r[0]), &w.get(r[1]))
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        affine(&h, &w.get(r[2]), &w.get(r[3]))
    };
    let pred = softmax(&mlp(&phi, cw.pred));
    let mut z = phi.clone();
    z.extend(&pred);
    z.push(f64::from(budget));
    let scores = mlp(&z, cw.up_front(graph).0);
    (pred, scores)
}
