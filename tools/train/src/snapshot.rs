//! Training checkpoints: the model, its optimizer sidecar and the training state, taken from the
//! running trainer as host copies and written as a pair.
//!
//! A checkpoint taken during training is written only once a step from its weights has run with
//! a finite loss and gradient ([`Pending`]), so the file on disk always holds weights that
//! trained on: when a step goes non-finite, the checkpoint it would have overwritten is still
//! the last good one.

use crate::checkpoint::{self, CONFIG_KEY, TRAIN_KEY};
use crate::optim::AdamW;
use crate::tensors::HostTensor;
use crate::train::{TrainError, TrainMeta};
use crate::vit::Vit;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key of the optimizer sidecar: the global step it was written at.
pub const OPTIM_STEP_KEY: &str = "tinv.optim.step";
/// Metadata key of the optimizer sidecar: [`checkpoint::model_fingerprint`] of the checkpoint
/// written with it.
pub const OPTIM_MODEL_KEY: &str = "tinv.optim.model";

/// Host copies of everything a checkpoint holds.
pub struct Snapshot {
    model: Vec<HostTensor>,
    optim: Option<Vec<HostTensor>>,
    meta: HashMap<String, String>,
    step: usize,
}

impl Snapshot {
    /// Copies the model, the optimizer state (when given) and `meta` off the trainer.
    pub fn take(vit: &Vit, opt: Option<&AdamW>, meta: &TrainMeta) -> Result<Snapshot, TrainError> {
        let m = HashMap::from([
            (CONFIG_KEY.to_string(), json(&vit.cfg)?),
            (TRAIN_KEY.to_string(), json(meta)?),
        ]);
        Ok(Snapshot {
            model: vit.to_host()?,
            optim: opt.map(|o| o.to_host(vit.vars())).transpose()?,
            meta: m,
            step: meta.global_step,
        })
    }

    /// Writes the optimizer sidecar, then the checkpoint, each atomically (temporary file and
    /// rename). The sidecar records its step, and the one it replaces is kept as
    /// `*.optim.prev.safetensors`: a run killed between the two renames leaves the old
    /// checkpoint with its own state there, which a resume picks by step.
    pub fn write(&self, path: &Path) -> Result<(), TrainError> {
        if let Some(optim) = &self.optim {
            let step = HashMap::from([
                (OPTIM_STEP_KEY.to_string(), self.step.to_string()),
                (
                    OPTIM_MODEL_KEY.to_string(),
                    format!("{:#018x}", checkpoint::model_fingerprint(&self.model)),
                ),
            ]);
            checkpoint::save_keeping_previous(
                &checkpoint::optim_path(path),
                &checkpoint::optim_prev_path(path),
                optim,
                &step,
            )?;
        }
        checkpoint::save(path, &self.model, &self.meta)?;
        Ok(())
    }

    /// The global step the snapshot was taken at.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The first tensor (model or optimizer moment) holding NaN or ±inf, by name.
    fn non_finite(&self) -> Option<&str> {
        let optim = self.optim.iter().flatten();
        self.model
            .iter()
            .chain(optim)
            .find(|t| t.data.iter().any(|v| !v.is_finite()))
            .map(|t| t.name.as_str())
    }
}

/// The checkpoints of one run: the last one written (known good) and one taken but held back
/// until a step from its weights has run finite.
pub struct Pending {
    out: PathBuf,
    held: Option<Snapshot>,
    written: Option<(PathBuf, usize)>,
}

impl Pending {
    /// For a run writing to `out`; `resumed` is the checkpoint it resumed from and its step.
    pub fn new(out: PathBuf, resumed: Option<(PathBuf, usize)>) -> Pending {
        Pending {
            out,
            held: None,
            written: resumed,
        }
    }

    /// Holds `s` until [`Pending::step_ran_finite`] (replacing one still held).
    pub fn hold(&mut self, s: Snapshot) {
        self.held = Some(s);
    }

