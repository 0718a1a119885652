//! The two configurations a run is made of: the model (the `tinv.config` JSON of docs/FORMAT.md,
//! stored in every checkpoint) and the training hyper-parameters (stored beside it, so `--resume`
//! can refuse a checkpoint that was made differently and say which field differs).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Controller part of the model configuration.
// Unknown keys are refused, as tinv-fold refuses them: the trainer used to read past them and
// pass them on into checkpoints that tinv-fold then would not fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerJson {
    /// Feature set, always `tinv.features.v1` here.
    pub features: String,
    /// Default budget λ chosen on the validation split.
    pub default_budget: f64,
}

/// The model configuration exactly as docs/FORMAT.md spells the `tinv.config` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `[height, width]`.
    pub image_size: [usize; 2],
    /// Input channels.
    pub channels: usize,
    /// Patch side.
    pub patch: usize,
    /// Embedding width D.
    pub dim: usize,
    /// Encoder blocks L.
    pub blocks: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width.
    pub mlp_hidden: usize,
    /// Classes K.
    pub classes: usize,
    /// LayerNorm ε.
    pub ln_eps: f64,
    /// GELU variant; the trainer only trains `erf`.
    pub gelu: String,
    /// Per-channel mean of x in [0, 1].
    pub mean: Vec<f64>,
    /// Per-channel std.
    pub std: Vec<f64>,
    /// Depth of every path, ascending, last = `blocks`.
    pub depths: Vec<usize>,
    /// Present once a controller has been trained.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub controller: Option<ControllerJson>,
}

impl ModelConfig {
    /// Patch rows × patch columns.
    pub fn patches(&self) -> usize {
        (self.image_size[0] / self.patch) * (self.image_size[1] / self.patch)
    }
    /// Patches + the class token.
    pub fn tokens(&self) -> usize {
        self.patches() + 1
    }
    /// Floats per input image.
    pub fn input_len(&self) -> usize {
        self.channels * self.image_size[0] * self.image_size[1]
    }
    /// Number of depth paths P.
    pub fn paths(&self) -> usize {
        self.depths.len()
    }

    /// The runtime's view of this configuration, which also runs the runtime's own checks
    /// (patch divides the image, heads divide dim, depths ascending and ending at `blocks`, …).
    pub fn to_runtime(&self) -> Result<tinv::Config, String> {
        if self.gelu != "erf" {
            return Err(format!(
                "gelu \"{}\" not supported by the trainer (only \"erf\")",
                self.gelu
            ));
        }
        let c = tinv::Config {
            image_h: self.image_size[0],
            image_w: self.image_size[1],
            channels: self.channels,
            patch: self.patch,
            dim: self.dim,
            blocks: self.blocks,
            heads: self.heads,
            mlp_hidden: self.mlp_hidden,
            classes: self.classes,
            ln_eps: self.ln_eps as f32,
            gelu: tinv::model::Gelu::Erf,
            mean: self.mean.iter().map(|v| *v as f32).collect(),
            std: self.std.iter().map(|v| *v as f32).collect(),
            depths: self.depths.clone(),
            controller: self
                .controller
                .as_ref()
                .map(|c| tinv::model::ControllerConfig {
                    features: c.features.clone(),
                    default_budget: c.default_budget as f32,
                }),
        };
        c.validate()?;
        Ok(c)
    }
}

