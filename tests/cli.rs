//! `tinv-run` end to end on a synthetic model: outputs agree with the library, and every kind of
//! bad input gives one `error:` line and exit code 1, never a panic. `eval`'s numbers are in
//! cli_eval.rs, the images `classify` reads in cli_images.rs, `sweep` in cli_sweep.rs.

#[path = "common/cli.rs"]
#[allow(dead_code)] // `field` is for the JSON reports of cli_eval.rs and cli_sweep.rs
mod cli_support;
#[path = "common/cli_fixtures.rs"]
mod fixtures;

use cli_support::{assert_failed_with, assert_one_line_error, run, tmp};
use fixtures::{classify_json, eval_json, fixture, library_logits, one_path_model, write_pgm};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use tinv::format::{DType, MetaValue};
use tinv::{synth, Model, OpenOptions, Session, SessionOptions};

#[test]
fn classify_matches_library_and_json_fields() {
    let dir = tmp("classify");
    let (model_path, cfg) = fixture(&dir);
    let px: Vec<u8> = (0..64).map(|i| (i * 37 % 256) as u8).collect();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &px);
    let out = classify_json(&model_path, &img);
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    let x: Vec<f32> = px.iter().map(|&v| v as f32 / 255.0).collect();
    let mut logits = vec![0f32; cfg.classes];
    let st = s.infer_depth(&x, 1, 2, &mut logits).unwrap()[0];
    for key in [
        "\"image\":",
        "\"depth\":2",
        "\"confidence\":",
        "\"logits\":[",
        "\"flops\":",
        "\"latency_us\":",
    ] {
        assert!(out.contains(key), "{key} missing in {out}");
    }
    assert!(out.contains(&format!("\"class\":{}", st.class)), "{out}");
    assert!(out.contains(&format!("\"flops\":{}", st.flops)), "{out}");
    // Adaptive mode with a budget runs too (plain text).
    let (code, out, _) = run(&[
        "classify",
        "--model",
        model_path.to_str().unwrap(),
        "--budget",
        "0.5",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("class") && out.contains("depth"));
}

#[test]
fn bad_input_gives_one_line_errors() {
    let dir = tmp("errors");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    let img = dir.join("ok.pgm");
    write_pgm(&img, 8, 8, &[128; 64]);
    let i = img.to_str().unwrap();
    assert_one_line_error(
        &["classify", "--model", "/nonexistent.tinv", i],
        "no such model",
    );
    assert_one_line_error(&["classify", i], "TINV_MODEL=/nonexistent");
    // A line break in a file name is written as `\n`: still one line.
    assert_one_line_error(&["classify", "--model", m, "a\nb.png"], "a\\nb.png");
    assert_one_line_error(&["inspect", "--model", "x\r\ny"], "x\\r\\ny");
    // Other control characters (a terminal escape) are written escaped too.
    assert_one_line_error(&["inspect", "--model", "x\u{1b}[2Jy"], "x\\u{1b}[2Jy");
    // A flag that took the only image as its value names the flag (it said "classify needs at
    // least one IMAGE").
    for (flag, want) in [
        ("--depth", "--depth "),
        ("--budget", "--budget "),
        ("--mode", "is not one of adaptive"),
    ] {
        assert_one_line_error(&["classify", "--model", m, flag, i], want);
    }
    // The model named both ways said "unexpected argument".
    assert_one_line_error(&["inspect", m, "--model", m], "the model is given twice");
    // An empty TINV_MODEL counts as unset (the default package, from the crate's root here),
    // as `TINV_MODEL= cmd` means in a shell; it said "TINV_MODEL=: no such model file".
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .args(["inspect"])
        .env("TINV_MODEL", "")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("engines/fmnist/model.tinv"),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Devices are refused before reading (/dev/zero would never end), for images, data sets
    // and models alike.
    assert_one_line_error(
        &["classify", "--model", m, "/dev/zero"],
        "/dev/zero: not a regular file",
    );
    assert_one_line_error(
        &[
            "eval",
            "--model",
            m,
            "--images",
            "/dev/zero",
            "--labels",
            "/dev/zero",
        ],
        "/dev/zero: not a regular file",
    );
    assert_one_line_error(&["inspect", "/dev/zero"], "is not a regular file");
    let big = dir.join("big.pgm");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    assert_one_line_error(
        &["classify", "--model", m, big.to_str().unwrap()],
        "big.pgm: larger than 64 MiB, not an image tinv-run reads",
    );
    std::fs::remove_file(&big).unwrap();
    let junk = dir.join("junk.tinv");
    std::fs::write(
        &junk,
        b"this is not a model at all, just some text bytes that go on for a while......",
    )
    .unwrap();
    assert_one_line_error(
        &["classify", "--model", junk.to_str().unwrap(), i],
        "bad magic",
    );
    // A safetensors checkpoint given as the model: named, with the tool that folds it.
    let ckpt = dir.join("model.safetensors");
    let mut st = 2u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    st.resize(80, 0);
    std::fs::write(&ckpt, st).unwrap();
    assert_one_line_error(
        &["classify", "--model", ckpt.to_str().unwrap(), i],
        "it looks like a safetensors checkpoint: fold it into a .tinv with tinv-fold",
    );
    let mut bytes = std::fs::read(&model_path).unwrap();
    bytes.truncate(bytes.len() - 100);
    let trunc = dir.join("trunc.tinv");
    std::fs::write(&trunc, &bytes).unwrap();
    assert_one_line_error(
        &["inspect", trunc.to_str().unwrap()],
        "truncated or trailing",
    );
    let small = dir.join("small.pgm");
    write_pgm(&small, 4, 4, &[0; 16]);
    assert_one_line_error(
        &["classify", "--model", m, small.to_str().unwrap()],
        "image is 4x4",
    );
    let txt = dir.join("x.png");
    std::fs::write(&txt, b"hello").unwrap();
    assert_one_line_error(
        &["classify", "--model", m, txt.to_str().unwrap()],
        "not a PNG or PGM",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--depth", "5", i],
        "depth 5 is not a path",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--budget", "1.5", i],
        "not in [0, 1]",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--budget", "abc", i],
        "expected a budget",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--mode", "fast", i],
        "mode \"fast\"",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--bogus", i],
        "unknown option --bogus",
    );
    assert_one_line_error(&["frobnicate"], "unknown command");
    assert_one_line_error(&["eval", "--model", m], "--images");
    assert_one_line_error(&["bench", "--synthetic", "vit-huge"], "vit-tiny");
}

