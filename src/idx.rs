//! IDX files, as the MNIST family ships them (`train-images-idx3-ubyte` and friends). The parser
//! takes already-decompressed bytes; gzip is the caller's business (the CLI and tools use flate2).

#![cfg_attr(not(test), deny(clippy::indexing_slicing))] // parses untrusted bytes: no panicking index

use std::fmt;

/// A parsed IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    /// Dimensions, outermost first (e.g. `[10000, 28, 28]` for images, `[10000]` for labels).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Why an IDX file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdxError {
    /// Fewer than 4 bytes, or the dimension table is cut off.
    Truncated,
    /// The first two bytes are not zero: not an IDX file.
    BadMagic,
    /// The element type is not unsigned byte (0x08); tinv reads image and label files only.
    UnsupportedType(u8),
    /// Zero dimensions, or more than 4.
    BadRank(u8),
    /// The element count overflows, or the data length differs from the dimensions' product.
    LengthMismatch {
        /// Bytes the dimensions call for.
        expected: u64,
        /// Bytes present after the header.
        found: u64,
    },
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdxError::Truncated => write!(f, "IDX header truncated"),
            IdxError::BadMagic => write!(f, "not an IDX file (bad magic)"),
            IdxError::UnsupportedType(t) => {
                write!(
                    f,
                    "IDX element type {t:#04x} not supported (need unsigned byte 0x08)"
                )
            }
            IdxError::BadRank(r) => write!(f, "IDX rank {r} not supported (need 1 to 4)"),
            IdxError::LengthMismatch { expected, found } => write!(
                f,
                "IDX data is {found} bytes but its dimensions need {expected}"
            ),
        }
    }
}

impl std::error::Error for IdxError {}

/// Parses an uncompressed IDX file of unsigned bytes.
pub fn parse(bytes: &[u8]) -> Result<Idx, IdxError> {
    let [z0, z1, ty, rank]: [u8; 4] = bytes
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or(IdxError::Truncated)?;
    if z0 != 0 || z1 != 0 {
        return Err(IdxError::BadMagic);
    }
    if ty != 0x08 {
        return Err(IdxError::UnsupportedType(ty));
    }
    if rank == 0 || rank > 4 {
        return Err(IdxError::BadRank(rank));
    }
    let mut dims = Vec::with_capacity(rank as usize);
    let mut count: u64 = 1;
    for i in 0..rank as usize {
        let d = bytes
            .get(4 + 4 * i..8 + 4 * i)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or(IdxError::Truncated)?;
        count = count
            .checked_mul(u64::from(d))
            .ok_or(IdxError::LengthMismatch {
                expected: u64::MAX,
                found: bytes.len() as u64,
            })?;
        dims.push(d as usize);
    }
    let body = bytes.get(4 + 4 * rank as usize..).unwrap_or_default();
    if body.len() as u64 != count {
        return Err(IdxError::LengthMismatch {
            expected: count,
            found: body.len() as u64,
        });
    }
    Ok(Idx {
        dims,
        data: body.to_vec(),
    })
}

/// Encodes unsigned bytes as an IDX file (used by tests and tools to write fixtures).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let f = encode(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        // Hand-checked header: magic 0 0 8 3, then big-endian 2, 2, 3.
        assert_eq!(&f[..16], &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]);
        let idx = parse(&f).unwrap();
        assert_eq!(idx.dims, vec![2, 2, 3]);
        assert_eq!(idx.data[11], 12);
        assert_eq!(
            parse(&f[..f.len() - 1]),
            Err(IdxError::LengthMismatch {
                expected: 12,
                found: 11
            })
        );
        assert_eq!(parse(&[0, 0]), Err(IdxError::Truncated));
        assert_eq!(parse(&[1, 0, 8, 1]), Err(IdxError::BadMagic));
        assert_eq!(
            parse(&[0, 0, 0x0D, 1, 0, 0, 0, 0]),
            Err(IdxError::UnsupportedType(0x0D))
        );
        assert_eq!(parse(&[0, 0, 8, 9]), Err(IdxError::BadRank(9)));
        assert_eq!(parse(&[0, 0, 8, 2, 0, 0, 0, 5]), Err(IdxError::Truncated));
    }
}
