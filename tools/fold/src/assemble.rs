//! Maps checkpoint tensors to folded `.tinv` tensors, in the order and page layout of
//! `docs/FORMAT.md`: controller, stem, then `blk.0 … blk.{d−1}`, `exit.{d}`, `blk.{d} …`, with a
//! page break before every block and every exit head.

use crate::config::{exit_depths, leading_dim};
use crate::error::{FoldError, Result};
use crate::folding::{
    fold_norm_linear, patch_conv_to_gemm, plain_linear, qkv_column_scale, split_pos_embed,
    transpose, Linear,
};
use crate::safetensors::Checkpoint;
use std::collections::BTreeSet;
use tinv::format::{DType, MetaValue, Metadata, TinvWriter, FLAG_DEVICE};
use tinv::Config;

/// How to write the folded file.
#[derive(Clone, Debug)]
pub struct FoldOptions {
    /// Storage type of the matrices (`F16` halves the file; vectors and embeddings stay f32).
    pub matrix_dtype: DType,
    /// Also write the device section: an f16 copy `dev.<name>` of every GEMM weight (stem,
    /// blocks, exit heads), flagged [`FLAG_DEVICE`], after every host tensor on a fresh page.
    pub device: bool,
}

impl Default for FoldOptions {
    fn default() -> Self {
        FoldOptions {
            matrix_dtype: DType::F32,
            device: false,
        }
    }
}

/// GEMM weights kept for the device section: name, shape `[in, out]`, values.
type DeviceCopies = Vec<(String, Vec<usize>, Vec<f32>)>;

/// The writer plus the GEMM weights kept for the device section.
struct Out {
    w: TinvWriter,
    matrix_dtype: DType,
    device: Option<DeviceCopies>,
}

/// Checks that every value of the tensor `name` survives storage as `dtype`. The sources are
/// finite (see [`Source::get`]), so a non-finite folded value is an overflow of the folding.
fn check_fits(name: &str, data: &[f32], dtype: DType) -> Result<()> {
    let overflow = |index, storage| FoldError::Overflow {
        name: name.to_string(),
        index,
        storage,
    };
    for (i, &v) in data.iter().enumerate() {
        if !v.is_finite() {
            return Err(overflow(i, "f32"));
        }
        if dtype == DType::F16 && half::f16::from_f32(v).is_infinite() {
            return Err(overflow(i, "f16"));
        }
    }
    Ok(())
}

impl Out {
    /// A GEMM weight `[in, out]`: stored as `matrix_dtype`, remembered for the device section.
    fn matrix(&mut self, name: &str, shape: [usize; 2], data: Vec<f32>) -> Result<()> {
        check_fits(name, &data, self.matrix_dtype)?;
        self.w.tensor(name, &shape, &data, self.matrix_dtype);
        if let Some(dev) = &mut self.device {
            check_fits(&format!("dev.{name}"), &data, DType::F16)?;
            dev.push((name.to_string(), shape.to_vec(), data));
        }
        Ok(())
    }

    /// A vector, embedding or controller weight: always stored f32.
    fn keep_f32(&mut self, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        check_fits(name, data, DType::F32)?;
        self.w.tensor(name, shape, data, DType::F32);
        Ok(())
    }

    /// A folded linear layer `{name}.weight` `[in, out]` and `{name}.bias` `[out]`.
    fn linear(&mut self, name: &str, l: Linear, n_in: usize, n_out: usize) -> Result<()> {
        self.matrix(&format!("{name}.weight"), [n_in, n_out], l.weight)?;
        self.keep_f32(&format!("{name}.bias"), &[n_out], &l.bias)
    }

    fn finish(mut self) -> TinvWriter {
        if let Some(dev) = self.device.take() {
            self.w.page_break();
            for (name, shape, data) in dev {
                let bytes = data
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect();
                self.w.raw_tensor(
                    &format!("dev.{name}"),
                    DType::F16,
                    FLAG_DEVICE,
                    &shape,
                    bytes,
                );
            }
        }
        self.w
    }
}

/// Reads tensors by name, checks their shapes and remembers which ones were used.
struct Source<'a> {
    ck: &'a Checkpoint,
    used: BTreeSet<String>,
}

impl Source<'_> {
    /// The values of `name`, which must have `shape` and be finite.
    fn get(&mut self, name: &str, shape: &[usize], why: &str) -> Result<Vec<f32>> {
        let found = self
            .ck
            .shape(name)
            .ok_or_else(|| FoldError::missing(name, why))?;
        if found != shape {
            return Err(FoldError::shape(name, found, shape));
        }
        self.used.insert(name.to_string());
        // Presence was checked just above.
        let values = self
            .ck
            .f32(name)
            .ok_or_else(|| FoldError::missing(name, why))?;
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(FoldError::NonFinite {
                name: name.to_string(),
                index,
                value,
            });
        }
        Ok(values)
    }

    fn optional(&mut self, name: &str, shape: &[usize], why: &str) -> Result<Option<Vec<f32>>> {
        if self.ck.shape(name).is_none() {
            return Ok(None);
        }
        self.get(name, shape, why).map(Some)
    }
}