#[test]
fn help_explains_every_command() {
    for cmd in [
        "classify",
        "eval",
        "sweep",
        "inspect",
        "bench",
        "export-onnx",
        "soak",
    ] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("USAGE") && out.contains("OPTIONS"), "{cmd}");
    }
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("COMMANDS"));
    // Without a command: the usage and the error on stderr, nothing on stdout.
    let (code, out, err) = run(&[]);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("COMMANDS"), "{err}");
    assert!(err.trim_end().ends_with("error: no command given"), "{err}");
}

#[test]
fn inspect_json_lists_paths_and_verify_passes() {
    let dir = tmp("inspect");
    let (model_path, _) = fixture(&dir);
    let (code, out, err) = run(&[
        "inspect",
        model_path.to_str().unwrap(),
        "--json",
        "--verify",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"paths\":[{\"depth\":1")
            && out.contains("\"arena_bytes\":")
            && out.contains("\"input_shape\":[1,8,8]"),
        "{out}"
    );
}

/// A one-path model (a plain timm ViT folds to one) has no path switch to time: `bench` says so
/// (JSON `switch_us` null) instead of indexing an empty list, which panicked.
#[test]
fn bench_on_a_one_path_model_reports_no_switch_cost() {
    let dir = tmp("bench-one-path");
    let path = one_path_model(&dir);
    let m = path.to_str().unwrap();
    let (code, out, err) = run(&["bench", "--model", m, "--iters", "2", "--warmup", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("path switch  none (the model has one path)"),
        "{out}"
    );
    let (code, out, err) = run(&[
        "bench", "--model", m, "--iters", "2", "--warmup", "0", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"switch_us\":null"), "{out}");
}

/// An export that fails half-way (here a folder stands where the last graph goes) leaves none of
/// its files behind: the graphs written before the failure loaded as a whole export.
#[test]
fn a_failed_export_removes_what_it_wrote() {
    let dir = tmp("export-fail");
    let (model_path, cfg) = fixture(&dir);
    let last = cfg.depths.last().unwrap();
    // A folder where the last graph goes, and a FIFO there (the write blocked forever on it).
    for fifo in [false, true] {
        let out = dir.join(format!("onnx-{fifo}"));
        let taken = out.join(format!("path.{last}.onnx"));
        if fifo {
            std::fs::create_dir_all(&out).unwrap();
            let made = std::process::Command::new("mkfifo").arg(&taken).status();
            if !made.is_ok_and(|s| s.success()) {
                continue;
            }
        } else {
            std::fs::create_dir_all(&taken).unwrap();
        }
        let (code, stdout, err) = run(&[
            "export-onnx",
            "--model",
            model_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_failed_with(code, &err, &format!("path.{last}.onnx"), &stdout);
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, [format!("path.{last}.onnx")], "{err}");
    }
}

/// `--batch N` fixes the graphs' batch dimension: the files are the library's export with
/// `ExportOptions::batch` = N, where the default export's dimension is symbolic; 0 is refused.
#[test]
fn export_onnx_batch_fixes_the_batch_dimension() {
    let dir = tmp("export-batch");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    let model = tinv::Model::open(&model_path, &tinv::OpenOptions::default()).unwrap();
    for (batch, args) in [(Some(1), &["--batch", "1"][..]), (None, &[][..])] {
        let out = dir.join(format!("onnx-{batch:?}"));
        let mut cmd = vec!["export-onnx", "--model", m, "--out", out.to_str().unwrap()];
        cmd.extend(args);
        let (code, _, err) = run(&cmd);
        assert_eq!(code, 0, "{err}");
        let opts = tinv::onnx::ExportOptions {
            batch,
            ..Default::default()
        };
        for g in tinv::onnx::export_graphs(&model, &opts).unwrap() {
            assert_eq!(std::fs::read(out.join(&g.file_name)).unwrap(), g.bytes);
            assert_eq!(g.inputs[0].dims[0], batch, "{}", g.file_name);
        }
    }
    let out = dir.join("onnx-0");
    assert_one_line_error(
        &[
            "export-onnx",
            "--model",
            m,
            "--out",
            out.to_str().unwrap(),
            "--batch",
            "0",
        ],
        "--batch must be at least 1",
    );
}

#[test]
fn export_onnx_writes_every_path_and_the_weight_blob() {
    let dir = tmp("export");
    let (model_path, cfg) = fixture(&dir);
    let out = dir.join("onnx");
    let export = |model: &Path| {
        run(&[
            "export-onnx",
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (code, stdout, err) = export(&model_path);
    assert_eq!(code, 0, "{err}");
    for d in &cfg.depths {
        assert!(out.join(format!("path.{d}.onnx")).is_file(), "{stdout}");
    }
    assert!(out.join("weights.f16.bin").is_file() && out.join("weights.tsv").is_file());
    assert!(out.join("controller.onnx").is_file());
    assert!(!err.contains("warning"), "{err}");
    // `inspect` names the model hash the graphs carry (tinv.model_hash), written alike.
    let (code, json, err) = run(&["inspect", "--model", model_path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let hash = json
        .split("\"model_hash\":\"")
        .nth(1)
        .and_then(|r| r.get(..18))
        .unwrap_or_else(|| panic!("no model_hash in {json}"));
    let graph = std::fs::read(out.join(format!("path.{}.onnx", cfg.depths[0]))).unwrap();
    assert!(
        hash.starts_with("0x") && graph.windows(18).any(|w| w == hash.as_bytes()),
        "tinv.model_hash {hash} not in the graph"
    );
    // Exporting a one-path model into the same folder is refused: the other paths' graphs and
    // the controller would stay beside its own, and load as one export.
    let (code, _, err) = export(&one_path_model(&dir));
    assert_failed_with(
        code,
        &err,
        "holds files of another export (controller.graph.onnx, controller.onnx, path.1.onnx)",
        &"a second export",
    );
    // An empty value is refused (`--out ""` wrote into the current folder), in either form.
    let m = model_path.to_str().unwrap();
    for args in [
        &["export-onnx", "--model", m, "--out", ""][..],
        &["export-onnx", "--model", m, "--out="],
    ] {
        assert_one_line_error(args, "--out needs a value, not an empty string");
    }
    assert_one_line_error(
        &[
            "export-onnx",
            "--model",
            model_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--layout",
            "x",
        ],
        "--layout x",
    );
}

#[test]
fn tensorrt_commands_explain_what_is_missing() {
    let dir = tmp("trt");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    // No TensorRT here: without the feature the binary says how to get it; with it, the shim
    // (no headers at build time) or the engines (never built) are named.
    let (code, _, err) = run(&["build", "--model", m]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("TensorRT"), "{err}");
    let (code, _, err) = run(&["selftest", "--model", m]);
    assert_eq!(code, 1);
    assert!(
        err.contains("TensorRT") || err.contains("tinv-run build"),
        "{err}"
    );
    // With TensorRT support the bad layout is named before anything is loaded.
    let want = if cfg!(feature = "tensorrt") {
        "--layout diagonal: expected per-path or segments"
    } else {
        "TensorRT"
    };
    assert_one_line_error(&["build", "--model", m, "--layout", "diagonal"], want);
    if cfg!(feature = "tensorrt") {
        assert_one_line_error(
            &["build", "--model", m, "--fp16", "--fp32"],
            "--fp16 and --fp32 exclude each other",
        );
    }
    for cmd in ["build", "selftest"] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("USAGE"));
    }
}

/// A closed stdout (`tinv-run … | head -1`) ends the program quietly with exit status 0; it used
/// to panic ("failed printing to stdout: Broken pipe", exit status 101). The pipe's read end is
/// closed before the child starts, so its first write already fails.
#[test]
fn closed_stdout_ends_every_command_quietly() {
    let dir = tmp("pipe");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &[7; 64]);
    let out = dir.join("onnx");
    let commands: [&[&str]; 7] = [
        &["inspect", m, "--verify", "--tensors"],
        &["inspect", m, "--json"],
        &["--help"],
        &["help", "eval"],
        &["classify", "--model", m, img.to_str().unwrap()],
        &["export-onnx", "--model", m, "--out", out.to_str().unwrap()],
        &["soak", "--model", m, "--count", "20", "--report-every", "1"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
            .args(args)
            .env("TINV_MODEL", "/nonexistent")
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("error"),
            "{args:?}: {err}"
        );
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn arguments_that_would_be_ignored_are_refused() {
    let dir = tmp("strict");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    let eval = [
        "eval", "--model", m, "--images", "i.idx", "--labels", "l.idx",
    ];
    let with = |extra: &[&'static str]| [&eval[..], extra].concat();
    // --depth runs no controller: --budget and --mode would do nothing (as for classify).
    for extra in [["--budget", "0.9"], ["--mode", "graph"]] {
        for cmd in [
            with(&["--depth", "2"]),
            vec!["classify", "--model", m, "--depth", "2", "x.pgm"],
        ] {
            assert_one_line_error(&[&cmd[..], &extra].concat(), "cannot be combined");
        }
    }
    // A budget in threshold mode, and a budget or controller mode on a model without a
    // controller (it runs at full depth), would be accepted and ignored.
    let n = 6;
    let (ip, lp) = (dir.join("i.idx"), dir.join("l.idx"));
    std::fs::write(&ip, tinv::idx::encode(&[n, 8, 8], &[7; 6 * 64]).unwrap()).unwrap();
    std::fs::write(&lp, tinv::idx::encode(&[n], &[0, 1, 2, 0, 1, 2]).unwrap()).unwrap();
    let bare = dir.join("no-controller.tinv");
    let cfg = synth::tiny(3, false);
    std::fs::write(&bare, synth::random_model(&cfg, 9, DType::F32)).unwrap();
    let b = bare.to_str().unwrap();
    assert_one_line_error(
        &with(&["--mode", "threshold:0.9", "--budget", "0.5"]),
        "threshold mode has none",
    );
    for extra in [&["--budget", "0.5"][..], &["--mode", "graph"]] {
        for cmd in [
            vec!["classify", "--model", b, "x.pgm"],
            vec![
                "eval", "--model", b, "--images", "i.idx", "--labels", "l.idx",
            ],
        ] {
            assert_one_line_error(&[&cmd[..], extra].concat(), "has no controller");
        }
    }
    let (code, out, err) = eval_json(&bare, &ip, &lp);
    assert_eq!(code, 0, "{err}");
    // `mode` stays a value a program can match (it was the text's sentence): the deepest path.
    assert!(out.contains("\"mode\":\"depth:2\""), "{out}");
    assert!(out.contains("\"budget\":null"), "{out}");
    assert!(out.contains("\"backend\":\"cpu\""), "{out}");
    // soak's banner said "adaptive inferences …, budget 0" for a run at full depth.
    let (code, _, err) = run(&["soak", "--model", b, "--count", "4", "--report-every", "4"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("at full depth (the model has no controller)") && !err.contains("budget"),
        "{err}"
    );
    // Extra positional arguments.
    assert_one_line_error(&with(&["extra"]), "unexpected argument 'extra'");
    assert_one_line_error(&["inspect", m, "a", "b", "c"], "unexpected argument 'a'");
    // inspect takes its model either way: a positional beside --model names it twice.
    assert_one_line_error(
        &["inspect", "--model", m, "other"],
        "the model is given twice, by --model and as 'other'",
    );
    for cmd in ["bench", "soak", "export-onnx"] {
        assert_one_line_error(&[cmd, "--model", m, "stray"], "unexpected argument 'stray'");
    }
    assert_one_line_error(&["help", "eval", "more"], "unexpected argument 'more'");
    // Zero counts are errors, not silently 1.
    assert_one_line_error(&with(&["--batch", "0"]), "--batch must be at least 1");
    assert_one_line_error(&with(&["--limit", "0"]), "--limit must be at least 1");
    for (cmd, flag, value, least) in [
        ("bench", "--batch", "0", 1),
        ("bench", "--iters", "1", 2),
        ("soak", "--count", "0", 1),
        ("soak", "--inputs", "0", 1),
        ("soak", "--report-every", "0", 1),
    ] {
        assert_one_line_error(
            &[cmd, "--model", m, flag, value],
            &format!("{flag} must be at least {least}"),
        );
    }
    // A switch given a value, and help on an unknown command.
    assert_one_line_error(
        &["classify", "--model", m, "--json=1", "x.pgm"],
        "--json is a switch and takes no value",
    );
    assert_one_line_error(&["help", "bogus"], "unknown command 'bogus'");
    // Two models named at once, and a checksum check of a model with no file.
    for (cmd, shape) in [("bench", "vit-tiny"), ("soak", "fmnist")] {
        assert_one_line_error(
            &[cmd, "--model", m, "--synthetic", shape],
            "--model and --synthetic both name the model",
        );
        assert_one_line_error(
            &[cmd, "--synthetic", shape, "--verify"],
            "--synthetic has none",
        );
    }
    // An option given twice: the last one won (`--depth 8 --depth 2` ran depth 2).
    assert_one_line_error(
        &[
            "classify", "--model", m, "--depth", "1", "--depth", "2", "x.pgm",
        ],
        "--depth is given twice",
    );
    assert_one_line_error(
        &with(&["--limit", "3", "--limit=2"]),
        "--limit is given twice",
    );
    // A switch given twice was accepted where an option given twice was refused.
    assert_one_line_error(&with(&["--json", "--json"]), "--json is given twice");
    // An empty file name said only ": No such file or directory".
    for args in [
        &["classify", "--model", m, ""][..],
        &["classify", "--model", m, "--", ""],
        &["inspect", ""],
    ] {
        assert_one_line_error(args, "an empty argument is not a file name");
    }
    // A single-dash typo was taken for a file name ("-j: No such file or directory").
    assert_one_line_error(
        &["classify", "--model", m, "-j", "x.pgm"],
        "unknown option -j (options start with --",
    );
    // The library's bounds, said in the options' own names (not "max_batch 4097 not in …").
    assert_one_line_error(&with(&["--batch", "4097"]), "--batch must be at most 4096");
    assert_one_line_error(
        &["bench", "--model", m, "--threads", "257"],
        "--threads must be at most 256",
    );
    // ...and the bounds themselves are accepted: 4096 and 256 run.
    let (i, l) = (ip.to_str().unwrap(), lp.to_str().unwrap());
    let bounds = ["--batch", "4096", "--threads", "256", "--json"];
    let (code, out, err) = run(&[
        &["eval", "--model", m, "--images", i, "--labels", l],
        &bounds[..],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"batch\":4096") && out.contains("\"samples\":6"),
        "{out}"
    );
    // A budget on a model without a controller ran at full depth under a "budget" banner.
    assert_one_line_error(
        &["soak", "--model", b, "--budget", "0.5"],
        "has no controller",
    );
    // An engines folder that `auto` cannot use was skipped silently (only RUST_LOG=debug said
    // so): now a warning names it, and the run says which backend it used.
    let (code, out, err) = run(&[
        "eval",
        "--model",
        m,
        "--images",
        ip.to_str().unwrap(),
        "--labels",
        lp.to_str().unwrap(),
        "--engines",
        "/nonexistent-engines",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("/nonexistent-engines: ") && err.contains("using the CPU backend"),
        "{err}"
    );
    assert!(out.contains("backend            cpu"), "{out}");
    // TensorRT engines named for a run that is told to use the CPU.
    for cmd in [
        vec!["classify", "--model", m, "x.pgm"],
        vec!["soak", "--model", m],
    ] {
        assert_one_line_error(
            &[&cmd[..], &["--backend", "cpu", "--engines", "/tmp"]].concat(),
            "which --backend cpu does not use",
        );
    }
}

/// Paths are bytes on Linux: a file name that is not UTF-8 is an image or a model like any
/// other (`std::env::args` panicked on it), and after `--` an argument starting with `-` is a
/// file.
#[test]
fn non_utf8_and_dash_file_names_are_paths() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tmp("non-utf8");
    let (model_path, _) = fixture(&dir);
    let odd_model = dir.join(OsStr::from_bytes(b"m\xff.tinv"));
    std::fs::copy(&model_path, &odd_model).unwrap();
    let odd_image = dir.join(OsStr::from_bytes(b"\xff\xfe.pgm"));
    write_pgm(&odd_image, 8, 8, &[9; 64]);
    let dash_image = dir.join("-x.pgm");
    write_pgm(&dash_image, 8, 8, &[9; 64]);
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .arg("classify")
        .arg("--model")
        .arg(&odd_model)
        .arg("--depth")
        .arg("2")
        .arg(&odd_image)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains("\u{FFFD}\u{FFFD}.pgm: class "), "{out}");
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .current_dir(&dir)
        .args(["classify", "--depth", "2", "--model"])
        .arg(&model_path)
        .args(["--", "-x.pgm"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("-x.pgm: class "));
    // A lone `-` is no option: it names a file `-` (tinv-run reads no stdin), `--` or not.
    write_pgm(&dir.join("-"), 8, 8, &[9; 64]);
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .current_dir(&dir)
        .args(["classify", "--depth", "2", "--model"])
        .arg(&model_path)
        .arg("-")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("-: class "));
    // A non-UTF-8 value where a number is expected is an error naming the option.
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .args(["classify", "--model"])
        .arg(&model_path)
        .arg("--budget")
        .arg(OsStr::from_bytes(b"0.\xff"))
        .arg(&odd_image)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_failed_with(o.status.code().unwrap_or(-1), &err, "--budget", &"budget");
}

/// classes.txt is read only as a small regular file: a FIFO blocked `classify` forever and a
/// link to /dev/zero grew without end; a directory was skipped without a word. Each is now a
/// warning, and the classes are shown by number.
#[test]
fn a_classes_file_that_is_not_a_regular_file_is_a_warning() {
    let dir = tmp("classes");
    let (model_path, _) = fixture(&dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(&model_path, pkg.join("model.tinv")).unwrap();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &[3; 64]);
    let classes = pkg.join("classes.txt");
    // classify must finish (not block on the FIFO), answer by number and warn.
    let classify = || {
        let (code, out, err) = run(&[
            "classify",
            "--model",
            pkg.to_str().unwrap(),
            img.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("classes.txt: not a regular file"), "{err}");
        assert!(out.contains(": class "), "{out}");
    };
    if Command::new("mkfifo")
        .arg(&classes)
        .status()
        .is_ok_and(|s| s.success())
    {
        classify();
        std::fs::remove_file(&classes).unwrap();
    } else {
        eprintln!("skipped the FIFO case: mkfifo failed");
    }
    std::os::unix::fs::symlink("/dev/zero", &classes).unwrap();
    classify();
    std::fs::remove_file(&classes).unwrap();
    std::fs::create_dir(&classes).unwrap();
    classify();
}

/// `--json` strings are JSON strings: a quote, a backslash, a newline and the other control
/// characters in an image's name or a class's label are escaped (`\"`, `\\`, `\n`, `\u00XX`),
/// everything else (a space, `~`, `é`) is written as it is; the logits are an array.
#[test]
fn classify_json_escapes_names_and_labels() {
    let dir = tmp("json-escape");
    let (model_path, cfg) = fixture(&dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(&model_path, pkg.join("model.tinv")).unwrap();
    // Every class the same name, so the label does not depend on the answer.
    let name = "a \"b\" \\ c\td\u{1}e\u{1f} ~é";
    std::fs::write(
        pkg.join("classes.txt"),
        format!("{name}\n").repeat(cfg.classes),
    )
    .unwrap();
    let img = dir.join("x\"y\\z\n .pgm");
    let px: Vec<u8> = (0..64).map(|i| (i * 29 % 256) as u8).collect();
    write_pgm(&img, 8, 8, &px);
    let (code, out, err) = run(&[
        "classify",
        "--model",
        pkg.to_str().unwrap(),
        "--depth",
        "2",
        "--json",
        img.to_str().unwrap(),
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    let want_img = format!("{}/x\\\"y\\\\z\\n .pgm", dir.to_str().unwrap());
    assert!(
        out.starts_with(&format!("{{\"image\":\"{want_img}\",\"backend\":\"cpu\",")),
        "{out}"
    );
    assert!(
        out.contains("\"label\":\"a \\\"b\\\" \\\\ c\\u0009d\\u0001e\\u001f ~é\","),
        "{out}"
    );
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    let x: Vec<f32> = px.iter().map(|&v| f32::from(v) / 255.0).collect();
    let mut logits = vec![0f32; cfg.classes];
    s.infer_depth(&x, 1, 2, &mut logits).unwrap();
    let logits: Vec<String> = logits.iter().map(|&v| f64::from(v).to_string()).collect();
    assert!(
        out.contains(&format!("\"logits\":[{}],", logits.join(","))),
        "{out}"
    );
    assert!(out.ends_with("}\n"), "{out}");
}

/// NaN and ±∞ are not JSON numbers: `inspect --json` writes a metadata value that is one as
/// `null`, in an array too. The model is the synthetic one written again with two more keys.
#[test]
fn inspect_json_writes_non_finite_metadata_as_null() {
    let dir = tmp("inspect-nan");
    let bytes = synth::random_model(&synth::tiny(3, false), 4, DType::F32);
    let idx = tinv::format::parse(&bytes).unwrap();
    let mut w = tinv::format::TinvWriter::new();
    for (k, v) in idx.meta.entries() {
        w.meta(k, v.clone());
    }
    w.meta("user.nan", MetaValue::F64(f64::NAN));
    w.meta(
        "user.inf",
        MetaValue::F64s(vec![1.5, f64::INFINITY, f64::NEG_INFINITY]),
    );
    for t in &idx.tensors {
        // synth's page breaks: before the stem, each block and each exit head.
        let n = &t.name;
        if n == "stem.patch.weight" || n.ends_with("qkv.weight") || n.ends_with("head.weight") {
            w.page_break();
        }
        let data = bytes[t.offset..t.offset + t.nbytes].to_vec();
        w.raw_tensor(n, t.dtype, t.flags, &t.shape, data);
    }
    let path = dir.join("nan.tinv");
    std::fs::write(&path, w.to_bytes()).unwrap();
    let (code, out, err) = run(&["inspect", path.to_str().unwrap(), "--json"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.contains("\"user.nan\":null"), "{out}");
    assert!(out.contains("\"user.inf\":[1.5,null,null]"), "{out}");
}

/// A classes.txt beside the model with one name per class (blank lines and surrounding spaces
/// not counted) names the class the library predicts, in text and JSON, whether the model is a
/// package folder, its model.tinv or `$TINV_MODEL`; one name too few or too many is a warning
/// and the classes are shown by number.
#[test]
fn classes_txt_names_the_library_class() {
    let dir = tmp("class-names");
    let (model_path, _) = fixture(&dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let file = pkg.join("model.tinv");
    std::fs::copy(&model_path, &file).unwrap();
    let px: Vec<u8> = (0..64).map(|i| (i * 37 % 256) as u8).collect();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &px);
    let x: Vec<f32> = px.iter().map(|&v| v as f32 / 255.0).collect();
    let l = library_logits(&model_path, &x);
    let class = (0..3).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
    let names = ["shirt", "trouser", "bag"];
    let classes = pkg.join("classes.txt");
    std::fs::write(&classes, "  shirt \n\ntrouser\n\t\nbag\n").unwrap();
    let classify = |model: Option<&Path>, json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tinv-run"));
        cmd.args(["classify", "--depth", "2"]);
        match model {
            Some(m) => cmd.arg("--model").arg(m).env("TINV_MODEL", "/nonexistent"),
            None => cmd.env("TINV_MODEL", &pkg),
        };
        if json {
            cmd.arg("--json");
        }
        let o = cmd.arg(&img).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(0), "{err}");
        (String::from_utf8_lossy(&o.stdout).to_string(), err)
    };
    let name = names[class];
    for model in [Some(pkg.as_path()), Some(file.as_path()), None] {
        let (out, err) = classify(model, true);
        assert!(err.is_empty(), "{err}");
        let want = format!("\"class\":{class},\"label\":\"{name}\"");
        assert!(out.contains(&want), "{model:?}: {out}");
        let (out, _) = classify(model, false);
        let want = format!("a.pgm: class {class} ({name}) confidence ");
        assert!(out.contains(&want), "{model:?}: {out}");
    }
    for text in ["shirt\ntrouser\n", "shirt\ntrouser\nbag\nsandal\n"] {
        std::fs::write(&classes, text).unwrap();
        let (out, err) = classify(Some(&pkg), true);
        let k = text.lines().count();
        let want = format!("classes.txt has {k} names for 3 classes; showing class numbers");
        assert!(err.starts_with("warning: ") && err.contains(&want), "{err}");
        let want = format!("\"class\":{class},\"label\":\"{class}\"");
        assert!(out.contains(&want), "{out}");
        let (out, _) = classify(Some(&pkg), false);
        assert!(
            out.contains(&format!("a.pgm: class {class} confidence ")),
            "{out}"
        );
    }
}

/// Every key of `inspect --json` is named in `inspect --help`, and `config` holds the model's
/// configuration.
#[test]
fn inspect_json_has_the_config_its_help_promises() {
    let dir = tmp("inspect-config");
    let (model_path, _) = fixture(&dir);
    let (code, out, err) = run(&["inspect", model_path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "\"config\":{\"image_size\":[8,8],\"channels\":1,\"patch\":4,\"dim\":16,\"heads\":2,\
             \"blocks\":2,\"mlp_hidden\":"
        ) && out.contains("\"depths\":[1,2]"),
        "{out}"
    );
    let (_, help, _) = run(&["inspect", "--help"]);
    for key in [
        "file",
        "file_bytes",
        "input_shape",
        "classes",
        "config",
        "image_size",
        "channels",
        "patch",
        "dim",
        "heads",
        "blocks",
        "mlp_hidden",
        "tokens",
        "depths",
        "mean",
        "std",
        "ln_eps",
        "gelu",
        "controller",
        "features",
        "default_budget",
        "paths",
        "flops",
        "weight_bytes",
        "controller_flops",
        "controller_flops_graph",
        "arena_bytes",
        "arena_lower_bound_bytes",
        "kernel",
        "metadata",
        "tensors",
    ] {
        assert!(
            out.contains(&format!("\"{key}\":")),
            "{key} missing in {out}"
        );
        assert!(help.contains(key), "{key} undocumented in {help}");
    }
    // The content hash is above 2^53, where a reader that parses JSON numbers as doubles
    // rounds it: a decimal string, the same value the text shows in hex.
    let at = out
        .find("\"tinv.content_hash\":\"")
        .expect("hash as a string")
        + 21;
    let digits: String = out[at..].chars().take_while(char::is_ascii_digit).collect();
    let hash: u64 = digits.parse().unwrap();
    assert!(hash > 1 << 53, "{hash}");
    let (_, text, _) = run(&["inspect", model_path.to_str().unwrap()]);
    assert!(
        text.contains(&format!("content hash  {hash:#018x}")),
        "{text}"
    );
    // The metadata checksum the writer stores (a decimal string above 2^53, else a number).
    let at = out.find("\"tinv.meta_hash\":").expect("meta hash") + 17;
    let digits: String = out[at..]
        .trim_start_matches('"')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let meta: u64 = digits.parse().unwrap();
    assert!(
        text.contains(&format!("meta hash     {meta:#018x} (checked at open)")),
        "{text}"
    );
}

/// Every command that accepts `--verify` documents it, and the top-level help says where the
/// default model comes from (it is read from disk, not embedded).
#[test]
fn help_documents_verify_and_the_default_model() {
    for cmd in [
        "classify",
        "eval",
        "sweep",
        "inspect",
        "bench",
        "export-onnx",
        "soak",
        "build",
        "selftest",
    ] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("--verify"), "{cmd} --help: {out}");
    }
    let (_, out, _) = run(&["--help"]);
    assert!(!out.contains("embedded default"), "{out}");
    assert!(
        out.contains("$TINV_MODEL") && out.contains("./engines/fmnist"),
        "{out}"
    );
}
