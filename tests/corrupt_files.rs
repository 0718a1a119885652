//! Corrupt `.tinv` files, starting from a real model (`synth::random_model`, with controller):
//! truncation at every section boundary and at random points, header and table fields changed one
//! at a time, single-bit flips over the whole header, data flips (caught by `verify` only),
//! absurd counts and sizes (measured: the parser never holds more than twice the file), NaN/Inf
//! weights (the documented policy: accepted, deterministic, never a crash or a wrong path), zero
//! and mismatched dimensions and metadata that disagrees with the tensors. Each case checks its
//! specific error. tests/format_errors.rs has one crafted file per error variant; this suite works
//! on a whole model. The file layout is read here by a walker written from docs/FORMAT.md alone.

use std::sync::Arc;
use tinv::format::{self, DType, FormatError};
use tinv::{synth, Error, Mode, Model, OpenOptions, Session, SessionOptions, Stats};

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
    // 100 tensor records more than written: the zero padding after the table reads as an
    // unnamed 0-D f32 tensor of 0 bytes, which should be 4. (This needs a record's worth of
    // padding between the table and the data; the file without a controller has it.)
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
    let zero = FormatError::ByteLengthMismatch {
        tensor: String::new(),
        expected: 4,
        found: 0,
    };
    assert_eq!(parse_err(&b), zero);
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
        let utf8 = FormatError::BadUtf8 {
            section: "tensor table",
            at: r.name_at as u64,
        };
        assert_eq!(err(&|b| b[r.name_at] = 0xFF), utf8);
        // Fields the structure does not cover: the checksum (verify) and the device flag (model).
        let b = with(&|b| put_u64(b, r.checksum_at, r.checksum ^ 1)).expect("structure intact");
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
        // A renamed tensor (same length) is missing to the model.
        let renamed = with(&|b| b[r.name_at + r.name.len() - 1] = b'~').expect("names are free");
        let msg = model_err(&renamed);
        // Named with the file (`from_bytes` calls it "<memory>"), like every model error.
        assert!(
            msg.starts_with("<memory>: ") && msg.contains(&format!("tensor '{name}' is missing")),
            "{msg}"
        );
    }
}

#[test]
fn data_flips_are_caught_by_verify_and_only_by_verify() {
    for dtype in [DType::F32, DType::F16] {
        let good = model_bytes(dtype);
        let l = Layout::read(&good);
        let mut rng = synth::Rng::new(9);
        for r in &l.records {
            for _ in 0..3 {
                let at = l.data_offset + r.offset as usize + (rng.next_u64() % r.nbytes) as usize;
                let mut b = good.clone();
                b[at] ^= 1 << (rng.next_u64() % 8);
                let idx = format::parse(&b).expect("data flips keep the structure");
                assert!(Model::from_bytes(&b, &OpenOptions::default()).is_ok());
                assert!(
                    matches!(idx.verify(&b), Err(FormatError::ChecksumMismatch { tensor, .. }) if tensor == r.name)
                );
                assert!(matches!(
                    Model::from_bytes(&b, &OpenOptions::default().verify(true)),
                    Err(Error::Format { error: FormatError::ChecksumMismatch { tensor, .. }, .. }) if tensor == r.name
                ));
            }
        }
        // Padding between tensors is outside every checksum: a flip there changes nothing.
        let gap = l.padding().next().expect("page breaks leave padding");
        let mut b = good.clone();
        b[gap] = 0xAB;
        assert!(Model::from_bytes(&b, &OpenOptions::default().verify(true)).is_ok());
    }
}

