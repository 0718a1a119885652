//! The writer, used by `tinv-fold` and by tests to craft files.

use super::*;
use std::path::Path;

struct Pending {
    name: String,
    dtype: DType,
    flags: u32,
    shape: Vec<usize>,
    bytes: Vec<u8>,
    page_break: bool,
}

/// Builds a `.tinv` file in memory. Tensors are laid out in the order they are added; call
/// [`TinvWriter::page_break`] before the first tensor of each block and exit head.
#[derive(Default)]
pub struct TinvWriter {
    meta: Metadata,
    tensors: Vec<Pending>,
    next_page_break: bool,
}

impl TinvWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a metadata entry.
    pub fn meta(&mut self, key: &str, value: MetaValue) -> &mut Self {
        self.meta.set(key, value);
        self
    }

    /// The next tensor starts on a fresh 4096-byte page.
    pub fn page_break(&mut self) -> &mut Self {
        self.next_page_break = true;
        self
    }

    /// Adds an f32 tensor, stored as `dtype` (f16 values are rounded to nearest).
    pub fn tensor(&mut self, name: &str, shape: &[usize], data: &[f32], dtype: DType) -> &mut Self {
        let bytes = match dtype {
            DType::F32 => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::F16 => data
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        self.raw_tensor(name, dtype, 0, shape, bytes)
    }

    /// Adds a tensor from raw little-endian bytes (no check that they fit the shape: tests use
    /// this to craft invalid files; [`parse`] rejects them).
    pub fn raw_tensor(
        &mut self,
        name: &str,
        dtype: DType,
        flags: u32,
        shape: &[usize],
        bytes: Vec<u8>,
    ) -> &mut Self {
        self.tensors.push(Pending {
            name: name.to_string(),
            dtype,
            flags,
            shape: shape.to_vec(),
            bytes,
            page_break: std::mem::take(&mut self.next_page_break),
        });
        self
    }

    /// Serializes the file. Sets `tinv.content_hash` from the tensors' checksums.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sums: Vec<u64> = self.tensors.iter().map(|t| fnv1a64(&t.bytes)).collect();
        let hash = content_hash(
            self.tensors
                .iter()
                .map(|t| t.name.as_str())
                .zip(sums.iter().copied()),
        );
        // The two hashes are the writer's own, after every other entry (values a caller copied
        // from another file are dropped, not kept in their old places), the checksum last.
        let mut meta = Metadata::new();
        for (k, v) in self.meta.entries() {
            if k != CONTENT_HASH_KEY && k != META_HASH_KEY {
                meta.set(k, v.clone());
            }
        }
        meta.set(CONTENT_HASH_KEY, MetaValue::U64(hash));
        let mh = meta_hash(&meta);
        meta.set(META_HASH_KEY, MetaValue::U64(mh));

        let m = encode_meta(&meta);

        // Lay out the data section.
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut cur = 0u64;
        for t in &self.tensors {
            let align = if t.page_break { PAGE } else { ALIGNMENT };
            cur = cur.div_ceil(align) * align;
            offsets.push(cur);
            cur += t.bytes.len() as u64;
        }
        let data_len = cur.div_ceil(ALIGNMENT) * ALIGNMENT;

        let mut table = Vec::new();
        for ((t, off), sum) in self.tensors.iter().zip(&offsets).zip(&sums) {
            put_str(&mut table, &t.name);
            table.extend_from_slice(&(t.dtype as u32).to_le_bytes());
            table.extend_from_slice(&t.flags.to_le_bytes());
            table.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            t.shape
                .iter()
                .for_each(|d| table.extend_from_slice(&(*d as u64).to_le_bytes()));
            table.extend_from_slice(&off.to_le_bytes());
            table.extend_from_slice(&(t.bytes.len() as u64).to_le_bytes());
            table.extend_from_slice(&sum.to_le_bytes());
        }

        let table_offset = HEADER_LEN + m.len() as u64;
        let data_offset = (table_offset + table.len() as u64).div_ceil(PAGE) * PAGE;
        let file_len = data_offset + data_len;

        let mut out = Vec::with_capacity(file_len as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&ENDIAN_TAG.to_le_bytes());
        out.extend_from_slice(&(ALIGNMENT as u32).to_le_bytes());
        out.extend_from_slice(&(PAGE as u32).to_le_bytes());
        out.extend_from_slice(&(meta.entries().len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        out.extend_from_slice(&HEADER_LEN.to_le_bytes());
        out.extend_from_slice(&table_offset.to_le_bytes());
        out.extend_from_slice(&data_offset.to_le_bytes());
        out.extend_from_slice(&file_len.to_le_bytes());
        out.extend_from_slice(&m);
        out.extend_from_slice(&table);
        out.resize(data_offset as usize, 0);
        for (t, off) in self.tensors.iter().zip(&offsets) {
            out.resize(data_offset as usize + *off as usize, 0);
            out.extend_from_slice(&t.bytes);
        }
        out.resize(file_len as usize, 0);
        out
    }

    /// Writes the file atomically (temporary file + rename), through a symbolic link at `path`
    /// ([`crate::files::write_destination`]; a device or FIFO there is refused, not replaced).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let dest = crate::files::write_destination(path)?;
        crate::files::replace_atomically(&dest, &self.to_bytes())
    }
}

/// The metadata entries as the file stores them (docs/FORMAT.md): key, type, value, each.
pub(crate) fn encode_meta(meta: &Metadata) -> Vec<u8> {
    let mut m = Vec::new();
    for (k, v) in meta.entries() {
        encode_entry(&mut m, k, v);
    }
    m
}

/// One metadata entry as the file stores it, appended to `m`.
pub(crate) fn encode_entry(m: &mut Vec<u8>, k: &str, v: &MetaValue) {
    put_str(m, k);
    m.extend_from_slice(&v.type_id().to_le_bytes());
    match v {
        MetaValue::U64(x) => m.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => m.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Str(s) => put_str(m, s),
        MetaValue::U64s(a) => put_array(m, a.iter().map(|x| x.to_le_bytes())),
        MetaValue::F64s(a) => put_array(m, a.iter().map(|x| x.to_le_bytes())),
    }
}

/// A metadata array: `u32 count`, then the values' little-endian bytes.
fn put_array(out: &mut Vec<u8>, values: impl ExactSizeIterator<Item = [u8; 8]>) {
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    values.for_each(|v| out.extend_from_slice(&v));
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}