/// Training hyper-parameters of the backbone and the controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    /// Seed of every random choice.
    pub seed: u64,
    /// Backbone epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate (AdamW).
    pub lr: f64,
    /// Final learning rate of the cosine schedule.
    pub min_lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay (matrices only).
    pub weight_decay: f64,
    /// Global gradient-norm clip.
    pub clip: f64,
    /// Distillation temperature T.
    pub temperature: f64,
    /// Weight of the softened-logit KL term (× T²).
    pub kd_weight: f64,
    /// Weight of the CLS-feature (cosine) matching term.
    pub feat_weight: f64,
    /// Steps over which the distillation weights ramp linearly from 0 to their value (0 = no
    /// ramp). Feature matching from an untrained teacher can collapse the class token to a
    /// constant (every CLS alike makes 1 − cos zero), so the teacher gets a head start.
    #[serde(default)]
    pub distill_ramp: usize,
    /// Weight of each exit's cross-entropy, shallowest first (empty = all equal). The loss's
    /// cross-entropy term is their weighted mean. Weighting the deep exits more keeps the
    /// shallow ones from matching them, which is what gives a controller something to choose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit_weights: Vec<f64>,
    /// Maximum random shift in pixels (augmentation).
    pub shift: usize,
    /// Training images held out (the last ones) as the validation split.
    pub val_count: usize,
    /// Training images used (0 = all); tests use a few hundred.
    pub train_limit: usize,
}

impl Default for Hyper {
    fn default() -> Hyper {
        Hyper {
            seed: 1,
            epochs: 20,
            batch: 128,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 500,
            weight_decay: 0.05,
            clip: 1.0,
            temperature: 2.0,
            kd_weight: 1.0,
            feat_weight: 0.25,
            distill_ramp: 1000,
            exit_weights: Vec::new(),
            shift: 2,
            val_count: 5000,
            train_limit: 0,
        }
    }
}

impl Hyper {
    /// Refuses values that cannot train (zero counts; non-finite, negative or inverted rates),
    /// naming the command-line flag. Valid values are left exactly as given.
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: usize, flag: &str| {
            if v == 0 {
                Err(format!("{flag} must be at least 1"))
            } else {
                Ok(())
            }
        };
        pos(self.epochs, "--epochs")?;
        pos(self.batch, "--batch")?;
        pos(self.val_count, "--val")?;
        // Applied to f32 tensors: a value finite in f64 but not in f32 (--lr 1e39) trained to
        // infinite weights and exited 0.
        let num = |v: f64, flag: &str, ok: bool, want: &str| {
            let f = v as f32;
            if !(v.is_finite() && ok) {
                Err(format!("{flag} {v}: must be {want}"))
            } else if !f.is_finite() {
                Err(format!("{flag} {v}: must be at most {:e} (f32)", f32::MAX))
            } else if v != 0.0 && f == 0.0 {
                // --lr 1e-50 passed `> 0` and trained with a learning rate of 0.
                Err(format!(
                    "{flag} {v}: must be at least {:e} (f32)",
                    f32::MIN_POSITIVE
                ))
            } else {
                Ok(())
            }
        };
        num(self.lr, "--lr", self.lr > 0.0, "a finite number > 0")?;
        num(
            self.min_lr,
            "--min-lr",
            self.min_lr >= 0.0,
            "a finite number >= 0",
        )?;
        if self.min_lr > self.lr {
            return Err(format!(
                "--min-lr {} exceeds --lr {}: the schedule decays from --lr to --min-lr",
                self.min_lr, self.lr
            ));
        }
        num(
            self.weight_decay,
            "--wd",
            self.weight_decay >= 0.0,
            "a finite number >= 0",
        )?;
        num(self.clip, "--clip", self.clip > 0.0, "a finite number > 0")?;
        num(
            self.temperature,
            "--temperature",
            self.temperature > 0.0,
            "a finite number > 0",
        )?;
        num(
            self.kd_weight,
            "--kd",
            self.kd_weight >= 0.0,
            "a finite number >= 0",
        )?;
        num(
            self.feat_weight,
            "--feat",
            self.feat_weight >= 0.0,
            "a finite number >= 0",
        )?;
        for &w in &self.exit_weights {
            num(w, "--exit-weights", w >= 0.0, "finite numbers >= 0")?;
        }
        if !self.exit_weights.is_empty() && self.exit_weights.iter().sum::<f64>() <= 0.0 {
            return Err("--exit-weights: at least one weight must be above 0".into());
        }
        Ok(())
    }
}

