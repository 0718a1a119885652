//! One crafted file per `.tinv` failure: each is refused with its own error variant (and the
//! CLI-facing message names the tensor or key). Plus a round trip per dtype.

#[path = "common/fnv_spec.rs"]
mod fnv_spec;

use fnv_spec::{fnv, BASIS};
use tinv::format::{self, DType, FormatError, MetaValue, TinvWriter};
use tinv::{synth, Error, Model, OpenOptions};

fn small() -> TinvWriter {
    let mut w = TinvWriter::new();
    w.meta("k", MetaValue::U64(1));
    w.tensor("a", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], DType::F32);
    w.page_break();
    w.tensor("b", &[4], &[0.5, -0.5, 1.5, 2.0], DType::F16);
    w
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn table_offset(b: &[u8]) -> usize {
    u64::from_le_bytes(b[40..48].try_into().unwrap()) as usize
}
/// Offset of the first tensor record's dtype field (after its name "a").
fn first_record(b: &[u8]) -> usize {
    table_offset(b) + 4 + 1
}

fn err(bytes: &[u8]) -> FormatError {
    format::parse(bytes).expect_err("must be refused")
}

#[test]
fn round_trip_f32_and_f16() {
    let bytes = small().to_bytes();
    let idx = format::parse(&bytes).unwrap();
    idx.verify(&bytes).unwrap();
    let a = idx.tensor("a").unwrap();
    assert_eq!(
        (a.dtype, a.shape.clone(), a.numel(), a.nbytes),
        (DType::F32, vec![2, 3], 6, 24)
    );
    let vals: Vec<f32> = bytes[a.offset..a.offset + 24]
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(vals, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = idx.tensor("b").unwrap();
    assert_eq!((b.dtype, b.numel(), b.nbytes), (DType::F16, 4, 8));
    assert_eq!(b.offset % format::PAGE as usize, 0, "page break honoured");
    let h: Vec<f32> = bytes[b.offset..b.offset + 8]
        .chunks(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    assert_eq!(h, [0.5, -0.5, 1.5, 2.0]);
    assert_eq!(idx.meta.u64("k"), Some(1));
    assert!(idx.meta.u64("tinv.content_hash").is_some());
    assert_eq!(bytes.len() % 256, 0);
}

#[test]
fn header_errors() {
    let good = small().to_bytes();
    assert_eq!(err(&good[..10]), FormatError::TooShort { len: 10 });
    let mut b = good.clone();
    b[1] = b'X';
    assert_eq!(err(&b), FormatError::BadMagic { looks_like: None });
    // Checkpoints not yet folded are named, with what to do: safetensors (header length, `{`),
    // PyTorch's zip archive and its older pickle. Each is padded past the 64-byte header.
    let padded = |mut b: Vec<u8>| {
        b.resize(128, b' ');
        b
    };
    let mut st = 58u64.to_le_bytes().to_vec();
    st.extend_from_slice(br#"{"__metadata__": {"format": "pt"}}"#);
    let names = |b: Vec<u8>| match err(&padded(b)) {
        FormatError::BadMagic { looks_like } => looks_like.unwrap_or_default(),
        e => panic!("{e}"),
    };
    assert!(names(st.clone()).starts_with("a safetensors checkpoint"));
    assert!(names(b"PK\x03\x04\x14\0\0\0".to_vec()).starts_with("a PyTorch checkpoint"));
    assert!(names(vec![0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc]).starts_with("a PyTorch checkpoint"));
    // A header length past the safetensors cap is not one, `{` or not.
    st[..8].copy_from_slice(&((100u64 << 20) + 1).to_le_bytes());
    assert_eq!(names(st), "");
    let e = err(&padded(b"PK\x03\x04".to_vec())).to_string();
    assert!(
        e.starts_with("not a .tinv file (bad magic): it looks like a PyTorch")
            && e.contains("tinv-fold"),
        "{e}"
    );
    let mut b = good.clone();
    put_u32(&mut b, 8, 2);
    assert_eq!(err(&b), FormatError::UnsupportedVersion { found: 2 });
    let mut b = good.clone();
    b[12..16].reverse();
    assert!(matches!(err(&b), FormatError::BadEndianTag { .. }));
    let mut b = good.clone();
    put_u32(&mut b, 16, 64);
    assert_eq!(
        err(&b),
        FormatError::BadAlignment {
            alignment: 64,
            page: 4096
        }
    );
    let mut b = good.clone();
    put_u32(&mut b, 28, u32::MAX);
    assert!(matches!(
        err(&b),
        FormatError::CountTooLarge { what: "tensor", .. }
    ));
    let mut b = good.clone();
    put_u32(&mut b, 24, 1 << 20);
    assert!(matches!(
        err(&b),
        FormatError::CountTooLarge {
            what: "metadata",
            ..
        }
    ));
    let mut b = good.clone();
    put_u64(&mut b, 48, 100); // data section not on a page
    assert!(matches!(err(&b), FormatError::BadSections { .. }));
}

/// A header as docs/FORMAT.md lays it out, for sections written by hand.
fn header(meta_count: u32, tensor_count: u32, table: u64, data: u64, len: u64) -> Vec<u8> {
    let mut h = format::MAGIC.to_vec();
    for v in [1, 0x0A0B_0C0D, 256, 4096, meta_count, tensor_count] {
        h.extend_from_slice(&u32::to_le_bytes(v));
    }
    for v in [64, table, data, len] {
        h.extend_from_slice(&u64::to_le_bytes(v));
    }
    h
}

#[test]
fn empty_sections_are_valid_layouts() {
    // No metadata and no tensors: the table starts at 64, where the metadata ends, and the
    // data section (0 bytes) on the first page.
    let mut b = header(0, 0, 64, 4096, 4096);
    b.resize(4096, 0);
    let idx = format::parse(&b).unwrap();
    assert!(idx.meta.entries().is_empty() && idx.tensors.is_empty());
    // No tensors behind metadata that fills the first page exactly: an empty table at 4096
    // and the data section there too. One string entry: key "k", type 2, 4019 bytes.
    let mut b = header(1, 0, 4096, 4096, 4096);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&2u32.to_le_bytes());
    b.extend_from_slice(&4019u32.to_le_bytes());
    b.resize(4096, b'x');
    let idx = format::parse(&b).unwrap();
    assert_eq!(idx.meta.str("k").map(str::len), Some(4019));
    assert_eq!((idx.data_offset, idx.tensors.len()), (4096, 0));
}

#[test]
fn length_errors_truncation_and_trailing_bytes() {
    let good = small().to_bytes();
    for cut in [64, table_offset(&good), good.len() / 2, good.len() - 1] {
        assert!(
            matches!(err(&good[..cut]), FormatError::LengthMismatch { .. }),
            "cut at {cut}"
        );
    }
    let mut b = good.clone();
    b.push(0);
    assert!(matches!(err(&b), FormatError::LengthMismatch { .. }));
}

#[test]
fn metadata_errors() {
    let good = small().to_bytes();
    // Metadata entry: key "k" (u32 len + 1 byte) at 64, then its type at 69.
    let mut b = good.clone();
    put_u32(&mut b, 69, 9);
    assert_eq!(
        err(&b),
        FormatError::BadMetaType {
            key: "k".into(),
            found: 9
        }
    );
    let mut b = good.clone();
    b[68] = 0xFF;
    assert!(matches!(
        err(&b),
        FormatError::BadUtf8 {
            section: "metadata",
            ..
        }
    ));
    let mut b = good.clone();
    put_u32(&mut b, 64, 200); // key length runs past the section
    assert!(matches!(
        err(&b),
        FormatError::Truncated {
            section: "metadata",
            ..
        }
    ));
    let mut b = good.clone();
    put_u32(&mut b, 64, 1 << 30);
    assert!(matches!(err(&b), FormatError::CountTooLarge { .. }));
    // Two keys of equal length; renaming the second to the first makes a duplicate.
    let mut w = TinvWriter::new();
    w.meta("ka", MetaValue::U64(1))
        .meta("kb", MetaValue::U64(2));
    let mut b = w.to_bytes();
    let pos = b.windows(2).position(|s| s == b"kb").unwrap();
    b[pos + 1] = b'a';
    assert_eq!(err(&b), FormatError::DuplicateKey { key: "ka".into() });
    // Entries fewer than written ("k", tinv.content_hash, tinv.meta_hash): the rest would be
    // left unread between the metadata and the table. "k" ends at 64 + 4 + 1 (key) + 4 (type)
    // + 8; tinv.content_hash (17 bytes) 4 + 17 + 4 + 8 later.
    let mut b = good.clone();
    let n = u32::from_le_bytes(b[24..28].try_into().unwrap());
    assert_eq!(n, 3);
    for (count, end) in [(1, 81), (2, 81 + 33)] {
        put_u32(&mut b, 24, count);
        let want = format!("{count} metadata entries end at {end}");
        assert!(
            matches!(&err(&b), FormatError::BadSections { detail } if detail.contains(&want)),
            "{want}"
        );
    }
}

#[test]
fn tensor_record_errors() {
    let good = small().to_bytes();
    let r = first_record(&good); // dtype u32, flags u32, ndim u32, dims, offset, nbytes, checksum
    let mut b = good.clone();
    put_u32(&mut b, r, 7);
    assert_eq!(
        err(&b),
        FormatError::BadDType {
            tensor: "a".into(),
            found: 7
        }
    );
    // Flag bits past the device bit are undefined in version 1.
    let mut b = good.clone();
    put_u32(&mut b, r + 4, 2);
    assert_eq!(
        err(&b),
        FormatError::BadFlags {
            tensor: "a".into(),
            found: 2
        }
    );
    let mut b = good.clone();
    put_u32(&mut b, r + 8, 9);
    assert!(matches!(
        err(&b),
        FormatError::CountTooLarge {
            what: "dimension",
            ..
        }
    ));
    let mut b = good.clone();
    put_u64(&mut b, r + 12, 0);
    assert_eq!(err(&b), FormatError::BadShape { tensor: "a".into() });
    let mut b = good.clone();
    put_u64(&mut b, r + 12, u64::MAX);
    assert_eq!(err(&b), FormatError::BadShape { tensor: "a".into() });
    let mut b = good.clone();
    put_u64(&mut b, r + 12, 3);
    assert_eq!(
        err(&b),
        FormatError::ByteLengthMismatch {
            tensor: "a".into(),
            expected: 36,
            found: 24
        }
    );
    let mut b = good.clone();
    put_u64(&mut b, r + 28, 8);
    assert_eq!(
        err(&b),
        FormatError::Misaligned {
            tensor: "a".into(),
            offset: 8
        }
    );
    let mut b = good.clone();
    put_u64(&mut b, r + 28, 1 << 40);
    assert!(matches!(err(&b), FormatError::OutOfBounds { .. }));
    // Second tensor moved onto the first: overlap.
    let mut b = good.clone();
    let r2 = r + 4 + 4 + 4 + 16 + 24 + 4 + 1; // past record "a", name "b"
    put_u64(&mut b, r2 + 20, 0);
    assert_eq!(
        err(&b),
        FormatError::Overlap {
            first: "a".into(),
            second: "b".into()
        }
    );
    // Same name twice.
    let mut b = good.clone();
    b[r2 - 1] = b'a';
    assert_eq!(err(&b), FormatError::DuplicateTensor { tensor: "a".into() });
    let mut b = good.clone();
    b[r - 1] = 0xC3;
    assert!(matches!(
        err(&b),
        FormatError::BadUtf8 {
            section: "tensor table",
            ..
        }
    ));
}

#[test]
fn checksums_and_the_content_hash_are_the_documented_fnv1a() {
    let bytes = small().to_bytes();
    let idx = format::parse(&bytes).unwrap();
    // The tensors' bytes from their values, not from the file.
    let a: Vec<u8> = [1f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let b: Vec<u8> = [0.5f32, -0.5, 1.5, 2.0]
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let (sum_a, sum_b) = (fnv(BASIS, &a), fnv(BASIS, &b));
    assert_eq!(idx.tensor("a").unwrap().checksum, sum_a);
    assert_eq!(idx.tensor("b").unwrap().checksum, sum_b);
    // "tinv-content-v1", then per tensor in table order: name, a zero byte, checksum LE.
    let mut h = fnv(BASIS, b"tinv-content-v1");
    for (name, sum) in [("a", sum_a), ("b", sum_b)] {
        h = fnv(h, name.as_bytes());
        h = fnv(h, &[0]);
        h = fnv(h, &sum.to_le_bytes());
    }
    assert_eq!(idx.meta.u64("tinv.content_hash"), Some(h));
}

#[test]
fn flipped_data_byte_is_caught_by_verify_only() {
    let good = small().to_bytes();
    let idx = format::parse(&good).unwrap();
    let mut b = good.clone();
    b[idx.tensor("b").unwrap().offset + 1] ^= 0x40;
    let idx2 = format::parse(&b).expect("structure is intact");
    assert!(
        matches!(idx2.verify(&b), Err(FormatError::ChecksumMismatch { tensor, .. }) if tensor == "b")
    );
}

#[test]
fn model_level_errors_name_the_tensor_or_key() {
    let cfg = synth::tiny(3, false);
    let good = synth::random_model(&cfg, 1, DType::F32);
    assert!(Model::from_bytes(&good, &OpenOptions::default().verify(true)).is_ok());
    // A file that is valid .tinv but lacks the model's tensors.
    let msg = |r: tinv::Result<Model>| match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("must be refused"),
    };
    let m = msg(Model::from_bytes(
        &small().to_bytes(),
        &OpenOptions::default(),
    ));
    assert!(m.contains("vit.image_size"), "{m}");
    // Config present, a tensor missing.
    let mut w = TinvWriter::new();
    let mut meta = tinv::format::Metadata::new();
    cfg.to_meta(&mut meta);
    for (k, v) in meta.entries() {
        w.meta(k, v.clone());
    }
    w.tensor("stem.patch.weight", &[16, 16], &[0.0; 256], DType::F32);
    let m = msg(Model::from_bytes(&w.to_bytes(), &OpenOptions::default()));
    assert!(m.contains("'stem.patch.bias' is missing"), "{m}");
    // Wrong shape.
    let mut w = TinvWriter::new();
    for (k, v) in meta.entries() {
        w.meta(k, v.clone());
    }
    w.tensor("stem.patch.weight", &[8, 16], &[0.0; 128], DType::F32);
    let m = msg(Model::from_bytes(&w.to_bytes(), &OpenOptions::default()));
    assert!(
        m.contains("stem.patch.weight") && m.contains("[8, 16]"),
        "{m}"
    );
    // The page rule (FORMAT.md "Order and pages"): the same tensors rewritten without page
    // breaks, and with block 1 written before block 0.
    let idx = format::parse(&good).unwrap();
    let rewrite = |order: &[&str], breaks: bool| -> Vec<u8> {
        let mut w = TinvWriter::new();
        for (k, v) in idx.meta.entries() {
            w.meta(k, v.clone());
        }
        for prefix in order {
            if breaks && !prefix.starts_with("ctrl") {
                w.page_break();
            }
            for t in idx.tensors.iter().filter(|t| t.name.starts_with(prefix)) {
                let raw = &good[t.offset..t.offset + t.nbytes];
                let v: Vec<f32> = raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect();
                w.tensor(&t.name, &t.shape, &v, DType::F32);
            }
        }
        w.to_bytes()
    };
    let in_order = ["stem.", "blk.0.", "exit.1.", "blk.1.", "exit.2."];
    assert!(Model::from_bytes(&rewrite(&in_order, true), &OpenOptions::default()).is_ok());
    let m = msg(Model::from_bytes(
        &rewrite(&in_order, false),
        &OpenOptions::default(),
    ));
    assert!(
        m.contains("blk.0 does not start on a fresh 4096-byte page"),
        "{m}"
    );
    let swapped = ["stem.", "blk.1.", "blk.0.", "exit.1.", "exit.2."];
    let m = msg(Model::from_bytes(
        &rewrite(&swapped, true),
        &OpenOptions::default(),
    ));
    assert!(
        m.contains("the depth-1 path reads bytes after blk.1 starts"),
        "{m}"
    );
    // Inconsistent config: patch does not divide the image.
    let mut bad = cfg.clone();
    bad.patch = 3;
    assert!(bad.validate().unwrap_err().contains("does not divide"));
    // Open errors name the file.
    match Model::open("/nonexistent/x.tinv", &OpenOptions::default()) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("x.tinv")),
        _ => panic!("expected an I/O error"),
    }
}

