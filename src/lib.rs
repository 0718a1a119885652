//! tinv: a static, embedded runtime for input-adaptive-depth Vision Transformers.
//!
//! A [`Model`] memory-maps one `.tinv` file of folded weights and is shared read-only; a
//! [`Session`] serves one caller at a time (it may move between threads) and owns one fixed
//! arena in which every depth path runs. The controller picks a path per input (see
//! [`control`]). docs/ARCHITECTURE.md has the map.
//!
//! ```
//! use std::sync::Arc;
//! use tinv::{Model, OpenOptions, Session, SessionOptions};
//!
//! # fn main() -> tinv::Result<()> {
//! // The default model of this repository (Fashion-MNIST, depth paths 2/4/6/8).
//! let model = Arc::new(Model::open("engines/fmnist/model.tinv", &OpenOptions::default())?);
//! let mut session = Session::new(Arc::clone(&model), SessionOptions::default())?;
//!
//! let image = vec![0.5f32; model.config().input_len()]; // CHW, values in [0, 1]
//! let mut logits = vec![0f32; model.config().classes];
//! let stats = session.infer(&image, 1, &mut logits)?; // the controller picks the depth
//! println!("class {} at depth {}, {} FLOPs", stats[0].class, stats[0].depth, stats[0].flops);
//! assert!(model.config().depths.contains(&stats[0].depth));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]
// Library code never unwraps, expects or panics on its own: errors are values. (Tests may.)
// Indexing is denied in the modules that parse untrusted bytes (`format`, `idx`); elsewhere it
// indexes buffers whose sizes the plan fixed at open, where a bad index is a bug, not bad input.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
// The C ABI's implementation: C programs use it through include/tinv.h, Rust programs the API
// here. Public for the crate's own C-ABI tests, hidden from the Rust docs.
#[doc(hidden)]
pub mod capi;
pub mod control;
// Public for the workspace's tools (the trainer computes with the runtime's kernels, the bench
// profiles a block through them), not a stable API: hidden from the docs.
#[doc(hidden)]
pub mod cpu;
/// The library's error type.
pub mod error;
// The command-line programs' file helpers (regular files only, UTF-8 arguments): not a stable
// API, hidden from the docs.
#[doc(hidden)]
pub mod files;
pub mod format;
pub mod idx;
pub mod model;
pub mod onnx;
pub mod pixels;
pub mod session;
// Random models and inputs for the tests, fuzzers and benchmarks, not a stable API: hidden from
// the docs.
#[doc(hidden)]
pub mod synth;
// Timing summaries shared by the command-line programs and tools/bench, not a stable API: hidden
// from the docs.
#[doc(hidden)]
pub mod timing;
#[cfg(feature = "tensorrt")]
pub mod trt;

pub use backend::Backend;
pub use error::{Error, Result};
pub use model::{Config, Model, OpenOptions};
pub use session::{Mode, Session, SessionOptions, Stats};
