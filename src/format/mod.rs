//! The `.tinv` folded-weights file: one little-endian file holding the model configuration
//! (typed metadata) and every folded tensor, each 256-byte aligned, each block's and each exit
//! head's tensors starting on a fresh 4096-byte page. `docs/FORMAT.md` is the specification.
//!
//! [`parse`] is pure (bytes in, validated index out) so it can be fuzzed; [`crate::Model::open`]
//! memory-maps the file and calls it. [`TinvWriter`] is the writer used by `tinv-fold` and tests.

// The format parses untrusted bytes: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod error;
mod meta;
mod parse;
mod write;

pub use error::FormatError;
pub use meta::{MetaValue, Metadata};
pub use parse::{parse, Index, TensorInfo};
pub(crate) use write::encode_meta;
pub use write::TinvWriter;

/// File magic: a non-ASCII first byte and CR/LF/EOF bytes catch text-mode transfers, as PNG does.
pub const MAGIC: [u8; 8] = *b"\x89TINV\r\n\x1a";

/// Whether `bytes` open as a PyTorch checkpoint: the zip archive `torch.save` writes since 1.6,
/// or the older pickle, which opens with torch's magic number. The runtime and `tinv-fold` use it
/// to name such a file in their errors.
pub fn is_pytorch_checkpoint(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x80, 0x02, 0x8a, 0x0a])
}
/// Structural version of the file layout. Content changes go into metadata, not here.
pub const VERSION: u32 = 1;
/// Written as a little-endian u32; a reader on a big-endian host sees it swapped and refuses.
pub const ENDIAN_TAG: u32 = 0x0A0B_0C0D;
/// Every tensor's offset (relative to the data section) is a multiple of this (TensorRT's
/// binding alignment, and enough for any SIMD load).
pub const ALIGNMENT: u64 = 256;
/// Tensors that start a new block or exit head start on a fresh page of this size.
pub const PAGE: u64 = 4096;
/// Size of the fixed header.
pub const HEADER_LEN: u64 = 64;

/// Most tensors a file may declare (a 12-block ViT with controller has about 70).
pub const MAX_TENSORS: u32 = 1 << 16;
/// Most metadata entries a file may declare.
pub const MAX_META: u32 = 4096;
/// Most dimensions of one tensor.
pub const MAX_DIMS: u32 = 8;
/// Longest tensor name or metadata key, in bytes.
pub const MAX_NAME: u32 = 256;
/// Longest string value or array, in elements.
pub const MAX_ARRAY: u32 = 1 << 20;

/// Element type of a tensor. The numbers are part of the format and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
#[non_exhaustive]
pub enum DType {
    /// IEEE-754 binary32.
    F32 = 0,
    /// IEEE-754 binary16.
    F16 = 1,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }

    /// Decodes the on-disk number.
    pub fn from_u32(v: u32) -> Option<DType> {
        match v {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            _ => None,
        }
    }

    /// Lower-case name used in `inspect` output.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }
}

/// Tensor flag bit: the tensor belongs to the device section (TensorRT weights: f16, `[K, N]`).
pub const FLAG_DEVICE: u32 = 1;

/// 64-bit FNV-1a. Used for per-tensor checksums and the content hash: simple enough for a
/// third-party reader to reimplement from `docs/FORMAT.md`, and fast enough for `--verify`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_continue(0xcbf2_9ce4_8422_2325, bytes)
}

/// Continues an FNV-1a hash from state `h`.
pub fn fnv1a64_continue(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Metadata key of the metadata checksum ([`meta_hash`]), written last by the writer.
pub const META_HASH_KEY: &str = "tinv.meta_hash";
/// Metadata key of the content hash ([`content_hash`]), checked against the table at open.
pub const CONTENT_HASH_KEY: &str = "tinv.content_hash";

/// The metadata checksum: FNV-1a over `tinv-meta-v1`, then every entry except
/// [`META_HASH_KEY`] encoded as the file stores it (key, type, value), in file order. Tensor
/// checksums cover the data; this covers the values that say how to compute with it
/// (normalization, ε, paths, the default budget). [`parse`] checks it whenever it is present.
pub fn meta_hash(meta: &Metadata) -> u64 {
    let mut entry = Vec::new();
    meta.entries()
        .iter()
        .filter(|(k, _)| k != META_HASH_KEY)
        .fold(meta_hash_seed(), |h, (k, v)| {
            entry.clear();
            write::encode_entry(&mut entry, k, v);
            fnv1a64_continue(h, &entry)
        })
}

/// The state [`meta_hash`] starts from, before the first entry.
fn meta_hash_seed() -> u64 {
    fnv1a64(b"tinv-meta-v1")
}

/// The content hash of a model: FNV-1a over, for every tensor in table order, its name, a 0 byte
/// and its checksum (8 bytes LE). Computed by the writer from the checksums and stored in the
/// metadata (`tinv.content_hash`); recomputed from the table at open (no data page is read).
pub fn content_hash<'a>(tensors: impl Iterator<Item = (&'a str, u64)>) -> u64 {
    let mut h = fnv1a64(b"tinv-content-v1");
    for (name, sum) in tensors {
        h = fnv1a64_continue(h, name.as_bytes());
        h = fnv1a64_continue(h, &[0]);
        h = fnv1a64_continue(h, &sum.to_le_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_published_vectors() {
        // Reference values from the FNV specification's test suite.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
