//! The inputs both test files benchmark: a Fashion-MNIST-shaped model (28×28 grey, 10 classes),
//! with a controller or without, and 20 test images with their labels.

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
