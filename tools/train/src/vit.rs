//! The multi-exit ViT in candle: timm's pre-LN ViT (patch embedding, class token, position
//! embedding, blocks `x += proj(attn(LN1 x))`, `x += fc2(GELU_erf(fc1(LN2 x)))`) with an exit
//! (LayerNorm + linear head on the class token) after each path's last block. The math is the
//! runtime's: LayerNorm with the configured ε, exact-erf GELU, QKV columns `[Q | K | V]` split
//! into heads of `hd` consecutive columns, softmax(QKᵀ/√hd)V.

use crate::config::ModelConfig;
use crate::data;
use crate::tensors::{exit_names, HostTensor};
use candle_core::{DType, Device, Result, Tensor, Var};
use std::collections::HashMap;

/// What one forward returns per path: logits `[b, K]` and the raw class token `[b, D]`
/// at that path's depth (before the exit norm; the distillation normalizes it).
pub struct PathOut {
    /// Exit logits.
    pub logits: Tensor,
    /// Class-token features.
    pub cls: Tensor,
}

/// The trainable model: one candle `Var` per checkpoint tensor.
pub struct Vit {
    /// The model configuration.
    pub cfg: ModelConfig,
    vars: Vec<(String, Var)>,
    index: HashMap<String, usize>,
}

impl Vit {
    /// Builds the model from host tensors (a fresh initialization or a checkpoint), checking
    /// that every tensor the configuration needs is present with the right shape.
    pub fn from_host(cfg: &ModelConfig, ts: &[HostTensor]) -> std::result::Result<Vit, String> {
        // Names and shapes only: a random model of the config's size would be allocated first.
        let want = crate::tensors::backbone_specs(cfg);
        let mut vars = Vec::with_capacity(want.len());
        let mut index = HashMap::new();
        for w in &want {
            let t = crate::tensors::find(ts, &w.name)
                .ok_or_else(|| format!("tensor '{}' missing", w.name))?;
            if t.shape != w.shape {
                return Err(format!(
                    "tensor '{}' has shape {:?}, the config needs {:?}",
                    w.name, t.shape, w.shape
                ));
            }
            let v = Var::from_slice(&t.data, t.shape.as_slice(), &Device::Cpu)
                .map_err(|e| e.to_string())?;
            index.insert(w.name.clone(), vars.len());
            vars.push((w.name.clone(), v));
        }
        Ok(Vit {
            cfg: cfg.clone(),
            vars,
            index,
        })
    }

    /// The trainable variables with their names, in forward order.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The current values as host tensors (for checkpoints).
    pub fn to_host(&self) -> Result<Vec<HostTensor>> {
        self.vars
            .iter()
            .map(|(n, v)| {
                Ok(HostTensor {
                    name: n.clone(),
                    shape: v.dims().to_vec(),
                    data: v.flatten_all()?.to_vec1::<f32>()?,
                })
            })
            .collect()
    }

    fn t(&self, name: &str) -> Result<&Tensor> {
        match self.index.get(name) {
            Some(&i) => Ok(self.vars[i].1.as_tensor()),
            None => candle_core::bail!("tensor '{name}' missing"),
        }
    }

