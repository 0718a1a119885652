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
            let step = HashMap::from([(OPTIM_STEP_KEY.to_string(), self.step.to_string())]);
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

    /// Writes `s` at once (the run stops here: nothing follows to test it).
    pub fn write_now(&mut self, s: Snapshot) -> Result<(), TrainError> {
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

    /// Whether any checkpoint of this run (or the one it resumed from) is on disk.
    pub fn any_written(&self) -> bool {
        self.written.is_some()
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
        let dir = std::env::temp_dir().join(format!("tinv-pending-{}", std::process::id()));
        let out = dir.join("ck.safetensors");
        let mut p = Pending::new(out.clone(), None);
        assert_eq!(p.kept(), "no checkpoint had been written yet");
        p.hold(snap(5));
        assert!(!out.exists() && !p.any_written());
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
        std::fs::remove_dir_all(&dir).ok();
    }
}
