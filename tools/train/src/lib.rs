//! tinv-train: trains the multi-exit ViT that tinv runs (dual-path distillation from the deepest
//! exit) and its two-level controller (complexity predictor + PPO policies), on IDX datasets.
//! candle does the autodiff; everything the runtime also computes (features, exit statistics,
//! configuration checks, IDX parsing) comes from the `tinv` crate itself, so training sees
//! exactly what inference sees.

pub mod checkpoint;
pub mod config;
pub mod control;
pub mod data;
pub mod flops;
pub mod fused;
pub mod loss;
pub mod optim;
#[path = "../../../src/bin/tinv-run/out.rs"]
pub mod out;
pub mod report;
pub mod rng;
pub mod samples;
pub mod snapshot;
pub mod tensors;
pub mod train;
pub mod vit;

/// `tinv-NAME-PID` under the temp folder, with nothing left there: process ids repeat (a fresh
/// CI machine runs the tests twice), so what an earlier run under the same id left is removed.
/// Not created: a test that needs the folder makes it.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tinv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
