//! The TensorRT backend (feature `tensorrt`). Pure logic, which runs without a GPU: the engine
//! manifest and its checks against the machine and the model, the weight-binding plan (one
//! device copy of every weight), arena and I/O buffer sizing, and path selection. The device
//! side goes through two traits: `tinv_sys::ShimApi` (TensorRT) and [`device::Device`] (CUDA,
//! implemented with cudarc in [`cuda`]). So [`backend`] and [`session`] (one weight upload, one
//! arena per session, one CUDA graph per path) are tested end to end with recording doubles of
//! both. docs/JETSON.md describes the whole backend.

pub mod arena;
pub mod backend;
#[cfg(test)]
mod backend_refusal_tests;
#[cfg(test)]
pub(crate) mod backend_tests;
pub mod binding;
pub mod builder;
pub mod check;
pub mod cuda;
pub mod device;
#[cfg(test)]
pub mod device_double;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod gpu_tests;
pub mod layout;
pub mod manifest;
pub mod open;
pub mod paths;
pub mod prepare;
pub mod session;

use std::fmt;

/// Errors of the TensorRT backend's planning code. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrtError {
    /// The manifest text or its structure is invalid (names the line or the record).
    Manifest(String),
    /// The engines were built for something else than what is here: the field, the value
    /// recorded at build time and the value found now. Rebuilding fixes it.
    Mismatch {
        /// The manifest field (`model_hash`, `tensorrt`, `gpu`, …).
        field: &'static str,
        /// What the manifest records.
        built: String,
        /// What this machine / model has.
        here: String,
    },
    /// A plan file the manifest lists is missing, TensorRT refuses it (built by another
    /// TensorRT build, for another GPU, or damaged), or its I/O differs from the manifest's.
    /// Rebuilding fixes it.
    StalePlan(String),
    /// The engines cannot be run as the manifest describes (a weight input that disagrees with
    /// the weight table, an unknown depth, …).
    Plan(String),
    /// A TensorRT shim call failed (the message names the call and carries TensorRT's log).
    Shim(tinv_sys::ShimError),
    /// A CUDA call failed.
    Device(device::DeviceError),
}

impl fmt::Display for TrtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrtError::Manifest(m) => write!(f, "engine manifest: {m}"),
            TrtError::Mismatch { field, built, here } => write!(
                f,
                "engine manifest field `{field}` is {built} but here it is {here}: run `tinv-run build` to rebuild the engines"
            ),
            TrtError::StalePlan(m) | TrtError::Plan(m) => write!(f, "TensorRT engines: {m}"),
            TrtError::Shim(e) => write!(f, "{e}"),
            TrtError::Device(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TrtError {}

impl From<tinv_sys::ShimError> for TrtError {
    fn from(e: tinv_sys::ShimError) -> TrtError {
        TrtError::Shim(e)
    }
}

impl From<device::DeviceError> for TrtError {
    fn from(e: device::DeviceError) -> TrtError {
        TrtError::Device(e)
    }
}

impl TrtError {
    /// The [`crate::Error`] kind of this failure: a [`TrtError::Mismatch`] or
    /// [`TrtError::StalePlan`] is [`crate::Error::EnginesStale`] (rebuilding fixes it, and a
    /// program may want to do that itself); every other TensorRT failure is `Backend`.
    fn kind(&self) -> fn(String) -> crate::Error {
        match self {
            TrtError::Mismatch { .. } | TrtError::StalePlan(_) => crate::Error::EnginesStale,
            _ => crate::Error::Backend,
        }
    }

    /// As a [`crate::Error`] of its kind, the message `context: self`.
    pub fn in_context(self, context: impl fmt::Display) -> crate::Error {
        self.kind()(format!("{context}: {self}"))
    }
}

impl From<TrtError> for crate::Error {
    fn from(e: TrtError) -> crate::Error {
        e.kind()(e.to_string())
    }
}

/// Device addresses handed to TensorRT must be multiples of this (TensorRT's alignment rule for I/O and weight buffers).
pub const ALIGN: u64 = 256;

/// `n` rounded up to a multiple of [`ALIGN`], or `None` on overflow.
pub fn align_up(n: u64) -> Option<u64> {
    n.checked_add(ALIGN - 1).map(|v| v / ALIGN * ALIGN)
}
