//! IDX files, as the MNIST family ships them (`train-images-idx3-ubyte` and friends). [`parse`]
//! takes bytes in memory; [`read`] takes a stream and reads only as many bytes as the header
//! declares, at most [`MAX_DATA_BYTES`], so a gzip decoder wrapped around a hostile file stops
//! there; `open` (feature `gzip`) reads a file, gunzipping it when it starts with the gzip magic.

#![cfg_attr(not(test), deny(clippy::indexing_slicing))] // parses untrusted bytes: no panicking index

use std::fmt;
use std::io::{self, Read};

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
#[non_exhaustive]
pub enum IdxError {
    /// Fewer than 4 bytes, or the dimension table is cut off.
    Truncated,
    /// The first two bytes are not zero: not an IDX file.
    BadMagic,
    /// The element type is not unsigned byte (0x08); tinv reads image and label files only.
    UnsupportedType(u8),
    /// Zero dimensions, or more than 4.
    BadRank(u8),
    /// The dimensions, zero ones left out, multiply past [`MAX_DATA_BYTES`]. Zero ones are
    /// left out so that no product of dimensions a caller forms (a row, an image) can overflow.
    TooLarge {
        /// The dimensions, outermost first.
        dims: Vec<usize>,
    },
    /// The data length differs from the dimensions' product.
    LengthMismatch {
        /// Bytes the dimensions call for.
        expected: u64,
        /// Bytes present after the header.
        found: u64,
    },
    /// A stream ([`read`]) goes on past the bytes the dimensions call for.
    TrailingData {
        /// Bytes the dimensions call for.
        expected: u64,
    },
    /// The file or stream could not be read (for gzip input, this is where a corrupt archive
    /// shows).
    Read(String),
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
            IdxError::TooLarge { dims } => write!(
                f,
                "IDX dimensions {dims:?} are too large (tinv reads at most {MAX_DATA_BYTES} bytes)"
            ),
            IdxError::TrailingData { expected } => write!(
                f,
                "IDX data goes on past the {expected} bytes its dimensions need"
            ),
            IdxError::Read(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for IdxError {}

/// The largest data section [`parse`], [`read`] and `open` (feature `gzip`) accept (4 GiB),
/// checked against the header before any data is read: with it, a small gzip file cannot inflate
/// without bound even when its header agrees with its contents.
pub const MAX_DATA_BYTES: u64 = 1 << 32;

/// Parses an uncompressed IDX file of unsigned bytes.
pub fn parse(bytes: &[u8]) -> Result<Idx, IdxError> {
    let mut rest = bytes;
    let (dims, count) = header(&mut rest)?;
    if rest.len() as u64 != count {
        return Err(IdxError::LengthMismatch {
            expected: count,
            found: rest.len() as u64,
        });
    }
    Ok(Idx {
        dims,
        data: rest.to_vec(),
    })
}

/// Reads an IDX file of unsigned bytes from a stream: the header, then exactly the bytes its
/// dimensions call for, then one more read to make sure nothing follows. Memory grows with the
/// bytes actually present, not with what a header claims.
pub fn read(mut r: impl Read) -> Result<Idx, IdxError> {
    let (dims, count) = header(&mut r)?;
    // Fashion-MNIST's training images are 47 MB; reserve that much at most up front.
    let mut data = Vec::with_capacity(count.min(64 << 20) as usize);
    r.by_ref()
        .take(count)
        .read_to_end(&mut data)
        .map_err(|e| IdxError::Read(e.to_string()))?;
    if data.len() as u64 != count {
        return Err(IdxError::LengthMismatch {
            expected: count,
            found: data.len() as u64,
        });
    }
    let mut one = [0u8; 1];
    loop {
        match r.read(&mut one) {
            Ok(0) => return Ok(Idx { dims, data }),
            Ok(_) => return Err(IdxError::TrailingData { expected: count }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The data is complete; what follows is not (a gzip file with junk appended read
            // as "unexpected end of file", pointing at truncation).
            Err(e) => {
                return Err(IdxError::Read(format!(
                    "the {count} data bytes are complete, but what follows them cannot be read \
                     ({e}): bytes appended after the data, or a damaged gzip trailer"
                )))
            }
        }
    }
}

/// Reads an IDX file, gunzipping it when it starts with the gzip magic (1f 8b); a file of
/// several gzip members (`cat a.gz b.gz`) is read across them, as `zcat` does. The decoder
/// stops where the IDX header says the data ends ([`read`]). Like [`read`]'s, the errors say
/// what is wrong, not which file: the caller, which knows what the file is for (images, labels),
/// names it.
#[cfg(feature = "gzip")]
pub fn open(path: &std::path::Path) -> Result<Idx, IdxError> {
    use std::io::BufRead;
    let file = crate::files::open_regular(path).map_err(|e| IdxError::Read(e.to_string()))?;
    let mut r = io::BufReader::new(file);
    let magic = r.fill_buf().map_err(|e| IdxError::Read(e.to_string()))?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        read(flate2::read::MultiGzDecoder::new(r))
    } else {
        read(r)
    }
}

/// Reads and checks the magic and the dimension table; returns the dimensions and the number of
/// data bytes they call for.
fn header(r: &mut impl Read) -> Result<(Vec<usize>, u64), IdxError> {
    let mut head = [0u8; 4];
    read_header_bytes(r, &mut head)?;
    let [z0, z1, ty, rank] = head;
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
    let mut nonzero: u64 = 1;
    for _ in 0..rank {
        let mut d = [0u8; 4];
        read_header_bytes(r, &mut d)?;
        let d = u32::from_be_bytes(d);
        dims.push(d as usize);
        if d != 0 {
            nonzero = nonzero.saturating_mul(u64::from(d));
        }
    }
    if nonzero > MAX_DATA_BYTES {
        return Err(IdxError::TooLarge { dims });
    }
    // No overflow: the nonzero dimensions multiply to at most 2^32.
    let count = dims.iter().map(|&d| d as u64).product();
    Ok((dims, count))
}

fn read_header_bytes(r: &mut impl Read, buf: &mut [u8]) -> Result<(), IdxError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => IdxError::Truncated,
        _ => IdxError::Read(e.to_string()),
    })
}

