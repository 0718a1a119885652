use std::fmt;

/// Everything that can be wrong with the bytes of a `.tinv` file. One variant per failure, so
/// tests and callers can tell them apart; `Display` gives a one-line message naming the tensor or
/// key where there is one.
#[allow(missing_docs)] // each variant's doc sentence describes its fields
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The file is shorter than the fixed 64-byte header.
    TooShort { len: u64 },
    /// The first 8 bytes are not the tinv magic: not a `.tinv` file. `looks_like` names what it
    /// is when its first bytes tell (a checkpoint not yet folded), with what to do instead.
    BadMagic { looks_like: Option<&'static str> },
    /// The structural version is one this reader does not know.
    UnsupportedVersion { found: u32 },
    /// The endianness tag is wrong: written on/for a big-endian host, or corrupt.
    BadEndianTag { found: u32 },
    /// The declared alignment or page size differs from the values this reader requires.
    BadAlignment { alignment: u32, page: u32 },
    /// A declared count (tensors, metadata entries, dimensions, string or array length) is
    /// beyond the format's limits; nothing was allocated for it.
    CountTooLarge {
        what: &'static str,
        count: u64,
        max: u64,
    },
    /// The header's section offsets are out of order or out of the file.
    BadSections { detail: String },
    /// The file's length differs from the length the header declares (truncated, or trailing
    /// bytes after the data section).
    LengthMismatch { declared: u64, actual: u64 },
    /// A metadata entry or tensor record runs past the end of its section.
    Truncated { section: &'static str, at: u64 },
    /// A name or string is not valid UTF-8.
    BadUtf8 { section: &'static str, at: u64 },
    /// A metadata value type number is unknown.
    BadMetaType { key: String, found: u32 },
    /// The same metadata key appears twice.
    DuplicateKey { key: String },
    /// A tensor's dtype number is unknown.
    BadDType { tensor: String, found: u32 },
    /// A tensor's flags have bits this version does not define.
    BadFlags { tensor: String, found: u32 },
    /// The same tensor name appears twice.
    DuplicateTensor { tensor: String },
    /// A tensor has a zero dimension, or its element count overflows.
    BadShape { tensor: String },
    /// A tensor's byte length is not dtype size × element count.
    ByteLengthMismatch {
        tensor: String,
        expected: u64,
        found: u64,
    },
    /// A tensor's offset is not a multiple of the 256-byte alignment.
    Misaligned { tensor: String, offset: u64 },
    /// A tensor extends past the end of the data section.
    OutOfBounds {
        tensor: String,
        end: u64,
        data_len: u64,
    },
    /// Two tensors' byte ranges overlap, or the table is not sorted by offset.
    Overlap { first: String, second: String },
    /// With verification on: a tensor's bytes do not match its stored checksum.
    ChecksumMismatch {
        tensor: String,
        expected: u64,
        found: u64,
    },
    /// A tensor record has an empty name (`record` counts from 0): what the zero padding after
    /// the table reads as when `tensor_count` claims more records than the table holds.
    EmptyTensorName { record: u32, tensor_count: u32 },
    /// A tensor does not start where the packed layout puts it: at `next`, the first aligned
    /// offset after the previous tensor, or at `page`, the first page after it (offsets relative
    /// to the data section). The table is damaged, or was not written by a conforming writer.
    NotPacked {
        tensor: String,
        offset: u64,
        next: u64,
        page: u64,
    },
    /// The content hash (`tinv.content_hash`) is not an integer, or does not match the one
    /// recomputed from the tensor table's names and checksums.
    ContentHashMismatch { expected: Option<u64>, found: u64 },
    /// The metadata's checksum (`tinv.meta_hash`, checked at every parse when present) is not
    /// an integer, or does not match the entries: a metadata value was changed after writing.
    MetaChecksumMismatch { expected: Option<u64>, found: u64 },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FormatError::*;
        match self {
            TooShort { len } => write!(f, "file is {len} bytes, shorter than the 64-byte header"),
            BadMagic { looks_like: None } => write!(f, "not a .tinv file (bad magic)"),
            BadMagic {
                looks_like: Some(what),
            } => write!(f, "not a .tinv file (bad magic): it looks like {what}"),
            UnsupportedVersion { found } => write!(
                f,
                "format version {found} is not supported (this build reads version {})",
                super::VERSION
            ),
            BadEndianTag { found } => {
                write!(f, "bad endianness tag {found:#010x} (file or host is big-endian?)")
            }
            BadAlignment { alignment, page } => write!(
                f,
                "alignment {alignment} / page {page} not supported (need 256 / 4096)"
            ),
            CountTooLarge { what, count, max } => {
                write!(f, "{what} count {count} exceeds the limit {max}")
            }
            BadSections { detail } => write!(f, "bad section layout: {detail}"),
            LengthMismatch { declared, actual } => write!(
                f,
                "file length {actual} differs from declared length {declared} (truncated or trailing bytes)"
            ),
            Truncated { section, at } => write!(f, "{section} section truncated at byte {at}"),
            BadUtf8 { section, at } => write!(f, "invalid UTF-8 in {section} section at byte {at}"),
            BadMetaType { key, found } => {
                write!(f, "metadata key '{key}' has unknown value type {found}")
            }
            DuplicateKey { key } => write!(f, "metadata key '{key}' appears twice"),
            BadDType { tensor, found } => write!(f, "tensor '{tensor}' has unknown dtype {found}"),
            BadFlags { tensor, found } => {
                write!(f, "tensor '{tensor}' has unknown flag bits {found:#x}")
            }
            DuplicateTensor { tensor } => write!(f, "tensor '{tensor}' appears twice"),
            BadShape { tensor } => {
                write!(f, "tensor '{tensor}' has a zero or overflowing dimension")
            }
            ByteLengthMismatch {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "tensor '{tensor}' is {found} bytes but its dtype and shape need {expected}"
            ),
            Misaligned { tensor, offset } => write!(
                f,
                "tensor '{tensor}' at data offset {offset} is not 256-byte aligned"
            ),
            OutOfBounds {
                tensor,
                end,
                data_len,
            } => write!(
                f,
                "tensor '{tensor}' ends at {end}, past the data section ({data_len} bytes)"
            ),
            Overlap { first, second } => write!(
                f,
                "tensors '{first}' and '{second}' overlap or are out of offset order"
            ),
            ChecksumMismatch {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "tensor '{tensor}' checksum mismatch (stored {expected:#018x}, computed {found:#018x}): file is corrupt"
            ),
            EmptyTensorName {
                record,
                tensor_count,
            } => write!(
                f,
                "tensor record {record} has an empty name (does tensor_count {tensor_count} claim more records than the table holds?): file is corrupt"
            ),
            NotPacked {
                tensor,
                offset,
                next,
                page,
            } => {
                write!(f, "tensor '{tensor}' starts at byte {offset} of the data section, ")?;
                if next == page {
                    write!(f, "where the packed layout puts it at {next}")?;
                } else {
                    write!(f, "where the packed layout puts it at {next} (or at the page {page})")?;
                }
                write!(f, ": the tensor table is damaged")
            }
            ContentHashMismatch {
                expected: Some(expected),
                found,
            } => write!(
                f,
                "content hash mismatch (stored {expected:#018x}, the tensor table gives {found:#018x}): the tensor table or its metadata is damaged"
            ),
            ContentHashMismatch {
                expected: None,
                found,
            } => write!(
                f,
                "metadata key 'tinv.content_hash' is not an integer (the tensor table gives {found:#018x}): file is corrupt"
            ),
            MetaChecksumMismatch {
                expected: Some(expected),
                found,
            } => write!(
                f,
                "metadata checksum mismatch (stored {expected:#018x}, computed {found:#018x}): a metadata entry changed after the file was written"
            ),
            MetaChecksumMismatch {
                expected: None,
                found,
            } => write!(
                f,
                "metadata key 'tinv.meta_hash' is not an integer (the entries hash to {found:#018x}): file is corrupt"
            ),
        }
    }
}

impl std::error::Error for FormatError {}
