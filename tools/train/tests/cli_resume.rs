//! `tinv-train fit --resume` and the checkpoints it reads: every checkpoint keeps its own
//! optimizer state; a resume, the controller stage and `eval` refuse a checkpoint or dataset that
//! does not fit; a resume says what changed and what is left to train.

mod common;

use common::{dataset, edit_train_labels, fails, fit, quick_controller, run, tiny_data, tmp};
use std::path::Path;

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
