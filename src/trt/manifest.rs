//! The engine manifest: what `tinv-run build` wrote beside the plans, in a line-based text format
//! parsed by hand (the runtime crate has no serde).
//!
//! ```text
//! tinv-trt-manifest 2
//! model_hash 0x00112233445566ff
//! export 2
//! tensorrt 10.3.0
//! gpu 8.7 16 Orin (nvgpu)
//! precision fp16
//! layout per-path
//! weights_bytes 1048576
//! weight blk.0.qkv.weight f16 0 98304 64,1536
//! engine path1 path1.plan 4194304 0x747de7764b83d24f
//! io path1 input f32 1,1,28,28 image
//! io path1 output f32 1,10 logits
//! path 1 path1
//! ```
//!
//! One record per line, fields separated by single spaces, `#` starts a comment line. Names
//! (engines, tensors, plan files) may not contain whitespace; `gpu` holds the compute
//! capability, the number of SMs and the name, which is the rest of its line. Line order is
//! free except that `tinv-trt-manifest` comes first and `io` lines follow their `engine`.
//! [`Manifest::to_text`] and [`Manifest::parse`] round-trip exactly.

use super::TrtError;
use std::fmt::Write as _;

/// Version of the manifest text format (2: the `export` record and the GPU's SM count; 3: each
/// engine's plan hash). Another version is stale: `tinv-run build` writes this one.
pub const SCHEMA_VERSION: u32 = 3;
const MAGIC: &str = "tinv-trt-manifest";

/// Element types that appear in engines' I/O and the weight table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// 8-bit signed integer.
    I8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::I64 => 8,
            DType::I8 => 1,
        }
    }

    /// The manifest spelling.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::I8 => "i8",
        }
    }

    fn parse(s: &str) -> Option<DType> {
        [DType::F32, DType::F16, DType::I32, DType::I64, DType::I8]
            .into_iter()
            .find(|d| d.name() == s)
    }
}

/// Precision the engines were built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// FP32.
    Fp32,
    /// FP16.
    Fp16,
}

impl Precision {
    /// The manifest spelling (`fp32`, `fp16`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }
}

/// How the weights are kept on the device once (docs/JETSON.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One engine per depth path; weights are FP16 graph inputs bound into one buffer.
    PerPath,
    /// One engine per segment between exits plus exit-head engines.
    Segments,
}

impl Layout {
    /// The manifest spelling (`per-path`, `segments`).
    pub fn name(self) -> &'static str {
        match self {
            Layout::PerPath => "per-path",
            Layout::Segments => "segments",
        }
    }
}

/// TensorRT version the plans were built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrtVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl std::fmt::Display for TrtVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The GPU the plans were built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// Device name as CUDA reports it.
    pub name: String,
    /// Compute capability (major, minor), e.g. (7, 2) for Xavier, (8, 7) for Orin.
    pub compute_capability: (u32, u32),
    /// Streaming multiprocessors: every Orin module is sm_87 named "Orin", and a plan built on
    /// one (AGX, 16 SMs) is not meant for another (Orin Nano, 4 or 8).
    pub sms: u32,
}

/// Direction of an engine I/O tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// An input (a weight input when its name is in the weight table).
    Input,
    /// An output.
    Output,
}

/// One I/O tensor of an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoTensor {
    /// Tensor name.
    pub name: String,
    /// Input or output.
    pub mode: IoMode,
    /// Element type.
    pub dtype: DType,
    /// Static shape.
    pub shape: Vec<u64>,
}

impl IoTensor {
    /// Bytes of one instance of the tensor (saturating; shapes are validated at parse).
    pub fn bytes(&self) -> u64 {
        self.shape
            .iter()
            .fold(self.dtype.size(), |a, &d| a.saturating_mul(d))
    }
}

/// One engine: its plan file, the activation memory a context needs, its I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// Engine name (unique), e.g. `path3` or `seg2` / `head2`.
    pub name: String,
    /// Plan file name, relative to the manifest's folder.
    pub plan: String,
    /// `getDeviceMemorySize[V2]` at build time.
    pub device_memory: u64,
    /// FNV-1a 64 of the plan file's bytes as `tinv-run build` wrote them: a plan replaced or
    /// damaged since is stale, even one TensorRT would accept (built from other weights).
    pub plan_hash: u64,
    /// I/O tensors in TensorRT's order.
    pub io: Vec<IoTensor>,
}

/// Where one weight lives in the single device weight buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightBinding {
    /// Tensor name: the engine input name and the `.tinv` device-section tensor.
    pub name: String,
    /// Element type on the device.
    pub dtype: DType,
    /// Byte offset in the device buffer (multiple of 256).
    pub offset: u64,
    /// Byte length.
    pub bytes: u64,
    /// Shape.
    pub shape: Vec<u64>,
}

/// A depth path and the engines it runs, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEngines {
    /// Depth (number of encoder blocks).
    pub depth: u32,
    /// Engine names, run in order.
    pub engines: Vec<String>,
}