/// Encodes unsigned bytes as an IDX file (used by tests and tools to write fixtures), refusing
/// what the format cannot hold or [`parse`] would refuse: not 1 to 4 dimensions, a dimension of
/// 2^32 or more, more than [`MAX_DATA_BYTES`] of data, or data whose length is not the
/// dimensions' product.
pub fn encode(dims: &[usize], data: &[u8]) -> Result<Vec<u8>, IdxError> {
    let rank = u8::try_from(dims.len())
        .ok()
        .filter(|r| (1..=4).contains(r))
        .ok_or(IdxError::BadRank(dims.len().min(255) as u8))?;
    let mut out = vec![0, 0, 0x08, rank];
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| IdxError::TooLarge {
            dims: dims.to_vec(),
        })?;
        out.extend_from_slice(&d.to_be_bytes());
    }
    // The reader's own checks of the header (the size limit).
    let (_, expected) = header(&mut out.as_slice())?;
    if expected != data.len() as u64 {
        return Err(IdxError::LengthMismatch {
            expected,
            found: data.len() as u64,
        });
    }
    out.extend_from_slice(data);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_refuses_what_the_format_cannot_hold() {
        assert_eq!(encode(&[], &[]), Err(IdxError::BadRank(0)));
        assert_eq!(encode(&[1; 5], &[0]), Err(IdxError::BadRank(5)));
        assert_eq!(
            encode(&[2, 3], &[0; 5]),
            Err(IdxError::LengthMismatch {
                expected: 6,
                found: 5
            })
        );
        #[cfg(target_pointer_width = "64")]
        assert_eq!(
            encode(&[1 << 32], &[]),
            Err(IdxError::TooLarge {
                dims: vec![1 << 32]
            })
        );
        // Each dimension fits, the product does not (the reader's limit).
        let m = 1usize << 20;
        assert_eq!(
            encode(&[m, m], &[]),
            Err(IdxError::TooLarge { dims: vec![m, m] })
        );
    }

    #[test]
    fn round_trip_and_errors() {
        let f = encode(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).unwrap();
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
        let huge = [
            0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        ];
        let m = 0xFFFF_FFFF;
        assert_eq!(parse(&huge), Err(IdxError::TooLarge { dims: vec![m; 3] }));
        // 2^32 + 65536 bytes declared: refused from the header alone.
        let big = [0, 0, 8, 2, 0, 1, 0, 1, 0, 1, 0, 0];
        assert_eq!(
            read(&big[..]),
            Err(IdxError::TooLarge {
                dims: vec![65537, 65536]
            })
        );
        // Exactly MAX_DATA_BYTES (2^16 × 2^16) is allowed: the header passes, the data is missing.
        assert_eq!(
            parse(&[0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0]),
            Err(IdxError::LengthMismatch {
                expected: 1 << 32,
                found: 0
            })
        );
        // Found by the `idx` fuzz target: a zero last dimension after three whose product
        // overflows 64 bits. Zero bytes of data, but a caller multiplying the first three would
        // overflow, so it is refused.
        let zero_last = [
            0, 0, 8, 4, 0, 0, 0x29, 0x81, 0x2d, 0, 8, 2, 0, 0x90, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            parse(&zero_last),
            Err(IdxError::TooLarge {
                dims: vec![10625, 754_976_770, 9_437_184, 0]
            })
        );
        // An empty data set of 28×28 images is a valid file.
        assert_eq!(
            parse(&encode(&[0, 28, 28], &[]).unwrap()).map(|i| i.dims),
            Ok(vec![0, 28, 28])
        );
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn open_reads_plain_and_gzipped_files() {
        use std::io::Write;
        let f = encode(&[2, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
        let dir = crate::files::test_dir("idx");
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("a-idx2-ubyte");
        std::fs::write(&plain, &f).unwrap();
        let gz = dir.join("a-idx2-ubyte.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&f).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(open(&plain), parse(&f));
        assert_eq!(open(&gz), parse(&f));
        // Two gzip members, split inside the data (`cat a.gz b.gz`): read as one stream.
        let mut two = Vec::new();
        for part in [&f[..f.len() - 2], &f[f.len() - 2..]] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).unwrap();
            two.extend(enc.finish().unwrap());
        }
        std::fs::write(&gz, &two).unwrap();
        assert_eq!(open(&gz), parse(&f));
        // A complete gzip stream with junk appended: the data is named complete, not truncated.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&f).unwrap();
        let mut junk = enc.finish().unwrap();
        junk.extend_from_slice(b"garbage");
        std::fs::write(&gz, &junk).unwrap();
        match open(&gz) {
            Err(IdxError::Read(m)) => assert!(
                m.contains("data bytes are complete") && m.contains("appended"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        // A gzip header over garbage: the decoder's complaint comes back as a read error.
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
        assert!(
            matches!(open(&gz), Err(IdxError::Read(_))),
            "{:?}",
            open(&gz)
        );
        assert!(matches!(open(&dir.join("missing")), Err(IdxError::Read(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A read interrupted by a signal (EINTR) is retried, also the one after the data that
    /// makes sure nothing follows: it is not a stream that cannot be read.
    #[test]
    fn an_interrupted_read_is_retried() {
        struct Interrupting(std::io::Cursor<Vec<u8>>, bool);
        impl Read for Interrupting {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.1 = !self.1;
                if self.1 {
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
                self.0.read(buf)
            }
        }
        let f = encode(&[2], &[7, 9]).unwrap();
        let r = Interrupting(std::io::Cursor::new(f.clone()), false);
        assert_eq!(read(r), parse(&f));
    }

    /// Each message says what is wrong with the numbers involved.
    #[test]
    fn errors_name_what_is_wrong() {
        let cases = [
            (IdxError::Truncated, "IDX header truncated"),
            (IdxError::BadMagic, "not an IDX file (bad magic)"),
            (
                IdxError::UnsupportedType(0x0d),
                "IDX element type 0x0d not supported (need unsigned byte 0x08)",
            ),
            (
                IdxError::BadRank(9),
                "IDX rank 9 not supported (need 1 to 4)",
            ),
            (
                IdxError::LengthMismatch {
                    expected: 12,
                    found: 11,
                },
                "IDX data is 11 bytes but its dimensions need 12",
            ),
            (
                IdxError::TooLarge {
                    dims: vec![65537, 65536],
                },
                "IDX dimensions [65537, 65536] are too large (tinv reads at most 4294967296 bytes)",
            ),
            (
                IdxError::TrailingData { expected: 6 },
                "IDX data goes on past the 6 bytes its dimensions need",
            ),
            (IdxError::Read("gone".into()), "gone"),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn streams_read_exactly_what_the_header_declares() {
        let f = encode(&[3, 2], &[9, 8, 7, 6, 5, 4]).unwrap();
        assert_eq!(read(&f[..]), parse(&f));
        assert_eq!(read(&f[..]).unwrap().data, vec![9, 8, 7, 6, 5, 4]);
        assert_eq!(
            read(&f[..f.len() - 2]),
            Err(IdxError::LengthMismatch {
                expected: 6,
                found: 4
            })
        );
        let mut long = f.clone();
        long.push(0);
        assert_eq!(read(&long[..]), Err(IdxError::TrailingData { expected: 6 }));
        assert_eq!(read(&f[..6]), Err(IdxError::Truncated));
        // An endless stream behind a 16-byte header (a gzip bomb's shape): the reader stops one
        // byte past what the header declares instead of reading on.
        let bomb = std::io::Cursor::new(vec![0u8, 0, 8, 1, 0, 0, 0, 16]).chain(std::io::repeat(1));
        assert_eq!(read(bomb), Err(IdxError::TrailingData { expected: 16 }));
        // A failing stream is reported, not mistaken for a short file.
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("corrupt deflate stream"))
            }
        }
        assert_eq!(
            read(Broken),
            Err(IdxError::Read("corrupt deflate stream".into()))
        );
    }
}
