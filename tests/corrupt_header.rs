//! Corrupt `.tinv` files, starting from a real model (`synth::random_model`, with controller, in
//! tests/common/corrupt_model.rs): truncation at every section boundary and at random points,
//! header fields changed one at a time, and single-bit flips over the whole header. Each case
//! checks its specific error. The tables and metadata are corrupted in corrupt_tables.rs, the
//! data in corrupt_data.rs, counts and sizes in corrupt_sizes.rs; tests/format_errors.rs has one
//! crafted file per error variant, these suites work on a whole model.

#[path = "common/corrupt_model.rs"]
#[allow(dead_code)] // each corrupt_*.rs uses some of the model's helpers
mod corrupt_model;

use corrupt_model::{model_bytes, parse_err, put_u32, put_u64, Layout};
use tinv::format::{self, DType, FormatError};
use tinv::{synth, Error, Model, OpenOptions};

#[test]
fn truncation_at_every_boundary_and_random_point_is_refused() {
    let good = model_bytes(DType::F32);
    let l = Layout::read(&good);
    let len = good.len() as u64;
    let mut cuts = l.boundaries();
    let mut rng = synth::Rng::new(5);
    cuts.extend((0..300).map(|_| (rng.next_u64() % good.len() as u64) as usize));
    for &cut in &cuts {
        let expect = if cut < 64 {
            FormatError::TooShort { len: cut as u64 }
        } else {
            FormatError::LengthMismatch {
                declared: len,
                actual: cut as u64,
            }
        };
        assert_eq!(parse_err(&good[..cut]), expect, "cut at {cut}");
        assert!(matches!(
            Model::from_bytes(&good[..cut], &OpenOptions::default()),
            Err(Error::Format { error, .. }) if error == expect
        ));
    }
}

#[test]
fn truncation_behind_a_consistent_header_names_the_section_or_tensor() {
    // A writer that died after fixing up the header: `file_len` says the truncated length.
    let good = model_bytes(DType::F32);
    let l = Layout::read(&good);
    let mut rng = synth::Rng::new(6);
    let mut cuts: Vec<usize> = l.boundaries().into_iter().filter(|&c| c >= 64).collect();
    cuts.extend((0..200).map(|_| 64 + (rng.next_u64() % (good.len() as u64 - 64)) as usize));
    for &cut in &cuts {
        let mut b = good[..cut].to_vec();
        put_u64(&mut b, 56, cut as u64);
        let got = format::parse(&b);
        if cut < l.data_offset {
            // The table or data section now starts past the end of the file.
            assert!(
                matches!(got, Err(FormatError::BadSections { .. })),
                "cut {cut}: {got:?}"
            );
            continue;
        }
        let data_len = (cut - l.data_offset) as u64;
        if !data_len.is_multiple_of(256) {
            // The data section's length is a multiple of 256 in every file a writer finished.
            assert!(
                matches!(&got, Err(FormatError::BadSections { detail }) if detail.contains("not a multiple of 256")),
                "cut {cut}: {got:?}"
            );
            continue;
        }
        // The first tensor (in file order) that no longer fits is named.
        match l.records.iter().find(|r| r.offset + r.nbytes > data_len) {
            Some(r) => assert_eq!(
                got.unwrap_err(),
                FormatError::OutOfBounds {
                    tensor: r.name.clone(),
                    end: r.offset + r.nbytes,
                    data_len
                },
                "cut {cut}"
            ),
            // Only zero padding after the last tensor was cut: the tensors are intact.
            None => {
                assert!(
                    got.is_ok()
                        && Model::from_bytes(&b, &OpenOptions::default().verify(true)).is_ok()
                )
            }
        }
    }
}

