//! tinv: a static, embedded runtime for input-adaptive-depth Vision Transformers.
//!
//! A [`Model`] memory-maps one `.tinv` file of folded weights and is shared read-only; a
//! [`Session`] belongs to one thread and owns one fixed arena in which every depth path runs.
//! The controller picks a path per input (see [`control`]). docs/ARCHITECTURE.md has the map.

#![warn(missing_docs)]
// Library code never unwraps, expects or panics on its own: errors are values. (Tests may.)
// Indexing is denied in the modules that parse untrusted bytes (`format`, `idx`); elsewhere it
// indexes buffers whose sizes the plan fixed at open, where a bad index is a bug, not bad input.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
pub mod capi;
pub mod control;
pub mod cpu;
/// The library's error type.
pub mod error;
pub mod format;
pub mod idx;
pub mod model;
pub mod onnx;
pub mod session;
pub mod synth;
#[cfg(feature = "tensorrt")]
pub mod trt;

pub use backend::Backend;
pub use error::{Error, Result};
pub use model::{Config, Model, OpenOptions};
pub use session::{Mode, Session, SessionOptions, Stats};
