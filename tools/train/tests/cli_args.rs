//! `tinv-train`'s command line: every argument mistake ends with one `error: …` line and exit
//! status 1, never a panic; configuration errors name the flags; `--help` names every flag the
//! parser reads; `--version` and no arguments; `samples --out`; a closed or failing stdout;
//! irregular files and non-UTF-8 arguments; an `--out` that cannot name a checkpoint. `fit` on
//! datasets is in cli_fit.rs, `--resume` in cli_resume.rs, `eval` and `controller` in
//! cli_eval_controller.rs; the helpers they share in common/mod.rs.

#[allow(dead_code)] // edit_train_labels, tiny_data and quick_controller are for the other cli_*.rs
mod common;
#[path = "../../../tests/common/stdout.rs"]
mod stdout;

use common::{dataset, fails, fit, run, tmp, BIN};
use std::path::Path;
use std::process::Command;

#[test]
fn argument_mistakes_are_one_line_errors() {
    fails(&["fit", "--lr"], &["--lr needs a value"]);
    fails(&["fit", "--lr", "--batch", "4"], &["--lr needs a value"]);
    // Also when the flag is read before the one after it (--batch before --lr): the next flag
    // is not its value.
    fails(&["fit", "--batch", "--lr", "1"], &["--batch needs a value"]);
    fails(
        &["fit", "--lr", "1", "--lr", "2"],
        &["--lr given more than once"],
    );
    // The first flag repeated on the command line is named (it was the first one the code
    // happened to read, here --epochs).
    fails(
        &[
            "fit",
            "--train-limit",
            "3",
            "--epochs",
            "1",
            "--train-limit",
            "3",
            "--epochs",
            "1",
        ],
        &["--train-limit given more than once"],
    );
    fails(&["fit", "--bogus", "1"], &["unknown argument '--bogus'"]);
    // Finite as f64, infinite as the f32 the optimizer applies it in.
    fails(
        &["fit", "--lr", "1e39", "--data", "/nonexistent"],
        &["--lr 1000000000000000000000000000000000000000: must be at most 3.4028235e38 (f32)"],
    );
    fails(
        &[
            "fit",
            "--lr",
            "1e-50",
            "--min-lr",
            "0",
            "--data",
            "/nonexistent",
        ],
        &["--lr 0.00000000000000000000000000000000000000000000000001: must be at least"],
    );
    // `--flag=value` as in tinv-run and tinv-fold (`--lr=1e-3` was an unknown argument), and
    // parsed the same as `--flag value`; an empty value is refused.
    fails(&["fit", "--lr=fast"], &["--lr", "'fast'"]);
    fails(
        &["fit", "--lr=1", "--lr", "2"],
        &["--lr given more than once"],
    );
    fails(
        &["fit", "--lr="],
        &["--lr needs a value, not an empty string"],
    );
    fails(&["eval", ""], &["the checkpoint is an empty argument"]);
    fails(
        &["fit", "--batch", "-1"],
        &["--batch", "'-1'", "whole number"],
    );
    fails(
        &["fit", "--lr", "fast"],
        &["--lr: cannot parse 'fast' (expected a number)"],
    );
    // Parse errors state the range the flag takes: 0 epochs is refused too.
    fails(
        &["fit", "--epochs", "-1"],
        &["--epochs: cannot parse '-1' (expected a whole number >= 1)"],
    );
    fails(&["fit", "--depths", "2,-4"], &["each a whole number >= 1"]);
    fails(
        &["controller", "x.safetensors", "--hq", "1.5"],
        &["--hq: cannot parse '1.5' (expected a whole number >= 1)"],
    );
    fails(
        &["fit", "--warmup", "-1"],
        &["--warmup: cannot parse '-1' (expected a whole number >= 0)"],
    );
    fails(&["fit", "--depths", "1,x"], &["--depths", "'x'"]);
    fails(&["frob"], &["unknown command 'frob'"]);
    fails(&["eval"], &["missing checkpoint"]);
    fails(
        &["eval", "x.safetensors", "--split"],
        &["--split needs a value"],
    );
    // Hyper-parameters that cannot train are refused before any data is read.
    for (flag, v, want) in [
        ("--batch", "0", "--batch must be at least 1"),
        ("--epochs", "0", "--epochs must be at least 1"),
        ("--val", "0", "--val must be at least 1"),
        ("--lr", "NaN", "--lr NaN: must be a finite number > 0"),
        ("--lr", "inf", "--lr inf"),
        ("--lr", "-1", "--lr -1"),
        ("--min-lr", "1", "--min-lr 1 exceeds --lr"),
        ("--wd", "-0.5", "--wd -0.5"),
        ("--clip", "0", "--clip 0"),
        ("--temperature", "0", "--temperature 0"),
        ("--kd", "NaN", "--kd NaN"),
        ("--feat", "-1", "--feat -1"),
        (
            "--exit-weights",
            "1,-1,1,1",
            "--exit-weights -1: must be finite numbers >= 0",
        ),
        (
            "--exit-weights",
            "0,0,0,0",
            "--exit-weights: at least one weight must be above 0",
        ),
        (
            "--exit-weights",
            "1,2",
            "--exit-weights has 2 value(s), --depths 4 exit(s)",
        ),
        ("--stop-at", "0", "--stop-at must be at least 1"),
        // The file to resume from: it failed only once the dataset had loaded.
        (
            "--resume",
            "/nonexistent/ck.safetensors",
            "--resume /nonexistent/ck.safetensors: No such file or directory",
        ),
        ("--resume", "/", "--resume /: not a regular file"),
    ] {
        fails(&["fit", "--data", "/nonexistent", flag, v], &[want]);
    }
    for (flag, v) in [
        ("--episodes", "0"),
        ("--hp", "0"),
        ("--tol", "NaN"),
        ("--tol", "-1"),
        // Bounded above: these aborted in the allocator with a backtrace.
        ("--hr", "100000000"),
        ("--episodes", "1000001"),
    ] {
        fails(&["controller", "x.safetensors", flag, v], &[flag]);
    }
}

