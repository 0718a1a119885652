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
