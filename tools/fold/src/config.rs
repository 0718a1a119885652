//! The fold configuration: a partial [`tinv::Config`] from JSON (the checkpoint's `tinv.config`
//! metadata or `--config FILE`) and flags, completed from the tensors' shapes.

use crate::error::{FoldError, Result};
use crate::safetensors::Checkpoint;
use serde_json::Value;
use tinv::format::{MetaValue, TinvWriter};
use tinv::model::{ControllerConfig, Gelu};
use tinv::Config;

/// Default LayerNorm ε: timm's ViT uses `partial(nn.LayerNorm, eps=1e-6)`.
pub const DEFAULT_LN_EPS: f64 = 1e-6;
/// ImageNet mean, the default normalization for 3-channel models (timm's ViT default).
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet std.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// A configuration with every field optional; later sources override earlier ones. Real values
/// are kept as given (f64): [`Config`] narrows them to f32, the `.tinv` metadata stores them
/// as f64 (see [`Exact`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigSpec {
    /// Input height, width.
    pub image_size: Option<(usize, usize)>,
    /// Input channels.
    pub channels: Option<usize>,
    /// Patch side.
    pub patch: Option<usize>,
    /// Embedding width.
    pub dim: Option<usize>,
    /// Encoder blocks.
    pub blocks: Option<usize>,
    /// Attention heads (never inferred).
    pub heads: Option<usize>,
    /// MLP hidden width.
    pub mlp_hidden: Option<usize>,
    /// Classes.
    pub classes: Option<usize>,
    /// LayerNorm ε.
    pub ln_eps: Option<f64>,
    /// GELU variant.
    pub gelu: Option<Gelu>,
    /// Per-channel mean.
    pub mean: Option<Vec<f64>>,
    /// Per-channel std.
    pub std: Option<Vec<f64>>,
    /// Path depths.
    pub depths: Option<Vec<usize>>,
    /// Controller feature set.
    pub features: Option<String>,
    /// Controller default budget λ.
    pub default_budget: Option<f64>,
}

/// The real-valued fields of a resolved configuration as given (f64), before [`Config`] narrows
/// them to f32. `docs/FORMAT.md` stores them as f64: written from the f32 values, `1e-6` came
/// out as `9.999999974752427e-7`. The runtime narrows them to the same f32 values either way.
#[derive(Clone, Debug, PartialEq)]
pub struct Exact {
    /// LayerNorm ε.
    pub ln_eps: f64,
    /// Per-channel mean.
    pub mean: Vec<f64>,
    /// Per-channel std.
    pub std: Vec<f64>,
    /// Controller default budget λ, when there is a controller.
    pub default_budget: Option<f64>,
}

impl Exact {
    /// Replaces the metadata entries that [`Config::to_meta`] wrote from the f32 values
    /// (`vit.ln_eps`, `vit.mean`, `vit.std`, `ctrl.default_budget`) with these.
    pub fn write_meta(&self, w: &mut TinvWriter) {
        w.meta("vit.ln_eps", MetaValue::F64(self.ln_eps));
        w.meta("vit.mean", MetaValue::F64s(self.mean.clone()));
        w.meta("vit.std", MetaValue::F64s(self.std.clone()));
        if let Some(b) = self.default_budget {
            w.meta("ctrl.default_budget", MetaValue::F64(b));
        }
    }
}

fn cfg_err(msg: impl Into<String>) -> FoldError {
    FoldError::Config(msg.into())
}

fn size(v: &Value, key: &str) -> Result<usize> {
    v.as_u64()
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| cfg_err(format!("'{key}' must be a non-negative integer, found {v}")))
}

fn floats(v: &Value, key: &str) -> Result<Vec<f64>> {
    v.as_array()
        .and_then(|a| a.iter().map(Value::as_f64).collect())
        .ok_or_else(|| cfg_err(format!("'{key}' must be an array of numbers, found {v}")))
}

/// Parses a GELU name.
pub fn parse_gelu(s: &str) -> Result<Gelu> {
    match s {
        "erf" => Ok(Gelu::Erf),
        "tanh" => Ok(Gelu::Tanh),
        _ => Err(cfg_err(format!(
            "gelu must be \"erf\" or \"tanh\", found \"{s}\""
        ))),
    }
}

