//! Maps checkpoint tensors to folded `.tinv` tensors, in the order and page layout of
//! `docs/FORMAT.md`: controller, stem, then `blk.0 … blk.{d−1}`, `exit.{d}`, `blk.{d} …`, with a
//! page break before every block and every exit head.

use crate::config::exit_depths;
use crate::error::{FoldError, Result};
use crate::folding::{
    fold_norm_linear, patch_conv_to_gemm, plain_linear, qkv_column_scale, split_pos_embed,
    transpose, Linear,
};
use crate::safetensors::Checkpoint;
use std::collections::BTreeSet;
use tinv::format::{fnv1a64, DType, MetaValue, Metadata, TinvWriter};
use tinv::Config;

/// How to write the folded file.
#[derive(Clone, Debug)]
pub struct FoldOptions {
    /// Storage type of the matrices (`F16` halves the file; vectors and embeddings stay f32).
    pub matrix_dtype: DType,
}

impl Default for FoldOptions {
    fn default() -> Self {
        FoldOptions {
            matrix_dtype: DType::F32,
        }
    }
}

/// Reads tensors by name, checks their shapes and remembers which ones were used.
struct Source<'a> {
    ck: &'a Checkpoint,
    used: BTreeSet<String>,
}

impl Source<'_> {
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
        self.ck
            .f32(name)
            .ok_or_else(|| FoldError::missing(name, why))
    }

    fn optional(&mut self, name: &str, shape: &[usize], why: &str) -> Result<Option<Vec<f32>>> {
        if self.ck.shape(name).is_none() {
            return Ok(None);
        }
        self.get(name, shape, why).map(Some)
    }

    /// First dimension of a 2-D tensor (a hidden width), for tensors whose width is free.
    fn rows(&self, name: &str, cols: usize, why: &str) -> Result<usize> {
        match self.ck.shape(name) {
            None => Err(FoldError::missing(name, why)),
            Some([r, c]) if *c == cols && *r > 0 => Ok(*r),
            Some(s) => Err(FoldError::shape(name, s, &[0, cols])),
        }
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
    let mut w = TinvWriter::new();
    let mut meta = Metadata::new();
    meta.set(
        "tinv.producer",
        MetaValue::Str(format!("tinv-fold {}", env!("CARGO_PKG_VERSION"))),
    );
    meta.set(
        "tinv.source_hash",
        MetaValue::Str(format!("fnv1a64:{:016x}", fnv1a64(ck.bytes()))),
    );
    cfg.to_meta(&mut meta);
    for (k, v) in meta.entries() {
        w.meta(k, v.clone());
    }
    let mdt = opts.matrix_dtype;
    let (d, k) = (cfg.dim, cfg.classes);

    if cfg.controller.is_some() {
        progress("controller");
        controller(&mut src, &mut w, cfg)?;
    }

    progress("stem");
    let (c, p) = (cfg.channels, cfg.patch);
    let pw = src.get("patch_embed.proj.weight", &[d, c, p, p], "patch embedding")?;
    let pb = src.get("patch_embed.proj.bias", &[d], "patch embedding")?;
    let cls = src.get("cls_token", &[1, 1, d], "class token")?;
    let pos = src.get("pos_embed", &[1, cfg.tokens(), d], "position embedding")?;
    let (cls_pos, patch_pos) = split_pos_embed(&cls, &pos, d);
    w.tensor(
        "stem.patch.weight",
        &[c * p * p, d],
        &patch_conv_to_gemm(&pw, d, c, p),
        mdt,
    );
    w.tensor("stem.patch.bias", &[d], &pb, DType::F32);
    w.tensor("stem.cls", &[d], &cls_pos, DType::F32);
    w.tensor("stem.pos", &[cfg.patches(), d], &patch_pos, DType::F32);

    for i in 0..cfg.blocks {
        progress(&format!("block {i}"));
        block(&mut src, &mut w, cfg, i, mdt)?;
        let depth = i + 1;
        if cfg.depths.contains(&depth) {
            progress(&format!("exit {depth}"));
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
            w.page_break();
            put(&mut w, &format!("exit.{depth}.head"), head, d, k, mdt);
        }
    }

    // Exits the chosen paths leave out are dropped on purpose; anything else unused is a tensor
    // whose meaning this tool does not know.
    for depth in exit_depths(ck) {
        if depth < cfg.blocks && !cfg.depths.contains(&depth) {
            let skipped = format!("exits.{depth}.");
            if ck
                .tensors()
                .keys()
                .any(|n| n.starts_with(&skipped) && !src.used.contains(n))
            {
                progress(&format!(
                    "skipping exits.{depth}.* (not one of the paths {:?})",
                    cfg.depths
                ));
                let names: Vec<String> = ck
                    .tensors()
                    .keys()
                    .filter(|n| n.starts_with(&skipped))
                    .cloned()
                    .collect();
                src.used.extend(names);
            }
        }
    }
    if let Some(extra) = ck.tensors().keys().find(|n| !src.used.contains(*n)) {
        return Err(FoldError::UnknownTensor(extra.clone()));
    }
    Ok(w)
}

