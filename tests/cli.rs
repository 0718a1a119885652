//! `tinv-run`'s command line on a synthetic model: every kind of bad input gives one `error:`
//! line and exit code 1, never a panic, arguments that would be ignored are refused, file names
//! are paths, the help explains every command, and a closed stdout ends every command quietly.
//! `classify`'s output is in cli_classify.rs and the images it reads in cli_images.rs, `eval`'s
//! numbers in cli_eval.rs, `sweep` in cli_sweep.rs, `inspect` in cli_inspect.rs, `export-onnx`
//! in cli_export.rs, `bench` and the TensorRT commands in cli_bench_selftest.rs.

#[path = "common/cli.rs"]
#[allow(dead_code)] // `field` is for the JSON reports of cli_eval.rs and cli_sweep.rs
mod cli_support;
#[path = "common/cli_fixtures.rs"]
mod fixtures;

use cli_support::{assert_failed_with, assert_one_line_error, run, tmp};
use fixtures::{eval_json, fixture, write_pgm};
use std::process::Command;
use tinv::format::DType;
use tinv::synth;

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
    // Said in the flag's own words, as `eval` says them.
    assert_one_line_error(
        &["classify", "--model", m, "--depth", "5", i],
        "error: --depth 5 is not a path of this model (paths: [1, 2])",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--budget", "1.5", i],
        "error: --budget 1.5 is not in [0, 1]",
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
    // Help about help is the usage, however it is asked for.
    for asked in [
        ["help", "--help"],
        ["--help", "help"],
        ["-h", "-h"],
        ["help", "help"],
    ] {
        let (code, again, err) = run(&asked);
        assert_eq!((code, &again, err.as_str()), (0, &out, ""), "{asked:?}");
    }
    // Without a command: the usage and the error on stderr, nothing on stdout.
    let (code, out, err) = run(&[]);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("COMMANDS"), "{err}");
    assert!(err.trim_end().ends_with("error: no command given"), "{err}");
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
    // (Six samples run as one batch of six: the batch it reports is the one that ran.)
    assert!(
        out.contains("\"batch\":6,") && out.contains("\"samples\":6"),
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