impl ConfigSpec {
    /// Parses the JSON object of `docs/FORMAT.md` ("Checkpoint conventions"). Unknown keys are
    /// errors, so a typo cannot silently fall back to a default.
    pub fn from_json(text: &str) -> Result<ConfigSpec> {
        let v: Value = serde_json::from_str(text).map_err(|e| cfg_err(format!("bad JSON: {e}")))?;
        let o = v
            .as_object()
            .ok_or_else(|| cfg_err("the JSON is not an object"))?;
        let mut s = ConfigSpec::default();
        for (k, v) in o {
            match k.as_str() {
                "image_size" => {
                    s.image_size = Some(match v {
                        Value::Array(a) if a.len() == 2 => (size(&a[0], k)?, size(&a[1], k)?),
                        Value::Number(_) => (size(v, k)?, size(v, k)?),
                        _ => {
                            return Err(cfg_err(format!(
                                "'image_size' must be [h, w] or n, found {v}"
                            )))
                        }
                    })
                }
                "channels" => s.channels = Some(size(v, k)?),
                "patch" => s.patch = Some(size(v, k)?),
                "dim" => s.dim = Some(size(v, k)?),
                "blocks" => s.blocks = Some(size(v, k)?),
                "heads" => s.heads = Some(size(v, k)?),
                "mlp_hidden" => s.mlp_hidden = Some(size(v, k)?),
                "classes" => s.classes = Some(size(v, k)?),
                "ln_eps" => {
                    s.ln_eps =
                        Some(v.as_f64().ok_or_else(|| {
                            cfg_err(format!("'ln_eps' must be a number, found {v}"))
                        })?)
                }
                "gelu" => {
                    s.gelu = Some(parse_gelu(v.as_str().ok_or_else(|| {
                        cfg_err(format!("'gelu' must be a string, found {v}"))
                    })?)?)
                }
                "mean" => s.mean = Some(floats(v, k)?),
                "std" => s.std = Some(floats(v, k)?),
                "depths" => {
                    s.depths = Some(
                        v.as_array()
                            .ok_or_else(|| {
                                cfg_err(format!("'depths' must be an array, found {v}"))
                            })?
                            .iter()
                            .map(|d| size(d, "depths"))
                            .collect::<Result<_>>()?,
                    )
                }
                "controller" => {
                    let c = v
                        .as_object()
                        .ok_or_else(|| cfg_err("'controller' must be an object"))?;
                    for (ck, cv) in c {
                        match ck.as_str() {
                            "features" => {
                                s.features = Some(
                                    cv.as_str()
                                        .ok_or_else(|| {
                                            cfg_err("'controller.features' must be a string")
                                        })?
                                        .to_string(),
                                )
                            }
                            "default_budget" => {
                                s.default_budget = Some(cv.as_f64().ok_or_else(|| {
                                    cfg_err("'controller.default_budget' must be a number")
                                })?)
                            }
                            _ => return Err(cfg_err(format!("unknown key 'controller.{ck}'"))),
                        }
                    }
                }
                _ => return Err(cfg_err(format!("unknown key '{k}'"))),
            }
        }
        Ok(s)
    }

    /// The model-defining fields that `over` sets to another value than `self` does, as
    /// `name old → new`: what [`merge`](Self::merge) would change in a trained configuration.
    /// `depths` and `default_budget` are left out: choosing paths and a budget at fold time is
    /// what those flags are for.
    pub fn changed_by(&self, over: &ConfigSpec) -> Vec<String> {
        let mut v = Vec::new();
        macro_rules! compare {
            ($($f:ident),*) => {$(
                if let (Some(a), Some(b)) = (&self.$f, &over.$f) {
                    if a != b {
                        v.push(format!("{} {:?} → {:?}", stringify!($f), a, b));
                    }
                }
            )*};
        }
        compare!(
            image_size, channels, patch, dim, blocks, heads, mlp_hidden, classes, ln_eps, gelu,
            mean, std, features
        );
        v
    }

    /// Fields set in `over` replace those in `self`.
    pub fn merge(self, over: ConfigSpec) -> ConfigSpec {
        ConfigSpec {
            image_size: over.image_size.or(self.image_size),
            channels: over.channels.or(self.channels),
            patch: over.patch.or(self.patch),
            dim: over.dim.or(self.dim),
            blocks: over.blocks.or(self.blocks),
            heads: over.heads.or(self.heads),
            mlp_hidden: over.mlp_hidden.or(self.mlp_hidden),
            classes: over.classes.or(self.classes),
            ln_eps: over.ln_eps.or(self.ln_eps),
            gelu: over.gelu.or(self.gelu),
            mean: over.mean.or(self.mean),
            std: over.std.or(self.std),
            depths: over.depths.or(self.depths),
            features: over.features.or(self.features),
            default_budget: over.default_budget.or(self.default_budget),
        }
    }

