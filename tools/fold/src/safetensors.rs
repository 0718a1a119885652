//! A reader for the safetensors container: an 8-byte little-endian header length, a JSON header
//! mapping each tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to
//! the data that follows the header) plus an optional `__metadata__` string map, then the data.
//!
//! Every offset is checked against the file and against the dtype × shape byte count, and the
//! tensors must tile the data section exactly (no overlap, hole or trailing bytes), so a corrupt
//! or hostile file is a one-line error, never a panic.

use crate::error::{FoldError, Result};
use std::collections::BTreeMap;

/// Largest JSON header accepted (safetensors itself caps it at 100 MB).
pub const MAX_HEADER: u64 = 100 << 20;

/// Element types `tinv-fold` can read (all widened to f32 on load).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrcDType {
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary16.
    F16,
    /// bfloat16 (the upper half of a binary32).
    BF16,
}

impl SrcDType {
    fn parse(s: &str) -> Option<SrcDType> {
        match s {
            "F32" => Some(SrcDType::F32),
            "F16" => Some(SrcDType::F16),
            "BF16" => Some(SrcDType::BF16),
            _ => None,
        }
    }

    /// The safetensors name of the type.
    pub fn name(self) -> &'static str {
        match self {
            SrcDType::F32 => "F32",
            SrcDType::F16 => "F16",
            SrcDType::BF16 => "BF16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            SrcDType::F32 => 4,
            SrcDType::F16 | SrcDType::BF16 => 2,
        }
    }
}

/// One tensor of the checkpoint: where its bytes are and how to read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrcTensor {
    /// Element type.
    pub dtype: SrcDType,
    /// Dimensions, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// Byte range inside the whole file (already offset past the header).
    pub range: std::ops::Range<usize>,
}

/// A parsed, validated safetensors file held in memory.
pub struct Checkpoint {
    bytes: Vec<u8>,
    tensors: BTreeMap<String, SrcTensor>,
    metadata: BTreeMap<String, String>,
}

fn bad(msg: impl Into<String>) -> FoldError {
    FoldError::Safetensors(msg.into())
}

/// A hint for the files most often given in place of a checkpoint, recognised by their first
/// bytes: a model already folded, and PyTorch's own formats (a zip archive since 1.6; before, a
/// pickle that opens with torch's magic number), which timm and `torch.save` write. A file that
/// starts so has a header length far past any safetensors file's, so no hint misnames one.
fn what_it_is(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&tinv::format::MAGIC) {
        " (it is a .tinv model, already folded: tinv-run reads it)"
    } else if tinv::format::is_pytorch_checkpoint(bytes) {
        " (it looks like a PyTorch checkpoint: write its state dict with \
         safetensors.torch.save_file)"
    } else {
        ""
    }
}