fn put(w: &mut TinvWriter, name: &str, l: Linear, n_in: usize, n_out: usize, mdt: DType) {
    w.tensor(&format!("{name}.weight"), &[n_in, n_out], &l.weight, mdt);
    w.tensor(&format!("{name}.bias"), &[n_out], &l.bias, DType::F32);
}

fn block(src: &mut Source, w: &mut TinvWriter, cfg: &Config, i: usize, mdt: DType) -> Result<()> {
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

    let qkv = fold_norm_linear(
        &qkv_w,
        qkv_b.as_deref(),
        &g1,
        &b1,
        &qkv_column_scale(d, cfg.heads),
    );
    let fc1 = fold_norm_linear(&fc1_w, Some(&fc1_b), &g2, &b2, &vec![1.0; h]);
    w.page_break();
    put(w, &format!("blk.{i}.qkv"), qkv, d, 3 * d, mdt);
    put(
        w,
        &format!("blk.{i}.proj"),
        plain_linear(&proj_w, &proj_b),
        d,
        d,
        mdt,
    );
    put(w, &format!("blk.{i}.fc1"), fc1, d, h, mdt);
    put(
        w,
        &format!("blk.{i}.fc2"),
        plain_linear(&fc2_w, &fc2_b),
        h,
        d,
        mdt,
    );
    Ok(())
}

/// Controller tensors: 2-D weights transposed from PyTorch's `[out, in]` to `[in, out]`.
/// They stay f32 even with `--dtype f16`: they are tiny, and their argmax decisions should not
/// move with storage rounding.
fn controller(src: &mut Source, w: &mut TinvWriter, cfg: &Config) -> Result<()> {
    let f = tinv::control::feature_len(cfg.channels);
    let np = cfg.depths.len();
    let e = tinv::control::EXIT_FEATURES;
    let why = "controller";
    let hp = src.rows("ctrl.pred.fc1.weight", f, why)?;
    let hq = src.rows("ctrl.policy.fc1.weight", f + np + 1, why)?;
    let hr = src.rows("ctrl.exit.wx", e, why)?;
    for (net, n_in, hidden) in [("pred", f, hp), ("policy", f + np + 1, hq)] {
        let w1 = src.get(&format!("ctrl.{net}.fc1.weight"), &[hidden, n_in], why)?;
        let b1 = src.get(&format!("ctrl.{net}.fc1.bias"), &[hidden], why)?;
        let w2 = src.get(&format!("ctrl.{net}.fc2.weight"), &[np, hidden], why)?;
        let b2 = src.get(&format!("ctrl.{net}.fc2.bias"), &[np], why)?;
        put(
            w,
            &format!("ctrl.{net}.fc1"),
            plain_linear(&w1, &b1),
            n_in,
            hidden,
            DType::F32,
        );
        put(
            w,
            &format!("ctrl.{net}.fc2"),
            plain_linear(&w2, &b2),
            hidden,
            np,
            DType::F32,
        );
    }
    let wx = src.get("ctrl.exit.wx", &[hr, e], why)?;
    let wh = src.get("ctrl.exit.wh", &[hr, hr], why)?;
    let b = src.get("ctrl.exit.b", &[hr], why)?;
    let ow = src.get("ctrl.exit.out.weight", &[1, hr], why)?;
    let ob = src.get("ctrl.exit.out.bias", &[1], why)?;
    w.tensor("ctrl.exit.wx", &[e, hr], &transpose(&wx, hr, e), DType::F32);
    w.tensor(
        "ctrl.exit.wh",
        &[hr, hr],
        &transpose(&wh, hr, hr),
        DType::F32,
    );
    w.tensor("ctrl.exit.b", &[hr], &b, DType::F32);
    w.tensor("ctrl.exit.out.weight", &[hr, 1], &ow, DType::F32);
    w.tensor("ctrl.exit.out.bias", &[1], &ob, DType::F32);
    Ok(())
}