/// Everything `tinv-run build` records about a set of plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// [`crate::Model::model_hash`] of the model the plans were built from (tensors and
    /// configuration).
    pub model_hash: u64,
    /// [`crate::onnx::EXPORT_VERSION`] of the tinv that exported the graphs.
    pub export: u32,
    /// TensorRT version used to build.
    pub tensorrt: TrtVersion,
    /// GPU built for.
    pub gpu: Gpu,
    /// Precision.
    pub precision: Precision,
    /// Layout.
    pub layout: Layout,
    /// Size of the device weight buffer (0 for `segments`, whose weights are constants).
    pub weights_bytes: u64,
    /// The weight-binding table.
    pub weights: Vec<WeightBinding>,
    /// Engines.
    pub engines: Vec<Engine>,
    /// Paths, ascending by depth.
    pub paths: Vec<PathEngines>,
}

fn dims_text(shape: &[u64]) -> String {
    shape
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// What `parse` reads back as one word: non-empty, no whitespace or control characters, no
/// leading `#` (manifest_parse.rs `word`).
fn plain(name: &str, what: &str) -> Result<(), TrtError> {
    let bad = |c: char| c.is_whitespace() || c.is_control();
    if name.is_empty() || name.chars().any(bad) || name.starts_with('#') {
        return Err(TrtError::Manifest(format!(
            "{what} {name:?} must be non-empty without whitespace or control characters"
        )));
    }
    Ok(())
}

impl Manifest {
    /// The manifest as text. Fails for a manifest `validate` refuses and for names the format
    /// cannot hold (whitespace or control characters; a GPU name may hold spaces), so what it
    /// prints parses back to `self`.
    pub fn to_text(&self) -> Result<String, TrtError> {
        // What `parse` would refuse is not written either (a fuzzer found a duplicate tensor
        // name printed without complaint and refused on reading).
        self.validate()?;
        let mut s = String::new();
        // `write!` to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(s, "{MAGIC} {SCHEMA_VERSION}");
        let _ = writeln!(s, "model_hash {:#018x}", self.model_hash);
        let _ = writeln!(s, "export {}", self.export);
        let _ = writeln!(s, "tensorrt {}", self.tensorrt);
        let (ccmaj, ccmin) = self.gpu.compute_capability;
        if self.gpu.name.is_empty() || self.gpu.name.chars().any(char::is_control) {
            return Err(TrtError::Manifest(format!(
                "GPU name {:?} is empty or has control characters",
                self.gpu.name
            )));
        }
        let _ = writeln!(s, "gpu {ccmaj}.{ccmin} {} {}", self.gpu.sms, self.gpu.name);
        let _ = writeln!(s, "precision {}", self.precision.name());
        let _ = writeln!(s, "layout {}", self.layout.name());
        let _ = writeln!(s, "weights_bytes {}", self.weights_bytes);
        for w in &self.weights {
            plain(&w.name, "weight name")?;
            let _ = writeln!(
                s,
                "weight {} {} {} {} {}",
                w.name,
                w.dtype.name(),
                w.offset,
                w.bytes,
                dims_text(&w.shape)
            );
        }
        for e in &self.engines {
            plain(&e.name, "engine name")?;
            plain(&e.plan, "plan file")?;
            let _ = writeln!(
                s,
                "engine {} {} {} {:#018x}",
                e.name, e.plan, e.device_memory, e.plan_hash
            );
            for t in &e.io {
                plain(&t.name, "tensor name")?;
                let mode = if t.mode == IoMode::Input {
                    "input"
                } else {
                    "output"
                };
                let _ = writeln!(
                    s,
                    "io {} {mode} {} {} {}",
                    e.name,
                    t.dtype.name(),
                    dims_text(&t.shape),
                    t.name
                );
            }
        }
        for p in &self.paths {
            let _ = writeln!(s, "path {} {}", p.depth, p.engines.join(","));
        }
        Ok(s)
    }

    /// Parses manifest text; every error names the line. Structural validation (references,
    /// weight table) is [`Manifest::validate`], called here.
    pub fn parse(text: &str) -> Result<Manifest, TrtError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let schema = match lines.next() {
            Some((_, l)) if l.split(' ').next() == Some(MAGIC) => {
                l.get(MAGIC.len()..).unwrap_or("").trim().to_string()
            }
            _ => {
                return Err(TrtError::Manifest(format!(
                    "not an engine manifest (first line must be `{MAGIC} N`)"
                )))
            }
        };
        if schema != SCHEMA_VERSION.to_string() {
            return Err(TrtError::Mismatch {
                field: "schema",
                built: schema,
                here: SCHEMA_VERSION.to_string(),
            });
        }
        let mut b = parse::Builder::default();
        for (i, line) in lines {
            b.line(line)
                .map_err(|m| TrtError::Manifest(format!("line {}: {m}", i + 1)))?;
        }
        let m = b.finish()?;
        m.validate()?;
        Ok(m)
    }
}

#[path = "manifest_parse.rs"]
mod parse;

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