/// Folds `ck` under configuration `cfg` into a writer ready to serialize. `progress` receives a
/// short line per stage.
pub fn fold_checkpoint(
    ck: &Checkpoint,
    cfg: &Config,
    opts: &FoldOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<TinvWriter> {
    let mut src = Source {
        ck,
        used: BTreeSet::new(),
    };
    let mut out = Out {
        w: TinvWriter::new(),
        matrix_dtype: opts.matrix_dtype,
        device: opts.device.then(Vec::new),
    };
    let mut meta = Metadata::new();
    meta.set(
        "tinv.producer",
        MetaValue::Str(format!("tinv-fold {}", env!("CARGO_PKG_VERSION"))),
    );
    meta.set(
        "tinv.source_hash",
        MetaValue::Str(format!(
            "fnv1a64:{:016x}",
            ck.content_hash(crate::CONFIG_META_KEY)
        )),
    );
    cfg.to_meta(&mut meta);
    for (k, v) in meta.entries() {
        out.w.meta(k, v.clone());
    }
    let (d, k) = (cfg.dim, cfg.classes);

    if cfg.controller.is_some() {
        progress("controller");
        controller(&mut src, &mut out, cfg)?;
    }

    progress("stem");
    let (c, p) = (cfg.channels, cfg.patch);
    let pw = src.get("patch_embed.proj.weight", &[d, c, p, p], "patch embedding")?;
    let pb = src.get("patch_embed.proj.bias", &[d], "patch embedding")?;
    let cls = src.get("cls_token", &[1, 1, d], "class token")?;
    let pos = src.get("pos_embed", &[1, cfg.tokens(), d], "position embedding")?;
    let (cls_pos, patch_pos) = split_pos_embed(&cls, &pos, d);
    out.matrix(
        "stem.patch.weight",
        [c * p * p, d],
        patch_conv_to_gemm(&pw, d, c, p),
    )?;
    out.keep_f32("stem.patch.bias", &[d], &pb)?;
    out.keep_f32("stem.cls", &[d], &cls_pos)?;
    out.keep_f32("stem.pos", &[cfg.patches(), d], &patch_pos)?;

    for i in 0..cfg.blocks {
        progress(&format!("block {i}"));
        block(&mut src, &mut out, cfg, i)?;
        let depth = i + 1;
        if cfg.depths.contains(&depth) {
            progress(&format!("exit {depth}"));
            // The deepest path's head is timm's own `norm` + `head`.
            let prefix = if depth == cfg.blocks {
                String::new()
            } else {
                format!("exits.{depth}.")
            };
            let why = format!("exit head of the depth-{depth} path");
            let g = src.get(&format!("{prefix}norm.weight"), &[d], &why)?;
            let b = src.get(&format!("{prefix}norm.bias"), &[d], &why)?;
            let hw = src.get(&format!("{prefix}head.weight"), &[k, d], &why)?;
            let hb = src.get(&format!("{prefix}head.bias"), &[k], &why)?;
            let head = fold_norm_linear(&hw, Some(&hb), &g, &b, &vec![1.0; k]);
            out.w.page_break();
            out.linear(&format!("exit.{depth}.head"), head, d, k)?;
        }
    }

    // Exits that the chosen paths leave out are dropped on purpose; anything else unused is a
    // tensor whose meaning this tool does not know.
    for depth in exit_depths(ck) {
        if depth < cfg.blocks && !cfg.depths.contains(&depth) {
            progress(&format!(
                "skipping exits.{depth}.* (not one of the paths {:?})",
                cfg.depths
            ));
            let prefix = format!("exits.{depth}.");
            let names = ck.tensors().keys().filter(|n| n.starts_with(&prefix));
            src.used.extend(names.cloned());
        }
    }
    if let Some(extra) = ck.tensors().keys().find(|n| !src.used.contains(*n)) {
        return Err(FoldError::UnknownTensor(extra.clone()));
    }
    if opts.device {
        progress("device section (f16 copies of the GEMM weights)");
    }
    Ok(out.finish())
}

fn block(src: &mut Source, out: &mut Out, cfg: &Config, i: usize) -> Result<()> {
    let (d, h) = (cfg.dim, cfg.mlp_hidden);
    let n = |s: &str| format!("blocks.{i}.{s}");
    let why = format!("encoder block {i}");
    let g1 = src.get(&n("norm1.weight"), &[d], &why)?;
    let b1 = src.get(&n("norm1.bias"), &[d], &why)?;
    let qkv_w = src.get(&n("attn.qkv.weight"), &[3 * d, d], &why)?;
    // timm's `qkv_bias=False` models have no qkv bias: fold as zeros.
    let qkv_b = src.optional(&n("attn.qkv.bias"), &[3 * d], &why)?;
    let proj_w = src.get(&n("attn.proj.weight"), &[d, d], &why)?;
    let proj_b = src.get(&n("attn.proj.bias"), &[d], &why)?;
    let g2 = src.get(&n("norm2.weight"), &[d], &why)?;
    let b2 = src.get(&n("norm2.bias"), &[d], &why)?;
    let fc1_w = src.get(&n("mlp.fc1.weight"), &[h, d], &why)?;
    let fc1_b = src.get(&n("mlp.fc1.bias"), &[h], &why)?;
    let fc2_w = src.get(&n("mlp.fc2.weight"), &[d, h], &why)?;
    let fc2_b = src.get(&n("mlp.fc2.bias"), &[d], &why)?;

    let q_scale = qkv_column_scale(d, cfg.heads);
    let qkv = fold_norm_linear(&qkv_w, qkv_b.as_deref(), &g1, &b1, &q_scale);
    let fc1 = fold_norm_linear(&fc1_w, Some(&fc1_b), &g2, &b2, &vec![1.0; h]);
    out.w.page_break();
    out.linear(&format!("blk.{i}.qkv"), qkv, d, 3 * d)?;
    out.linear(
        &format!("blk.{i}.proj"),
        plain_linear(&proj_w, &proj_b),
        d,
        d,
    )?;
    out.linear(&format!("blk.{i}.fc1"), fc1, d, h)?;
    out.linear(&format!("blk.{i}.fc2"), plain_linear(&fc2_w, &fc2_b), h, d)
}

/// Controller tensors: 2-D weights transposed from PyTorch's `[out, in]` to `[in, out]`.
/// They stay f32 even with `--dtype f16` and have no device copy: they are tiny, run on the
/// host, and their argmax decisions should not move with storage rounding.
fn controller(src: &mut Source, out: &mut Out, cfg: &Config) -> Result<()> {
    let f = tinv::control::feature_len(cfg.channels);
    let np = cfg.depths.len();
    let e = tinv::control::EXIT_FEATURES;
    let why = "controller";
    let hp = leading_dim(src.ck, "ctrl.pred.fc1.weight", f, why)?;
    let hq = leading_dim(src.ck, "ctrl.policy.fc1.weight", f + np + 1, why)?;
    let hr = leading_dim(src.ck, "ctrl.exit.wx", e, why)?;
    let mut nets = vec![("pred", f, hp), ("policy", f + np + 1, hq)];
    // `graph` mode's own up-front policy, in checkpoints that have one.
    if src.ck.shape("ctrl.graph.fc1.weight").is_some() {
        nets.push((
            "graph",
            f + np + 1,
            leading_dim(src.ck, "ctrl.graph.fc1.weight", f + np + 1, why)?,
        ));
    }
    for (net, n_in, hidden) in nets {
        let w1 = src.get(&format!("ctrl.{net}.fc1.weight"), &[hidden, n_in], why)?;
        let b1 = src.get(&format!("ctrl.{net}.fc1.bias"), &[hidden], why)?;
        let w2 = src.get(&format!("ctrl.{net}.fc2.weight"), &[np, hidden], why)?;
        let b2 = src.get(&format!("ctrl.{net}.fc2.bias"), &[np], why)?;
        for (l, lin, a, b) in [
            ("fc1", plain_linear(&w1, &b1), n_in, hidden),
            ("fc2", plain_linear(&w2, &b2), hidden, np),
        ] {
            out.keep_f32(&format!("ctrl.{net}.{l}.weight"), &[a, b], &lin.weight)?;
            out.keep_f32(&format!("ctrl.{net}.{l}.bias"), &[b], &lin.bias)?;
        }
    }
    let wx = src.get("ctrl.exit.wx", &[hr, e], why)?;
    let wh = src.get("ctrl.exit.wh", &[hr, hr], why)?;
    let b = src.get("ctrl.exit.b", &[hr], why)?;
    let ow = src.get("ctrl.exit.out.weight", &[1, hr], why)?;
    let ob = src.get("ctrl.exit.out.bias", &[1], why)?;
    out.keep_f32("ctrl.exit.wx", &[e, hr], &transpose(&wx, hr, e))?;
    out.keep_f32("ctrl.exit.wh", &[hr, hr], &transpose(&wh, hr, hr))?;
    out.keep_f32("ctrl.exit.b", &[hr], &b)?;
    // [1, Hr] and [Hr, 1] hold the same values in the same order.
    out.keep_f32("ctrl.exit.out.weight", &[hr, 1], &ow)?;
    out.keep_f32("ctrl.exit.out.bias", &[1], &ob)
}