#[test]
fn absurd_counts_and_sizes_never_allocate_more_than_twice_the_file() {
    let good = model_bytes(DType::F16);
    let l = Layout::read(&good);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    // Largest legal counts in the header with the real (short) sections behind them.
    cases.push(edit(&|b| put_u32(b, 24, 4096)));
    cases.push(edit(&|b| put_u32(b, 28, 65536)));
    // The first key's length, a string value's length and an array's count at their limits.
    cases.push(edit(&|b| put_u32(b, 64, 256)));
    let gelu = l.meta_entry("vit.gelu");
    cases.push(edit(&|b| put_u32(b, gelu.value_at, 1 << 20)));
    let mean = l.meta_entry("vit.mean");
    cases.push(edit(&|b| put_u32(b, mean.value_at, 1 << 20)));
    // Dimensions whose product overflows, and the largest ones that do not.
    let r = &l.records[0];
    cases.push(edit(&|b| {
        (0..2).for_each(|k| put_u64(b, r.dims_at + 8 * k, 1 << 40))
    }));
    cases.push(edit(&|b| {
        (0..2).for_each(|k| put_u64(b, r.dims_at + 8 * k, 1 << 30))
    }));
    // A configuration of the largest supported model over this file's small tensors.
    for (key, v) in [
        ("vit.dim", 16384),
        ("vit.mlp_hidden", 65536),
        ("vit.classes", 1 << 20),
        ("vit.blocks", 1024),
    ] {
        cases.push(edit(&|b| put_u64(b, l.meta_entry(key).value_at, v)));
    }
    // A legal 8 MiB metadata array under the metadata checksum: hashing it must not copy it.
    let idx = format::parse(&good).unwrap();
    let mut w = format::TinvWriter::new();
    for (k, v) in idx.meta.entries() {
        w.meta(k, v.clone());
    }
    w.meta("x.big", format::MetaValue::U64s(vec![7; 1 << 20]));
    for t in &idx.tensors {
        if (t.offset - idx.data_offset).is_multiple_of(format::PAGE as usize) {
            w.page_break();
        }
        let data = good[t.offset..t.offset + t.nbytes].to_vec();
        w.raw_tensor(&t.name, t.dtype, t.flags, &t.shape, data);
    }
    let big = w.to_bytes();
    let parsed = format::parse(&big).unwrap();
    assert!(parsed.meta.u64(format::META_HASH_KEY).is_some() && big.len() > 8 << 20);
    cases.push(big);
    // And 2000 random corruptions of the header, metadata and table.
    let mut rng = synth::Rng::new(12);
    for _ in 0..2000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.next_u64() % 4 {
            let at = (rng.next_u64() % l.data_offset as u64) as usize;
            b[at] = match rng.next_u64() % 3 {
                0 => 0xFF,
                1 => 0,
                _ => rng.next_u64() as u8,
            };
        }
        cases.push(b);
    }
    // The counter sees the model's own allocations: at least the f16 matrices widened to f32
    // (which a CPU session asks for; opening alone does not).
    let widened: u64 = l
        .records
        .iter()
        .filter(|r| u32_at(&good, r.dtype_at) == 1)
        .map(|r| 2 * r.nbytes)
        .sum();
    let (res, peak) = peak_heap(|| {
        let m = Model::from_bytes(&good, &OpenOptions::default())?;
        m.widen_host()?;
        Ok::<_, tinv::Error>(m.host_copy_bytes())
    });
    assert_eq!(res.as_ref().ok().copied(), Some(widened as usize));
    assert!(
        res.is_ok() && peak as u64 >= widened && widened > 0,
        "peak {peak}, widened {widened}"
    );
    let mut opened = 0;
    for b in &cases {
        let (res, peak) =
            peak_heap(|| Model::from_bytes(b, &OpenOptions::default()).map(|m| m.config().dim));
        opened += usize::from(res.is_ok());
        assert!(
            peak <= 2 * b.len() + 64 * 1024,
            "peak {peak} bytes for a {}-byte file",
            b.len()
        );
        let (_, peak) = peak_heap(|| format::parse(b).map(|i| i.tensors.len()));
        assert!(
            peak <= b.len() + 64 * 1024,
            "parse peak {peak} bytes for a {}-byte file",
            b.len()
        );
    }
    // The random corruptions hit names, values and padding too, so some still open.
    assert!(
        opened > 0 && opened < cases.len(),
        "{opened} of {} opened",
        cases.len()
    );
}

