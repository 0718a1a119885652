//! `tinv-fold`: turns a timm-style ViT checkpoint (safetensors, with optional tinv exit heads and
//! controller) into a folded `.tinv` file (`docs/FORMAT.md`).
//!
//! The folding math lives in [`folding`], the container reader in [`safetensors`], the
//! configuration in [`config`] and the tensor-by-tensor mapping in [`assemble`]. [`fold`] ties
//! them together; the `tinv-fold` binary is a thin command line over it.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod assemble;
pub mod config;
pub mod error;
pub mod folding;
pub mod safetensors;

pub use assemble::{fold_checkpoint, FoldOptions};
pub use config::ConfigSpec;
pub use error::{FoldError, Result};
pub use safetensors::Checkpoint;

use tinv::format::TinvWriter;
use tinv::Config;

/// Safetensors metadata key holding the configuration JSON.
pub const CONFIG_META_KEY: &str = "tinv.config";

/// Folds a parsed checkpoint. The configuration is, from weakest to strongest: the checkpoint's
/// `tinv.config` metadata, `config_json` (`--config FILE`), `flags`; what is still missing is
/// inferred from the tensors. Returns the resolved configuration and the writer. The metadata
/// holds the configuration's real values (`vit.ln_eps`, `vit.mean`, `vit.std`,
/// `ctrl.default_budget`) as given, in f64, not widened back from the f32 of [`Config`].
pub fn fold(
    ck: &Checkpoint,
    config_json: Option<&str>,
    flags: ConfigSpec,
    opts: &FoldOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(Config, TinvWriter)> {
    let mut spec = match ck.metadata().get(CONFIG_META_KEY) {
        Some(text) => ConfigSpec::from_json(text).map_err(|e| match e {
            FoldError::Config(m) => {
                FoldError::Config(format!("checkpoint metadata '{CONFIG_META_KEY}': {m}"))
            }
            other => other,
        })?,
        None => ConfigSpec::default(),
    };
    if let Some(text) = config_json {
        spec = spec.merge(ConfigSpec::from_json(text)?);
    }
    spec = spec.merge(flags);
    let (cfg, exact) = spec.resolve_exact(ck)?;
    progress(&format!(
        "config: {}x{}x{} patch {}, dim {}, {} blocks, {} heads, mlp {}, {} classes, paths {:?}{}",
        cfg.channels,
        cfg.image_h,
        cfg.image_w,
        cfg.patch,
        cfg.dim,
        cfg.blocks,
        cfg.heads,
        cfg.mlp_hidden,
        cfg.classes,
        cfg.depths,
        if cfg.controller.is_some() {
            ", controller"
        } else {
            ""
        }
    ));
    let mut w = fold_checkpoint(ck, &cfg, opts, progress)?;
    // The metadata keeps the real values as given; `cfg` holds them narrowed to f32.
    exact.write_meta(&mut w);
    Ok((cfg, w))
}
