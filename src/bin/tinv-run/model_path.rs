//! Resolves `--model`: a `.tinv` file, a package directory, or the default package.

use std::path::{Path, PathBuf};

/// Name of the default package under `engines/`.
pub const DEFAULT_PACKAGE: &str = "fmnist";

/// Candidate locations of the default package (when `$TINV_MODEL` is unset): `./engines/fmnist`, and
/// `engines/fmnist` beside the repository the binary was built in (`target/<profile>/tinv-run`).
fn default_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    v.push(Path::new("engines").join(DEFAULT_PACKAGE));
    if let Ok(exe) = std::env::current_exe() {
        for up in exe.ancestors().skip(1).take(4) {
            v.push(up.join("engines").join(DEFAULT_PACKAGE));
        }
    }
    v.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("engines")
            .join(DEFAULT_PACKAGE),
    );
    v
}

/// The `.tinv` file `arg` names (or the default package's).
pub fn resolve(arg: Option<&Path>) -> Result<PathBuf, String> {
    let file_of = |p: &Path| {
        if p.is_dir() {
            p.join("model.tinv")
        } else {
            p.to_path_buf()
        }
    };
    match arg {
        Some(m) => {
            let p = file_of(m);
            if p.exists() {
                Ok(p)
            } else {
                Err(format!("{}: no such model file or package", p.display()))
            }
        }
        // An explicit TINV_MODEL is the only candidate: a typo must not silently pick another model.
        // Empty counts as unset, as shells treat `TINV_MODEL=`.
        None if std::env::var_os("TINV_MODEL").is_some_and(|v| !v.is_empty()) => {
            let p = PathBuf::from(std::env::var_os("TINV_MODEL").unwrap_or_default());
            let f = file_of(&p);
            // Anything that exists goes on to the open, which says what is wrong with it (a
            // FIFO, a directory named model.tinv) as it does for --model.
            if f.exists() {
                Ok(f)
            } else {
                Err(format!("TINV_MODEL={}: no such model file or package", p.display()))
            }
        }
        None => default_candidates()
            .iter()
            .map(|p| file_of(p))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "no --model given and the default package engines/{DEFAULT_PACKAGE}/model.tinv was not found; \
                     pass --model FILE.tinv, set TINV_MODEL, or run from the repository root"
                )
            }),
    }
}

/// Opens the model `arg` names.
pub fn open(arg: Option<&Path>, verify: bool) -> Result<tinv::Model, String> {
    let path = resolve(arg)?;
    log::info!("opening {}", path.display());
    tinv::Model::open(&path, &tinv::OpenOptions::default().verify(verify))
        .map_err(|e| e.to_string())
}