#[test]
fn each_header_field_corruption_gives_its_error() {
    let good = model_bytes(DType::F32);
    let l = Layout::read(&good);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        parse_err(&b)
    };
    for i in 0..8 {
        assert_eq!(
            with(&|b| b[i] ^= 0x20),
            FormatError::BadMagic { looks_like: None },
            "magic byte {i}"
        );
    }
    assert_eq!(
        with(&|b| put_u32(b, 8, 0)),
        FormatError::UnsupportedVersion { found: 0 }
    );
    assert_eq!(
        with(&|b| put_u32(b, 12, 0x0D0C_0B0A)),
        FormatError::BadEndianTag { found: 0x0D0C_0B0A }
    );
    assert_eq!(
        with(&|b| put_u32(b, 20, 65536)),
        FormatError::BadAlignment {
            alignment: 256,
            page: 65536
        }
    );
    let too_many = |what, count: u64, max| FormatError::CountTooLarge { what, count, max };
    assert_eq!(
        with(&|b| put_u32(b, 24, 4097)),
        too_many("metadata", 4097, 4096)
    );
    assert_eq!(
        with(&|b| put_u32(b, 28, 65537)),
        too_many("tensor", 65537, 65536)
    );
    // The limits themselves are allowed (FORMAT.md: ≤ 4096, ≤ 65536): these files fail only
    // when the entries they declare are not there.
    assert!(
        matches!(
            with(&|b| put_u32(b, 24, 4096)),
            FormatError::Truncated {
                section: "metadata",
                ..
            }
        ),
        "4096 metadata entries"
    );
    let most = with(&|b| put_u32(b, 28, 65536));
    assert!(
        !matches!(most, FormatError::CountTooLarge { .. }),
        "65536 tensors: {most:?}"
    );
    // One metadata entry more than written: the next key would start at the table.
    let at = l.table_offset as u64;
    assert_eq!(
        with(&|b| put_u32(b, 24, l.meta.len() as u32 + 1)),
        FormatError::Truncated {
            section: "metadata",
            at
        }
    );
    // 100 tensor records more than written: the zero padding after the table reads as a
    // record with an empty name, refused as that, with the record's index and the claimed
    // count. (This needs a record's worth of padding between the table and the data; the file
    // without a controller has it.)
    let plain = synth::random_model(
        &synth::config(8, 1, 4, 16, 3, 2, 5, &[1, 2, 3], false),
        17,
        DType::F32,
    );
    let lp = Layout::read(&plain);
    assert!(
        lp.data_offset - lp.table_end >= 40,
        "room for one zero record"
    );
    let mut b = plain.clone();
    put_u32(&mut b, 28, lp.records.len() as u32 + 100);
    let zero = FormatError::EmptyTensorName {
        record: lp.records.len() as u32,
        tensor_count: lp.records.len() as u32 + 100,
    };
    assert_eq!(parse_err(&b), zero);
    let claim = format!(
        "does tensor_count {} claim more records than the table holds",
        lp.records.len() + 100
    );
    assert!(zero.to_string().contains(&claim), "{zero}");
    for (field, v) in [(32, 65), (40, 63), (48, 4095), (48, 1 << 40)] {
        assert!(
            matches!(
                with(&|b| put_u64(b, field, v)),
                FormatError::BadSections { .. }
            ),
            "field {field} = {v}"
        );
    }
    let len = good.len() as u64;
    let mismatch = FormatError::LengthMismatch {
        declared: len + 1,
        actual: len,
    };
    assert_eq!(with(&|b| put_u64(b, 56, len + 1)), mismatch);
}

#[test]
fn every_single_bit_flip_in_the_header_is_refused_or_detected() {
    let good = model_bytes(DType::F32);
    let l = Layout::read(&good);
    let meta_count = l.meta.len() as u32;
    let mut undetected = Vec::new();
    for byte in 0..64 {
        for bit in 0..8 {
            let mut b = good.clone();
            b[byte] ^= 1 << bit;
            let Ok(index) = format::parse(&b) else {
                continue;
            };
            if Model::from_bytes(&b, &OpenOptions::default()).is_err() || index.verify(&b).is_err()
            {
                continue;
            }
            undetected.push((byte, bit, index));
        }
    }
    // None goes unnoticed.
    assert!(
        undetected.is_empty(),
        "{:?}",
        undetected.iter().map(|u| (u.0, u.1)).collect::<Vec<_>>()
    );
    // The last one that did (bug 11 in docs/RELIABILITY.md) was bit 0 of an odd meta_count: one
    // entry fewer dropped the last one, which was not needed to run; the entries must now end
    // where the table starts.
    let mut b = good.clone();
    put_u32(&mut b, 24, meta_count - 1);
    assert!(matches!(
        format::parse(&b),
        Err(FormatError::BadSections { detail }) if detail.contains("metadata entries end at")
    ));
}
