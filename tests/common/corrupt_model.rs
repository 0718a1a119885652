//! The model the corrupt-file suites (tests/corrupt_*.rs) start from, edits of its bytes, and an
//! independent reader of its layout, written from docs/FORMAT.md alone.

use tinv::format::{self, DType, FormatError};
use tinv::{synth, Error, Model, OpenOptions};

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

pub fn model_config() -> tinv::Config {
    // 8×8 grey, patch 4, D 16, 3 blocks, 2 heads, 5 classes, exits after blocks 1, 2, 3, controller.
    synth::config(8, 1, 4, 16, 3, 2, 5, &[1, 2, 3], true)
}

pub fn model_bytes(dtype: DType) -> Vec<u8> {
    synth::random_model(&model_config(), 17, dtype)
}

pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub fn parse_err(b: &[u8]) -> FormatError {
    format::parse(b).expect_err("must be refused")
}

/// The one-line message of a file that parses but is not a model this runtime can run. Its
/// metadata checksum is recomputed first ([`resealed`]): the edit under test must reach the
/// checks of the configuration, which a file written by another tool meets without one.
pub fn model_err(b: &[u8]) -> String {
    match Model::from_bytes(&resealed(b), &OpenOptions::default()) {
        Err(e @ Error::Model { .. }) => e.to_string(),
        Err(e) => panic!("expected a model error, got {e}"),
        Ok(_) => panic!("must be refused"),
    }
}

/// FNV-1a 64 of `bytes` continued from `h` (docs/FORMAT.md), written out here so the tests do
/// not take the hashes from the code under test.
fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `b` with `tinv.content_hash` recomputed from the tensor records as docs/FORMAT.md defines
/// it (FNV-1a 64 over `tinv-content-v1`, then each tensor's name, a 0 byte and its stored
/// checksum), then resealed ([`resealed`]).
pub fn rehashed(b: &[u8]) -> Vec<u8> {
    let l = Layout::read(b);
    let mut h = fnv(0xcbf2_9ce4_8422_2325, b"tinv-content-v1");
    for r in &l.records {
        h = fnv(h, r.name.as_bytes());
        h = fnv(h, &[0]);
        h = fnv(h, &u64_at(b, r.checksum_at).to_le_bytes());
    }
    let mut out = b.to_vec();
    put_u64(&mut out, l.meta_entry("tinv.content_hash").value_at, h);
    resealed(&out)
}

/// `b` with `tinv.meta_hash` recomputed as docs/FORMAT.md defines it: FNV-1a 64 over
/// `tinv-meta-v1`, then the bytes of every other metadata entry in file order.
pub fn resealed(b: &[u8]) -> Vec<u8> {
    let l = Layout::read(b);
    let mut h = fnv(0xcbf2_9ce4_8422_2325, b"tinv-meta-v1");
    let ends = l
        .meta
        .iter()
        .skip(1)
        .map(|m| m.start)
        .chain([l.table_offset]);
    for (m, end) in l.meta.iter().zip(ends) {
        if m.key != "tinv.meta_hash" {
            h = fnv(h, &b[m.start..end]);
        }
    }
    let mut out = b.to_vec();
    put_u64(&mut out, l.meta_entry("tinv.meta_hash").value_at, h);
    out
}

/// One metadata entry: key, and where its type and value start.
pub struct MetaEntry {
    pub key: String,
    pub start: usize,
    pub value_at: usize,
}

/// One tensor record: its fields and the byte position of each.
pub struct Record {
    pub name: String,
    pub start: usize,
    pub name_at: usize,
    pub dtype_at: usize,
    pub dims_at: usize,
    pub dims: Vec<u64>,
    pub offset_at: usize,
    /// Relative to the data section.
    pub offset: u64,
    pub nbytes_at: usize,
    pub nbytes: u64,
    pub checksum_at: usize,
    pub checksum: u64,
}

