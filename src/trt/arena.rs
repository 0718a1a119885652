//! Device memory sizing: the one activation arena (max over engines, shared by every context on
//! one stream), the fixed I/O buffers (captured graphs freeze addresses), and the memory report
//! that compares this layout against N engines each owning their weights and activations.

use super::binding::engine_weight_bytes;
use super::manifest::{DType, IoMode, Manifest};
use super::{align_up, TrtError};

/// Size of the one arena: the largest `device_memory` of any engine, rounded up to 256 bytes
/// (at least 256 so every context gets a valid, aligned pointer).
pub fn arena_bytes(manifest: &Manifest) -> Result<u64, TrtError> {
    let max = manifest
        .engines
        .iter()
        .map(|e| e.device_memory)
        .max()
        .unwrap_or(0);
    align_up(max.max(1))
        .ok_or_else(|| TrtError::Plan(format!("device memory size {max} overflows")))
}

/// A fixed device buffer for one non-weight I/O tensor name. Engines that share a name share
/// the buffer: that is how a segment's output becomes the next segment's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoBuffer {
    /// Tensor name.
    pub name: String,
    /// Offset in the I/O block (multiple of 256).
    pub offset: u64,
    /// Bytes.
    pub bytes: u64,
    /// Element type and shape, the same in every engine that uses the name.
    pub dtype: DType,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Whether some engine reads it (an input of at least one engine).
    pub read: bool,
    /// Whether some engine writes it (an output of at least one engine).
    pub written: bool,
}

/// All I/O buffers of a manifest, packed into one device block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoPlan {
    /// Buffers in first-seen order (engine order, then I/O order).
    pub buffers: Vec<IoBuffer>,
    /// Size of the block (multiple of 256).
    pub total: u64,
}

impl IoPlan {
    /// Plans one buffer per distinct non-weight I/O name. Two engines that use the same name
    /// must agree on its type and shape (equal sizes are not enough: an f16 hidden state read
    /// as f32 would be garbage).
    pub fn new(manifest: &Manifest) -> Result<IoPlan, TrtError> {
        let mut buffers: Vec<IoBuffer> = Vec::new();
        let mut end = 0u64;
        let overflow = || TrtError::Plan("I/O buffer size overflows u64".into());
        for e in &manifest.engines {
            for t in &e.io {
                if t.mode == IoMode::Input && manifest.weights.iter().any(|w| w.name == t.name) {
                    continue;
                }
                let bytes = t
                    .shape
                    .iter()
                    .try_fold(t.dtype.size(), |a, &d| a.checked_mul(d))
                    .ok_or_else(overflow)?;
                let (read, written) = (t.mode == IoMode::Input, t.mode == IoMode::Output);
                if let Some(b) = buffers.iter_mut().find(|b| b.name == t.name) {
                    if b.dtype != t.dtype || b.shape != t.shape {
                        return Err(TrtError::Plan(format!(
                            "tensor {} is {} {:?} in engine {} but {} {:?} elsewhere",
                            t.name,
                            t.dtype.name(),
                            t.shape,
                            e.name,
                            b.dtype.name(),
                            b.shape
                        )));
                    }
                    b.read |= read;
                    b.written |= written;
                    continue;
                }
                let offset = align_up(end).ok_or_else(overflow)?;
                end = offset.checked_add(bytes).ok_or_else(overflow)?;
                buffers.push(IoBuffer {
                    name: t.name.clone(),
                    offset,
                    bytes,
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    read,
                    written,
                });
            }
        }
        Ok(IoPlan {
            buffers,
            total: align_up(end).ok_or_else(overflow)?,
        })
    }

    /// The buffer of tensor `name`.
    pub fn get(&self, name: &str) -> Option<&IoBuffer> {
        self.buffers.iter().find(|b| b.name == name)
    }

    /// Buffers the caller fills: read by an engine and written by none (the image).
    pub fn external_inputs(&self) -> impl Iterator<Item = &IoBuffer> {
        self.buffers.iter().filter(|b| b.read && !b.written)
    }
}

/// Device memory of this layout against the naive one, computed from the manifest alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    /// The one weight buffer (each weight once).
    pub weights: u64,
    /// The one arena.
    pub arena: u64,
    /// The fixed I/O buffers.
    pub io: u64,
    /// Naive: every engine embedding the weights it reads.
    pub naive_weights: u64,
    /// Naive: every engine's context owning its own activation memory.
    pub naive_activations: u64,
}

impl MemoryReport {
    /// Computes the report. For `segments` the weights are engine constants held once by
    /// construction, so `weights` and `naive_weights` are both the manifest's (zero) table.
    pub fn new(manifest: &Manifest) -> Result<MemoryReport, TrtError> {
        let naive_weights = (0..manifest.engines.len())
            .map(|i| engine_weight_bytes(manifest, i))
            .sum();
        Ok(MemoryReport {
            weights: manifest.weights_bytes,
            arena: arena_bytes(manifest)?,
            io: IoPlan::new(manifest)?.total,
            naive_weights,
            naive_activations: manifest.engines.iter().map(|e| e.device_memory).sum(),
        })
    }