/// Configuration errors name the flags, not the runtime's field names, and warn early.
#[test]
fn configuration_errors_name_the_flags() {
    let dir = tmp("flags");
    dataset(&dir, 60);
    let data = dir.to_str().unwrap();
    let out = dir.join("o.safetensors");
    let out = out.to_str().unwrap();
    // --blocks 2 with the default --depths 2,4,6,8.
    let mut args = fit(data, out, &[]);
    let i = args.iter().position(|a| *a == "--depths").unwrap();
    args.drain(i..i + 2);
    fails(&args, &["--depths [2, 4, 6, 8]", "--blocks 2"]);
    fails(&fit(data, out, &["--heads", "0"]), &["--heads must be > 0"]);
    // ε = 0 is out of the runtime's range (0, 1), not "too small for an f32".
    fails(
        &fit(data, out, &["--ln-eps", "0"]),
        &["--ln-eps 0 out of range (0, 1)"],
    );
    // Without --mlp-hidden the MLP is 4 × --dim wide: 32 for --dim 8.
    let mut args = fit(data, out, &[]);
    let i = args.iter().position(|a| *a == "--mlp-hidden").unwrap();
    args.drain(i..i + 2);
    let (ok, err) = run(&args);
    assert!(ok, "{err}");
    let cfg = tinv_train::report::load(Path::new(out)).unwrap().cfg;
    assert_eq!((cfg.dim, cfg.mlp_hidden), (8, 32));
    // The least normal f32 itself (2^-126) is small enough: refused only for the missing data.
    fails(
        &fit("/nonexistent", out, &["--ln-eps", "1.1754943508222875e-38"]),
        &["train-images-idx3-ubyte"],
    );
    // 1e-50 is 0 as the f32 the model keeps: said with the value given.
    fails(
        &fit("/nonexistent", out, &["--ln-eps", "1e-50"]),
        &["--ln-eps 1e-50: too small"],
    );
    // A validation split too small for the controller stage: warned before training.
    let (ok, err) = run(&fit(data, out, &["--val", "3"]));
    assert!(ok, "{err}");
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.contains("warning: --val 3")),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn help_names_every_flag_the_parser_reads() {
    let o = Command::new(BIN).arg("--help").output().unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    let src = include_str!("../src/main.rs");
    let code = &src[src.find("struct Args").unwrap()..];
    let mut n = 0;
    for part in code.split('"').skip(1).step_by(2) {
        if part.starts_with("--")
            && part.len() > 2
            && part
                .chars()
                .skip(2)
                .all(|c| c.is_ascii_lowercase() || c == '-')
        {
            assert!(help.contains(part), "--help does not mention {part}");
            n += 1;
        }
    }
    assert!(n > 30, "found only {n} flags");
    assert!(Command::new(BIN)
        .arg("help")
        .output()
        .unwrap()
        .status
        .success());
}