pub struct Layout {
    pub len: usize,
    pub table_offset: usize,
    pub table_end: usize,
    pub data_offset: usize,
    pub meta: Vec<MetaEntry>,
    pub records: Vec<Record>,
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

impl Layout {
    /// Walks a valid file (panics on anything unexpected: it only reads files the writer made).
    pub fn read(b: &[u8]) -> Layout {
        let (meta_count, tensor_count) = (u32_at(b, 24), u32_at(b, 28));
        let table_offset = u64_at(b, 40) as usize;
        let data_offset = u64_at(b, 48) as usize;
        let mut pos = 64;
        let mut meta = Vec::new();
        for _ in 0..meta_count {
            let start = pos;
            let n = u32_at(b, pos) as usize;
            let key = String::from_utf8(b[pos + 4..pos + 4 + n].to_vec()).unwrap();
            let ty = u32_at(b, pos + 4 + n);
            let value_at = pos + 8 + n;
            pos = value_at
                + match ty {
                    0 | 1 => 8,
                    2 => 4 + u32_at(b, value_at) as usize,
                    3 | 4 => 4 + 8 * u32_at(b, value_at) as usize,
                    _ => panic!("type {ty}"),
                };
            meta.push(MetaEntry {
                key,
                start,
                value_at,
            });
        }
        assert_eq!(pos, table_offset, "metadata fills its section");
        let mut records = Vec::new();
        for _ in 0..tensor_count {
            let start = pos;
            let n = u32_at(b, pos) as usize;
            let name = String::from_utf8(b[pos + 4..pos + 4 + n].to_vec()).unwrap();
            let dtype_at = pos + 4 + n;
            let ndim = u32_at(b, dtype_at + 8) as usize;
            let dims_at = dtype_at + 12;
            let dims = (0..ndim).map(|k| u64_at(b, dims_at + 8 * k)).collect();
            let offset_at = dims_at + 8 * ndim;
            records.push(Record {
                name,
                start,
                name_at: pos + 4,
                dtype_at,
                dims_at,
                dims,
                offset_at,
                offset: u64_at(b, offset_at),
                nbytes_at: offset_at + 8,
                nbytes: u64_at(b, offset_at + 8),
                checksum_at: offset_at + 16,
                checksum: u64_at(b, offset_at + 16),
            });
            pos = offset_at + 24;
        }
        Layout {
            len: b.len(),
            table_offset,
            table_end: pos,
            data_offset,
            meta,
            records,
        }
    }

    /// Every place a section, entry, record, field or tensor starts or ends (below the length).
    pub fn boundaries(&self) -> Vec<usize> {
        let mut v = vec![0, 1, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 63, 64];
        for m in &self.meta {
            v.extend([m.start, m.start + 4, m.value_at - 4, m.value_at]);
        }
        v.extend([
            self.table_offset,
            self.table_end,
            self.data_offset,
            self.len - 1,
        ]);
        for r in &self.records {
            v.extend([
                r.start,
                r.name_at,
                r.dtype_at,
                r.dims_at,
                r.offset_at,
                r.nbytes_at,
                r.checksum_at,
            ]);
            let at = self.data_offset + r.offset as usize;
            v.extend([
                at,
                at + 1,
                at + r.nbytes as usize - 1,
                at + r.nbytes as usize,
            ]);
        }
        v.retain(|&c| c < self.len);
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn meta_entry(&self, key: &str) -> &MetaEntry {
        self.meta
            .iter()
            .find(|m| m.key == key)
            .unwrap_or_else(|| panic!("no key {key}"))
    }

    pub fn record(&self, name: &str) -> &Record {
        self.records
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }

    /// Absolute positions in the data section that no tensor covers.
    pub fn padding(&self) -> impl Iterator<Item = usize> + '_ {
        (self.data_offset..self.len).filter(|&p| {
            let rel = (p - self.data_offset) as u64;
            !self
                .records
                .iter()
                .any(|r| (r.offset..r.offset + r.nbytes).contains(&rel))
        })
    }

    /// `b` with every value of f32 tensor `name` set to `v` and its checksum updated to match.
    pub fn with_tensor_values(&self, b: &[u8], name: &str, v: f32) -> Vec<u8> {
        let r = self.record(name);
        let mut out = b.to_vec();
        let at = self.data_offset + r.offset as usize;
        let data = &mut out[at..at + r.nbytes as usize];
        data.chunks_exact_mut(4)
            .for_each(|c| c.copy_from_slice(&v.to_le_bytes()));
        let sum = fnv(0xcbf2_9ce4_8422_2325, data);
        put_u64(&mut out, r.checksum_at, sum);
        rehashed(&out)
    }
}
