//! How a session is set up and what it reports: the path [`Mode`], the [`SessionOptions`] and
//! the per-input [`Stats`].

use crate::backend::Backend;
use crate::error::{Error, Result};
use std::path::PathBuf;

/// How a session picks each input's path.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Mode {
    /// Level 1 picks the start path, then the layer-wise policy may continue at each exit.
    /// Reads the budget λ. A model without a controller runs its deepest path.
    Adaptive,
    /// Level 1 only: one path per input, decided before it runs (what a GPU graph launch wants).
    /// Reads the budget λ. A model without a controller runs its deepest path.
    Graph,
    /// Baseline: start at the shallowest path, continue while the exit's max softmax < τ (the
    /// budget λ is not read).
    /// τ = 1 still stops at an exit that is certain in f32 (max softmax exactly 1: one class,
    /// or a top logit about 17 above the rest).
    Threshold(f32),
}

impl Mode {
    /// Parses `adaptive`, `graph` or `threshold:τ`.
    pub fn parse(s: &str) -> Result<Mode> {
        match s {
            "adaptive" => Ok(Mode::Adaptive),
            "graph" => Ok(Mode::Graph),
            _ => match s.strip_prefix("threshold:").map(str::parse::<f32>) {
                Some(Ok(t)) if Mode::Threshold(t).check().is_ok() => Ok(Mode::Threshold(t)),
                _ => Err(Error::arg(format!(
                    "mode {s:?} is not one of adaptive, graph, threshold:τ (τ in [0, 1])"
                ))),
            },
        }
    }

    /// Refuses a threshold outside [0, 1] (NaN included).
    pub(super) fn check(self) -> Result<()> {
        match self {
            Mode::Threshold(t) if !(0.0..=1.0).contains(&t) => {
                Err(Error::arg(format!("threshold {t} not in [0, 1]")))
            }
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;
    /// [`Mode::parse`].
    fn from_str(s: &str) -> Result<Mode> {
        Mode::parse(s)
    }
}

/// The name [`Mode::parse`] reads back (`threshold:τ` with τ's shortest round-trip decimal).
impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Adaptive => f.write_str("adaptive"),
            Mode::Graph => f.write_str("graph"),
            Mode::Threshold(t) => write!(f, "threshold:{t}"),
        }
    }
}

/// Session settings: `SessionOptions::default()` and the setters below
/// (`SessionOptions::default().max_batch(8).threads(4)`), so that a new setting is not a breaking
/// change; the fields stay readable and assignable.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionOptions {
    /// Most inputs per call (the arena is sized for it). ≥ 1. A convenience, not a throughput
    /// lever: on the CPU a batch takes about as long per input as single calls at these model
    /// sizes (`tinv-run bench --batch 16`), and TensorRT runs a batch input by input.
    pub max_batch: usize,
    /// Threads for matrix products and attention (1 = run on the caller only). Each worker spins
    /// for up to 1 ms after a job before it parks, so that the next kernel of the same call
    /// starts without a wake-up: count that time when sharing cores with other work.
    pub threads: usize,
    /// Path selection.
    pub mode: Mode,
    /// Budget λ ∈ [0, 1], the price of compute in the controller's reward (the FLOPs of a path
    /// as a fraction of full depth, against 1 for a right answer): 0 buys accuracy at any
    /// cost, higher values stop earlier and spend less. `None` = the default the model file
    /// carries (chosen on a validation split when it was trained). Read by [`Mode::Adaptive`]
    /// and [`Mode::Graph`]; see [`crate::control`].
    pub budget: Option<f32>,
    /// CPU, TensorRT, or TensorRT when its engines are usable (`auto`).
    pub backend: Backend,
    /// Folder of the TensorRT engines (`None` = `plans/` beside the model file).
    pub engines: Option<PathBuf>,
    /// TensorRT: launch each path as its pre-captured CUDA graph (default), or enqueue its
    /// copies and engines call by call (`false`: for measuring what the graphs save).
    pub cuda_graphs: bool,
    /// Largest arena the session may allocate, in bytes (default 2 GiB): a small but absurd
    /// file (a huge token count) is refused instead of taking the machine's memory.
    pub max_arena_bytes: usize,
}