#[test]
fn nan_and_inf_weights_are_accepted_and_run_deterministically() {
    // Policy (docs/RELIABILITY.md): the file stores weights verbatim and open does not scan
    // values; `--verify` checks checksums, which NaN bits satisfy. Inference on non-finite weights
    // either answers with finite logits or fails with `Error::Numeric` (the logits, or the
    // outputs of a controller net the mode consults, came out non-finite); the same outcome, to
    // the bit, every time.
    let cfg = model_config();
    let good = model_bytes(DType::F32);
    let l = Layout::read(&good);
    let x = synth::random_inputs(&cfg, 3, 21);
    for (tensor, value) in [
        ("blk.0.fc1.weight", f32::NAN),
        ("exit.2.head.bias", f32::INFINITY),
        ("stem.pos", f32::NEG_INFINITY),
        ("ctrl.policy.fc2.bias", f32::NAN),
        ("ctrl.graph.fc2.bias", f32::NAN),
        ("ctrl.exit.out.bias", f32::NAN),
    ] {
        let b = l.with_tensor_values(&good, tensor, value);
        let model = Arc::new(
            Model::from_bytes(&b, &OpenOptions::default().verify(true)).expect("accepted at open"),
        );
        let mut s = Session::new(model, SessionOptions::default().max_batch(3)).expect("session");
        let mut first = vec![0f32; 3 * cfg.classes];
        let mut again = vec![0f32; 3 * cfg.classes];
        for mode in [Mode::Adaptive, Mode::Graph, Mode::Threshold(0.6)] {
            s.set_mode(mode).expect("mode");
            // The controller net each mode consults: level 1 and the exit RNN in adaptive mode,
            // the graph policy in graph mode, none for the threshold rule.
            let consulted = match mode {
                Mode::Adaptive => ["ctrl.policy", "ctrl.exit"]
                    .iter()
                    .any(|n| tensor.starts_with(n)),
                Mode::Graph => tensor.starts_with("ctrl.graph"),
                Mode::Threshold(_) => false,
                other => unreachable!("{other:?} is not in the list above"),
            };
            let r1 = s.infer(&x, 3, &mut first).map(<[Stats]>::to_vec);
            let r2 = s.infer(&x, 3, &mut again).map(<[Stats]>::to_vec);
            let stats = match (r1, r2) {
                (Ok(stats), Ok(_)) => {
                    assert_eq!(bits(&first), bits(&again), "{tensor} {mode:?}");
                    assert!(first.iter().all(|v| v.is_finite()), "{tensor} {mode:?}");
                    // The exit RNN is consulted only at an exit below the deepest: an `Ok` with
                    // a NaN RNN means level 1 started every input on the deepest path.
                    let deepest = cfg.depths[cfg.depths.len() - 1];
                    assert!(
                        !consulted
                            || (tensor.starts_with("ctrl.exit")
                                && stats.iter().all(|st| st.start_depth == deepest)),
                        "{tensor} {mode:?}: a NaN controller routed {stats:?}"
                    );
                    stats
                }
                (Err(Error::Numeric(a)), Err(Error::Numeric(b))) => {
                    assert_eq!(a, b, "{tensor} {mode:?}");
                    assert!(s.last_stats().is_empty(), "a failed call leaves no stats");
                    // A NaN in the first block reaches every exit; the controller's NaNs fail
                    // only the modes that consult that net.
                    assert!(
                        !tensor.starts_with("ctrl.") || consulted,
                        "{tensor} {mode:?}: {a}"
                    );
                    continue;
                }
                other => panic!("{tensor} {mode:?}: {other:?}"),
            };
            assert_ne!(
                tensor, "blk.0.fc1.weight",
                "NaN in block 0 gave finite logits"
            );
            for st in &stats {
                assert!(
                    st.path < cfg.depths.len()
                        && st.depth == cfg.depths[st.path]
                        && st.class < cfg.classes
                );
            }
        }
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

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

// ---- The model under test and an independent reader of its layout (docs/FORMAT.md) ----------

fn model_config() -> tinv::Config {
    // 8×8 grey, patch 4, D 16, 3 blocks, 2 heads, 5 classes, exits after blocks 1, 2, 3, controller.
    synth::config(8, 1, 4, 16, 3, 2, 5, &[1, 2, 3], true)
}

fn model_bytes(dtype: DType) -> Vec<u8> {
    synth::random_model(&model_config(), 17, dtype)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn parse_err(b: &[u8]) -> FormatError {
    format::parse(b).expect_err("must be refused")
}

/// The one-line message of a file that parses but is not a model this runtime can run. Its
/// metadata checksum is recomputed first ([`resealed`]): the edit under test must reach the
/// checks of the configuration, which a file written by another tool meets without one.
fn model_err(b: &[u8]) -> String {
    match Model::from_bytes(&resealed(b), &OpenOptions::default()) {
        Err(e @ Error::Model { .. }) => e.to_string(),
        Err(e) => panic!("expected a model error, got {e}"),
        Ok(_) => panic!("must be refused"),
    }
}

/// `b` with `tinv.meta_hash` recomputed as docs/FORMAT.md defines it: FNV-1a 64 over
/// `tinv-meta-v1`, then the bytes of every other metadata entry in file order.
fn resealed(b: &[u8]) -> Vec<u8> {
    let l = Layout::read(b);
    let fnv = |h: u64, bytes: &[u8]| {
        bytes.iter().fold(h, |h, &x| {
            (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
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
struct MetaEntry {
    key: String,
    start: usize,
    value_at: usize,
}

/// One tensor record: its fields and the byte position of each.
struct Record {
    name: String,
    start: usize,
    name_at: usize,
    dtype_at: usize,
    dims_at: usize,
    dims: Vec<u64>,
    offset_at: usize,
    /// Relative to the data section.
    offset: u64,
    nbytes_at: usize,
    nbytes: u64,
    checksum_at: usize,
    checksum: u64,
}

struct Layout {
    len: usize,
    table_offset: usize,
    table_end: usize,
    data_offset: usize,
    meta: Vec<MetaEntry>,
    records: Vec<Record>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

impl Layout {
    /// Walks a valid file (panics on anything unexpected: it only reads files the writer made).
    fn read(b: &[u8]) -> Layout {
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
    fn boundaries(&self) -> Vec<usize> {
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

    fn meta_entry(&self, key: &str) -> &MetaEntry {
        self.meta
            .iter()
            .find(|m| m.key == key)
            .unwrap_or_else(|| panic!("no key {key}"))
    }

    fn record(&self, name: &str) -> &Record {
        self.records
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }

    /// Absolute positions in the data section that no tensor covers.
    fn padding(&self) -> impl Iterator<Item = usize> + '_ {
        (self.data_offset..self.len).filter(|&p| {
            let rel = (p - self.data_offset) as u64;
            !self
                .records
                .iter()
                .any(|r| (r.offset..r.offset + r.nbytes).contains(&rel))
        })
    }

    /// `b` with every value of f32 tensor `name` set to `v` and its checksum updated to match.
    fn with_tensor_values(&self, b: &[u8], name: &str, v: f32) -> Vec<u8> {
        let r = self.record(name);
        let mut out = b.to_vec();
        let at = self.data_offset + r.offset as usize;
        let data = &mut out[at..at + r.nbytes as usize];
        data.chunks_exact_mut(4)
            .for_each(|c| c.copy_from_slice(&v.to_le_bytes()));
        let sum = format::fnv1a64(data);
        put_u64(&mut out, r.checksum_at, sum);
        out
    }
}

// ---- Peak heap use of one call on this thread ------------------------------------------------

mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static TRACK: Cell<bool> = const { Cell::new(false) };
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    fn grow(n: usize) {
        let _ = TRACK.try_with(|t| {
            if t.get() {
                let live = LIVE.with(|l| {
                    l.set(l.get() + n);
                    l.get()
                });
                PEAK.with(|p| p.set(p.get().max(live)));
            }
        });
    }

    fn shrink(n: usize) {
        let _ = TRACK.try_with(|t| {
            if t.get() {
                LIVE.with(|l| l.set(l.get().saturating_sub(n)));
            }
        });
    }

    /// Forwards to the system allocator; counts the bytes this thread holds while tracking.
    pub struct Counting;

    // SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
    // bookkeeping only touches const-initialized thread-locals, which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            grow(l.size());
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc(l) }
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            grow(l.size());
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc_zeroed(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            shrink(l.size());
            // SAFETY: same contract as the caller's.
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            grow(n);
            shrink(l.size());
            // SAFETY: same contract as the caller's.
            unsafe { System.realloc(p, l, n) }
        }
    }

    /// Runs `f` and returns its result and the most heap bytes this thread held during it
    /// (beyond what it held before), the result's own allocations included.
    pub fn peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
        LIVE.with(|l| l.set(0));
        PEAK.with(|p| p.set(0));
        TRACK.with(|t| t.set(true));
        let r = f();
        TRACK.with(|t| t.set(false));
        (r, PEAK.with(Cell::get))
    }
}

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

fn peak_heap<R>(f: impl FnOnce() -> R) -> (R, usize) {
    heap::peak(f)
}
