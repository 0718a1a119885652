//! The pure parser: `&[u8]` in, validated [`Index`] out. No panics, no unchecked arithmetic, no
//! allocation sized by an unvalidated count.

use super::*;

/// One tensor of the table, validated against the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Name, e.g. `blk.3.qkv.weight`.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Flag bits (`FLAG_DEVICE`).
    pub flags: u32,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Byte offset from the start of the file (data offset + relative offset).
    pub offset: usize,
    /// Length in bytes.
    pub nbytes: usize,
    /// FNV-1a 64 of the bytes.
    pub checksum: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The validated index of a `.tinv` file: metadata, tensor table, data section bounds.
#[derive(Debug, Clone)]
pub struct Index {
    /// Structural version read from the header.
    pub version: u32,
    /// The metadata section.
    pub meta: Metadata,
    /// Tensors in table (= offset) order.
    pub tensors: Vec<TensorInfo>,
    /// Byte offset of the data section from the start of the file.
    pub data_offset: usize,
    /// Total file length.
    pub file_len: usize,
}

impl Index {
    /// Looks a tensor up by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The content hash of the tensor table ([`content_hash`]); equal to the stored
    /// `tinv.content_hash`, which [`parse`] checks when the file has it.
    pub fn content_hash(&self) -> u64 {
        content_hash(self.tensors.iter().map(|t| (t.name.as_str(), t.checksum)))
    }

    /// Recomputes every tensor's checksum over `bytes` (the whole file) and compares.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), FormatError> {
        for t in &self.tensors {
            let data = t
                .offset
                .checked_add(t.nbytes)
                .and_then(|end| bytes.get(t.offset..end))
                .ok_or(FormatError::OutOfBounds {
                    tensor: t.name.clone(),
                    end: (t.offset as u64).saturating_add(t.nbytes as u64),
                    data_len: bytes.len() as u64,
                })?;
            let found = fnv1a64(data);
            if found != t.checksum {
                return Err(FormatError::ChecksumMismatch {
                    tensor: t.name.clone(),
                    expected: t.checksum,
                    found,
                });
            }
        }
        Ok(())
    }
}

/// A bounds-checked little-endian reader over one section.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
    section: &'static str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let trunc = FormatError::Truncated {
            section: self.section,
            at: self.pos as u64,
        };
        let end = self.pos.checked_add(n).ok_or(trunc.clone())?;
        if end > self.end {
            return Err(trunc);
        }
        let s = self.bytes.get(self.pos..end).ok_or(trunc)?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let at = self.pos as u64;
        let section = self.section;
        self.take(N)?
            .try_into()
            .map_err(|_| FormatError::Truncated { section, at })
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, FormatError> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// A count, checked against `max` before anything is allocated for it.
    fn count(&mut self, what: &'static str, max: u32) -> Result<usize, FormatError> {
        let n = self.u32()?;
        if n > max {
            return Err(FormatError::CountTooLarge {
                what,
                count: u64::from(n),
                max: u64::from(max),
            });
        }
        Ok(n as usize)
    }
    /// A metadata array: `u32 count` (≤ MAX_ARRAY), then `count` 8-byte values.
    fn values<T>(
        &mut self,
        read: fn(&mut Self) -> Result<T, FormatError>,
    ) -> Result<Vec<T>, FormatError> {
        let n = self.count("array length", MAX_ARRAY)?;
        // Bound the allocation by what the section can hold, not by the declared count.
        let mut v = Vec::with_capacity(n.min((self.end - self.pos) / 8));
        for _ in 0..n {
            v.push(read(self)?);
        }
        Ok(v)
    }
    fn string(&mut self, what: &'static str, max: u32) -> Result<String, FormatError> {
        let n = self.count(what, max)?;
        let at = self.pos as u64;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| FormatError::BadUtf8 {
                section: self.section,
                at,
            })
    }
}

/// Little-endian field of the fixed header (`at` is a constant offset inside it; a short
/// header reads as zeros, which every caller then rejects).
fn header_field<const N: usize>(h: &[u8], at: usize) -> [u8; N] {
    h.get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; N])
}

fn header_u32(h: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(header_field(h, at))
}

fn header_u64(h: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(header_field(h, at))
}

/// What a file that is not a `.tinv` is, for the checkpoints most often given in place of a
/// model, from its header `h` (at least 64 bytes): safetensors (a little-endian header length
/// within its 100 MiB cap, then the JSON header's `{`), PyTorch's zip archive (since 1.6) and its
/// older pickle, which opens with torch's magic number.
fn looks_like(h: &[u8]) -> Option<&'static str> {
    let len = u64::from_le_bytes(h.get(..8)?.try_into().ok()?);
    if len <= 100 << 20 && h.get(8) == Some(&b'{') {
        Some("a safetensors checkpoint: fold it into a .tinv with tinv-fold")
    } else if super::is_pytorch_checkpoint(h) {
        Some(
            "a PyTorch checkpoint: save its state dict as safetensors, then fold it with tinv-fold",
        )
    } else {
        None
    }
}