    /// Writes `s` at once (the run stops here: nothing follows to test it). Weights or moments
    /// that are not finite are not written: the run ends with an error, keeping the last good
    /// checkpoint (the last epoch's, or `--stop-at`'s, went out unchecked before).
    pub fn write_now(&mut self, s: Snapshot) -> Result<(), TrainError> {
        if let Some(name) = s.non_finite() {
            self.held = None;
            return Err(TrainError::NonFinite(format!(
                "tensor '{name}' is not finite at global step {}; training stopped, {}",
                s.step(),
                self.kept()
            )));
        }
        s.write(&self.out)?;
        self.written = Some((self.out.clone(), s.step()));
        self.held = None;
        Ok(())
    }

    /// A step from the current weights had a finite loss and gradient: the held checkpoint is
    /// good, and is written.
    pub fn step_ran_finite(&mut self) -> Result<(), TrainError> {
        match self.held.take() {
            Some(s) => self.write_now(s),
            None => Ok(()),
        }
    }

    /// Whether this run's `out` holds its latest checkpoint (or the resumed one, when that is
    /// `out`).
    pub fn out_written(&self) -> bool {
        self.written.as_ref().is_some_and(|(p, _)| p == &self.out)
    }

    /// What a stop on a non-finite value leaves behind, for the error message.
    pub fn kept(&self) -> String {
        let dropped = self.held.as_ref().map_or(String::new(), |s| {
            format!(
                " (the checkpoint of step {} was not written: the first step from its weights \
                 failed)",
                s.step()
            )
        });
        match &self.written {
            Some((p, st)) => format!(
                "the last good checkpoint {} (step {st}) is kept{dropped}",
                p.display()
            ),
            None => format!("no checkpoint had been written yet{dropped}"),
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, TrainError> {
    serde_json::to_string(v).map_err(|e| TrainError::Input(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(step: usize) -> Snapshot {
        Snapshot {
            model: Vec::new(),
            optim: None,
            meta: HashMap::from([("step".to_string(), step.to_string())]),
            step,
        }
    }

    #[test]
    fn a_checkpoint_reaches_the_disk_only_after_a_finite_step_from_it() {
        let dir = crate::test_dir("pending");
        let out = dir.join("ck.safetensors");
        let mut p = Pending::new(out.clone(), None);
        assert_eq!(p.kept(), "no checkpoint had been written yet");
        p.hold(snap(5));
        assert!(!out.exists() && !p.out_written());
        assert!(p.kept().starts_with(
            "no checkpoint had been written yet (the checkpoint of step 5 was not written"
        ));
        p.step_ran_finite().unwrap();
        let first = std::fs::read(&out).unwrap();
        assert_eq!(
            p.kept(),
            format!(
                "the last good checkpoint {} (step 5) is kept",
                out.display()
            )
        );
        // The next one is held; a non-finite step now leaves step 5's file as it was.
        p.hold(snap(10));
        assert!(p
            .kept()
            .contains("(step 5) is kept (the checkpoint of step 10 was not written"));
        assert_eq!(std::fs::read(&out).unwrap(), first);
        p.step_ran_finite().unwrap();
        assert_ne!(std::fs::read(&out).unwrap(), first);
        p.write_now(snap(11)).unwrap();
        assert!(p.kept().ends_with("(step 11) is kept"));
        // Finite weights and moments are written.
        let mut s = snap(11);
        let w = crate::tensors::HostTensor {
            name: "w".into(),
            shape: vec![2],
            data: vec![1.0, -2.0],
        };
        s.model = vec![w.clone()];
        s.optim = Some(vec![w.clone()]);
        p.write_now(s).unwrap();
        assert_eq!(checkpoint::load(&out).unwrap().0, [w]);
        // A last checkpoint (written at once, untested by a step) with an infinite weight or
        // moment is refused, and step 11's file stays.
        let written = std::fs::read(&out).unwrap();
        for in_optim in [false, true] {
            let bad = vec![crate::tensors::HostTensor {
                name: "w".into(),
                shape: vec![2],
                data: vec![1.0, f32::INFINITY],
            }];
            let mut s = snap(12);
            if in_optim {
                s.optim = Some(bad);
            } else {
                s.model = bad;
            }
            match p.write_now(s) {
                Err(TrainError::NonFinite(m)) => assert!(
                    m.starts_with("tensor 'w' is not finite at global step 12")
                        && m.ends_with("(step 11) is kept"),
                    "{m}"
                ),
                other => panic!("{other:?}"),
            }
            assert_eq!(std::fs::read(&out).unwrap(), written);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_run_resumed_into_another_file_writes_it_once() {
        let dir = crate::test_dir("pending-out");
        let out = dir.join("b.safetensors");
        let mut p = Pending::new(out.clone(), Some((dir.join("a.safetensors"), 3)));
        // Resumed from a.safetensors: `out` does not hold the run's result yet.
        assert!(!p.out_written());
        p.write_now(snap(4)).unwrap();
        assert!(p.out_written());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_snapshot_writes_the_model_its_state_and_both_records() {
        let cfg: crate::config::ModelConfig = serde_json::from_value(serde_json::json!({
            "image_size": [4, 4], "channels": 1, "patch": 2, "dim": 4, "blocks": 1, "heads": 1,
            "mlp_hidden": 4, "classes": 2, "ln_eps": 1e-6, "gelu": "erf",
            "mean": [0.0], "std": [1.0], "depths": [1]}))
        .unwrap();
        let ts = crate::tensors::init_backbone(&cfg, &mut crate::rng::Rng::new(1, 0));
        let vit = Vit::from_host(&cfg, &ts).unwrap();
        let opt = AdamW::new(vit.vars()).unwrap();
        let meta = TrainMeta {
            model: cfg.clone(),
            hyper: crate::config::Hyper::default(),
            epoch: 1,
            step_in_epoch: 2,
            global_step: 7,
            seconds: 1.5,
            history: Vec::new(),
            data: None,
            partial: None,
        };
        let s = Snapshot::take(&vit, Some(&opt), &meta).unwrap();
        assert_eq!(s.step(), 7);
        let dir = crate::test_dir("snap");
        let out = dir.join("m.safetensors");
        s.write(&out).unwrap();
        let (model, m) = checkpoint::load(&out).unwrap();
        let mut sorted = ts.clone();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(model, sorted);
        let back: crate::config::ModelConfig = serde_json::from_str(&m[CONFIG_KEY]).unwrap();
        assert_eq!(back, cfg);
        let train: TrainMeta = serde_json::from_str(&m[TRAIN_KEY]).unwrap();
        assert_eq!(
            (train.epoch, train.step_in_epoch, train.global_step),
            (1, 2, 7)
        );
        // The sidecar: zero moments `opt.m.*` / `opt.v.*` of every tensor, its step, and the
        // fingerprint of the weights written beside it.
        let (moments, om) = checkpoint::load(&checkpoint::optim_path(&out)).unwrap();
        assert_eq!(moments.len(), 2 * ts.len());
        assert!(moments.iter().all(|t| t.data.iter().all(|&v| v == 0.0)));
        assert!(moments.iter().any(|t| t.name == "opt.v.head.weight"));
        assert_eq!(om[OPTIM_STEP_KEY], "7");
        let fp = checkpoint::model_fingerprint(&ts);
        assert_eq!(om[OPTIM_MODEL_KEY], format!("0x{fp:016x}"));
        // Without the optimizer, no sidecar.
        let bare = dir.join("bare.safetensors");
        Snapshot::take(&vit, None, &meta)
            .unwrap()
            .write(&bare)
            .unwrap();
        assert!(bare.is_file() && !checkpoint::optim_path(&bare).exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