    /// `x·Wᵀ + b` over the last dimension (W stored `[out, in]`).
    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let w = self.t(&format!("{name}.weight"))?;
        let b = self.t(&format!("{name}.bias"))?;
        let dims = x.dims().to_vec();
        let inp = dims[dims.len() - 1];
        let rows = x.elem_count() / inp;
        let y = crate::fused::bias_add(&x.reshape((rows, inp))?.matmul(&w.t()?)?, b)?;
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = w.dim(0)?;
        y.reshape(out)
    }

    /// LayerNorm over the last dimension with the configured ε, then the affine `name`.
    fn norm(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let g = self.t(&format!("{name}.weight"))?;
        let b = self.t(&format!("{name}.bias"))?;
        crate::fused::affine(&layer_norm(x, self.cfg.ln_eps)?, g, b)
    }

    fn block(&self, x: &Tensor, i: usize) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let heads = self.cfg.heads;
        let hd = d / heads;
        let p = format!("blocks.{i}");
        let h = self.norm(x, &format!("{p}.norm1"))?;
        let qkv = self.linear(&h, &format!("{p}.attn.qkv"))?;
        let qkv = qkv
            .reshape((b, n, 3, heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let part =
            |j: usize| -> Result<Tensor> { qkv.get(j)?.contiguous()?.reshape((b * heads, n, hd)) };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        let att = crate::fused::softmax(&scores)?;
        let o = att
            .matmul(&v)?
            .reshape((b, heads, n, hd))?
            .transpose(1, 2)?
            .reshape((b, n, d))?;
        let x = (x + self.linear(&o, &format!("{p}.attn.proj"))?)?;
        let h = self.norm(&x, &format!("{p}.norm2"))?;
        let h = crate::fused::gelu_erf(&self.linear(&h, &format!("{p}.mlp.fc1"))?)?;
        x + self.linear(&h, &format!("{p}.mlp.fc2"))?
    }

    /// The forward on normalized patch rows `[b, patches, c·p·p]`, up to the deepest path,
    /// returning every path's exit.
    pub fn forward(&self, patches: &Tensor) -> Result<Vec<PathOut>> {
        self.forward_to(patches, self.cfg.depths.len())
    }

    /// Like [`Vit::forward`] but stops after the first `paths` paths.
    pub fn forward_to(&self, patches: &Tensor, paths: usize) -> Result<Vec<PathOut>> {
        let c = &self.cfg;
        let (b, np, row) = patches.dims3()?;
        let w = self.t("patch_embed.proj.weight")?.reshape((c.dim, row))?;
        let tok = patches
            .reshape((b * np, row))?
            .matmul(&w.t()?)?
            .broadcast_add(self.t("patch_embed.proj.bias")?)?
            .reshape((b, np, c.dim))?;
        let cls = self.t("cls_token")?.broadcast_as((b, 1, c.dim))?;
        let mut x = Tensor::cat(&[&cls, &tok], 1)?.broadcast_add(self.t("pos_embed")?)?;
        let mut outs = Vec::with_capacity(paths);
        let mut done = 0;
        for (k, &depth) in c.depths.iter().enumerate().take(paths) {
            for i in done..depth {
                x = self.block(&x, i)?;
            }
            done = depth;
            let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
            let (norm, head) = exit_names(c, k);
            let logits = self.linear(&self.norm(&cls, &norm)?, &head)?;
            outs.push(PathOut { logits, cls });
        }
        Ok(outs)
    }

    /// Every path's logits for raw CHW images in [0, 1] (`images` holds `n` of them back to
    /// back): `out[k]` is `[n × K]` row-major for path `k`. This is the trainer's forward as the
    /// runtime sees it (normalization and patching included), for parity tests against backends.
    pub fn logits_all_paths(&self, images: &[f32], chunk: usize) -> Result<Vec<Vec<f32>>> {
        let c = &self.cfg;
        let len = c.input_len();
        let row = c.patches() * c.channels * c.patch * c.patch;
        let mut out = vec![Vec::new(); c.depths.len()];
        for imgs in images.chunks(len * chunk.max(1)) {
            let n = imgs.len() / len;
            let mut rows = vec![0f32; n * row];
            for (x, dst) in imgs.chunks_exact(len).zip(rows.chunks_exact_mut(row)) {
                data::patchify(x, c, dst);
            }
            let t = Tensor::from_vec(rows, (n, c.patches(), row / c.patches()), &Device::Cpu)?;
            for (k, o) in self.forward(&t)?.into_iter().enumerate() {
                out[k].extend(o.logits.detach().flatten_all()?.to_vec1::<f32>()?);
            }
        }
        Ok(out)
    }
}

/// Parameter-free LayerNorm over the last dimension: `(x − mean) / sqrt(var + ε)` (population
/// variance), exactly the runtime's.
pub fn layer_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    crate::fused::layer_norm(x, eps)
}

