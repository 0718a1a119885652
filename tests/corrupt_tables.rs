//! A real model's tensor table and metadata corrupted (tests/common/corrupt_model.rs): each table
//! field changed one at a time, zero and mismatched dimensions, and metadata that disagrees with
//! the tensors, each refused with its specific error naming the tensor or key.

#[path = "common/corrupt_model.rs"]
#[allow(dead_code)] // each corrupt_*.rs uses some of the model's helpers
mod corrupt_model;

use corrupt_model::{
    model_bytes, model_config, model_err, parse_err, put_u32, put_u64, rehashed, Layout,
};
use tinv::format::{self, DType, FormatError};

#[test]
fn each_table_field_corruption_gives_its_error_naming_the_tensor() {
    let good = model_bytes(DType::F32);
    let l = Layout::read(&good);
    for (i, r) in l.records.iter().enumerate() {
        let name = r.name.clone();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            format::parse(&b).map(|_| b)
        };
        let err = |f: &dyn Fn(&mut Vec<u8>)| with(f).expect_err(&name);
        let numel = r.nbytes / 4;
        assert_eq!(
            err(&|b| put_u32(b, r.dtype_at, 7)),
            FormatError::BadDType {
                tensor: name.clone(),
                found: 7
            }
        );
        // f32 relabelled f16: the byte length no longer matches.
        let half = FormatError::ByteLengthMismatch {
            tensor: name.clone(),
            expected: numel * 2,
            found: r.nbytes,
        };
        assert_eq!(err(&|b| put_u32(b, r.dtype_at, 1)), half);
        let dims = FormatError::CountTooLarge {
            what: "dimension",
            count: 9,
            max: 8,
        };
        assert_eq!(err(&|b| put_u32(b, r.dtype_at + 8, 9)), dims);
        assert_eq!(
            err(&|b| put_u64(b, r.dims_at, 0)),
            FormatError::BadShape {
                tensor: name.clone()
            }
        );
        let d0 = r.dims[0];
        let grown = FormatError::ByteLengthMismatch {
            tensor: name.clone(),
            expected: (numel / d0) * (d0 + 1) * 4,
            found: r.nbytes,
        };
        assert_eq!(err(&|b| put_u64(b, r.dims_at, d0 + 1)), grown);
        let longer = FormatError::ByteLengthMismatch {
            tensor: name.clone(),
            expected: r.nbytes,
            found: r.nbytes + 4,
        };
        assert_eq!(err(&|b| put_u64(b, r.nbytes_at, r.nbytes + 4)), longer);
        let off = r.offset + 4;
        assert_eq!(
            err(&|b| put_u64(b, r.offset_at, off)),
            FormatError::Misaligned {
                tensor: name.clone(),
                offset: off
            }
        );
        let data_len = (good.len() - l.data_offset) as u64;
        let past = FormatError::OutOfBounds {
            tensor: name.clone(),
            end: data_len + r.nbytes,
            data_len,
        };
        assert_eq!(err(&|b| put_u64(b, r.offset_at, data_len)), past);
        // The largest aligned offset: the end overflows for tensors of 256 bytes or more, and is
        // then reported as u64::MAX.
        let end = (u64::MAX - 255).saturating_add(r.nbytes);
        let wrap = FormatError::OutOfBounds {
            tensor: name.clone(),
            end,
            data_len,
        };
        assert_eq!(err(&|b| put_u64(b, r.offset_at, u64::MAX - 255)), wrap);
        if i > 0 {
            let prev = &l.records[i - 1];
            let overlap = FormatError::Overlap {
                first: prev.name.clone(),
                second: name.clone(),
            };
            assert_eq!(err(&|b| put_u64(b, r.offset_at, prev.offset)), overlap);
        }
        // An offset moved by one alignment unit into the padding stays aligned, in bounds and
        // in order; the packed layout refuses it (it would feed zeros or the next tensor's
        // bytes to inference). Worked out here from the records, not taken from the parser.
        let prev_end = i
            .checked_sub(1)
            .map_or(0, |p| l.records[p].offset + l.records[p].nbytes);
        let (next, page) = (prev_end.div_ceil(256) * 256, prev_end.div_ceil(4096) * 4096);
        let moved = r.offset + 256;
        if moved != page && moved + r.nbytes <= data_len {
            let shifted = FormatError::NotPacked {
                tensor: name.clone(),
                offset: moved,
                next,
                page,
            };
            assert_eq!(err(&|b| put_u64(b, r.offset_at, moved)), shifted);
        }
        let utf8 = FormatError::BadUtf8 {
            section: "tensor table",
            at: r.name_at as u64,
        };
        assert_eq!(err(&|b| b[r.name_at] = 0xFF), utf8);
        // A stored checksum changed: the content hash, recomputed from the table at open, no
        // longer matches; with the content hash and the metadata checksum rewritten to match,
        // only `verify` (which reads the tensor's bytes) finds it.
        let mut flipped = good.clone();
        put_u64(&mut flipped, r.checksum_at, r.checksum ^ 1);
        assert!(
            matches!(
                parse_err(&flipped),
                FormatError::ContentHashMismatch {
                    expected: Some(_),
                    ..
                }
            ),
            "{name}"
        );
        let b = rehashed(&flipped);
        let idx = format::parse(&b).expect("structure intact");
        let sum = FormatError::ChecksumMismatch {
            tensor: name.clone(),
            expected: r.checksum ^ 1,
            found: r.checksum,
        };
        assert_eq!(idx.verify(&b), Err(sum));
        let b = with(&|b| put_u32(b, r.dtype_at + 4, 1)).expect("flags are not structural");
        let msg = model_err(&b);
        assert!(
            msg.contains(&format!("tensor '{name}' is marked as device-section")),
            "{msg}"
        );
        // A renamed tensor (same length): the content hash covers names; rewritten to match, the
        // tensor is missing to the model.
        let mut renamed = good.clone();
        renamed[r.name_at + r.name.len() - 1] = b'~';
        assert!(
            matches!(parse_err(&renamed), FormatError::ContentHashMismatch { .. }),
            "{name}"
        );
        let msg = model_err(&rehashed(&renamed));
        // Named with the file (`from_bytes` calls it "<memory>"), like every model error.
        assert!(
            msg.starts_with("<memory>: ") && msg.contains(&format!("tensor '{name}' is missing")),
            "{msg}"
        );
    }
}

