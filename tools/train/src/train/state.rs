//! The training state a checkpoint carries under `tinv.train`: configuration, progress, the
//! history of epoch metrics, and the stamp of the data, which `--resume` checks.

use crate::checkpoint::TRAIN_KEY;
use crate::config::{Hyper, ModelConfig};
use crate::data::Dataset;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Metrics logged at the end of each epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Training accuracy of the deepest exit (augmented batches).
    pub train_acc: f64,
    /// Validation accuracy of each path.
    pub val_acc: Vec<f64>,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// Training state stored in checkpoints under `tinv.train`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainMeta {
    /// The backbone configuration (without the controller part).
    pub model: ModelConfig,
    /// Hyper-parameters.
    pub hyper: Hyper,
    /// Epochs completed.
    pub epoch: usize,
    /// Steps completed inside the current epoch.
    pub step_in_epoch: usize,
    /// Optimizer steps so far.
    pub global_step: usize,
    /// Training seconds so far (all runs).
    pub seconds: f64,
    /// Per-epoch metrics so far.
    pub history: Vec<EpochMetrics>,
    /// The training split it was trained on; `--resume` refuses another. Absent in checkpoints
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataStamp>,
    /// The running sums of the epoch in progress, in a checkpoint written inside an epoch, so
    /// that a resumed epoch's metrics cover all its steps. Absent at epoch ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<EpochSums>,
}

/// Running sums of an epoch in progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    /// Sum of the steps' losses.
    pub loss_sum: f64,
    /// Training images the deepest exit classified right.
    pub right: usize,
    /// Training images seen.
    pub seen: usize,
    /// Steps taken.
    pub steps: usize,
    /// Wall-clock seconds spent.
    pub seconds: f64,
}

/// What identifies the data a backbone was trained on: the training split's size and a hash of
/// its images and labels, and the same hash of the validation split (whose history the
/// checkpoint records and on which the controller is trained).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataStamp {
    /// Training images.
    pub train_images: usize,
    /// `fnv1a64:` of the images' bytes, then the labels'.
    pub fingerprint: String,
    /// The same of the validation split; absent in checkpoints written before it was recorded
    /// (other validation images went unnoticed then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_fingerprint: Option<String>,
}

fn fingerprint(d: &Dataset) -> String {
    let h = tinv::format::fnv1a64(&d.images);
    let h = tinv::format::fnv1a64_continue(h, &d.labels);
    format!("fnv1a64:{h:016x}")
}

impl DataStamp {
    /// The stamp of `train` and `val`.
    pub fn of(train: &Dataset, val: &Dataset) -> DataStamp {
        DataStamp {
            train_images: train.len(),
            fingerprint: fingerprint(train),
            val_fingerprint: Some(fingerprint(val)),
        }
    }

    /// Whether `saved`, the stamp in the checkpoint at `path`, is this one; otherwise an error
    /// naming the difference and ending in `refusal`. A checkpoint without a stamp (written
    /// before it was recorded) passes.
    pub fn check(
        &self,
        saved: Option<&DataStamp>,
        path: &Path,
        refusal: &str,
    ) -> Result<(), String> {
        match saved {
            Some(d) if d.train_images != self.train_images => Err(format!(
                "{} was trained on another training split (data.train_images: checkpoint {}, \
                 requested {}); {refusal}",
                path.display(),
                d.train_images,
                self.train_images
            )),
            Some(d) if d.fingerprint != self.fingerprint => Err(format!(
                "{} was trained on other images of the same count (data.fingerprint: checkpoint \
                 {}, requested {}); {refusal}",
                path.display(),
                d.fingerprint,
                self.fingerprint
            )),
            Some(DataStamp {
                val_fingerprint: Some(v),
                ..
            }) if self.val_fingerprint.as_ref().is_some_and(|w| w != v) => Err(format!(
                "{} was validated on other images (data.val_fingerprint: checkpoint {v}, \
                 requested {}); {refusal}",
                path.display(),
                self.val_fingerprint.as_deref().unwrap_or_default()
            )),
            _ => Ok(()),
        }
    }
}

/// Reads a checkpoint's training state.
pub fn read_meta(meta: &HashMap<String, String>, path: &Path) -> Result<TrainMeta, String> {
    let j = meta.get(TRAIN_KEY).ok_or_else(|| {
        format!(
            "{}: no '{TRAIN_KEY}' metadata (not written by tinv-train)",
            path.display()
        )
    })?;
    serde_json::from_str(j).map_err(|e| format!("{}: '{TRAIN_KEY}': {e}", path.display()))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A dataset of 4×4 images with these labels, image i's pixels 16·i, 16·i + 1, ….
    pub(in crate::train) fn ds(labels: Vec<u8>) -> Dataset {
        Dataset {
            c: 1,
            h: 4,
            w: 4,
            images: (0..labels.len() * 16).map(|v| v as u8).collect(),
            labels,
        }
    }

    #[test]
    fn a_data_stamp_names_what_differs() {
        let (train, val) = (ds(vec![0, 1, 2]), ds(vec![1]));
        let here = DataStamp::of(&train, &val);
        let p = Path::new("ck");
        assert_eq!(here.check(None, p, "no"), Ok(()));
        assert_eq!(here.check(Some(&here), p, "no"), Ok(()));
        let fewer = DataStamp::of(&train.slice(0..2), &val);
        assert_eq!(
            here.check(Some(&fewer), p, "refusing").unwrap_err(),
            "ck was trained on another training split (data.train_images: checkpoint 2, \
             requested 3); refusing"
        );
        let mut other = train.clone();
        other.labels[2] = 0;
        let e = here
            .check(Some(&DataStamp::of(&other, &val)), p, "refusing")
            .unwrap_err();
        assert!(
            e.starts_with("ck was trained on other images of the same count"),
            "{e}"
        );
        let mut v2 = val.clone();
        v2.images[0] = 9;
        let e = here
            .check(Some(&DataStamp::of(&train, &v2)), p, "refusing")
            .unwrap_err();
        assert!(e.starts_with("ck was validated on other images"), "{e}");
        // A stamp from before the validation hash: passes.
        let old = DataStamp {
            val_fingerprint: None,
            ..DataStamp::of(&train, &v2)
        };
        assert_eq!(here.check(Some(&old), p, "refusing"), Ok(()));
        // FNV-1a 64 of the images, then the labels (docs/FORMAT.md's hash), as 16 hex digits.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in train.images.iter().chain(&train.labels) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        assert_eq!(here.fingerprint, format!("fnv1a64:{h:016x}"));
        assert_eq!(here.train_images, 3);
    }

    #[test]
    fn read_meta_names_a_missing_or_bad_record() {
        let p = Path::new("x.safetensors");
        assert_eq!(
            read_meta(&HashMap::new(), p).unwrap_err(),
            "x.safetensors: no 'tinv.train' metadata (not written by tinv-train)"
        );
        let bad = HashMap::from([(TRAIN_KEY.to_string(), "{}".to_string())]);
        assert!(read_meta(&bad, p)
            .unwrap_err()
            .starts_with("x.safetensors: 'tinv.train': "));
    }
}