/// Names the first field where `saved` and `wanted` differ (`"model.dim: checkpoint 64,
/// requested 96"`), or `None` if they are equal. Works on the JSON form so every field counts.
pub fn first_difference(prefix: &str, saved: &Value, wanted: &Value) -> Option<String> {
    match (saved, wanted) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                if let Some(d) = first_difference(&format!("{prefix}.{k}"), x, y) {
                    return Some(d);
                }
            }
            None
        }
        (x, y) if x == y => None,
        (x, y) => Some(format!("{prefix}: checkpoint {x}, requested {y}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_names_the_field() {
        let a = serde_json::json!({"model": {"dim": 64, "depths": [2, 4]}, "seed": 1});
        let b = serde_json::json!({"model": {"dim": 96, "depths": [2, 4]}, "seed": 1});
        assert_eq!(
            first_difference("config", &a, &b).as_deref(),
            Some("config.model.dim: checkpoint 64, requested 96")
        );
        assert_eq!(first_difference("config", &a, &a), None);
    }

    #[test]
    fn hyper_validation_names_the_flag() {
        assert_eq!(Hyper::default().validate(), Ok(()));
        let bad = |h: Hyper| h.validate().unwrap_err();
        let d = Hyper::default;
        assert!(bad(Hyper {
            lr: f64::NAN,
            ..d()
        })
        .starts_with("--lr NaN"));
        assert!(bad(Hyper { batch: 0, ..d() }).starts_with("--batch"));
        assert!(bad(Hyper { min_lr: 1.0, ..d() }).contains("exceeds --lr"));
        assert!(bad(Hyper { clip: 0.0, ..d() }).starts_with("--clip"));
        assert!(bad(Hyper {
            temperature: 0.0,
            ..d()
        })
        .starts_with("--temperature"));
        // A huge but finite rate is the user's business (the loss check catches the blow-up).
        assert_eq!(Hyper { lr: 1e30, ..d() }.validate(), Ok(()));
    }

    #[test]
    fn format_md_example_parses() {
        let j = r#"{"image_size": [28, 28], "channels": 1, "patch": 4, "dim": 96, "blocks": 8, "heads": 3,
 "mlp_hidden": 384, "classes": 10, "ln_eps": 1e-6, "gelu": "erf",
 "mean": [0.286], "std": [0.353], "depths": [2, 4, 6, 8],
 "controller": {"features": "tinv.features.v1", "default_budget": 0.3}}"#;
        let c: ModelConfig = serde_json::from_str(j).unwrap();
        assert_eq!(c.tokens(), 50);
        assert!(c.to_runtime().is_ok());
        let mut bad = c.clone();
        bad.patch = 5;
        assert!(bad.to_runtime().unwrap_err().contains("does not divide"));
    }

    #[test]
    fn sizes_follow_the_configuration() {
        // 12×8 image of 3 channels, patch 4: 3 × 2 patches, 7 tokens, 288 floats, 2 paths.
        let c = ModelConfig {
            image_size: [12, 8],
            channels: 3,
            patch: 4,
            dim: 8,
            blocks: 2,
            heads: 2,
            mlp_hidden: 16,
            classes: 3,
            ln_eps: 1e-6,
            gelu: "erf".into(),
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
            depths: vec![1, 2],
            controller: None,
        };
        assert_eq!(
            (c.patches(), c.tokens(), c.input_len(), c.paths()),
            (6, 7, 288, 2)
        );
        let r = c.to_runtime().unwrap();
        assert_eq!(
            (r.image_h, r.image_w, r.channels, r.depths),
            (12, 8, 3, vec![1, 2])
        );
        let tanh = ModelConfig {
            gelu: "tanh".into(),
            ..c
        };
        assert!(tanh
            .to_runtime()
            .unwrap_err()
            .starts_with("gelu \"tanh\" not supported"));
    }

    #[test]
    fn hyper_validation_at_the_ends_of_each_range() {
        let d = Hyper::default;
        let ok = |h: Hyper| assert_eq!(h.validate(), Ok(()), "{h:?}");
        let bad = |h: Hyper, start: &str| {
            let e = h.validate().unwrap_err();
            assert!(e.starts_with(start), "{e} (want {start})");
        };
        // Counts: 1 is allowed, 0 is not.
        ok(Hyper {
            epochs: 1,
            batch: 1,
            val_count: 1,
            ..d()
        });
        bad(Hyper { epochs: 0, ..d() }, "--epochs must be at least 1");
        bad(
            Hyper {
                val_count: 0,
                ..d()
            },
            "--val must be at least 1",
        );
        // Rates: > 0 where a zero cannot train, >= 0 where zero switches a term off.
        bad(
            Hyper {
                lr: 0.0,
                min_lr: 0.0,
                ..d()
            },
            "--lr 0: must be a finite number > 0",
        );
        ok(Hyper {
            min_lr: 0.0,
            weight_decay: 0.0,
            kd_weight: 0.0,
            feat_weight: 0.0,
            ..d()
        });
        bad(
            Hyper {
                min_lr: -1e-9,
                ..d()
            },
            "--min-lr -0.000000001: must be a finite number >= 0",
        );
        bad(
            Hyper {
                weight_decay: -0.5,
                ..d()
            },
            "--wd -0.5: must be",
        );
        bad(
            Hyper {
                kd_weight: -1.0,
                ..d()
            },
            "--kd -1: must be",
        );
        bad(
            Hyper {
                feat_weight: -1.0,
                ..d()
            },
            "--feat -1: must be",
        );
        bad(
            Hyper {
                clip: f64::INFINITY,
                ..d()
            },
            "--clip inf: must be",
        );
        // A constant schedule (floor = peak) is allowed; a floor above the peak is not.
        ok(Hyper {
            lr: 0.5,
            min_lr: 0.5,
            ..d()
        });
        // Finite in f64 but not in f32, or nonzero in f64 but 0 in f32.
        bad(
            Hyper { lr: 1e39, ..d() },
            "--lr 1000000000000000000000000000000000000000: must be at most 3.4028235e38 (f32)",
        );
        bad(Hyper { lr: 1e-50, min_lr: 0.0, ..d() }, "--lr 0.00000000000000000000000000000000000000000000000001: must be at least 1.1754944e-38 (f32)");
        ok(Hyper {
            lr: f64::from(f32::MAX),
            ..d()
        });
        // Exit weights: each finite and >= 0, and not all zero.
        ok(Hyper {
            exit_weights: vec![0.0, 2.0],
            ..d()
        });
        bad(
            Hyper {
                exit_weights: vec![1.0, -1.0],
                ..d()
            },
            "--exit-weights -1: must be finite numbers >= 0",
        );
        bad(
            Hyper {
                exit_weights: vec![0.0, 0.0],
                ..d()
            },
            "--exit-weights: at least one weight must be above 0",
        );
    }

    #[test]
    fn a_field_on_one_side_only_is_a_difference() {
        let a = serde_json::json!({"hyper": {"seed": 1, "exit_weights": [1, 2]}});
        let b = serde_json::json!({"hyper": {"seed": 1}});
        assert_eq!(
            first_difference("config", &a, &b).as_deref(),
            Some("config.hyper.exit_weights: checkpoint [1,2], requested null")
        );
        assert_eq!(
            first_difference("config", &b, &a).as_deref(),
            Some("config.hyper.exit_weights: checkpoint null, requested [1,2]")
        );
        // Keys in name order: the first difference is `a`'s, whichever side lists it first.
        let x = serde_json::json!({"b": 1, "a": 1});
        let y = serde_json::json!({"a": 2, "b": 2});
        assert_eq!(
            first_difference("c", &x, &y).as_deref(),
            Some("c.a: checkpoint 1, requested 2")
        );
        assert_eq!(
            first_difference("c", &serde_json::json!(3), &serde_json::json!(3)),
            None
        );
    }
}