#[test]
fn metadata_that_disagrees_with_the_tensors_is_refused_by_name() {
    let good = model_bytes(DType::F32);
    let l = Layout::read(&good);
    let cfg = model_config();
    let set = |key: &str, v: u64| {
        let mut b = good.clone();
        put_u64(&mut b, l.meta_entry(key).value_at, v);
        model_err(&b)
    };
    let has = |msg: String, want: &str| assert!(msg.contains(want), "{msg:?} lacks {want:?}");
    let d = cfg.dim;
    has(
        set("vit.dim", 8),
        &format!("'stem.patch.weight' has shape [16, {d}], the configuration needs [16, 8]"),
    );
    has(set("vit.heads", 3), "heads 3 do not divide dim 16");
    has(set("vit.heads", 0), "vit.heads must be > 0");
    has(
        set("vit.patch", 3),
        "patch 3 does not divide the image size 8x8",
    );
    has(
        set("vit.classes", 6),
        "'exit.1.head.weight' has shape [16, 5], the configuration needs [16, 6]",
    );
    has(
        set("vit.blocks", 4),
        "paths.depths [1, 2, 3] must be strictly ascending",
    );
    has(
        set("vit.channels", 3),
        "vit.mean / vit.std must have one value per channel",
    );
    has(
        set("vit.mlp_hidden", 1 << 17),
        "mlp_hidden 131072 exceeds the supported maximum 65536",
    );
    has(
        set("vit.dim", 1 << 20),
        "dim 1048576 exceeds the supported maximum 16384",
    );
    let depths = l.meta_entry("paths.depths");
    let mut b = good.clone();
    put_u64(&mut b, depths.value_at + 4 + 8, 1); // [1, 1, 3]
    has(
        model_err(&b),
        "paths.depths [1, 1, 3] must be strictly ascending",
    );
    put_u64(&mut b, depths.value_at + 4, 0); // [0, 1, 3]
    has(
        model_err(&b),
        "paths.depths [0, 1, 3] must be strictly ascending, start above 0",
    );
    let eps = l.meta_entry("vit.ln_eps");
    let mut b = good.clone();
    put_u64(&mut b, eps.value_at, f64::NAN.to_bits());
    has(model_err(&b), "vit.ln_eps NaN out of range");
    let std = l.meta_entry("vit.std");
    let mut b = good.clone();
    put_u64(&mut b, std.value_at + 4, 0f64.to_bits());
    has(model_err(&b), "vit.std must be finite and > 0");
    let features = l.meta_entry("ctrl.features");
    let mut b = good.clone();
    let last = features.value_at + 4 + "tinv.features.v1".len() - 1;
    b[last] = b'9';
    has(
        model_err(&b),
        "ctrl.features 'tinv.features.v9' is not supported",
    );
    // A metadata value of the wrong type: vit.dim (u64, type 0) relabelled f64 (type 1).
    let mut b = good.clone();
    put_u32(&mut b, l.meta_entry("vit.dim").value_at - 4, 1);
    has(
        model_err(&b),
        "metadata key 'vit.dim' missing or not an integer",
    );
    // A controller tensor whose hidden width disagrees with its weight: [16] shrunk to [8].
    let r = l.record("ctrl.pred.fc1.bias");
    let mut b = good.clone();
    put_u64(&mut b, r.dims_at, 8);
    put_u64(&mut b, r.nbytes_at, 32);
    has(
        model_err(&b),
        "tensor 'ctrl.pred.fc1.bias' has shape [8], the configuration needs [16]",
    );
    // A controller weight [8, 8] declared 1-D: the fields after its first dimension shift, so
    // its offset is read as its byte length, which a [8] f32 tensor cannot have.
    let r = l.record("ctrl.exit.wh");
    let mut b = good.clone();
    put_u32(&mut b, r.dtype_at + 8, 1);
    let shifted = FormatError::ByteLengthMismatch {
        tensor: "ctrl.exit.wh".into(),
        expected: 32,
        found: r.offset,
    };
    assert_eq!(parse_err(&b), shifted);
}