/// Host tensor of patch rows for a batch.
pub fn batch_tensor(b: &data::Batch, cfg: &ModelConfig) -> Result<(Tensor, Tensor)> {
    let row = cfg.channels * cfg.patch * cfg.patch;
    let x = Tensor::from_slice(&b.patches, (b.len, cfg.patches(), row), &Device::Cpu)?;
    let y = Tensor::from_slice(&b.labels, b.len, &Device::Cpu)?.to_dtype(DType::U32)?;
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// erf by its Maclaurin series (|x| < 5; past that it is ±1 to f64 precision).
    fn erf(x: f64) -> f64 {
        if x.abs() >= 5.0 {
            return x.signum();
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    /// The module docs' forward written out plainly in f64, one image (`patches` rows of
    /// `c·p·p`), returning each path's (logits, raw class token).
    fn reference(
        cfg: &ModelConfig,
        ts: &[HostTensor],
        patches: &[f64],
    ) -> Vec<(Vec<f64>, Vec<f64>)> {
        let w = |name: &str| -> Vec<f64> {
            let t = crate::tensors::find(ts, name).unwrap();
            t.data.iter().map(|&v| f64::from(v)).collect()
        };
        let d = cfg.dim;
        // y = x·Wᵀ + b for one row, W stored [out, in].
        let linear = |x: &[f64], name: &str| -> Vec<f64> {
            let (wt, b) = (w(&format!("{name}.weight")), w(&format!("{name}.bias")));
            (0..b.len())
                .map(|o| {
                    b[o] + (0..x.len())
                        .map(|i| wt[o * x.len() + i] * x[i])
                        .sum::<f64>()
                })
                .collect()
        };
        let norm = |x: &[f64], name: &str| -> Vec<f64> {
            let (g, b) = (w(&format!("{name}.weight")), w(&format!("{name}.bias")));
            let n = x.len() as f64;
            let mean = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let r = 1.0 / (var + cfg.ln_eps).sqrt();
            (0..x.len())
                .map(|i| (x[i] - mean) * r * g[i] + b[i])
                .collect()
        };
        let row = patches.len() / cfg.patches();
        let (cls, pos) = (w("cls_token"), w("pos_embed"));
        let mut x: Vec<Vec<f64>> = vec![cls];
        for p in patches.chunks_exact(row) {
            x.push(linear(p, "patch_embed.proj"));
        }
        for (t, tok) in x.iter_mut().enumerate() {
            for (j, v) in tok.iter_mut().enumerate() {
                *v += pos[t * d + j];
            }
        }
        let (heads, n) = (cfg.heads, x.len());
        let hd = d / heads;
        let mut outs = Vec::new();
        let mut done = 0;
        for (k, &depth) in cfg.depths.iter().enumerate() {
            for i in done..depth {
                let p = format!("blocks.{i}");
                let qkv: Vec<Vec<f64>> = x
                    .iter()
                    .map(|t| linear(&norm(t, &format!("{p}.norm1")), &format!("{p}.attn.qkv")))
                    .collect();
                let mut o = vec![vec![0.0; d]; n];
                for h in 0..heads {
                    let col = |t: usize, part: usize, j: usize| qkv[t][part * d + h * hd + j];
                    for (a, oa) in o.iter_mut().enumerate() {
                        let s: Vec<f64> = (0..n)
                            .map(|b| {
                                (0..hd).map(|j| col(a, 0, j) * col(b, 1, j)).sum::<f64>()
                                    / (hd as f64).sqrt()
                            })
                            .collect();
                        let m = s.iter().cloned().fold(f64::MIN, f64::max);
                        let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                        let z: f64 = e.iter().sum();
                        for j in 0..hd {
                            oa[h * hd + j] = (0..n).map(|b| e[b] / z * col(b, 2, j)).sum();
                        }
                    }
                }
                for (t, ot) in x.iter_mut().zip(&o) {
                    let y = linear(ot, &format!("{p}.attn.proj"));
                    t.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
                    let h1: Vec<f64> =
                        linear(&norm(t, &format!("{p}.norm2")), &format!("{p}.mlp.fc1"))
                            .into_iter()
                            .map(|v| 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)))
                            .collect();
                    let y = linear(&h1, &format!("{p}.mlp.fc2"));
                    t.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
                }
            }
            done = depth;
            let (nn, hn) = crate::tensors::exit_names(cfg, k);
            outs.push((linear(&norm(&x[0], &nn), &hn), x[0].clone()));
        }
        outs
    }

    #[test]
    fn forward_matches_the_plain_f64_definition() {
        // 2 heads of 3 columns (so neither 1/√hd nor the head split is trivial), 2 blocks,
        // exits after each, 3 classes, a 6×4 image of 2 channels in 2×2 patches (7 tokens).
        let cfg: ModelConfig = serde_json::from_value(serde_json::json!({
            "image_size": [6, 4], "channels": 2, "patch": 2, "dim": 6, "blocks": 2, "heads": 2,
            "mlp_hidden": 8, "classes": 3, "ln_eps": 1e-5, "gelu": "erf",
            "mean": [0.5, 0.5], "std": [0.25, 0.25], "depths": [1, 2]}))
        .unwrap();
        // Every tensor random, biases and LayerNorm parameters too, at a scale where attention
        // is far from uniform.
        let mut rng = Rng::new(21, 0);
        let mut ts = crate::tensors::init_backbone(&cfg, &mut rng);
        for t in &mut ts {
            for v in &mut t.data {
                *v = (0.5 * rng.normal()) as f32
                    + if t.name.ends_with("norm1.weight") {
                        1.0
                    } else {
                        0.0
                    };
            }
        }
        let vit = Vit::from_host(&cfg, &ts).unwrap();
        let (b, np, row) = (2, cfg.patches(), 2 * 2 * 2);
        let x: Vec<f32> = (0..b * np * row).map(|_| rng.normal() as f32).collect();
        let outs = vit
            .forward(&Tensor::from_slice(&x, (b, np, row), &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(outs.len(), 2);
        for i in 0..b {
            let img: Vec<f64> = x[i * np * row..(i + 1) * np * row]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            for (k, (logits, cls)) in reference(&cfg, &ts, &img).into_iter().enumerate() {
                let got_l = outs[k].logits.get(i).unwrap().to_vec1::<f32>().unwrap();
                let got_c = outs[k].cls.get(i).unwrap().to_vec1::<f32>().unwrap();
                for (g, w) in got_l.iter().zip(&logits).chain(got_c.iter().zip(&cls)) {
                    assert!(
                        (f64::from(*g) - w).abs() < 1e-4 * w.abs().max(1.0),
                        "image {i} path {k}: {g} vs {w}"
                    );
                }
            }
        }
        // The same through the runtime's view (raw pixels, normalized and patched here), one
        // image at a time and both at once.
        let pixels: Vec<f32> = (0..b * cfg.input_len())
            .map(|i| (i % 7) as f32 / 7.0)
            .collect();
        let all = vit.logits_all_paths(&pixels, 2).unwrap();
        let one = vit.logits_all_paths(&pixels, 1).unwrap();
        assert_eq!(all, one);
        for i in 0..b {
            let mut rows = vec![0f32; np * row];
            data::patchify(
                &pixels[i * cfg.input_len()..(i + 1) * cfg.input_len()],
                &cfg,
                &mut rows,
            );
            let img: Vec<f64> = rows.iter().map(|&v| f64::from(v)).collect();
            for (k, (logits, _)) in reference(&cfg, &ts, &img).into_iter().enumerate() {
                assert_eq!(all[k].len(), b * 3);
                for (g, w) in all[k][i * 3..(i + 1) * 3].iter().zip(&logits) {
                    assert!(
                        (f64::from(*g) - w).abs() < 1e-4 * w.abs().max(1.0),
                        "pixels {i} path {k}: {g} vs {w}"
                    );
                }
            }
        }
        // The batch tensors: [b, patches, c·p·p] and the labels.
        let batch = data::Batch {
            patches: x.clone(),
            labels: vec![2, 0],
            len: 2,
        };
        let (xt, yt) = batch_tensor(&batch, &cfg).unwrap();
        assert_eq!(xt.dims(), [2, np, row]);
        assert_eq!(yt.to_vec1::<u32>().unwrap(), [2, 0]);
    }
}
