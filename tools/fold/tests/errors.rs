//! Bad input: each failure is a typed error whose one-line message names the tensor, key or
//! flag at fault; the binary prints one `error:` line and exits 1.

mod common;

use common::*;
use tinv_fold::{fold, Checkpoint, ConfigSpec, FoldError, FoldOptions};

fn flags() -> ConfigSpec {
    ConfigSpec {
        heads: Some(3),
        image_size: Some((16, 12)),
        ..ConfigSpec::default()
    }
}

#[test]
fn missing_tensor_is_named() {
    let mut t = random_checkpoint(&Spec::small(), 1);
    t.remove("blocks.1.mlp.fc2.weight");
    let e = fold_err(&t, flags());
    assert!(
        matches!(&e, FoldError::MissingTensor { name, .. } if name == "blocks.1.mlp.fc2.weight")
    );
    assert!(one_line(&e).contains("'blocks.1.mlp.fc2.weight'"));
}

#[test]
fn wrong_shape_is_named_with_both_shapes() {
    let mut t = random_checkpoint(&Spec::small(), 1);
    t.insert(
        "blocks.2.attn.proj.weight".into(),
        (vec![24, 23], vec![0.0; 24 * 23]),
    );
    let e = fold_err(&t, flags());
    let s = one_line(&e);
    assert!(
        s.contains("'blocks.2.attn.proj.weight'")
            && s.contains("[24, 23]")
            && s.contains("[24, 24]"),
        "{s}"
    );
}

#[test]
fn unknown_tensor_is_refused_not_ignored() {
    let mut t = random_checkpoint(&Spec::small(), 1);
    t.insert("blocks.0.ls1.gamma".into(), (vec![24], vec![1.0; 24]));
    let e = fold_err(&t, flags());
    assert!(
        matches!(&e, FoldError::UnknownTensor(n) if n == "blocks.0.ls1.gamma"),
        "{e}"
    );
}

/// Exit heads exist only below full depth (FORMAT.md: `exit.{d}` for the paths' depths, the
/// deepest being timm's own `norm` + `head`): `exits.{d}.*` at or past the block count is no
/// tensor the tool knows, and is refused rather than dropped like an exit `--depths` leaves out.
#[test]
fn exit_heads_at_or_past_full_depth_are_refused_not_dropped() {
    for depth in [4, 5, 9] {
        let mut t = random_checkpoint(&Spec::small(), 1);
        for part in ["norm.weight", "norm.bias", "head.weight", "head.bias"] {
            let copy = t[&format!("exits.3.{part}")].clone();
            t.insert(format!("exits.{depth}.{part}"), copy);
        }
        let want = format!("exits.{depth}.head.bias");
        let e = fold_err(&t, flags());
        assert!(
            matches!(&e, FoldError::UnknownTensor(n) if *n == want),
            "depth {depth}: {e}"
        );
        // With a controller its paths are still 1, 3 and 4: the extra head is no path it lacks.
        add_controller(&mut t, &Spec::small(), 3, 2);
        let with_budget = ConfigSpec {
            default_budget: Some(0.5),
            ..flags()
        };
        let e = fold_err(&t, with_budget);
        assert!(
            matches!(&e, FoldError::UnknownTensor(n) if *n == want),
            "depth {depth}, controller: {e}"
        );
    }
}

#[test]
fn heads_must_be_given_and_divide_dim() {
    let t = random_checkpoint(&Spec::small(), 1);
    let s = one_line(&fold_err(
        &t,
        ConfigSpec {
            heads: None,
            ..flags()
        },
    ));
    assert!(s.contains("heads") && s.contains("--heads"), "{s}");
    // 0 heads is refused too, not a division by zero.
    for heads in [5, 0] {
        let s = one_line(&fold_err(
            &t,
            ConfigSpec {
                heads: Some(heads),
                ..flags()
            },
        ));
        assert!(
            s.contains(&format!("heads {heads} do not divide dim 24")),
            "{s}"
        );
    }
}