/// `--version` as in tinv-run and tinv-fold (it was an unknown command); no arguments at all is
/// the usage and an error, exit status 1, as in tinv-run (it exited 0).
#[test]
fn version_and_no_arguments() {
    for v in ["--version", "-V"] {
        let o = Command::new(BIN).arg(v).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{v}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("tinv-train {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
    fails(&["--version", "x"], &["unknown argument 'x'"]);
    let o = Command::new(BIN).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("tinv-train: train"));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: no command given\n"
    );
}

/// `samples --out` naming a file: said "File exists (os error 17)".
#[test]
fn samples_out_that_is_a_file_is_named() {
    let root = tmp("samples-out");
    dataset(&root, 20);
    let file = root.join("t10k-labels-idx1-ubyte");
    let f = file.to_str().unwrap();
    fails(
        &["samples", "--data", root.to_str().unwrap(), "--out", f],
        &[&format!("error: {f} exists and is not a directory")],
    );
    // More samples than test images: it wrote them all and said nothing of the rest.
    let out = root.join("out");
    fails(
        &[
            "samples",
            "--data",
            root.to_str().unwrap(),
            &format!("--out={}", out.display()),
            "--count",
            "21",
        ],
        &["--count 21: the test set has only 20 images"],
    );
    // As many as there are: all written.
    let (ok, err) = run(&[
        "samples",
        "--data",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--count",
        "20",
    ]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 20);
    std::fs::remove_dir_all(&root).ok();
}

/// stdout closed (`| head -1`): a quiet exit 0; stdout failing otherwise (a full disk): one
/// `error:` line and exit 1. Both panicked (exit 101, backtrace).
#[test]
fn a_closed_or_failing_stdout_is_not_a_panic() {
    let root = tmp("stdout");
    dataset(&root, 20);
    let d = root.to_str().unwrap();
    let pngs = root.join("png");
    let p = pngs.to_str().unwrap();
    for args in [
        &["--help"][..],
        &["--version"],
        &["samples", "--data", d, "--out", p, "--count", "3"],
    ] {
        stdout::assert_closed_and_failing_stdout_handled(BIN, args);
    }
    assert_eq!(std::fs::read_dir(&pngs).unwrap().count(), 3);
    std::fs::remove_dir_all(&root).ok();
}

/// A checkpoint or resume file that is a FIFO blocked forever (and /dev/zero read until memory
/// ran out); an argument that is not UTF-8 panicked. Each is now a one-line error.
#[test]
fn irregular_files_and_non_utf8_arguments_are_refused() {
    let dir = tmp("irregular");
    let fifo = dir.join("ck.safetensors");
    let made = Command::new("mkfifo").arg(&fifo).status();
    let f = if made.is_ok_and(|s| s.success()) {
        fifo.to_str().unwrap().to_string()
    } else {
        "/dev/zero".to_string()
    };
    fails(&["eval", &f], &["not a regular file"]);
    fails(&["controller", &f], &["not a regular file"]);
    fails(
        &["fit", "--data", "/nonexistent", "--resume", &f],
        &["--resume", "not a regular file"],
    );
    use std::os::unix::ffi::OsStrExt;
    let o = Command::new(BIN)
        .args(["eval"])
        .arg(std::ffi::OsStr::from_bytes(b"ck\xff.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("is not valid UTF-8"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// An `--out` that cannot be a checkpoint's name is refused before any training: it failed only
/// when the first checkpoint was written (`""`, `dir/`), wrote in place (`x.tmp`), or replaced
/// another checkpoint's optimizer state (`x.optim.safetensors`).
#[test]
fn an_out_that_cannot_name_a_checkpoint_is_refused_up_front() {
    for (out, want) in [
        ("", "--out needs a value, not an empty string"),
        ("newdir/", "give a file name"),
        ("ck.tmp", "that name is reserved"),
        ("ck.optim.safetensors", "that name is reserved"),
    ] {
        fails(&["fit", "--data", "/nonexistent", "--out", out], &[want]);
        fails(&["controller", "ck.safetensors", "--out", out], &[want]);
    }
    fails(
        &["samples", "--out", "/tmp/x", "--count", "0"],
        &["--count must be at least 1"],
    );
    // A device behind a link (the rename replaced the link's target, as root even /dev/null,
    // with a checkpoint and exited 0); only a link of our own, so a failing check replaces it.
    let dir = tmp("out-device");
    let link = dir.join("ck.safetensors");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let l = link.to_str().unwrap();
    for cmd in [
        &["fit", "--data", "/nonexistent", "--out", l][..],
        &["controller", "ck.safetensors", "--out", l],
    ] {
        fails(cmd, &["--out: /dev/null is not a regular file"]);
    }
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_dir_all(&dir).ok();
}
