//! The command line: on bad input every mistake ends with one `error: …` line and exit status
//! 1, never a panic, and `--help` names every flag the parser reads; on good input (from
//! `a_resume_says_what_changed_and_what_is_left` on) its warnings, progress lines and flags at
//! their bounds. Runs on a tiny crafted IDX dataset (8×8 images, 4 classes), so each training run
//! takes well under a second.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../../tests/common/stdout.rs"]
mod stdout;

const BIN: &str = env!("CARGO_BIN_EXE_tinv-train");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinv-train-cli-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `n` 8×8 images with labels 0..4 (`train` and `t10k`) in `dir` (created).
fn dataset(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let images: Vec<u8> = (0..n * 64).map(|i| (i * 37 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
    for p in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{p}-images-idx3-ubyte")),
            tinv::idx::encode(&[n, 8, 8], &images).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{p}-labels-idx1-ubyte")),
            tinv::idx::encode(&[n], &labels).unwrap(),
        )
        .unwrap();
    }
}

/// Applies `edit` to the training labels in `dir` (the IDX file's values, after its header).
fn edit_train_labels(dir: &Path, edit: impl FnOnce(&mut [u8])) {
    let f = dir.join("train-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&f).unwrap();
    edit(&mut bytes[8..]);
    std::fs::write(&f, bytes).unwrap();
}

/// Runs the binary; returns (success, stderr).
fn run(args: &[&str]) -> (bool, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs and expects exactly one clean error line containing every one of `want`.
fn fails(args: &[&str], want: &[&str]) {
    let o = Command::new(BIN).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("error: "), "{args:?}: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{args:?}: {err}"
    );
    for w in want {
        assert!(last.contains(w), "{args:?}: wanted '{w}' in: {last}");
    }
}

/// Tiny `fit` arguments on `data`, writing `out`; `extra` flag/value pairs replace the defaults
/// or are appended.
fn fit<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "fit",
        "--data",
        data,
        "--out",
        out,
        "--patch",
        "4",
        "--dim",
        "8",
        "--heads",
        "2",
        "--mlp-hidden",
        "16",
        "--blocks",
        "2",
        "--depths",
        "1,2",
        "--batch",
        "16",
        "--val",
        "40",
        "--epochs",
        "1",
        "--shift",
        "1",
        "--log-every",
        "0",
    ];
    for pair in extra.chunks(2) {
        match v.iter().position(|x| *x == pair[0]) {
            Some(i) => v[i + 1] = pair[1],
            None => v.extend_from_slice(pair),
        }
    }
    v
}

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

/// A scratch folder `name` holding a 120-image dataset in `d/`, and that dataset's path.
fn tiny_data(name: &str) -> (PathBuf, String) {
    let dir = tmp(name);
    dataset(&dir.join("d"), 120);
    let data = dir.join("d").to_str().unwrap().to_string();
    (dir, data)
}