/// Parses and validates a whole `.tinv` file. Checks, in order: header length, magic, version,
/// endianness, alignment, counts, section layout, exact file length, each metadata entry, each
/// tensor record (dtype, shape, byte length, alignment, bounds) and that tensors are sorted by
/// offset without overlap. Checksums are only checked by [`Index::verify`].
pub fn parse(bytes: &[u8]) -> Result<Index, FormatError> {
    let len = bytes.len() as u64;
    if len < HEADER_LEN {
        return Err(FormatError::TooShort { len });
    }
    let h = bytes.get(..HEADER_LEN as usize).unwrap_or_default();
    if h.get(..8) != Some(&MAGIC[..]) {
        return Err(FormatError::BadMagic {
            looks_like: looks_like(h),
        });
    }
    let version = header_u32(h, 8);
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion { found: version });
    }
    let tag = header_u32(h, 12);
    if tag != ENDIAN_TAG {
        return Err(FormatError::BadEndianTag { found: tag });
    }
    let (alignment, page) = (header_u32(h, 16), header_u32(h, 20));
    if u64::from(alignment) != ALIGNMENT || u64::from(page) != PAGE {
        return Err(FormatError::BadAlignment { alignment, page });
    }
    let meta_count = header_u32(h, 24);
    let tensor_count = header_u32(h, 28);
    if meta_count > MAX_META {
        return Err(FormatError::CountTooLarge {
            what: "metadata",
            count: meta_count.into(),
            max: MAX_META.into(),
        });
    }
    if tensor_count > MAX_TENSORS {
        return Err(FormatError::CountTooLarge {
            what: "tensor",
            count: tensor_count.into(),
            max: MAX_TENSORS.into(),
        });
    }
    let meta_offset = header_u64(h, 32);
    let table_offset = header_u64(h, 40);
    let data_offset = header_u64(h, 48);
    let declared = header_u64(h, 56);
    if declared != len {
        return Err(FormatError::LengthMismatch {
            declared,
            actual: len,
        });
    }
    if meta_offset != HEADER_LEN
        || table_offset < meta_offset
        || data_offset < table_offset
        || data_offset > len
        || !data_offset.is_multiple_of(PAGE)
    {
        return Err(FormatError::BadSections {
            detail: format!(
                "metadata at {meta_offset}, table at {table_offset}, data at {data_offset}, file {len} bytes"
            ),
        });
    }
    if !(len - data_offset).is_multiple_of(ALIGNMENT) {
        return Err(FormatError::BadSections {
            detail: format!(
                "the data section ({} bytes from {data_offset}) is not a multiple of {ALIGNMENT} bytes",
                len - data_offset
            ),
        });
    }
    // All three offsets are <= len, which fits in usize because `bytes` exists.
    let (table_offset, data_offset) = (table_offset as usize, data_offset as usize);

    let mut meta = Metadata::new();
    let mut c = Cursor {
        bytes,
        pos: HEADER_LEN as usize,
        end: table_offset,
        section: "metadata",
    };
    // The metadata checksum over the entries' bytes as they lie in the file (no copy: a large
    // metadata array must not raise the parser's peak memory).
    let mut hash = meta_hash_seed();
    for _ in 0..meta_count {
        let start = c.pos;
        let key = c.string("metadata key length", MAX_NAME)?;
        let ty = c.u32()?;
        let value = match ty {
            0 => MetaValue::U64(c.u64()?),
            1 => MetaValue::F64(c.f64()?),
            2 => MetaValue::Str(c.string("string length", MAX_ARRAY)?),
            3 => MetaValue::U64s(c.values(Cursor::u64)?),
            4 => MetaValue::F64s(c.values(Cursor::f64)?),
            found => return Err(FormatError::BadMetaType { key, found }),
        };
        if key != META_HASH_KEY {
            hash = fnv1a64_continue(hash, bytes.get(start..c.pos).unwrap_or_default());
        }
        if !meta.push_unique(key.clone(), value) {
            return Err(FormatError::DuplicateKey { key });
        }
    }
    if let Some(stored) = meta.get(META_HASH_KEY) {
        let found = hash;
        let expected = match stored {
            MetaValue::U64(v) => Some(*v),
            _ => None,
        };
        if expected != Some(found) {
            return Err(FormatError::MetaChecksumMismatch { expected, found });
        }
    }
    // The table starts where the metadata ends (FORMAT.md): bytes left over would be entries a
    // smaller meta_count dropped unnoticed.
    if c.pos != table_offset {
        return Err(FormatError::BadSections {
            detail: format!(
                "{meta_count} metadata entries end at {}, the tensor table starts at {table_offset}",
                c.pos
            ),
        });
    }

    let data_len = (len as usize) - data_offset;
    let mut c = Cursor {
        bytes,
        pos: table_offset,
        end: data_offset,
        section: "tensor table",
    };
    // Each record is at least 40 bytes; never reserve more than the table can hold.
    let mut tensors: Vec<TensorInfo> =
        Vec::with_capacity((tensor_count as usize).min((data_offset - table_offset) / 40));
    let mut names = std::collections::HashSet::with_capacity(tensors.capacity());
    // Where the previous tensor ends (relative to the data section): the packed layout puts
    // the next one at the first aligned offset after it, or at the first page (FORMAT.md).
    let mut packed_end = 0u64;
    for record in 0..tensor_count {
        let name = c.string("tensor name length", MAX_NAME)?;
        if name.is_empty() {
            // Also what the zero padding after the table reads as, when tensor_count claims
            // more records than the table holds.
            return Err(FormatError::EmptyTensorName {
                record,
                tensor_count,
            });
        }
        let dt = c.u32()?;
        let dtype = DType::from_u32(dt).ok_or_else(|| FormatError::BadDType {
            tensor: name.clone(),
            found: dt,
        })?;
        let flags = c.u32()?;
        if flags & !FLAG_DEVICE != 0 {
            return Err(FormatError::BadFlags {
                tensor: name,
                found: flags,
            });
        }
        let ndim = c.count("dimension", MAX_DIMS)?;
        let mut shape = Vec::with_capacity(ndim);
        let mut numel: u64 = 1;
        for _ in 0..ndim {
            let d = c.u64()?;
            numel = match numel.checked_mul(d) {
                Some(n) if d > 0 => n,
                _ => return Err(FormatError::BadShape { tensor: name }),
            };
            shape.push(usize::try_from(d).map_err(|_| FormatError::BadShape {
                tensor: name.clone(),
            })?);
        }
        let rel = c.u64()?;
        let nbytes = c.u64()?;
        let checksum = c.u64()?;
        let expected = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| FormatError::BadShape {
                tensor: name.clone(),
            })?;
        if nbytes != expected {
            return Err(FormatError::ByteLengthMismatch {
                tensor: name,
                expected,
                found: nbytes,
            });
        }
        if !rel.is_multiple_of(ALIGNMENT) {
            return Err(FormatError::Misaligned {
                tensor: name,
                offset: rel,
            });
        }
        let end = rel.saturating_add(nbytes);
        if end > data_len as u64 {
            return Err(FormatError::OutOfBounds {
                tensor: name,
                end,
                data_len: data_len as u64,
            });
        }
        if let Some(prev) = tensors.last() {
            if (prev.offset - data_offset + prev.nbytes) as u64 > rel {
                return Err(FormatError::Overlap {
                    first: prev.name.clone(),
                    second: name,
                });
            }
        }
        // Offsets are redundant with the byte lengths and the two alignments, so a damaged one
        // (still aligned, inside the padding) is caught here instead of feeding another
        // tensor's bytes, or zeros, to inference.
        let next = packed_end.div_ceil(ALIGNMENT) * ALIGNMENT;
        let page = packed_end.div_ceil(PAGE) * PAGE;
        if rel != next && rel != page {
            return Err(FormatError::NotPacked {
                tensor: name,
                offset: rel,
                next,
                page,
            });
        }
        packed_end = end;
        if !names.insert(name.clone()) {
            return Err(FormatError::DuplicateTensor { tensor: name });
        }
        tensors.push(TensorInfo {
            name,
            dtype,
            flags,
            shape,
            // rel + nbytes <= data_len, so these fit in usize.
            offset: data_offset + rel as usize,
            nbytes: nbytes as usize,
            checksum,
        });
    }
    // The data section ends at the last tensor's end, rounded up to the alignment.
    let packed_len = packed_end.div_ceil(ALIGNMENT) * ALIGNMENT;
    if data_len as u64 != packed_len {
        return Err(FormatError::BadSections {
            detail: format!(
                "the data section is {data_len} bytes, its tensors end at {packed_end} \
                 (rounded up to {packed_len})"
            ),
        });
    }
    // Recomputed from the table (names and stored checksums, no data page): a stale or damaged
    // value would match engines and exports built for other weights (`Model::model_hash`).
    let index = Index {
        version,
        meta,
        tensors,
        data_offset,
        file_len: len as usize,
    };
    let found = index.content_hash();
    if let Some(stored) = index.meta.get(CONTENT_HASH_KEY) {
        let expected = match stored {
            MetaValue::U64(v) => Some(*v),
            _ => None,
        };
        if expected != Some(found) {
            return Err(FormatError::ContentHashMismatch { expected, found });
        }
    }
    Ok(index)
}