    /// Completes the configuration from the checkpoint's tensor shapes and checks that given
    /// and implied values agree. Tensor shapes in detail are checked later, tensor by tensor.
    pub fn resolve(&self, ck: &Checkpoint) -> Result<Config> {
        self.resolve_exact(ck).map(|(cfg, _)| cfg)
    }

    /// [`resolve`](Self::resolve), plus the real values as given, for the metadata.
    pub fn resolve_exact(&self, ck: &Checkpoint) -> Result<(Config, Exact)> {
        let pw_name = "patch_embed.proj.weight";
        let pw = ck
            .shape(pw_name)
            .ok_or_else(|| FoldError::missing(pw_name, "the patch embedding"))?;
        let [dim_t, ch_t, p_t, p2_t] = pw else {
            return Err(cfg_err(format!(
                "'{pw_name}' must be 4-D [dim, channels, p, p], found {pw:?}"
            )));
        };
        if p_t != p2_t {
            return Err(cfg_err(format!(
                "'{pw_name}' has a non-square kernel {pw:?}"
            )));
        }
        let implied = |name: &str, given: Option<usize>, from_t: usize| -> Result<usize> {
            match given {
                Some(g) if g != from_t => Err(cfg_err(format!(
                    "{name} is given as {g} but the tensors imply {from_t}"
                ))),
                _ => Ok(from_t),
            }
        };
        let dim = implied("dim", self.dim, *dim_t)?;
        let channels = implied("channels", self.channels, *ch_t)?;
        let patch = implied("patch", self.patch, *p_t)?;
        let blocks = implied("blocks", self.blocks, count_blocks(ck))?;
        if blocks == 0 {
            return Err(FoldError::missing(
                "blocks.0.attn.qkv.weight",
                "a ViT needs at least one block",
            ));
        }
        let mlp_t = leading_dim(ck, "blocks.0.mlp.fc1.weight", dim, "the MLP width")?;
        let mlp_hidden = implied("mlp_hidden", self.mlp_hidden, mlp_t)?;
        let classes_t = leading_dim(ck, "head.weight", dim, "the classifier")?;
        let classes = implied("classes", self.classes, classes_t)?;
        let heads = self.heads.ok_or_else(|| {
            cfg_err("'heads' is not given and cannot be inferred from the tensors (use --heads N)")
        })?;
        if heads == 0 || dim % heads != 0 {
            return Err(cfg_err(format!("heads {heads} do not divide dim {dim}")));
        }

        let pos = ck
            .shape("pos_embed")
            .ok_or_else(|| FoldError::missing("pos_embed", "position embedding"))?;
        let tokens = match pos {
            [1, n, d] if *d == dim => *n,
            _ => return Err(FoldError::shape("pos_embed", pos, &[1, 0, dim])),
        };
        let patches = tokens.saturating_sub(1);
        let (image_h, image_w) = match self.image_size {
            Some(hw) => hw,
            None => {
                let side = (patches as f64).sqrt().round() as usize;
                if side * side != patches || patches == 0 {
                    return Err(cfg_err(format!(
                        "pos_embed has {patches} patch positions, not a square grid: give image_size (--image-size HxW)"
                    )));
                }
                (side * patch, side * patch)
            }
        };
        let depths = self.depths.clone().unwrap_or_else(|| {
            let mut d = exit_depths(ck);
            d.retain(|&x| x < blocks);
            d.push(blocks);
            d
        });
        let controller_present = ck.tensors().keys().any(|k| k.starts_with("ctrl."));
        let controller = match (controller_present, &self.features, self.default_budget) {
            (false, None, None) => None,
            (false, Some(_), _) => {
                return Err(FoldError::missing(
                    "ctrl.pred.fc1.weight",
                    "the configuration names a controller feature set",
                ))
            }
            (false, None, Some(_)) => {
                return Err(FoldError::missing(
                    "ctrl.pred.fc1.weight",
                    "--budget or the configuration gives a controller default budget",
                ))
            }
            (true, _, None) => {
                return Err(cfg_err(
                    "the checkpoint has controller tensors but no controller.default_budget (use --budget λ)",
                ))
            }
            (true, f, Some(b)) => {
                let v1 = tinv::control::FEATURES_V1;
                let features = f.clone().unwrap_or_else(|| v1.to_string());
                if features != v1 {
                    return Err(cfg_err(format!(
                        "controller.features '{features}' is unknown (this build knows '{v1}')"
                    )));
                }
                Some(ControllerConfig {
                    features,
                    default_budget: b as f32,
                })
            }
        };
        let (mean, std) = match (&self.mean, &self.std, channels) {
            (Some(m), Some(s), _) => (m.clone(), s.clone()),
            (None, None, 3) => (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()),
            _ => {
                return Err(cfg_err(format!(
                    "give both mean and std (one value per channel; {channels} channels has no default)"
                )))
            }
        };
        let exact = Exact {
            ln_eps: self.ln_eps.unwrap_or(DEFAULT_LN_EPS),
            mean,
            std,
            default_budget: controller.as_ref().and(self.default_budget),
        };
        // The f64 values are checked as well as their f32 narrowings: 1.0000000001 is λ = 1 in
        // f32 but out of range in the metadata.
        if !(exact.ln_eps > 0.0 && exact.ln_eps < 1.0) {
            return Err(cfg_err(format!(
                "vit.ln_eps {} out of range (0, 1)",
                exact.ln_eps
            )));
        }
        if let Some(b) = exact.default_budget.filter(|b| !(0.0..=1.0).contains(b)) {
            return Err(cfg_err(format!("ctrl.default_budget {b} not in [0, 1]")));
        }
        let narrow = |v: &[f64]| v.iter().map(|x| *x as f32).collect();
        let cfg = Config {
            image_h,
            image_w,
            channels,
            patch,
            dim,
            blocks,
            heads,
            mlp_hidden,
            classes,
            ln_eps: exact.ln_eps as f32,
            gelu: self.gelu.unwrap_or(Gelu::Erf),
            mean: narrow(&exact.mean),
            std: narrow(&exact.std),
            depths,
            controller,
        };
        cfg.validate().map_err(cfg_err)?;
        if cfg.patches() != patches {
            return Err(FoldError::shape("pos_embed", pos, &[1, cfg.tokens(), dim]));
        }
        check_paths(ck, &cfg.depths, blocks)?;
        Ok((cfg, exact))
    }
}

