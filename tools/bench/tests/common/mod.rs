//! The inputs the test files benchmark: a Fashion-MNIST-shaped model (28×28 grey, 10 classes),
//! with a controller or without, and 20 test images with their labels; and the venv that holds
//! ONNX Runtime.

use std::path::{Path, PathBuf};
use tinv::format::DType;

/// Writes `fm.tinv` (with a controller when `controller`), `images.idx` and `labels.idx` into
/// `dir`; returns their paths in that order.
pub fn fmnist_case(dir: &Path, controller: bool) -> [PathBuf; 3] {
    let cfg = tinv::synth::config(28, 1, 7, 32, 4, 2, 10, &[2, 4], controller);
    let [model, images, labels] = ["fm.tinv", "images.idx", "labels.idx"].map(|f| dir.join(f));
    std::fs::write(&model, tinv::synth::random_model(&cfg, 3, DType::F32)).unwrap();
    let n = 20;
    let pixels: Vec<u8> = (0..n * 28 * 28).map(|i| (i * 37 % 256) as u8).collect();
    let classes: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    std::fs::write(&images, tinv::idx::encode(&[n, 28, 28], &pixels).unwrap()).unwrap();
    std::fs::write(&labels, tinv::idx::encode(&[n], &classes).unwrap()).unwrap();
    [model, images, labels]
}

/// The venv with onnxruntime: `$TINV_VENV`, else `.venv` at the repo root; `None` when it has
/// no Python (the tests that need it print SKIP).
#[allow(dead_code)] // cli.rs does not run ONNX Runtime
pub fn venv() -> Option<PathBuf> {
    let p = std::env::var_os("TINV_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    p.join("bin/python").exists().then_some(p)
}