/// `controller` on checkpoint `ck` in place, one short PPO iteration; it must succeed.
fn quick_controller(ck: &str, data: &str) {
    let (ok, err) = run(&[
        "controller",
        ck,
        "--data",
        data,
        "--iters",
        "1",
        "--episodes",
        "8",
    ]);
    assert!(ok, "{err}");
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

/// Checkpoints whose names share a stem keep their own optimizer states, and a resume takes
/// only the state written with its own weights (two runs ending at the same step shared one
/// sidecar, and resuming the first trained on with the second's Adam moments).
#[test]
fn every_checkpoint_keeps_its_own_optimizer_state() {
    let (dir, data) = tiny_data("sidecars");
    let data = data.as_str();
    let ck = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let (a, b) = (ck("run.seed1"), ck("run.seed2"));
    for (out, seed) in [(&a, "1"), (&b, "2")] {
        let (ok, err) = run(&fit(data, out, &["--seed", seed]));
        assert!(ok, "{err}");
    }
    for out in [&a, &b] {
        assert!(Path::new(&format!("{out}.optim.safetensors")).is_file());
    }
    // Resuming run.seed1 into another file leaves its state for the next resume.
    let c = ck("run.seed1b");
    for _ in 0..2 {
        let (ok, err) = run(&fit(data, &c, &["--resume", &a, "--epochs", "2"]));
        assert!(ok, "{err}");
    }
    // A checkpoint the controller stage rewrote in place (ctrl.* tensors added) still resumes
    // with its own state: the fingerprint covers the backbone's tensors.
    quick_controller(&a, data);
    let (ok, err) = run(&fit(
        data,
        &ck("run.seed1d"),
        &["--resume", &a, "--epochs", "2"],
    ));
    assert!(ok, "{err}");
    // Another checkpoint's state under run.seed1's name: same step, other weights, refused.
    for side in ["optim", "optim.prev"] {
        std::fs::copy(
            format!("{b}.optim.safetensors"),
            format!("{a}.{side}.safetensors"),
        )
        .unwrap();
    }
    fails(
        &fit(data, &c, &["--resume", &a, "--epochs", "2"]),
        &["was written with another checkpoint's weights"],
    );
    // A dataset file as --out (through a link too) is refused; the labels stay as they were.
    let labels = dir.join("d").join("train-labels-idx1-ubyte");
    let before = std::fs::read(&labels).unwrap();
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&labels, &link).unwrap();
    for out in [labels.to_str().unwrap(), link.to_str().unwrap()] {
        fails(&fit(data, out, &[]), &["that is the dataset file"]);
        fails(
            &["controller", &a, "--data", data, "--out", out],
            &["that is the dataset file"],
        );
    }
    assert_eq!(std::fs::read(&labels).unwrap(), before);
    // A folder where the state would go is refused before any work.
    std::fs::create_dir_all(dir.join("x.optim.safetensors")).unwrap();
    fails(
        &fit("/nonexistent", &ck("x.safetensors"), &[]),
        &["its optimizer state goes to", "is a directory"],
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

#[test]
fn bad_datasets_are_named() {
    let root = tmp("data");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = s(&root.join("o.safetensors"));
    // Missing files: the file and the Debian package.
    let none = root.join("none");
    fails(
        &fit(&s(&none), &out, &[]),
        &[
            "train-images-idx3-ubyte",
            "apt-get install dataset-fashion-mnist",
            "/usr/share/datasets/fashion-mnist",
        ],
    );
    // A failed run leaves no directory behind for its --out (it used to create it up front).
    let nested = root.join("new").join("dir").join("c.safetensors");
    fails(
        &fit(&s(&none), &s(&nested), &[]),
        &["train-images-idx3-ubyte"],
    );
    assert!(
        !root.join("new").exists(),
        "--out's directory was created by a failed run"
    );
    // An empty data set is named as such (it said "vit.classes must be > 0").
    let empty = root.join("empty");
    dataset(&empty, 0);
    fails(
        &fit(&s(&empty), &out, &[]),
        &["train-images-idx3-ubyte: no images"],
    );
    let good = root.join("good");
    dataset(&good, 200);
    // One corrupt label (255) would make a 256-class model: allowed (the documented default is
    // the largest label + 1), but said.
    let odd = root.join("odd");
    dataset(&odd, 200);
    let f = odd.join("train-labels-idx1-ubyte");
    let mut labels = std::fs::read(&f).unwrap();
    labels[8] = 255;
    std::fs::write(&f, labels).unwrap();
    let (ok, err) = run(&fit(&s(&odd), &out, &["--stop-at", "1"]));
    assert!(ok, "{err}");
    assert!(
        err.contains("warning: the largest label makes 256 classes, but only 5 labels occur"),
        "{err}"
    );
    // Only the labels missing.
    let half = root.join("half");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::copy(
        good.join("train-images-idx3-ubyte"),
        half.join("train-images-idx3-ubyte"),
    )
    .unwrap();
    fails(
        &fit(&s(&half), &out, &[]),
        &["train-labels-idx1-ubyte", "not found"],
    );
    // Truncated images.
    let bytes = std::fs::read(good.join("train-images-idx3-ubyte")).unwrap();
    std::fs::write(
        half.join("train-labels-idx1-ubyte"),
        std::fs::read(good.join("train-labels-idx1-ubyte")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        half.join("train-images-idx3-ubyte"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    fails(
        &fit(&s(&half), &out, &[]),
        &["train-images-idx3-ubyte", "bytes"],
    );
    // Not IDX at all.
    std::fs::write(half.join("train-images-idx3-ubyte"), b"hello, world").unwrap();
    fails(
        &fit(&s(&half), &out, &[]),
        &["train-images-idx3-ubyte", "not an IDX file"],
    );
    // Labels count differs from the images count.
    std::fs::write(half.join("train-images-idx3-ubyte"), &bytes).unwrap();
    std::fs::write(
        half.join("train-labels-idx1-ubyte"),
        tinv::idx::encode(&[199], &[0; 199]).unwrap(),
    )
    .unwrap();
    fails(&fit(&s(&half), &out, &[]), &["199 labels for 200 images"]);
    // Labels beyond --classes; patch not dividing the image; --val too large; shift too large.
    let g = s(&good);
    fails(
        &fit(&g, &out, &["--classes", "3"]),
        &["label 3", "out of range for 3 classes"],
    );
    fails(
        &fit(&g, &out, &["--patch", "3"]),
        &["patch 3 does not divide the image size 8x8"],
    );
    fails(&fit(&g, &out, &["--depths", "2,1"]), &["depths [2, 1]"]);
    fails(
        &fit(&g, &out, &["--depths", "1,2,3"]),
        &["depths [1, 2, 3]"],
    );
    fails(
        &fit(&g, &out, &["--val", "500"]),
        &["--val 500 leaves no training images out of 200"],
    );
    fails(
        &fit(&g, &out, &["--shift", "8"]),
        &["--shift 8 must be smaller than the 8x8 images"],
    );
    // A bad label in the validation part (the last --val 40 images) is named by its place in
    // the files, not in the split; labels must be rank 1; --mean needs one value per channel.
    let late = root.join("late");
    dataset(&late, 200);
    edit_train_labels(&late, |l| l[197] = 9);
    fails(
        &fit(&s(&late), &out, &["--classes", "4"]),
        &["late (training files): label 9 (image 197) out of range for 4 classes"],
    );
    std::fs::write(
        late.join("train-labels-idx1-ubyte"),
        tinv::idx::encode(&[200, 1], &[0; 200]).unwrap(),
    )
    .unwrap();
    fails(
        &fit(&s(&late), &out, &[]),
        &["labels must be a rank-1 file", "[200, 1]"],
    );
    fails(
        &fit(&g, &out, &["--mean", "0.5,0.5"]),
        &["--mean has 2 value(s), the images have 1 channel(s)"],
    );
    // --out a directory, or somewhere that cannot be written: refused before training.
    fails(&fit(&g, &s(&root), &[]), &["is a directory"]);
    fails(
        &fit(&g, "/proc/nope/x.safetensors", &[]),
        &["--out /proc/nope/x.safetensors"],
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn resume_controller_and_eval_refuse_what_does_not_fit() {
    let root = tmp("resume");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let data = root.join("data");
    dataset(&data, 200);
    let d = s(&data);
    let ck = s(&root.join("sub/ck.safetensors")); // the missing directory is created
    let (ok, err) = run(&fit(&d, &ck, &["--stop-at", "3"]));
    assert!(ok, "{err}");
    assert!(
        err.contains("stopped after global step 3") && err.contains("--resume"),
        "{err}"
    );
    let other = s(&root.join("other.safetensors"));
    fails(
        &fit(&d, &other, &["--resume", &ck, "--lr", "0.002"]),
        &[
            "another configuration",
            "config.hyper.lr: checkpoint 0.001, requested 0.002",
        ],
    );
    fails(
        &fit(&d, &other, &["--resume", &ck, "--classes", "5"]),
        &["config.model.classes: checkpoint 4, requested 5"],
    );
    fails(
        &fit(&d, &other, &["--resume", &ck, "--stop-at", "3"]),
        &["--stop-at 3", "already at global step 3"],
    );
    // Another training split: more images, or as many other ones (it trained on silently; the
    // old validation images became training images).
    let more = root.join("more");
    dataset(&more, 240);
    fails(
        &fit(&s(&more), &other, &["--resume", &ck]),
        &["data.train_images: checkpoint 160, requested 200"],
    );
    let swapped = root.join("swapped");
    dataset(&swapped, 200);
    edit_train_labels(&swapped, |l| l[0] = (l[0] + 1) % 4);
    fails(
        &fit(&s(&swapped), &other, &["--resume", &ck]),
        &["data.fingerprint: checkpoint fnv1a64:"],
    );
    // Other validation images (the last 40): resumed, and a controller trained, on them.
    let val_swapped = root.join("val-swapped");
    dataset(&val_swapped, 200);
    edit_train_labels(&val_swapped, |l| l[199] = (l[199] + 1) % 4);
    let vs = s(&val_swapped);
    fails(
        &fit(&vs, &other, &["--resume", &ck]),
        &[
            "validated on other images",
            "data.val_fingerprint: checkpoint fnv1a64:",
        ],
    );
    fails(
        &["controller", &ck, "--data", &vs, "--out", &other],
        &["data.val_fingerprint", "pass the --data it was trained on"],
    );
    // Without its optimizer sidecar: refused before the dataset is read.
    let lone = s(&root.join("lone.safetensors"));
    std::fs::copy(&ck, &lone).unwrap();
    fails(
        &fit("/nonexistent", &other, &["--resume", &lone]),
        &["lone.optim.safetensors", "not found"],
    );
    // Not a checkpoint at all.
    let junk = s(&data.join("train-labels-idx1-ubyte"));
    fails(
        &fit("/nonexistent", &other, &["--resume", &junk]),
        &["not a readable safetensors checkpoint"],
    );
    // Resumed to the end.
    let (ok, err) = run(&fit(&d, &other, &["--resume", &ck]));
    assert!(ok, "{err}");

    // eval / controller on files without the metadata they need, or damaged.
    let sidecar = s(&root.join("sub/ck.optim.safetensors"));
    fails(
        &["eval", &sidecar, "--data", &d],
        &["no 'tinv.config' metadata", "optimizer state"],
    );
    fails(
        &["controller", &sidecar, "--data", &d, "--out", &other],
        &["no 'tinv.config' metadata"],
    );
    let bytes = std::fs::read(&ck).unwrap();
    let cut = s(&root.join("cut.safetensors"));
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    fails(
        &["eval", &cut, "--data", &d],
        &["cut.safetensors", "not a readable safetensors checkpoint"],
    );
    fails(
        &["eval", &s(&root.join("absent.safetensors")), "--data", &d],
        &["absent.safetensors"],
    );
    // A dataset too small for the checkpoint's validation split (this panicked).
    let small = root.join("small");
    dataset(&small, 30);
    fails(
        &["controller", &ck, "--data", &s(&small), "--out", &other],
        &[
            "30 training images, too few for the validation split",
            "--val",
        ],
    );
    // Non-finite logits (a poisoned exit bias) are an error, not NaN counted as a class.
    let (mut ts, meta) = tinv_train::checkpoint::load(Path::new(&ck)).unwrap();
    let bias = ts.iter_mut().find(|t| t.name == "head.bias").unwrap();
    bias.data[0] = f32::NAN;
    let poisoned = s(&root.join("poisoned.safetensors"));
    tinv_train::checkpoint::save(Path::new(&poisoned), &ts, &meta).unwrap();
    fails(
        &["eval", &poisoned, "--data", &d],
        &["image 0: exit at depth 2 gives a non-finite logit (NaN)"],
    );
    // A validation split too small for the 5-fold budget choice.
    let tiny_val = s(&root.join("tinyval.safetensors"));
    let (ok, err) = run(&fit(&d, &tiny_val, &["--val", "3", "--epochs", "1"]));
    assert!(ok, "{err}");
    fails(
        &["controller", &tiny_val, "--data", &d, "--out", &other],
        &["validation split has 3 image(s)", "at least 5", "--val"],
    );
    // Another training split than the backbone's: its validation images would be others.
    fails(
        &["controller", &ck, "--data", &s(&more), "--out", &other],
        &[
            "data.train_images: checkpoint 160, requested 200",
            "pass the --data it was trained on",
        ],
    );
    fails(
        &["controller", &ck, "--data", &s(&swapped), "--out", &other],
        &["data.fingerprint: checkpoint fnv1a64:", "--data"],
    );
    // Images of another size than the model's.
    let big = root.join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(
        big.join("t10k-images-idx3-ubyte"),
        tinv::idx::encode(&[1, 12, 12], &[0; 144]).unwrap(),
    )
    .unwrap();
    std::fs::write(
        big.join("t10k-labels-idx1-ubyte"),
        tinv::idx::encode(&[1], &[0]).unwrap(),
    )
    .unwrap();
    fails(
        &["eval", &ck, "--data", &s(&big)],
        &["1x12x12 but the model expects 1x8x8"],
    );
    std::fs::remove_dir_all(&root).ok();
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

/// `eval` on an optimizer state (the sidecar, or the previous one kept beside it) says what the
/// file is.
#[test]
fn eval_on_an_optimizer_state_names_it() {
    let dir = tmp("optim-eval");
    let meta = std::collections::HashMap::from([(
        tinv_train::snapshot::OPTIM_STEP_KEY.to_string(),
        "3".to_string(),
    )]);
    let t = tinv_train::tensors::HostTensor::full("m.blocks.0.norm1.weight", &[2], 0.0);
    for name in ["ck.optim.safetensors", "ck.optim.prev.safetensors"] {
        let p = dir.join(name);
        tinv_train::checkpoint::save(&p, std::slice::from_ref(&t), &meta).unwrap();
        fails(
            &["eval", p.to_str().unwrap()],
            &["this is the optimizer state beside one"],
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `eval` reads a checkpoint as strictly as tinv-fold: non-finite controller weights and
/// tensors the model has no place for are one-line errors (it printed a full report from NaN
/// controller weights, and ignored an exit head for a depth that is not a path).
#[test]
fn eval_refuses_what_tinv_fold_refuses() {
    let (dir, data) = tiny_data("eval-strict");
    let data = data.as_str();
    let ck = dir.join("b.safetensors");
    let ck = ck.to_str().unwrap();
    let (ok, err) = run(&fit(data, ck, &[]));
    assert!(ok, "{err}");
    quick_controller(ck, data);
    let (ok, err) = run(&["eval", ck, "--data", data]);
    assert!(ok, "the untouched checkpoint evaluates: {err}");
    let (ts, meta) = tinv_train::checkpoint::load(Path::new(ck)).unwrap();
    let edited = |name: &str, edit: &dyn Fn(&mut Vec<tinv_train::tensors::HostTensor>)| {
        let mut t = ts.clone();
        edit(&mut t);
        let p = dir.join(name);
        tinv_train::checkpoint::save(&p, &t, &meta).unwrap();
        p.to_str().unwrap().to_string()
    };
    let nan = edited("nan.safetensors", &|t| {
        let w = t.iter_mut().find(|t| t.name == "ctrl.exit.wh").unwrap();
        w.data[3] = f32::NAN;
    });
    fails(
        &["eval", &nan, "--data", data],
        &["tensor 'ctrl.exit.wh' holds NaN at element 3"],
    );
    let head = edited("head.safetensors", &|t| {
        t.push(tinv_train::tensors::HostTensor::full(
            "exits.7.head.weight",
            &[4, 8],
            0.0,
        ));
    });
    let out = format!("{head}.out");
    for cmd in [
        vec!["eval", &head, "--data", data],
        vec!["controller", &head, "--data", data, "--out", &out],
    ] {
        fails(
            &cmd,
            &["tensor 'exits.7.head.weight' is not part of this model"],
        );
    }
    let extra = edited("extra.safetensors", &|t| {
        t.push(tinv_train::tensors::HostTensor::full(
            "ctrl.extra",
            &[1],
            0.0,
        ));
    });
    fails(
        &["eval", &extra, "--data", data],
        &["tensor 'ctrl.extra' is not part of its controller"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_rank4_file_that_looks_channels_first_is_warned_about() {
    // [n, height, width, channels] with a height of at most 4 and more than 4 channels reads
    // like [n, channels, height, width]: a warning (the file is still read as documented).
    let dir = tmp("chw");
    let data = dir.to_str().unwrap();
    let out = dir.join("ck.safetensors");
    for (dims, warned) in [
        ([4, 4, 8, 5], true),
        ([4, 5, 8, 5], false),
        ([4, 4, 8, 4], false),
    ] {
        let n: usize = dims.iter().product();
        for p in ["train", "t10k"] {
            std::fs::write(
                dir.join(format!("{p}-images-idx3-ubyte")),
                tinv::idx::encode(&dims, &vec![7; n]).unwrap(),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{p}-labels-idx1-ubyte")),
                tinv::idx::encode(&[4], &[0, 1, 2, 3]).unwrap(),
            )
            .unwrap();
        }
        let (_, err) = run(&fit(data, out.to_str().unwrap(), &[]));
        let want = format!(
            "is [n, {}, {}, {}]: that looks channels-first",
            dims[1], dims[2], dims[3]
        );
        assert_eq!(err.contains(&want), warned, "{dims:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A resume says what changed (the epoch count, the shift) and only that, and one of a finished
/// run says that nothing is left to train, yet still leaves the checkpoint at `--out`.
#[test]
fn a_resume_says_what_changed_and_what_is_left() {
    let (dir, data) = tiny_data("resume-says");
    let data = data.as_str();
    let ck = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let (a, b, c) = (ck("a"), ck("b"), ck("c"));
    let (ok, err) = run(&fit(data, &a, &[]));
    assert!(ok, "{err}");
    let (ok, err) = run(&fit(data, &b, &["--resume", &a]));
    assert!(ok, "{err}");
    assert!(
        err.contains("the checkpoint has already completed 1 of 1 epochs; nothing to train"),
        "{err}"
    );
    assert!(!err.contains("resuming a run"), "{err}");
    let weights = |p: &str| tinv_train::checkpoint::load(Path::new(p)).unwrap().0;
    assert_eq!(weights(&b), weights(&a));
    let (ok, err) = run(&fit(
        data,
        &c,
        &["--resume", &a, "--epochs", "2", "--shift", "0"],
    ));
    assert!(ok, "{err}");
    assert!(
        err.contains("resuming a run planned for 1 epochs with --epochs 2")
            && err.contains("resuming a run trained with --shift 1 with --shift 0"),
        "{err}"
    );
    assert!(!err.contains("nothing to train"), "{err}");
    // --stop-at at the end of an epoch (5 steps each): "continue with --resume" while epochs
    // are left, not after the last.
    for (epochs, left) in [("2", true), ("1", false)] {
        let (ok, err) = run(&fit(data, &c, &["--epochs", epochs, "--stop-at", "5"]));
        assert!(ok, "{err}");
        assert_eq!(
            err.contains("stopped after global step 5 (--stop-at)"),
            left,
            "--epochs {epochs}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `--log-every`: a progress line every N steps, whose loss and accuracy are the means over the
/// steps since the last line. With 80 training images in batches of 16 (5 steps an epoch) and
/// `--log-every 5`, the two lines of two epochs each cover one whole epoch, so they give the
/// epoch's mean loss and training accuracy the checkpoint records; the learning rate is that of
/// the step taken, in warm-up (500 steps to 1e-3): (4 + 1)/500 and (9 + 1)/500 of 1e-3; at the
/// last step nothing is left, so the ETA is 0.
#[test]
fn progress_lines_give_the_means_since_the_last_line() {
    let (dir, data) = tiny_data("progress");
    let ck = dir.join("ck").to_str().unwrap().to_string();
    let (ok, err) = run(&fit(&data, &ck, &["--epochs", "2", "--log-every", "5"]));
    assert!(ok, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(" step ")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    let (_, m) = tinv_train::checkpoint::load(Path::new(&ck)).unwrap();
    let meta = tinv_train::train::read_meta(&m, Path::new(&ck)).unwrap();
    let field = |l: &str, key: &str| -> f64 {
        let v = l
            .split(key)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        v.trim_end_matches('%').parse().unwrap()
    };
    for (e, (l, lr)) in lines.iter().zip(["1.00e-5", "2.00e-5"]).enumerate() {
        assert!(
            l.starts_with(&format!("epoch {}/2 step 5/5 loss ", e + 1)),
            "{l}"
        );
        let h = &meta.history[e];
        assert!(
            (field(l, " loss ") - h.loss).abs() <= 5.1e-5,
            "{l}: {}",
            h.loss
        );
        assert!(
            (field(l, " acc ") - 100.0 * h.train_acc).abs() <= 0.051,
            "{l}: {}",
            h.train_acc
        );
        assert!(l.contains(&format!(" lr {lr} ")), "{l}");
    }
    assert!(lines[1].ends_with(" ETA 0:00:00"), "{}", lines[1]);
    std::fs::remove_dir_all(&dir).ok();
}

/// `fit`'s warnings at the ends of their conditions: a validation split below the controller's
/// 5 folds (4 is, 5 is not); every label the same; a class count from the largest label above
/// twice the labels that occur (labels 0, 1, 5: 6 classes for 3 labels is not). And
/// `--train-limit`: 100 of 120 images with 40 for validation train on 60.
#[test]
fn fit_warns_at_the_bounds_it_states_and_limits_the_images() {
    for (val, warned) in [("4", true), ("5", false)] {
        let (ok, err) = run(&["fit", "--data", "/nonexistent", "--val", val]);
        assert!(!ok, "{err}");
        assert_eq!(err.contains("warning: --val"), warned, "--val {val}: {err}");
    }
    let (dir, data) = tiny_data("warnings");
    let d = Path::new(&data);
    let ck = dir.join("ck").to_str().unwrap().to_string();
    edit_train_labels(d, |l| {
        l.iter_mut()
            .enumerate()
            .for_each(|(i, y)| *y = [0, 1, 5][i % 3])
    });
    let (ok, err) = run(&fit(&data, &ck, &["--train-limit", "100"]));
    assert!(ok, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let (_, m) = tinv_train::checkpoint::load(Path::new(&ck)).unwrap();
    let meta = tinv_train::train::read_meta(&m, Path::new(&ck)).unwrap();
    assert_eq!(
        (meta.data.unwrap().train_images, meta.model.classes),
        (60, 6)
    );
    // The controller finds that checkpoint's validation split (images 60..100) by its limit.
    quick_controller(&ck, &data);
    edit_train_labels(d, |l| l.fill(2));
    let (ok, err) = run(&fit(&data, &ck, &[]));
    assert!(ok, "{err}");
    assert!(
        err.contains("warning: every label is 2: there is nothing to learn"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `controller` takes its flags: the hidden widths (`--hp 3 --hq 5 --hr 2` give those tensor
/// shapes), `--seed` (another seed, another controller), `--route 10` (the report names 10
/// routing images, not the whole training split), a checkpoint with the least validation split
/// it takes (`--val 5`), and it says how the graph policy was chosen (its progress lines).
#[test]
fn controller_takes_its_flags() {
    let (dir, data) = tiny_data("ctrl-flags");
    let ck = dir.join("ck").to_str().unwrap().to_string();
    let (ok, err) = run(&fit(&data, &ck, &["--val", "5"]));
    assert!(ok, "{err}");
    let ctrl = |seed: &str, out: &str| {
        let o = Command::new(BIN)
            .args(["controller", &ck, "--data", &data, "--out", out])
            .args(["--iters", "1", "--episodes", "8", "--hp", "3", "--hq", "5"])
            .args(["--hr", "2", "--route", "10", "--seed", seed])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        let (ts, _) = tinv_train::checkpoint::load(Path::new(out)).unwrap();
        let ctrl: Vec<_> = ts
            .into_iter()
            .filter(|t| t.name.starts_with("ctrl."))
            .collect();
        (String::from_utf8_lossy(&o.stdout).into_owned(), err, ctrl)
    };
    let (c1, c2) = (ck.clone() + ".1", ck.clone() + ".2");
    let (report, err, one) = ctrl("1", &c1);
    assert!(
        report.contains("(graph policy: routing from the outcomes of 10 training images)"),
        "{report}"
    );
    assert!(
        err.contains("graph policy: mean validation reward"),
        "{err}"
    );
    let shape = |name: &str| one.iter().find(|t| t.name == name).unwrap().shape.clone();
    assert_eq!(shape("ctrl.pred.fc1.bias"), [3]);
    assert_eq!(shape("ctrl.policy.fc1.bias"), [5]);
    assert_eq!(shape("ctrl.exit.wh"), [2, 2]);
    let (_, _, two) = ctrl("2", &c2);
    assert_ne!(one, two, "--seed 2 trained the controller of --seed 1");
    std::fs::remove_dir_all(&dir).ok();
}

/// The upper bounds of `--hp`, `--hq`, `--hr` (4096) and `--episodes` (1 000 000) are allowed
/// values: the command goes on to the checkpoint (absent here).
#[test]
fn controller_bounds_admit_their_maximum() {
    let dir = tmp("ctrl-bounds");
    let absent = dir.join("absent.safetensors");
    let out = dir.join("out.safetensors");
    for (flag, v) in [
        ("--hp", "4096"),
        ("--hq", "4096"),
        ("--hr", "4096"),
        ("--episodes", "1000000"),
    ] {
        let args = ["controller", absent.to_str().unwrap(), "--out"];
        let (ok, err) = run(&[&args[..], &[out.to_str().unwrap(), flag, v]].concat());
        assert!(!ok);
        assert!(
            err.contains("absent.safetensors") && !err.contains("must be between"),
            "{flag} {v}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