/// The paths `depths` (valid for `blocks` blocks) against the checkpoint, before any tensor is
/// read: every depth below `blocks` needs its exit head, and a controller (`ctrl.*`) can only be
/// folded with every path it was trained to choose among: those of the checkpoint, each exit
/// plus full depth. (Without these checks a missing exit or a subset of the paths was reported as
/// a controller tensor of the wrong shape.)
fn check_paths(ck: &Checkpoint, depths: &[usize], blocks: usize) -> Result<()> {
    let mut all = exit_depths(ck);
    all.retain(|&d| d < blocks);
    if let Some(d) = depths.iter().find(|&&d| d < blocks && !all.contains(&d)) {
        return Err(FoldError::missing(
            &format!("exits.{d}.norm.weight"),
            &format!("exit head of the depth-{d} path; the checkpoint has exits at depths {all:?}"),
        ));
    }
    all.push(blocks);
    if depths != all && ck.tensors().keys().any(|k| k.starts_with("ctrl.")) {
        return Err(cfg_err(format!(
            "paths {depths:?} leave out some of {all:?}, the paths the checkpoint's controller \
             (ctrl.*) was trained to choose among; it cannot be folded for fewer: fold every \
             path (no --depths), or remove the ctrl.* tensors for a model without a controller"
        )));
    }
    Ok(())
}

/// The first dimension of the 2-D tensor `name`, whose second must be `cols`: a width the model
/// leaves free (an MLP or hidden width, the classes), read from PyTorch's `[out, in]` weight.
pub fn leading_dim(ck: &Checkpoint, name: &str, cols: usize, why: &str) -> Result<usize> {
    match ck.shape(name) {
        None => Err(FoldError::missing(name, why)),
        Some([r, c]) if *c == cols && *r > 0 => Ok(*r),
        Some(s) => Err(FoldError::shape(name, s, &[0, cols])),
    }
}

/// The indices `i` of tensors named `{prefix}{i}.…`, ascending and unique.
fn indices(ck: &Checkpoint, prefix: &str) -> Vec<usize> {
    let mut d: Vec<usize> = ck
        .tensors()
        .keys()
        .filter_map(|k| k.strip_prefix(prefix)?.split('.').next()?.parse().ok())
        .collect();
    d.sort_unstable();
    d.dedup();
    d
}

/// Number of encoder blocks: one more than the highest `blocks.{i}` index.
fn count_blocks(ck: &Checkpoint) -> usize {
    indices(ck, "blocks.")
        .last()
        .map_or(0, |i| i.saturating_add(1))
}

/// Depths `d` that have `exits.{d}.*` tensors, ascending.
pub fn exit_depths(ck: &Checkpoint) -> Vec<usize> {
    indices(ck, "exits.")
}
