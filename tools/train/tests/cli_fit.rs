//! `tinv-train fit` on tiny crafted IDX datasets (8×8 images, 4 classes): bad datasets are
//! named, a rank-4 file that looks channels-first is warned about, and its progress lines,
//! warnings and `--train-limit` hold at the bounds they state.

mod common;

use common::{dataset, edit_train_labels, fails, fit, quick_controller, run, tiny_data, tmp};
use std::path::Path;

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