    /// Total of this layout.
    pub fn total(&self) -> u64 {
        self.weights + self.arena + self.io
    }

    /// Total of the naive layout (same I/O buffers).
    pub fn naive_total(&self) -> u64 {
        self.naive_weights + self.naive_activations + self.io
    }
}

/// `n` bytes as B / KiB / MiB / GiB with one decimal.
fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        // In bounds: the loop above never moves `unit` past the last index.
        format!("{v:.1} {}", UNITS[unit])
    }
}

impl std::fmt::Display for MemoryReport {
    /// The side-by-side table `inspect` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<13}{:>22}{:>22}",
            "device memory", "weights once + arena", "per-engine copies"
        )?;
        let rows = [
            ("weights", self.weights, self.naive_weights),
            ("activations", self.arena, self.naive_activations),
            ("I/O buffers", self.io, self.io),
            ("total", self.total(), self.naive_total()),
        ];
        for (name, ours, naive) in rows {
            writeln!(f, "{name:<13}{:>22}{:>22}", human(ours), human(naive))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{sample, segments};
    use super::*;

    #[test]
    fn arena_is_the_largest_engine_rounded_up() {
        let mut m = sample();
        assert_eq!(arena_bytes(&m).unwrap(), 3_000_064); // 3_000_000 → next multiple of 256
        m.engines[0].device_memory = 3_000_064;
        assert_eq!(arena_bytes(&m).unwrap(), 3_000_064);
        for e in &mut m.engines {
            e.device_memory = 0;
        }
        assert_eq!(arena_bytes(&m).unwrap(), 256);
    }

    #[test]
    fn io_buffers_skip_weights_and_are_shared_by_name() {
        let m = sample();
        let plan = IoPlan::new(&m).unwrap();
        // image: 1·1·28·28 f32 = 3136 B at 0; logits: 10 f32 = 40 B at 3328 (3136 → 256·13).
        let got: Vec<(&str, u64, u64)> = plan
            .buffers
            .iter()
            .map(|b| (b.name.as_str(), b.offset, b.bytes))
            .collect();
        assert_eq!(got, [("image", 0, 3136), ("logits", 3328, 40)]);
        assert_eq!(plan.total, 3584);
        assert_eq!(
            plan.external_inputs()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>(),
            ["image"]
        );
    }

    #[test]
    fn segment_outputs_feed_the_next_segment_through_one_buffer() {
        let m = segments();
        m.validate().unwrap();
        let plan = IoPlan::new(&m).unwrap();
        let h1 = plan.get("h1").unwrap();
        assert!(h1.read && h1.written);
        assert_eq!(h1.bytes, 50 * 64 * 2);
        assert_eq!(plan.buffers.len(), 5); // image, h1, logits1, h2, logits2
        assert_eq!(plan.external_inputs().count(), 1);
        let mut bad = m.clone();
        bad.engines[2].io[0].shape = vec![1, 49, 64];
        assert!(IoPlan::new(&bad)
            .unwrap_err()
            .to_string()
            .contains("tensor h1"));
        // As many bytes, another type: f32 [1, 50, 32] is not f16 [1, 50, 64].
        let mut bad = m.clone();
        let h = &mut bad.engines[2].io[0];
        assert_eq!((h.name.as_str(), h.dtype), ("h1", DType::F16));
        (h.dtype, h.shape) = (DType::F32, vec![1, 50, 32]);
        let e = IoPlan::new(&bad).unwrap_err().to_string();
        assert!(e.contains("tensor h1 is f32 [1, 50, 32]"), "{e}");
    }

    #[test]
    fn memory_report_counts_weights_once_against_per_engine_copies() {
        let r = MemoryReport::new(&sample()).unwrap();
        // One buffer 8448 B vs path1 (8192) + path2 (8192 + 128) embedding their own copies.
        assert_eq!((r.weights, r.naive_weights), (8448, 16_512));
        assert_eq!((r.arena, r.naive_activations), (3_000_064, 4_000_000));
        assert_eq!(r.total(), 8448 + 3_000_064 + 3584);
        assert_eq!(r.naive_total(), 16_512 + 4_000_000 + 3584);
        // 8448 B = 8.25 KiB, 16_512 B = 16.125 KiB, 3_000_064 B ≈ 2.86 MiB, 4_000_000 B ≈ 3.81 MiB.
        let table = r.to_string();
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[1], ["weights", "8.2", "KiB", "16.1", "KiB"], "{table}");
        assert_eq!(
            rows[2],
            ["activations", "2.9", "MiB", "3.8", "MiB"],
            "{table}"
        );
        assert_eq!(
            rows[3],
            ["I/O", "buffers", "3.5", "KiB", "3.5", "KiB"],
            "{table}"
        );
        assert_eq!(rows[4][0], "total");
        // GiB is the largest unit: a terabyte stays in GiB.
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1.0 KiB");
        assert_eq!(human(5 << 40), "5120.0 GiB");
        let s = MemoryReport::new(&segments()).unwrap();
        assert_eq!(
            (s.weights, s.naive_weights, s.arena, s.naive_activations),
            (0, 0, 768, 1400)
        );
    }
}