/// FORMAT.md's page rule asks that a path's tensors end *before* the next block's first page:
/// ending exactly at it is allowed. D 15 and 64 classes make exit.1's head 3 840 + 256 bytes,
/// one page, so blk.1 (on the next fresh page) starts at the byte where path 1's data ends.
#[test]
fn a_path_may_end_exactly_where_the_next_block_starts() {
    let cfg = synth::config(8, 1, 4, 15, 2, 3, 64, &[1, 2], false);
    let good = synth::random_model(&cfg, 3, DType::F32);
    let idx = format::parse(&good).unwrap();
    let bias = idx.tensor("exit.1.head.bias").unwrap();
    let next = idx.tensor("blk.1.qkv.weight").unwrap();
    assert_eq!(bias.offset + bias.nbytes, next.offset);
    assert!(Model::from_bytes(&good, &OpenOptions::default()).is_ok());
}

#[test]
fn a_failed_write_leaves_no_partial_file() {
    let dir = std::env::temp_dir().join(format!("tinv-write-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The target is a non-empty directory: the final rename fails.
    let target = dir.join("m.tinv");
    std::fs::create_dir_all(target.join("inside")).unwrap();
    assert!(small().write(&target).is_err());
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [std::ffi::OsString::from("m.tinv")],
        "only the directory remains"
    );
    // And a write that succeeds leaves the file alone, no partial file beside it.
    let ok = dir.join("ok.tinv");
    small().write(&ok).unwrap();
    assert_eq!(std::fs::read(&ok).unwrap(), small().to_bytes());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
