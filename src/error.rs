use crate::format::FormatError;
use std::fmt;
use std::path::PathBuf;

/// Every error the library returns. `Display` is one line, naming the file, tensor or argument.
/// New kinds of failure get new variants (`OutOfMemory`, `Numeric`, `EnginesStale`,
/// `InputLength`, `BufferTooSmall` and `InvalidInput` came in 0.1): match with a wildcard arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes of a `.tinv` file are invalid.
    Format {
        /// The file (`<memory>` for in-memory models).
        path: PathBuf,
        /// What is wrong.
        error: FormatError,
    },
    /// The file is well-formed but its configuration or tensors do not describe a model this
    /// runtime can run (a missing tensor, a shape that disagrees with the config, …).
    Model {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key or tensor.
        detail: String,
    },
    /// A caller-supplied argument is invalid (depth, budget, batch size, mode, …).
    InvalidArgument(String),
    /// The input of an inference call does not hold `batch` images of the model's size.
    InputLength(String),
    /// The buffer for an inference call's logits is shorter than `batch` × the classes (× the
    /// paths, for every exit).
    BufferTooSmall(String),
    /// The input holds a NaN or an infinity (a broken sensor frame, say): nothing was computed.
    InvalidInput(String),
    /// A backend is unavailable or failed (e.g. TensorRT not installed).
    Backend(String),
    /// The TensorRT engines were built for something other than what is here: another model,
    /// TensorRT version, GPU or exporter version, or a plan file is missing, refused by
    /// TensorRT, replaced since the build or unlike its manifest entry (the message names the
    /// field or the plan, and the fix). Rebuilding them (`tinv-run build`) fixes it; a program
    /// can do that on its own.
    EnginesStale(String),
    /// Host memory for a session (its arena or batch-sized buffers), or for the f32 copies of an
    /// f16 model's tensors, could not be allocated.
    OutOfMemory(String),
    /// The logits, or the controller's outputs, came out NaN or infinite: an input far outside
    /// [0, 1] (finite, so it passed the input check), or a model file with non-finite weights.
    Numeric(String),
    /// An internal invariant failed: a bug in tinv, not bad input (`TINV_ERR_INTERNAL` in C).
    Internal(String),
}

impl Error {
    pub(crate) fn arg(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } if path.as_os_str().is_empty() => {
                write!(f, "empty path: {source}")
            }
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Format { path, error } => write!(f, "{}: {error}", path.display()),
            Error::Model { path, detail } => write!(f, "{}: {detail}", path.display()),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::InputLength(m) => write!(f, "input length: {m}"),
            Error::BufferTooSmall(m) => write!(f, "buffer too small: {m}"),
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Backend(m) => write!(f, "backend: {m}"),
            Error::EnginesStale(m) => write!(f, "stale engines: {m}"),
            Error::OutOfMemory(m) => write!(f, "out of memory: {m}"),
            Error::Numeric(m) => write!(f, "numeric: {m}"),
            Error::Internal(m) => {
                write!(f, "internal error (a bug in tinv; please report it): {m}")
            }
        }
    }
}

/// `Display` already ends with the cause (the OS error, the format error), so `source()` is
/// `None`: a reporter that walks the chain (anyhow, eyre) would print it twice. The cause stays
/// reachable as the variant's field (`Error::Io { source, .. }` for its `io::ErrorKind`).
impl std::error::Error for Error {}

/// Shorthand for this crate's results (the error type a default, so that `use tinv::*` leaves
/// `Result<T, E>` usable).
pub type Result<T, E = Error> = std::result::Result<T, E>;
