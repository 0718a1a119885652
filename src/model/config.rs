//! The model configuration, read from and written to `.tinv` metadata.

use crate::format::{MetaValue, Metadata};

/// The largest magnitude `(pixel − mean) / std` may reach for a pixel in [0, 1]. Image
/// normalizations give a few units; a LayerNorm's variance overflows f32 from about 1e19.
pub const MAX_NORMALIZED: f32 = 1e6;

/// The GELU variant the model was trained with. Mixing them changes logits by ~1e-3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Gelu {
    /// `0.5·x·(1 + erf(x/√2))`: PyTorch's default, timm, ONNX's Erf form.
    Erf,
    /// `0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    Tanh,
}

impl Gelu {
    /// Metadata spelling.
    pub fn name(self) -> &'static str {
        match self {
            Gelu::Erf => "erf",
            Gelu::Tanh => "tanh",
        }
    }
}

/// Everything the math depends on. Stored in the file under the `vit.*`, `paths.*` and `ctrl.*`
/// keys (see `docs/FORMAT.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Input height in pixels.
    pub image_h: usize,
    /// Input width in pixels.
    pub image_w: usize,
    /// Input channels.
    pub channels: usize,
    /// Patch side (the patch convolution's kernel and stride).
    pub patch: usize,
    /// Embedding width D.
    pub dim: usize,
    /// Number of encoder blocks.
    pub blocks: usize,
    /// Attention heads (divides `dim`).
    pub heads: usize,
    /// MLP hidden width.
    pub mlp_hidden: usize,
    /// Output classes.
    pub classes: usize,
    /// LayerNorm ε.
    pub ln_eps: f32,
    /// GELU variant.
    pub gelu: Gelu,
    /// Per-channel normalization mean (input is `(x − mean) / std`, x in [0, 1]).
    pub mean: Vec<f32>,
    /// Per-channel normalization std.
    pub std: Vec<f32>,
    /// Depths of the paths, strictly ascending, the last equal to `blocks`.
    pub depths: Vec<usize>,
    /// Controller description, if the model has one.
    pub controller: Option<ControllerConfig>,
}

/// Controller hyper-parameters (sizes are also implied by the tensors and checked against them).
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerConfig {
    /// Feature set identifier; this build knows [`crate::control::FEATURES_V1`].
    pub features: String,
    /// Budget λ used when the caller gives none.
    pub default_budget: f32,
}

impl Config {
    /// The budget λ a session uses when none is given: the controller's stored default, 0 for a
    /// model without a controller.
    pub fn default_budget(&self) -> f32 {
        self.controller.as_ref().map_or(0.0, |c| c.default_budget)
    }

