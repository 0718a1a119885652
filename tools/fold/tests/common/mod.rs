//! Test-only code: random timm-style checkpoints, an independent safetensors writer, and an
//! UNFOLDED reference ViT forward in f64 that follows timm's `VisionTransformer` literally
//! (LayerNorm with γ/β, separate score scale, class token concatenated before the position
//! embedding). It never reads a folded tensor, so agreement with the runtime on a folded file
//! shows the folding is exact.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use tinv::synth::Rng;

/// Checkpoint tensors by name: (shape, values).
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Shape and options of a random test ViT.
#[derive(Clone, Debug)]
pub struct Spec {
    pub channels: usize,
    pub image_h: usize,
    pub image_w: usize,
    pub patch: usize,
    pub dim: usize,
    pub heads: usize,
    pub blocks: usize,
    pub mlp: usize,
    pub classes: usize,
    /// Depths below `blocks` that get `exits.{d}.*` heads.
    pub exits: Vec<usize>,
    pub qkv_bias: bool,
    pub eps: f64,
    pub tanh_gelu: bool,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Spec {
    /// A small non-square RGB model with two exits below full depth.
    pub fn small() -> Spec {
        Spec {
            channels: 3,
            image_h: 16,
            image_w: 12,
            patch: 4,
            dim: 24,
            heads: 3,
            blocks: 4,
            mlp: 40,
            classes: 7,
            exits: vec![1, 3],
            qkv_bias: true,
            eps: 1e-6,
            tanh_gelu: false,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    pub fn patches(&self) -> usize {
        (self.image_h / self.patch) * (self.image_w / self.patch)
    }

    pub fn input_len(&self) -> usize {
        self.channels * self.image_h * self.image_w
    }

    /// The `tinv.config` JSON for this spec (the sizes the tool could infer are included too).
    pub fn config_json(&self, depths: &[usize]) -> String {
        format!(
            r#"{{"image_size": [{}, {}], "heads": {}, "ln_eps": {:e}, "gelu": "{}", "mean": {:?}, "std": {:?}, "depths": {:?}}}"#,
            self.image_h,
            self.image_w,
            self.heads,
            self.eps,
            if self.tanh_gelu { "tanh" } else { "erf" },
            self.mean,
            self.std,
            depths
        )
    }
}

fn put(t: &mut Tensors, name: &str, shape: &[usize], data: Vec<f32>) {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}");
    t.insert(name.to_string(), (shape.to_vec(), data));
}

/// LayerNorm parameters away from the identity: γ ≈ 1 ± 0.1, β ≈ ±0.1.
fn norm(t: &mut Tensors, rng: &mut Rng, prefix: &str, d: usize) {
    let g = (0..d).map(|_| 1.0 + rng.sym(0.1)).collect();
    put(t, &format!("{prefix}.weight"), &[d], g);
    put(t, &format!("{prefix}.bias"), &[d], rng.vec(d, 0.1));
}

fn linear(t: &mut Tensors, rng: &mut Rng, prefix: &str, n_out: usize, n_in: usize, bias: bool) {
    let a = (3.0 / n_in as f32).sqrt();
    put(
        t,
        &format!("{prefix}.weight"),
        &[n_out, n_in],
        rng.vec(n_out * n_in, a),
    );
    if bias {
        put(t, &format!("{prefix}.bias"), &[n_out], rng.vec(n_out, 0.1));
    }
}

/// Random timm-named weights (plus `exits.{d}.*` for `spec.exits`).
pub fn random_checkpoint(spec: &Spec, seed: u64) -> Tensors {
    let mut rng = Rng::new(seed);
    let r = &mut rng;
    let mut t = Tensors::new();
    let (c, p, d) = (spec.channels, spec.patch, spec.dim);
    let a = (3.0 / (c * p * p) as f32).sqrt();
    put(
        &mut t,
        "patch_embed.proj.weight",
        &[d, c, p, p],
        r.vec(d * c * p * p, a),
    );
    put(&mut t, "patch_embed.proj.bias", &[d], r.vec(d, 0.1));
    put(&mut t, "cls_token", &[1, 1, d], r.vec(d, 0.5));
    let n = spec.patches() + 1;
    put(&mut t, "pos_embed", &[1, n, d], r.vec(n * d, 0.5));
    for i in 0..spec.blocks {
        let b = format!("blocks.{i}");
        norm(&mut t, r, &format!("{b}.norm1"), d);
        linear(&mut t, r, &format!("{b}.attn.qkv"), 3 * d, d, spec.qkv_bias);
        linear(&mut t, r, &format!("{b}.attn.proj"), d, d, true);
        norm(&mut t, r, &format!("{b}.norm2"), d);
        linear(&mut t, r, &format!("{b}.mlp.fc1"), spec.mlp, d, true);
        linear(&mut t, r, &format!("{b}.mlp.fc2"), d, spec.mlp, true);
    }
    norm(&mut t, r, "norm", d);
    linear(&mut t, r, "head", spec.classes, d, true);
    for e in &spec.exits {
        norm(&mut t, r, &format!("exits.{e}.norm"), d);
        linear(&mut t, r, &format!("exits.{e}.head"), spec.classes, d, true);
    }
    t
}

/// Random controller tensors in the checkpoint's PyTorch `[out, in]` orientation.
pub fn add_controller(t: &mut Tensors, spec: &Spec, paths: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let r = &mut rng;
    let f = 16 * spec.channels + 4;
    let (hp, hq, hr) = (8, 6, 5);
    linear(t, r, "ctrl.pred.fc1", hp, f, true);
    linear(t, r, "ctrl.pred.fc2", paths, hp, true);
    linear(t, r, "ctrl.policy.fc1", hq, f + paths + 1, true);
    linear(t, r, "ctrl.policy.fc2", paths, hq, true);
    put(t, "ctrl.exit.wx", &[hr, 5], r.vec(hr * 5, 0.5));
    put(t, "ctrl.exit.wh", &[hr, hr], r.vec(hr * hr, 0.5));
    put(t, "ctrl.exit.b", &[hr], r.vec(hr, 0.5));
    put(t, "ctrl.exit.out.weight", &[1, hr], r.vec(hr, 0.5));
    put(t, "ctrl.exit.out.bias", &[1], r.vec(1, 0.5));
}

/// Source dtype for [`safetensors_bytes`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Src {
    F32,
    F16,
    BF16,
}

/// Rounds every tensor to what `dtype` can hold, so a reference on these values sees exactly
/// what the folder reads back.
pub fn round_to(t: &Tensors, dtype: Src) -> Tensors {
    let r = |v: f32| match dtype {
        Src::F32 => v,
        Src::F16 => half::f16::from_f32(v).to_f32(),
        Src::BF16 => half::bf16::from_f32(v).to_f32(),
    };
    t.iter()
        .map(|(k, (s, v))| (k.clone(), (s.clone(), v.iter().map(|x| r(*x)).collect())))
        .collect()
}

/// An independent safetensors writer: header JSON with sorted names and back-to-back data,
/// `metadata` as the `__metadata__` map.
pub fn safetensors_bytes(t: &Tensors, dtype: Src, metadata: &[(&str, &str)]) -> Vec<u8> {
    let (tag, size) = match dtype {
        Src::F32 => ("F32", 4),
        Src::F16 => ("F16", 2),
        Src::BF16 => ("BF16", 2),
    };
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        header.insert("__metadata__".into(), m.into());
    }
    let mut data = Vec::new();
    for (name, (shape, vals)) in t {
        let begin = data.len();
        for v in vals {
            match dtype {
                Src::F32 => data.extend_from_slice(&v.to_le_bytes()),
                Src::F16 => data.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes()),
                Src::BF16 => data.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes()),
            }
        }
        assert_eq!(data.len() - begin, vals.len() * size);
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": tag, "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let json = serde_json::Value::Object(header).to_string();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// erf to ~1e-15: Taylor series for |x| < 4 (at most ~1e-10 cancellation), asymptotic erfc
/// series beyond (erfc(4) ≈ 1.5e-8, so its truncation error is far below f32).
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

fn gelu(x: f64, tanh: bool) -> f64 {
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

/// A random image in [0, 1].
pub fn random_image(spec: &Spec, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..spec.input_len()).map(|_| rng.uniform()).collect()
}

/// Runs the runtime's CPU backend on a folded file at `depth`.
pub fn runtime_logits(tinv_bytes: &[u8], x: &[f32], depth: usize) -> Vec<f32> {
    let model = tinv::Model::from_bytes(tinv_bytes, &tinv::OpenOptions::default())
        .unwrap_or_else(|e| panic!("runtime rejects the folded file: {e}"));
    let k = model.config().classes;
    let mut sess = tinv::Session::new(std::sync::Arc::new(model), tinv::SessionOptions::default())
        .unwrap_or_else(|e| panic!("session: {e}"));
    let mut out = vec![0.0f32; k];
    sess.infer_depth(x, 1, depth, &mut out)
        .unwrap_or_else(|e| panic!("infer_depth({depth}): {e}"));
    out
}

/// Largest |a − b|.
pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - y).abs())
        .fold(0.0, f64::max)
}

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
