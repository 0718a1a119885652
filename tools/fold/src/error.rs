//! The error type of `tinv-fold`: one variant per kind of failure, each `Display`ing as one line
//! that names the file, tensor or flag at fault.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while folding a checkpoint.
#[derive(Debug)]
pub enum FoldError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The safetensors container itself is malformed (header length, JSON, offsets, dtype).
    Safetensors(String),
    /// A tensor the model needs is absent from the checkpoint.
    MissingTensor {
        /// The checkpoint name of the tensor.
        name: String,
        /// What it is needed for.
        why: String,
    },
    /// A tensor has a shape that disagrees with the model (or with the other tensors).
    BadShape {
        /// The checkpoint name of the tensor.
        name: String,
        /// Its shape in the checkpoint.
        found: Vec<usize>,
        /// The shape the model needs; a 0 marks a size the model leaves free (no real dimension
        /// is 0), shown as `_`.
        expected: Vec<usize>,
    },
    /// A checkpoint tensor holds a NaN or an infinity. The `.tinv` format would store it verbatim
    /// and inference would run on it (docs/RELIABILITY.md), so the tool that reads every value
    /// anyway refuses it: it is almost always a diverged training run.
    NonFinite {
        /// The checkpoint name of the tensor.
        name: String,
        /// Index of the first non-finite element (row-major).
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A folded value does not fit the type it is stored as (f32, or f16 with `--dtype f16` and
    /// in the `--device` copies): storing it would silently turn it into an infinity.
    Overflow {
        /// The `.tinv` name of the tensor.
        name: String,
        /// Index of the first element out of range (row-major).
        index: usize,
        /// The storage type it overflows, `"f32"` or `"f16"`.
        storage: &'static str,
    },
    /// The checkpoint holds a tensor `tinv-fold` does not know; ignoring it could silently
    /// change the model's function (a layer-scale, a register token, a pooling norm, …).
    UnknownTensor(String),
    /// The configuration (JSON, `tinv.config` metadata or flags) is invalid or incomplete.
    Config(String),
    /// A command-line argument is invalid.
    Usage(String),
}

impl FoldError {
    /// Shorthand for a [`FoldError::BadShape`].
    pub fn shape(name: &str, found: &[usize], expected: &[usize]) -> FoldError {
        FoldError::BadShape {
            name: name.to_string(),
            found: found.to_vec(),
            expected: expected.to_vec(),
        }
    }

    /// Shorthand for a [`FoldError::MissingTensor`].
    pub fn missing(name: &str, why: &str) -> FoldError {
        FoldError::MissingTensor {
            name: name.to_string(),
            why: why.to_string(),
        }
    }
}

impl fmt::Display for FoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FoldError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            FoldError::Safetensors(m) => write!(f, "bad safetensors file: {m}"),
            FoldError::MissingTensor { name, why } => {
                write!(f, "tensor '{name}' is missing from the checkpoint ({why})")
            }
            FoldError::BadShape {
                name,
                found,
                expected,
            } => {
                let dims: Vec<String> = expected
                    .iter()
                    .map(|&d| match d {
                        0 => "_".to_string(),
                        d => d.to_string(),
                    })
                    .collect();
                write!(
                    f,
                    "tensor '{name}' has shape {found:?}, expected [{}]",
                    dims.join(", ")
                )
            }
            FoldError::NonFinite { name, index, value } => write!(
                f,
                "tensor '{name}' holds {value} at element {index}; non-finite weights are refused"
            ),
            FoldError::Overflow {
                name,
                index,
                storage,
            } => write!(
                f,
                "folded tensor '{name}' element {index} overflows {storage} (its source weights are too large)"
            ),
            FoldError::UnknownTensor(n) => write!(
                f,
                "tensor '{n}' is not a timm ViT / tinv exit / controller tensor this tool can fold"
            ),
            FoldError::Config(m) => write!(f, "configuration: {m}"),
            FoldError::Usage(m) => write!(f, "{m} (see --help)"),
        }
    }
}

impl std::error::Error for FoldError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FoldError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result with a [`FoldError`].
pub type Result<T> = std::result::Result<T, FoldError>;