    /// Patches per image (0 for a zero patch, which [`Config::validate`] refuses; this and the
    /// other sizes below never panic, whatever the public fields hold).
    pub fn patches(&self) -> usize {
        let side = |n: usize| n.checked_div(self.patch).unwrap_or(0);
        side(self.image_h).saturating_mul(side(self.image_w))
    }
    /// Tokens per image (patches + class token).
    pub fn tokens(&self) -> usize {
        self.patches().saturating_add(1)
    }
    /// The channel whose normalization takes a pixel in [0, 1] farthest from 0, as
    /// `(mean, std, largest |(pixel − mean) / std|)`; `None` without channels.
    pub fn widest_normalization(&self) -> Option<(f32, f32, f32)> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| (m, s, m.abs().max((1.0 - m).abs()) / s))
            .max_by(|a, b| a.2.total_cmp(&b.2))
    }
    /// Floats per input image.
    pub fn input_len(&self) -> usize {
        self.channels
            .saturating_mul(self.image_h)
            .saturating_mul(self.image_w)
    }
    /// Width of one attention head (0 for zero heads, which [`Config::validate`] refuses).
    pub fn head_dim(&self) -> usize {
        self.dim.checked_div(self.heads).unwrap_or(0)
    }
    /// Index of the path whose depth is `depth`.
    pub fn path_index(&self, depth: usize) -> Option<usize> {
        self.depths.iter().position(|&d| d == depth)
    }

    /// Checks the internal consistency of the numbers (not the tensors).
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: usize, what: &str| {
            if v == 0 {
                Err(format!("{what} must be > 0"))
            } else {
                Ok(())
            }
        };
        pos(self.image_h, "vit.image_size height")?;
        pos(self.image_w, "vit.image_size width")?;
        pos(self.channels, "vit.channels")?;
        pos(self.patch, "vit.patch")?;
        pos(self.dim, "vit.dim")?;
        pos(self.blocks, "vit.blocks")?;
        pos(self.heads, "vit.heads")?;
        pos(self.mlp_hidden, "vit.mlp_hidden")?;
        pos(self.classes, "vit.classes")?;
        // Sizes beyond these are not ViTs this runtime is meant for, and bound every product
        // below; the token count is only computed once its factors are known to be small.
        let limits = [
            (self.image_h, 1 << 14, "image height"),
            (self.image_w, 1 << 14, "image width"),
            (self.channels, 64, "channels"),
            (self.dim, 1 << 14, "dim"),
            (self.mlp_hidden, 1 << 16, "mlp_hidden"),
            (self.blocks, 1024, "blocks"),
            (self.classes, 1 << 20, "classes"),
        ];
        for (v, max, what) in limits {
            if v > max {
                return Err(format!("{what} {v} exceeds the supported maximum {max}"));
            }
        }
        if !self.image_h.is_multiple_of(self.patch) || !self.image_w.is_multiple_of(self.patch) {
            return Err(format!(
                "patch {} does not divide the image size {}x{}",
                self.patch, self.image_h, self.image_w
            ));
        }
        if !self.dim.is_multiple_of(self.heads) {
            return Err(format!(
                "heads {} do not divide dim {}",
                self.heads, self.dim
            ));
        }
        if self.tokens() > 1 << 16 {
            return Err(format!(
                "{} tokens exceed the supported maximum {}",
                self.tokens(),
                1 << 16
            ));
        }
        if !(self.ln_eps > 0.0 && self.ln_eps < 1.0) {
            return Err(format!("vit.ln_eps {} out of range (0, 1)", self.ln_eps));
        }
        if self.mean.len() != self.channels || self.std.len() != self.channels {
            return Err("vit.mean / vit.std must have one value per channel".into());
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err("vit.std must be finite and > 0, vit.mean finite".into());
        }
        // A pixel in [0, 1] must normalize to a sane number: a subnormal std (1/std = ∞) or a
        // huge mean opens a model on which every call fails as if the input were at fault.
        if let Some((m, s, worst)) = self.widest_normalization() {
            if worst.is_nan() || worst > MAX_NORMALIZED {
                return Err(format!(
                    "vit.mean {m} / vit.std {s} take a pixel in [0, 1] to {worst:e}, beyond \
                     ±{MAX_NORMALIZED:e}"
                ));
            }
        }
        if self.depths.is_empty()
            || self.depths.windows(2).any(|w| w[0] >= w[1])
            || self.depths[0] == 0
            || self.depths.last() != Some(&self.blocks)
        {
            return Err(format!(
                "paths.depths {:?} must be strictly ascending, start above 0 and end at vit.blocks {}",
                self.depths, self.blocks
            ));
        }
        if let Some(c) = &self.controller {
            if !(0.0..=1.0).contains(&c.default_budget) {
                return Err(format!(
                    "ctrl.default_budget {} not in [0, 1]",
                    c.default_budget
                ));
            }
        }
        Ok(())
    }

    /// Reads the configuration from metadata.
    pub fn from_meta(m: &Metadata) -> Result<Config, String> {
        let int = |k: &str| -> Result<usize, String> {
            let v = m
                .u64(k)
                .ok_or_else(|| format!("metadata key '{k}' missing or not an integer"))?;
            usize::try_from(v).map_err(|_| format!("metadata key '{k}' too large"))
        };
        let floats = |k: &str| -> Result<Vec<f32>, String> {
            m.f64s(k)
                .map(|v| v.iter().map(|x| *x as f32).collect())
                .ok_or_else(|| format!("metadata key '{k}' missing or not a float array"))
        };
        // Range-checked as stored, before the narrowing to f32 rounds a value just outside its
        // range (1.0000000001, 0.99999999999) onto the bound.
        let float = |k: &str, ok: fn(f64) -> bool, range: &str| -> Result<f32, String> {
            let v = m
                .f64(k)
                .ok_or_else(|| format!("metadata key '{k}' missing or not a float"))?;
            if !ok(v) {
                return Err(format!("{k} {v} out of range {range}"));
            }
            let narrow = v as f32;
            if !ok(f64::from(narrow)) {
                return Err(format!("{k} {v} is {narrow} in f32, out of range {range}"));
            }
            Ok(narrow)
        };
        let size = m
            .u64s("vit.image_size")
            .ok_or("metadata key 'vit.image_size' missing or not an integer array")?;
        if size.len() != 2 {
            return Err("vit.image_size must be [height, width]".into());
        }
        let gelu = match m.str("vit.gelu") {
            Some("erf") => Gelu::Erf,
            Some("tanh") => Gelu::Tanh,
            other => {
                return Err(format!(
                    "vit.gelu must be \"erf\" or \"tanh\", found {other:?}"
                ))
            }
        };
        let depths = m
            .u64s("paths.depths")
            .ok_or("metadata key 'paths.depths' missing or not an integer array")?
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| "paths.depths value too large".to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        // Absent: no controller (ctrl.* tensors then fail the open, `bind::check_unbound`).
        // Present with another type: an error, not a model that silently ignores its ctrl.*
        // tensors and runs every input at full depth.
        let controller = match m.get("ctrl.features") {
            None => None,
            Some(MetaValue::Str(f)) => Some(ControllerConfig {
                features: f.clone(),
                default_budget: float(
                    "ctrl.default_budget",
                    |v| (0.0..=1.0).contains(&v),
                    "[0, 1]",
                )?,
            }),
            Some(_) => return Err("metadata key 'ctrl.features' is not a string".into()),
        };
        let cfg = Config {
            image_h: usize::try_from(size[0]).map_err(|_| "image height too large")?,
            image_w: usize::try_from(size[1]).map_err(|_| "image width too large")?,
            channels: int("vit.channels")?,
            patch: int("vit.patch")?,
            dim: int("vit.dim")?,
            blocks: int("vit.blocks")?,
            heads: int("vit.heads")?,
            mlp_hidden: int("vit.mlp_hidden")?,
            classes: int("vit.classes")?,
            ln_eps: float("vit.ln_eps", |v| v > 0.0 && v < 1.0, "(0, 1)")?,
            gelu,
            mean: floats("vit.mean")?,
            std: floats("vit.std")?,
            depths,
            controller,
        };
        cfg.validate()?;
        // A key in the namespaces that say how to compute, which this configuration does not
        // write back, would be dropped: refused, as an unbound tensor is (FORMAT.md).
        let mut known = Metadata::new();
        cfg.to_meta(&mut known);
        for (k, _) in m.entries() {
            let computes = ["vit.", "paths.", "ctrl."].iter().any(|p| k.starts_with(p));
            if computes && known.get(k).is_none() {
                return Err(format!(
                    "metadata key '{k}' is not part of this model's configuration (a key this \
                     reader does not know, or a controller key without 'ctrl.features'): \
                     refusing to ignore it"
                ));
            }
        }
        Ok(cfg)
    }

    /// Writes the configuration as metadata entries.
    pub fn to_meta(&self, m: &mut Metadata) {
        let u = |v: usize| MetaValue::U64(v as u64);
        m.set(
            "vit.image_size",
            MetaValue::U64s(vec![self.image_h as u64, self.image_w as u64]),
        );
        m.set("vit.channels", u(self.channels));
        m.set("vit.patch", u(self.patch));
        m.set("vit.dim", u(self.dim));
        m.set("vit.blocks", u(self.blocks));
        m.set("vit.heads", u(self.heads));
        m.set("vit.mlp_hidden", u(self.mlp_hidden));
        m.set("vit.classes", u(self.classes));
        m.set("vit.ln_eps", MetaValue::F64(f64::from(self.ln_eps)));
        m.set("vit.gelu", MetaValue::Str(self.gelu.name().into()));
        m.set(
            "vit.mean",
            MetaValue::F64s(self.mean.iter().map(|v| f64::from(*v)).collect()),
        );
        m.set(
            "vit.std",
            MetaValue::F64s(self.std.iter().map(|v| f64::from(*v)).collect()),
        );
        m.set(
            "paths.depths",
            MetaValue::U64s(self.depths.iter().map(|d| *d as u64).collect()),
        );
        if let Some(c) = &self.controller {
            m.set("ctrl.features", MetaValue::Str(c.features.clone()));
            m.set(
                "ctrl.default_budget",
                MetaValue::F64(f64::from(c.default_budget)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_with(key: &str, v: MetaValue) -> Result<Config, String> {
        let mut m = Metadata::new();
        crate::synth::tiny(3, true).to_meta(&mut m);
        m.set(key, v);
        Config::from_meta(&m)
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_not_dropped() {
        assert!(meta_with("vit.dim", MetaValue::U64(16)).is_ok());
        // Present but not a string: an error, not a model without its controller.
        let e = meta_with("ctrl.features", MetaValue::U64(1)).unwrap_err();
        assert_eq!(e, "metadata key 'ctrl.features' is not a string");
        let e = meta_with("ctrl.default_budget", MetaValue::U64(0)).unwrap_err();
        assert!(
            e.contains("'ctrl.default_budget' missing or not a float"),
            "{e}"
        );
        let e = meta_with("vit.ln_eps", MetaValue::Str("1e-6".into())).unwrap_err();
        assert!(e.contains("'vit.ln_eps' missing or not a float"), "{e}");
    }

    /// Values just outside their ranges are refused as stored: narrowed to f32 first, they
    /// would round onto the bound (1.0000000001 → 1, -1e-300 → -0); one inside that rounds
    /// out of it (0.99999999999 → 1) is refused saying so.
    #[test]
    fn float_ranges_are_checked_before_the_narrowing_to_f32() {
        for (v, ok) in [
            (1.0000000001, false),
            (-1e-300, false),
            (1.0, true),
            (0.0, true),
        ] {
            let got = meta_with("ctrl.default_budget", MetaValue::F64(v));
            match (got, ok) {
                (Ok(_), true) => {}
                (Err(e), false) => {
                    assert_eq!(e, format!("ctrl.default_budget {v} out of range [0, 1]"))
                }
                (got, _) => panic!("budget {v}: {got:?}"),
            }
        }
        let e = meta_with("vit.ln_eps", MetaValue::F64(0.99999999999)).unwrap_err();
        assert_eq!(
            e,
            "vit.ln_eps 0.99999999999 is 1 in f32, out of range (0, 1)"
        );
        assert!(meta_with("vit.ln_eps", MetaValue::F64(1e-6)).is_ok());
    }

    /// Keys under vit., paths. and ctrl. say how to compute: one this reader does not know is
    /// refused, where keys of other namespaces are left to their writers.
    #[test]
    fn an_unknown_key_that_would_change_the_computation_is_refused() {
        for key in ["vit.layerscale", "paths.exits", "ctrl.temperature"] {
            let e = meta_with(key, MetaValue::U64(1)).unwrap_err();
            assert!(
                e.starts_with(&format!("metadata key '{key}' is not part of this model's")),
                "{e}"
            );
        }
        assert!(meta_with("train.epochs", MetaValue::U64(30)).is_ok());
        assert!(meta_with("tinv.note", MetaValue::Str("x".into())).is_ok());
        // A controller key without the controller.
        let mut m = Metadata::new();
        crate::synth::tiny(3, false).to_meta(&mut m);
        m.set("ctrl.default_budget", MetaValue::F64(0.5));
        let e = Config::from_meta(&m).unwrap_err();
        assert!(e.contains("'ctrl.default_budget' is not part of"), "{e}");
    }

    /// The stored `ctrl.default_budget`, and 0 without a controller (the method's docs).
    #[test]
    fn the_default_budget_is_the_stored_one_or_0() {
        let c = meta_with("ctrl.default_budget", MetaValue::F64(0.75)).unwrap();
        assert_eq!(c.default_budget(), 0.75);
        let plain = crate::synth::tiny(3, false);
        assert_eq!(plain.default_budget(), 0.0);
    }

    /// `validate` at the edges of what it documents: each size limit and the token limit
    /// allowed and one past it refused, ε in the open (0, 1), the patch dividing each side,
    /// one mean and one std per channel, and a pixel normalized to exactly ±1e6.
    #[test]
    fn validate_allows_each_limit_and_refuses_one_past_it() {
        let base = || crate::synth::tiny(3, false);
        let check = |edit: &dyn Fn(&mut Config), want: Option<&str>| {
            let mut c = base();
            edit(&mut c);
            match (c.validate(), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) if e.contains(w) => {}
                (got, _) => panic!("{c:?}: {got:?}, expected {want:?}"),
            }
        };
        type Field = fn(&mut Config) -> &mut usize;
        let limits: [(Field, usize, &str); 7] = [
            (|c| &mut c.image_h, 1 << 14, "image height 16385 exceeds"),
            (|c| &mut c.image_w, 1 << 14, "image width 16385 exceeds"),
            (|c| &mut c.channels, 64, "channels 65 exceeds"),
            (|c| &mut c.dim, 1 << 14, "dim 16385 exceeds"),
            (|c| &mut c.mlp_hidden, 1 << 16, "mlp_hidden 65537 exceeds"),
            (|c| &mut c.blocks, 1024, "blocks 1025 exceeds"),
            (|c| &mut c.classes, 1 << 20, "classes 1048577 exceeds"),
        ];
        for (field, max, msg) in limits {
            for (v, want) in [(max, None), (max + 1, Some(msg))] {
                check(
                    &|c| {
                        *field(c) = v;
                        (c.mean, c.std) = (vec![0.5; c.channels], vec![0.25; c.channels]);
                        c.depths = vec![1, c.blocks];
                    },
                    want,
                );
            }
        }
        // Patch 1: 255 × 257 is 65 535 patches and 65 536 tokens, 256 × 256 one more.
        let image = |h, w| move |c: &mut Config| (c.patch, c.image_h, c.image_w) = (1, h, w);
        check(&image(255, 257), None);
        check(
            &image(256, 256),
            Some("65537 tokens exceed the supported maximum 65536"),
        );
        let sides = |h, w| move |c: &mut Config| (c.image_h, c.image_w) = (h, w);
        check(
            &sides(8, 10),
            Some("patch 4 does not divide the image size 8x10"),
        );
        check(
            &sides(10, 8),
            Some("patch 4 does not divide the image size 10x8"),
        );
        for (eps, want) in [
            (0.0, Some("0")),
            (1.0, Some("1")),
            (2.0, Some("2")),
            (0.5, None),
        ] {
            let want = want.map(|v| format!("vit.ln_eps {v} out of range (0, 1)"));
            check(&|c| c.ln_eps = eps, want.as_deref());
        }
        let one_per_channel = Some("vit.mean / vit.std must have one value per channel");
        check(&|c| c.mean = vec![0.5; 2], one_per_channel);
        check(&|c| c.std = vec![0.25; 2], one_per_channel);
        // (1 − (−999 999)) / 1 is exactly 1e6 in f32; one more is beyond it.
        check(&|c| (c.mean, c.std) = (vec![-999_999.0], vec![1.0]), None);
        check(
            &|c| (c.mean, c.std) = (vec![-1e6], vec![1.0]),
            Some("take a pixel in [0, 1] to 1.000001e6"),
        );
    }

    #[test]
    fn a_normalization_that_no_pixel_survives_is_refused() {
        // A subnormal std (1/std = ∞ in f32) and a finite but huge mean.
        for (mean, std) in [(0.5, 1e-39), (3.4e38, 1.0), (0.5, 1e-7)] {
            let mut m = Metadata::new();
            let mut c = crate::synth::tiny(3, true);
            (c.mean, c.std) = (vec![mean as f32], vec![std as f32]);
            c.to_meta(&mut m);
            let e = Config::from_meta(&m).unwrap_err();
            assert!(e.contains("take a pixel in [0, 1] to"), "{mean} {std}: {e}");
        }
        // ImageNet's red channel: (1 − 0.485) / 0.229 ≈ 2.2.
        let mut m = Metadata::new();
        let mut c = crate::synth::tiny(3, true);
        (c.mean, c.std) = (vec![0.485], vec![0.229]);
        c.to_meta(&mut m);
        assert!(Config::from_meta(&m).is_ok());
    }
}