impl Checkpoint {
    /// Parses and validates `bytes` (the whole file).
    pub fn parse(bytes: Vec<u8>) -> Result<Checkpoint> {
        let len_bytes: [u8; 8] =
            bytes
                .get(..8)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "file is {} bytes, shorter than the 8-byte header length",
                        bytes.len()
                    ))
                })?;
        let header_len = u64::from_le_bytes(len_bytes);
        let file_len = bytes.len() as u64;
        if header_len > MAX_HEADER || header_len > file_len - 8 {
            return Err(bad(format!(
                "header length {header_len} does not fit the {file_len}-byte file{}",
                what_it_is(&bytes)
            )));
        }
        // header_len ≤ file_len − 8 was checked just above, so this range is inside `bytes`.
        let header_end = 8 + header_len as usize;
        let header = &bytes[8..header_end];
        let json: serde_json::Value = serde_json::from_slice(header)
            .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
        let obj = json
            .as_object()
            .ok_or_else(|| bad("header JSON is not an object"))?;
        let data_len = bytes.len() - header_end;

        let mut tensors = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, v) in obj {
            if name == "__metadata__" {
                let m = v
                    .as_object()
                    .ok_or_else(|| bad("__metadata__ is not an object"))?;
                for (k, s) in m {
                    let s = s
                        .as_str()
                        .ok_or_else(|| bad(format!("__metadata__ value '{k}' is not a string")))?;
                    metadata.insert(k.clone(), s.to_string());
                }
                continue;
            }
            let t = parse_entry(name, v, data_len)?;
            tensors.insert(
                name.clone(),
                SrcTensor {
                    range: t.range.start + header_end..t.range.end + header_end,
                    ..t
                },
            );
        }

        // The tensors must tile the data section exactly, as the safetensors format requires: no
        // overlap, no hole, nothing after the last tensor (a hole or a tail is where a truncated
        // rewrite, a second concatenated file or a dropped duplicate header entry shows).
        let mut by_start: Vec<(&String, &SrcTensor)> = tensors.iter().collect();
        by_start.sort_by_key(|(_, t)| (t.range.start, t.range.end));
        let mut covered = header_end;
        let mut prev: Option<&String> = None;
        for (name, t) in by_start {
            if t.range.start < covered {
                let prev = prev.map_or(String::new(), |p| format!("'{p}' and "));
                return Err(bad(format!(
                    "tensors {prev}'{name}' overlap in the data section"
                )));
            }
            if t.range.start > covered {
                return Err(bad(format!(
                    "data bytes [{}, {}) before tensor '{name}' belong to no tensor (safetensors forbids holes)",
                    covered - header_end,
                    t.range.start - header_end
                )));
            }
            covered = t.range.end;
            prev = Some(name);
        }
        if covered != bytes.len() {
            return Err(bad(format!(
                "{} bytes after the last tensor belong to no tensor (trailing data)",
                bytes.len() - covered
            )));
        }
        Ok(Checkpoint {
            bytes,
            tensors,
            metadata,
        })
    }

    /// Reads and parses a file.
    pub fn open(path: &std::path::Path) -> Result<Checkpoint> {
        // A regular file only: a FIFO blocked forever, /dev/zero read until memory ran out.
        let bytes = tinv::files::read_regular(path).map_err(|source| FoldError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Checkpoint::parse(bytes).map_err(|e| match e {
            FoldError::Safetensors(m) => FoldError::Safetensors(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// FNV-1a 64 of what folding reads: the metadata value under `config_key` when present,
    /// then every tensor in name order (name, dtype, shape, data). Neither the order of the
    /// tensors in the file nor any other metadata counts, so checkpoints that fold to the same
    /// model hash the same: a re-run of a training with the same seed does, although the trainer
    /// records its wall-clock times in the metadata. Strings end in a 0 byte and numbers are
    /// u64 little-endian, so no two inputs run together.
    pub fn content_hash(&self, config_key: &str) -> u64 {
        use tinv::format::fnv1a64_continue as more;
        let num = |h: u64, v: usize| more(h, &(v as u64).to_le_bytes());
        let text = |h: u64, s: &str| more(more(h, s.as_bytes()), &[0]);
        let mut h = text(tinv::format::fnv1a64(&[]), "safetensors-content.v1");
        if let Some(c) = self.metadata.get(config_key) {
            h = text(text(h, config_key), c);
        }
        for (name, t) in &self.tensors {
            h = text(h, name);
            h = text(h, t.dtype.name());
            h = num(h, t.shape.len());
            for &d in &t.shape {
                h = num(h, d);
            }
            h = num(h, t.range.len());
            h = more(h, &self.bytes[t.range.clone()]);
        }
        h
    }

    /// The `__metadata__` string map.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// All tensors by name.
    pub fn tensors(&self) -> &BTreeMap<String, SrcTensor> {
        &self.tensors
    }

    /// Shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }

    /// The values of `name` widened to f32.
    pub fn f32(&self, name: &str) -> Option<Vec<f32>> {
        let t = self.tensors.get(name)?;
        // `range` was validated against the file length in `parse`.
        let raw = &self.bytes[t.range.clone()];
        Some(match t.dtype {
            SrcDType::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            SrcDType::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            SrcDType::BF16 => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        })
    }
}

/// Validates one header entry; the returned range is relative to the data section.
fn parse_entry(name: &str, v: &serde_json::Value, data_len: usize) -> Result<SrcTensor> {
    let o = v
        .as_object()
        .ok_or_else(|| bad(format!("entry for tensor '{name}' is not an object")))?;
    let dtype_s = o
        .get("dtype")
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad(format!("tensor '{name}' has no dtype string")))?;
    let dtype = SrcDType::parse(dtype_s).ok_or_else(|| {
        bad(format!(
            "tensor '{name}' has dtype {dtype_s}; tinv-fold reads F32, F16 and BF16"
        ))
    })?;
    let shape = o
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad(format!("tensor '{name}' has no shape array")))?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            bad(format!(
                "tensor '{name}' has a shape that is not a list of sizes"
            ))
        })?;
    let offs = o
        .get("data_offsets")
        .and_then(|s| s.as_array())
        .filter(|a| a.len() == 2)
        .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
        .ok_or_else(|| bad(format!("tensor '{name}' has no [begin, end] data_offsets")))?;
    let (begin, end) = offs;
    if begin > end || end > data_len as u64 {
        return Err(bad(format!(
            "tensor '{name}' data_offsets [{begin}, {end}] are outside the {data_len}-byte data section"
        )));
    }
    let want = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("tensor '{name}' shape {shape:?} overflows")))?;
    // end ≤ data_len (a usize) was checked above, so both casts are lossless.
    let (begin, end) = (begin as usize, end as usize);
    if end - begin != want {
        return Err(bad(format!(
            "tensor '{name}' holds {} bytes, but {dtype_s} × {shape:?} needs {want}",
            end - begin
        )));
    }
    Ok(SrcTensor {
        dtype,
        shape,
        range: begin..end,
    })
}
