//! What the unit tests of several modules build: the Fashion-MNIST-shaped model and the venv.

use std::path::{Path, PathBuf};

/// A Fashion-MNIST-shaped model: 28×28 grey, 10 classes, paths at depths 2 and 4, a controller.
pub fn fm_config() -> tinv::Config {
    tinv::synth::config(28, 1, 7, 32, 4, 2, 10, &[2, 4], true)
}

/// Writes [`fm_config`]'s model (random f32 weights, seed 3) to `dir/fm.tinv`; returns its path.
pub fn write_fm_model(dir: &Path) -> PathBuf {
    let path = dir.join("fm.tinv");
    let bytes = tinv::synth::random_model(&fm_config(), 3, tinv::format::DType::F32);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The venv with ONNX Runtime and numpy: `$TINV_VENV`, else `.venv` at the repository root.
pub fn venv() -> PathBuf {
    std::env::var_os("TINV_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
        PathBuf::from,
    )
}

/// `tinv-NAME-PID` under the temp folder, with nothing left there: process ids repeat (a fresh
/// CI machine runs the tests twice), so what an earlier run under the same id left is removed.
/// Not created: a test that needs the folder makes it.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