impl SessionOptions {
    /// Sets [`SessionOptions::max_batch`].
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }
    /// Sets [`SessionOptions::threads`].
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }
    /// Sets [`SessionOptions::mode`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// Sets [`SessionOptions::budget`]: a λ, or `None` for the model's default.
    pub fn budget(mut self, budget: impl Into<Option<f32>>) -> Self {
        self.budget = budget.into();
        self
    }
    /// Sets [`SessionOptions::backend`].
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    /// Sets [`SessionOptions::engines`]: a folder, or `None` for `plans/` beside the model.
    pub fn engines(mut self, dir: impl Into<Option<PathBuf>>) -> Self {
        self.engines = dir.into();
        self
    }
    /// Sets [`SessionOptions::cuda_graphs`].
    pub fn cuda_graphs(mut self, on: bool) -> Self {
        self.cuda_graphs = on;
        self
    }
    /// Sets [`SessionOptions::max_arena_bytes`].
    pub fn max_arena_bytes(mut self, bytes: usize) -> Self {
        self.max_arena_bytes = bytes;
        self
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            max_batch: 1,
            threads: 1,
            mode: Mode::Adaptive,
            budget: None,
            backend: Backend::Auto,
            engines: None,
            cuda_graphs: true,
            max_arena_bytes: 1 << 31,
        }
    }
}

/// What happened to one input in the last call. Read-only for callers (`non_exhaustive`: a new
/// statistic is not a breaking change).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Blocks run (depth of the path whose exit answered).
    pub depth: usize,
    /// Index of that path.
    pub path: usize,
    /// Depth of the path level 1 started with.
    pub start_depth: usize,
    /// Times the layer-wise policy (or threshold) continued to a deeper path.
    pub escalations: u32,
    /// Every FLOP run for this input: controller, stem, blocks, every exit head computed.
    pub flops: u64,
    /// Bytes of weights read for this input, each tensor once, as stored in the file (an f16
    /// matrix counts 2 bytes an element, although the CPU backend reads its f32 copy).
    pub weight_bytes: u64,
    /// Predicted class (argmax of the logits).
    pub class: usize,
    /// Softmax probability of that class.
    pub confidence: f32,
    /// Path the complexity predictor rated most likely to be the shallowest correct one
    /// (`None` when the controller did not run: fixed depth, threshold mode, no controller).
    pub predicted_path: Option<usize>,
    /// Wall time of the whole call in µs (shared by the inputs of a batch).
    pub latency_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_parse_and_read_back() {
        // The three documented names; τ in [0, 1], ends included.
        assert_eq!(Mode::parse("adaptive").unwrap(), Mode::Adaptive);
        assert_eq!(Mode::parse("graph").unwrap(), Mode::Graph);
        for t in [0.0, 0.25, 1.0] {
            let m = Mode::parse(&format!("threshold:{t}")).unwrap();
            assert_eq!(m, Mode::Threshold(t));
            assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
        }
        for m in [Mode::Adaptive, Mode::Graph] {
            assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
        }
        assert_eq!(Mode::Graph.to_string(), "graph");
        for bad in [
            "",
            "Graph",
            "threshold:",
            "threshold:x",
            "threshold:-0.1",
            "threshold:1.01",
        ] {
            assert!(Mode::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Mode::parse("threshold:NaN").is_err());
    }

    #[test]
    fn mode_check_refuses_thresholds_outside_0_1() {
        for t in [0.0, 0.5, 1.0] {
            assert!(Mode::Threshold(t).check().is_ok());
        }
        for t in [-0.5, 1.5, f32::NAN, f32::INFINITY] {
            assert!(Mode::Threshold(t).check().is_err(), "{t}");
        }
        assert!(Mode::Adaptive.check().is_ok());
        assert!(Mode::Graph.check().is_ok());
    }
}