/// `image_size` is `[h, w]` or one number for both (FORMAT.md's `tinv.config`); any other
/// array is refused, not read in part.
#[test]
fn image_size_is_a_pair_or_one_number() {
    let size = |json: &str| ConfigSpec::from_json(json).map(|s| s.image_size);
    assert_eq!(size(r#"{"image_size": 16}"#).ok(), Some(Some((16, 16))));
    assert_eq!(
        size(r#"{"image_size": [16, 12]}"#).ok(),
        Some(Some((16, 12)))
    );
    for bad in ["[16]", "[16, 12, 1]", "[]", r#""16""#] {
        let e = size(&format!(r#"{{"image_size": {bad}}}"#)).expect_err(bad);
        let s = one_line(&e);
        assert!(s.contains("'image_size' must be [h, w] or n"), "{bad}: {s}");
    }
}

/// Widths read from tensors must be those of the model: a `pos_embed` as wide as another `dim`
/// is refused by the configuration itself, and a classifier with no rows is not 0 classes.
#[test]
fn position_embedding_width_and_empty_heads_are_refused() {
    let mut t = random_checkpoint(&Spec::small(), 1);
    t.insert("pos_embed".into(), (vec![1, 13, 23], vec![0.0; 13 * 23]));
    let ck = Checkpoint::parse(safetensors_bytes(&t, Src::F32, &[])).expect("container");
    match flags().resolve(&ck) {
        Err(FoldError::BadShape { name, found, .. }) => {
            assert_eq!((name.as_str(), found), ("pos_embed", vec![1, 13, 23]))
        }
        other => panic!("a 23-wide pos_embed for dim 24: {other:?}"),
    }
    let mut t = random_checkpoint(&Spec::small(), 1);
    t.insert("head.weight".into(), (vec![0, 24], vec![]));
    t.insert("head.bias".into(), (vec![0], vec![]));
    let e = fold_err(&t, flags());
    assert!(
        matches!(&e, FoldError::BadShape { name, .. } if name == "head.weight"),
        "{e}"
    );
}

#[test]
fn config_disagreeing_with_tensors_is_refused() {
    let t = random_checkpoint(&Spec::small(), 1);
    let s = one_line(&fold_err(
        &t,
        ConfigSpec {
            dim: Some(32),
            ..flags()
        },
    ));
    assert!(
        s.contains("dim is given as 32 but the tensors imply 24"),
        "{s}"
    );
    // 16x16 has 16 patches, pos_embed has 12 (+ class token).
    let s = one_line(&fold_err(
        &t,
        ConfigSpec {
            image_size: Some((16, 16)),
            ..flags()
        },
    ));
    assert!(s.contains("'pos_embed'"), "{s}");
    // Non-square grid and no image size: cannot infer.
    let s = one_line(&fold_err(
        &t,
        ConfigSpec {
            image_size: None,
            ..flags()
        },
    ));
    assert!(s.contains("--image-size"), "{s}");
}

#[test]
fn depth_without_exit_head_names_the_missing_tensor() {
    let t = random_checkpoint(&Spec::small(), 1); // exits at 1 and 3
    let e = fold_err(
        &t,
        ConfigSpec {
            depths: Some(vec![2, 4]),
            ..flags()
        },
    );
    assert!(one_line(&e).contains("'exits.2.norm.weight'"), "{e}");
    let e = fold_err(
        &t,
        ConfigSpec {
            depths: Some(vec![2, 3]),
            ..flags()
        },
    );
    assert!(one_line(&e).contains("paths.depths"), "{e}");
}

/// With a controller: a missing exit is named as such (it was reported as a controller tensor of
/// the wrong shape), and a subset of the paths the controller chooses among is refused.
#[test]
fn controller_checkpoints_fold_only_with_all_their_paths() {
    let spec = Spec::small(); // exits at 1 and 3 of 4 blocks
    let mut t = random_checkpoint(&spec, 1);
    add_controller(&mut t, &spec, 3, 2);
    let with = |depths: Vec<usize>| ConfigSpec {
        depths: Some(depths),
        default_budget: Some(0.5),
        ..flags()
    };
    let e = fold_err(&t, with(vec![2, 4]));
    let s = one_line(&e);
    assert!(
        s.contains("'exits.2.norm.weight'") && s.contains("exits at depths [1, 3]"),
        "{s}"
    );
    for depths in [vec![1, 4], vec![3, 4], vec![4]] {
        let e = fold_err(&t, with(depths.clone()));
        let s = one_line(&e);
        assert!(
            matches!(e, FoldError::Config(_))
                && s.contains(&format!("paths {depths:?} leave out some of [1, 3, 4]"))
                && s.contains("ctrl.*"),
            "{s}"
        );
    }
    // All of them, given or by default, fold.
    for flags in [
        with(vec![1, 3, 4]),
        ConfigSpec {
            default_budget: Some(0.5),
            ..flags()
        },
    ] {
        let ck = Checkpoint::parse(safetensors_bytes(&t, Src::F32, &[])).expect("parses");
        fold(&ck, None, flags, &FoldOptions::default(), &mut |_| {}).expect("folds");
    }
}

#[test]
fn incomplete_controller_is_named() {
    let spec = Spec::small();
    let mut t = random_checkpoint(&spec, 1);
    add_controller(&mut t, &spec, 3, 2);
    t.remove("ctrl.exit.wh");
    let e = fold_err(
        &t,
        ConfigSpec {
            default_budget: Some(0.5),
            ..flags()
        },
    );
    assert!(one_line(&e).contains("'ctrl.exit.wh'"), "{e}");
    let e = fold_err(&t, flags());
    assert!(one_line(&e).contains("--budget"), "{e}");
    let mut t = random_checkpoint(&spec, 1);
    add_controller(&mut t, &spec, 3, 2);
    let bad_features = ConfigSpec {
        default_budget: Some(0.5),
        features: Some("tinv.features.v9".into()),
        ..flags()
    };
    let e = fold_err(&t, bad_features);
    assert!(
        one_line(&e).contains("'tinv.features.v9' is unknown"),
        "{e}"
    );
    let e = fold_err(
        &t,
        ConfigSpec {
            default_budget: Some(1.5),
            ..flags()
        },
    );
    assert!(one_line(&e).contains("ctrl.default_budget 1.5"), "{e}");
    // Out of range as given, though its f32 narrowing (1.0) is not: the metadata holds the f64.
    let e = fold_err(
        &t,
        ConfigSpec {
            default_budget: Some(1.0000000001),
            ..flags()
        },
    );
    assert!(
        one_line(&e).contains("ctrl.default_budget 1.0000000001 not in [0, 1]"),
        "{e}"
    );
}

#[test]
fn bad_config_json_is_reported_with_its_source() {
    let t = random_checkpoint(&Spec::small(), 1);
    let ck = Checkpoint::parse(safetensors_bytes(
        &t,
        Src::F32,
        &[("tinv.config", "{\"heads\": 3,")],
    ))
    .expect("container is fine");
    let e = fold(
        &ck,
        None,
        ConfigSpec::default(),
        &FoldOptions::default(),
        &mut |_| {},
    )
    .err();
    let s = e.map(|e| one_line(&e)).unwrap_or_default();
    assert!(s.contains("tinv.config") && s.contains("bad JSON"), "{s}");
    let e = fold(
        &ck,
        Some("{\"hedas\": 3}"),
        flags(),
        &FoldOptions::default(),
        &mut |_| {},
    )
    .err();
    let s = e.map(|e| one_line(&e)).unwrap_or_default();
    assert!(
        s.contains("tinv.config"),
        "metadata is still read first: {s}"
    );
    let ck = Checkpoint::parse(safetensors_bytes(&t, Src::F32, &[])).expect("fine");
    let e = fold(
        &ck,
        Some("{\"hedas\": 3}"),
        flags(),
        &FoldOptions::default(),
        &mut |_| {},
    )
    .err();
    let s = e.map(|e| one_line(&e)).unwrap_or_default();
    assert!(s.contains("unknown key 'hedas'"), "{s}");
}

#[test]
fn bad_safetensors_containers_are_refused() {
    assert!(container_err(vec![1, 2, 3]).contains("shorter than the 8-byte header"));
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    let e = container_err(huge);
    assert!(e.contains("does not fit") && !e.contains("(it "), "{e}");
    // The files most often given in place of a checkpoint are named: a folded model (the
    // runtime's own magic), `torch.save`'s zip archive and its older pickle.
    let mut tinv_file = b"\x89TINV\r\n\x1a".to_vec();
    tinv_file.resize(64, 0);
    let e = container_err(tinv_file);
    assert!(
        e.contains("does not fit") && e.contains("a .tinv model"),
        "{e}"
    );
    let mut zip = b"PK\x03\x04\x14\x00\x00\x00".to_vec();
    zip.resize(64, 0);
    let e = container_err(zip);
    assert!(e.contains("PyTorch") && e.contains("save_file"), "{e}");
    let mut pickle = vec![0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46];
    pickle.resize(64, 0);
    assert!(container_err(pickle).contains("PyTorch"));
    assert!(container_err(with_header("{\"a\": ", 0)).contains("not valid JSON"));
    let e = container_err(with_header(
        r#"{"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}"#,
        8,
    ));
    assert!(e.contains("'a'") && e.contains("I64"), "{e}");
    let e = container_err(with_header(
        r#"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#,
        8,
    ));
    assert!(e.contains("'a'") && e.contains("outside"), "{e}");
    let e = container_err(with_header(
        r#"{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}"#,
        16,
    ));
    assert!(e.contains("'a'") && e.contains("needs 12"), "{e}");
    let e = container_err(with_header(
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#,
        12,
    ));
    assert!(e.contains("overlap"), "{e}");
    let e = container_err(with_header(
        r#"{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#,
        4,
    ));
    assert!(e.contains("'a'"), "{e}");
    let e = container_err(with_header(
        r#"{"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}}"#,
        4,
    ));
    assert!(e.contains("overflows"), "{e}");
}

/// The header-length checks at their ends: a header that ends exactly at the end of the file and
/// one of exactly 100 MiB (the safetensors cap) are read; one byte more of either is refused,
/// not a panic or a JSON error. Offsets running backwards are refused by name and value.
#[test]
fn container_length_checks_at_their_ends() {
    let set_len = |mut b: Vec<u8>, len: u64| {
        b[..8].copy_from_slice(&len.to_le_bytes());
        b
    };
    // 8 + 2 bytes: a header of 2 bytes fits, one of 3 does not.
    let ck = Checkpoint::parse(with_header("{}", 0)).expect("header up to the end of the file");
    assert!(ck.tensors().is_empty());
    let e = container_err(set_len(with_header("{}", 0), 3));
    assert!(
        e.contains("header length 3 does not fit the 10-byte file"),
        "{e}"
    );

    let cap: usize = 100 << 20;
    assert_eq!(tinv_fold::safetensors::MAX_HEADER, cap as u64);
    // JSON allows trailing whitespace: `{}` padded to exactly the cap.
    let padded = format!("{{}}{}", " ".repeat(cap - 2));
    let ck = Checkpoint::parse(with_header(&padded, 0)).expect("a header of exactly the cap");
    assert!(ck.tensors().is_empty());
    // One byte past the cap, in a file long enough to hold it.
    let mut past = padded;
    past.push(' ');
    let e = container_err(with_header(&past, 8));
    assert!(
        e.contains(&format!("header length {} does not fit", cap + 1)),
        "{e}"
    );

    let e = container_err(with_header(
        r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#,
        8,
    ));
    assert!(
        e.contains("'a'") && e.contains("data_offsets [8, 4]"),
        "{e}"
    );
    // An empty tensor (the format allows a 0 dimension) begins where it ends.
    let ck = Checkpoint::parse(with_header(
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "e": {"dtype": "F16", "shape": [3, 0], "data_offsets": [8, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}"#,
        12,
    ))
    .expect("an empty tensor");
    assert_eq!(ck.shape("e"), Some(&[3, 0][..]));
    assert_eq!(ck.f32("e"), Some(vec![]));
}

#[test]
fn cli_errors_are_one_line_and_exit_1() {
    let dir = common::test_dir("fold-errors");
    std::fs::create_dir_all(&dir).expect("tmp");
    let mut t = random_checkpoint(&Spec::small(), 1);
    t.remove("cls_token");
    let ck = dir.join("bad.safetensors");
    std::fs::write(&ck, safetensors_bytes(&t, Src::F32, &[])).expect("write");
    let ck = ck.to_str().expect("utf-8 path");
    for (args, needle) in [
        (
            vec![ck, "--heads", "3", "--image-size", "16x12"],
            "'cls_token'",
        ),
        (vec![ck, "--dtype", "f64"], "--dtype"),
        (vec![ck, "--heads"], "--heads needs a value"),
        (vec![ck, "--frobnicate"], "unknown option '--frobnicate'"),
        (vec!["--heads", "3"], "no checkpoint given"),
        (
            vec!["/nonexistent/x.safetensors", "--heads", "3"],
            "/nonexistent/x.safetensors",
        ),
        (vec![ck, "--heads", "three"], "'three'"),
    ] {
        let (code, _, err) = cli(&args);
        assert_eq!(code, 1, "{args:?}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {err}");
        assert!(errors[0].contains(needle), "{args:?}: {}", errors[0]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cli_folds_and_help_lists_every_flag() {
    let (code, help, _) = cli(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--output",
        "--config",
        "--heads",
        "--image-size",
        "--depths",
        "--ln-eps",
        "--gelu",
        "--mean",
        "--std",
        "--budget",
        "--dtype",
        "--device",
        "--quiet",
        "--help",
        "--version",
    ] {
        assert!(help.contains(flag), "--help does not explain {flag}");
    }
    let dir = common::test_dir("fold-cli");
    std::fs::create_dir_all(&dir).expect("tmp");
    let spec = Spec::small();
    let t = random_checkpoint(&spec, 1);
    let ck = dir.join("m.safetensors");
    std::fs::write(&ck, safetensors_bytes(&t, Src::BF16, &[])).expect("write");
    let cfg = dir.join("c.json");
    std::fs::write(&cfg, r#"{"heads": 3, "image_size": [16, 12]}"#).expect("write");
    let out = dir.join("m.tinv");
    let (code, _, err) = cli(&[
        ck.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
        "--depths=3,4",
        "--dtype",
        "f16",
        "-o",
        out.to_str().expect("path"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("tinv-fold: block 3") && err.contains("wrote"),
        "{err}"
    );
    let m = tinv::Model::open(&out, &tinv::OpenOptions::default().verify(true)).expect("opens");
    assert_eq!(m.config().depths, vec![3, 4]);
    std::fs::remove_dir_all(&dir).ok();
}

/// `--ln-eps`, `--mean` and `--std` reach the folded file's configuration; `-V` alone prints the
/// version; only long options take `=VALUE` (`-o=FILE` is an unknown option, and writes nothing).
#[test]
fn cli_normalization_flags_version_and_short_options() {
    for flag in ["-V", "--version"] {
        let (code, out, err) = cli(&[flag]);
        assert_eq!(code, 0, "{flag}: {err}");
        assert_eq!(
            out,
            format!("tinv-fold {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
    let dir = common::test_dir("fold-cli-norm");
    std::fs::create_dir_all(&dir).expect("tmp");
    let ck = dir.join("m.safetensors");
    let t = random_checkpoint(&Spec::small(), 1);
    std::fs::write(&ck, safetensors_bytes(&t, Src::F32, &[])).expect("write");
    let ck = ck.to_str().expect("path");
    let out = dir.join("m.tinv");
    let o = out.to_str().expect("path");
    let common = ["-q", ck, "--heads", "3", "--image-size", "16x12"];

    let (code, _, err) = cli(&[&common[..], &[&format!("-o={o}")]].concat());
    assert!(
        code == 1 && err.contains(&format!("unknown option '-o={o}'")),
        "{code}: {err}"
    );
    assert!(!out.exists(), "-o=FILE wrote {o}");

    let flags = [
        "--ln-eps",
        "1e-5",
        "--mean",
        "0.5,0.25,0.125",
        "--std",
        "0.5, 0.5, 2",
    ];
    let (code, _, err) = cli(&[&common[..], &flags, &["-o", o]].concat());
    assert_eq!(code, 0, "{err}");
    let m = tinv::Model::open(&out, &tinv::OpenOptions::default()).expect("opens");
    let c = m.config();
    assert_eq!(c.ln_eps, 1e-5f32);
    assert_eq!(c.mean, vec![0.5, 0.25, 0.125]);
    assert_eq!(c.std, vec![0.5, 0.5, 2.0]);

    // A lone `-` is no option but a file name (here a checkpoint named `-`).
    std::fs::copy(ck, dir.join("-")).expect("copy");
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_tinv-fold"))
        .current_dir(&dir)
        .args([
            "-q",
            "--heads",
            "3",
            "--image-size",
            "16x12",
            "-",
            "-o",
            "dash.tinv",
        ])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{err}");
    assert!(dir.join("dash.tinv").is_file());
    std::fs::remove_dir_all(&dir).ok();
}

/// An I/O failure keeps its cause: `source()` is the `io::Error` (here: no such file).
#[test]
fn io_errors_keep_their_source() {
    let path = std::env::temp_dir().join(format!("tinv-fold-absent-{}", std::process::id()));
    let e = match Checkpoint::open(&path) {
        Err(e) => e,
        Ok(_) => panic!("opened a file that does not exist"),
    };
    assert!(matches!(e, FoldError::Io { .. }), "{e:?}");
    let source = std::error::Error::source(&e).expect("an I/O error has a source");
    let io = source
        .downcast_ref::<std::io::Error>()
        .expect("the source is the io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    // Errors without an underlying cause have none.
    assert!(std::error::Error::source(&FoldError::Usage("x".into())).is_none());
}

/// Corrupted and truncated checkpoints never panic: every one is either folded (a flipped data
/// byte is still a valid float) or refused with an error.
#[test]
fn corrupted_checkpoints_never_panic() {
    let spec = Spec {
        exits: vec![1],
        ..Spec::small()
    };
    let good = safetensors_bytes(
        &random_checkpoint(&spec, 3),
        Src::F16,
        &[("tinv.config", &spec.config_json(&[1, 4]))],
    );
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().expect("8 bytes")) as usize;
    let mut rng = tinv::synth::Rng::new(99);
    let (mut refused, mut folded) = (0, 0);
    for i in 0..400 {
        let mut b = good.clone();
        if i % 4 == 0 {
            b.truncate((rng.next_u64() as usize) % good.len());
        } else {
            // Mostly the header, where a flip changes structure rather than a weight.
            for _ in 0..1 + i % 3 {
                let at = (rng.next_u64() as usize) % header_end;
                b[at] = (rng.next_u64() & 0xff) as u8;
            }
        }
        let result = Checkpoint::parse(b).and_then(|ck| {
            fold(
                &ck,
                None,
                ConfigSpec::default(),
                &FoldOptions::default(),
                &mut |_| {},
            )
        });
        match result {
            Ok(_) => folded += 1,
            Err(e) => {
                one_line(&e);
                refused += 1;
            }
        }
    }
    assert!(
        refused > 300,
        "most corruptions must be refused ({refused} refused, {folded} folded)"
    );
}
