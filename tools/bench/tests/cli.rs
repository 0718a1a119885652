//! The command line: what it refuses before measuring anything, and its own output (stdout
//! closed or failing). Every failure is one `error:` line and exit status 1, never a panic.
//! Needs no venv.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
#[path = "../../../tests/common/stdout.rs"]
mod stdout;

const BIN: &str = env!("CARGO_BIN_EXE_tinv-bench");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinv-bench-cli-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs and expects exactly one clean error line containing every one of `want`.
fn fails(args: &[&str], want: &[&str]) {
    let o = Command::new(BIN).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    for w in want {
        assert!(err.contains(w), "{args:?}: wanted '{w}' in: {err}");
    }
}

/// A Fashion-MNIST-shaped model (10 classes) with a controller, 20 test images and their labels
/// in `dir`; returns the arguments that benchmark them with everything written inside `dir`.
/// `--ort-lib` names an existing file that is no library: everything checked here is refused
/// before it is loaded.
fn setup(dir: &Path) -> Vec<String> {
    common::fmnist_case(dir, true);
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    [
        "--fmnist",
        &p("fm.tinv"),
        "--images",
        &p("images.idx"),
        "--labels",
        &p("labels.idx"),
        "--no-vit-tiny",
        "--ort-lib",
        &p("fm.tinv"),
        "--out",
        &p("out"),
        "--report",
        &p("RESULTS.md"),
    ]
    .map(String::from)
    .to_vec()
}

/// `args` with the value of `flag` replaced by `value`.
fn with<'a>(args: &'a [String], flag: &str, value: &'a str) -> Vec<&'a str> {
    let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
    let i = v.iter().position(|a| *a == flag).unwrap();
    v[i + 1] = value;
    v
}

/// `--labels` must be labels for the images: an image file given as `--labels` ran and
/// reported nonsense accuracies.
#[test]
fn labels_that_do_not_fit_the_images_or_the_model_are_refused() {
    let dir = tmp("labels");
    let args = setup(&dir);
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let images = p("images.idx");
    fails(
        &with(&args, "--labels", &images),
        &["images.idx (--labels)", "[20, 28, 28]", "not a label file"],
    );
    let short = p("short.idx");
    std::fs::write(&short, tinv::idx::encode(&[19], &[0; 19]).unwrap()).unwrap();
    fails(
        &with(&args, "--labels", &short),
        &["short.idx", "19 labels for 20 images"],
    );
    let big = p("big.idx");
    let mut labels = vec![1u8; 20];
    labels[3] = 10;
    std::fs::write(&big, tinv::idx::encode(&[20], &labels).unwrap()).unwrap();
    fails(
        &with(&args, "--labels", &big),
        &["big.idx", "label 10 (item 3)", "model's 10 classes"],
    );
    assert!(!dir.join("RESULTS.md").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Zero counts are refused (they were silently read as 1), as tinv-run refuses them.
#[test]
fn zero_counts_are_refused() {
    for flag in ["--runs", "--rounds", "--eval-n"] {
        fails(
            &[flag, "0"],
            &[&format!("error: {flag} must be at least 1")],
        );
    }
}

/// An `--out` that exists as a file is named as such (it said "File exists (os error 17)").
#[test]
fn out_that_is_a_file_is_named() {
    let dir = tmp("out");
    let args = setup(&dir);
    let file = dir.join("images.idx");
    let file = file.to_str().unwrap();
    fails(
        &with(&args, "--out", file),
        &[&format!("error: {file} exists and is not a directory")],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A `--report` whose folder cannot take it is refused before anything is measured (it was found
/// after every row had run, and named the plots folder), and so is a `--report` that is a folder.
#[test]
fn a_bad_report_path_is_refused_before_measuring() {
    let dir = tmp("report");
    let args = setup(&dir);
    let file = dir.join("images.idx");
    let under_file = file.join("R.md");
    let under_file = under_file.to_str().unwrap();
    fails(
        &with(&args, "--report", under_file),
        &[&format!("--report {under_file}: "), "Not a directory"],
    );
    let d = dir.to_str().unwrap();
    fails(
        &with(&args, "--report", d),
        &[&format!("--report {d} is a directory")],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// stdout closed (`| head -1`): a quiet exit 0; stdout failing otherwise (a full disk): one
/// `error:` line and exit 1. Both panicked (exit 101, backtrace).
#[test]
fn a_closed_or_failing_stdout_is_not_a_panic() {
    for args in [["--help"], ["--version"]] {
        stdout::assert_closed_and_failing_stdout_handled(BIN, &args);
    }
}

/// `--version` as in tinv-run and tinv-fold (it was an unknown option).
#[test]
fn version() {
    for v in ["--version", "-V"] {
        let o = Command::new(BIN).arg(v).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{v}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("tinv-bench {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
    let o = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("-V, --version"));
}

/// An option given twice (the last value won silently) and an argument that is not UTF-8 (a
/// panic in `std::env::args`) are one-line errors.
#[test]
fn repeated_options_and_non_utf8_arguments_are_refused() {
    fails(
        &["--runs", "5", "--runs", "6"],
        &["error: --runs is given twice"],
    );
    use std::os::unix::ffi::OsStrExt;
    let o = std::process::Command::new(BIN)
        .arg(std::ffi::OsStr::from_bytes(b"\xff"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: argument '\u{FFFD}' is not valid UTF-8"),
        "{err}"
    );
}

/// A file that is not ONNX Runtime's library as `--ort-lib` fails before anything is measured:
/// it failed only after every tinv row of every round had run ("no measurement in any round").
#[test]
fn an_ort_lib_that_is_not_onnx_runtime_fails_before_measuring() {
    let dir = tmp("ortlib");
    let args = setup(&dir);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let lib = dir.join("fm.tinv");
    fails(
        &a,
        &[&format!(
            "error: {}: not an ONNX Runtime library",
            lib.display()
        )],
    );
    assert!(!dir.join("RESULTS.md").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// `--flag=value` is `--flag value`; a switch takes no value; only long options split at `=`;
/// an empty path is refused; `--version` takes nothing else.
#[test]
fn option_forms_are_read_as_documented() {
    fails(&["--runs=0"], &["error: --runs must be at least 1"]);
    fails(&["--profile=1"], &["error: --profile takes no value"]);
    fails(&["x=1"], &["error: unknown option 'x=1'"]);
    fails(
        &["--out", ""],
        &["error: --out needs a path, not an empty string"],
    );
    fails(
        &["--version", "--runs", "5"],
        &["error: --version takes no other arguments"],
    );
}

/// Images that do not fit the model (28 × 27, or no images at all) are refused by name.
#[test]
fn images_that_do_not_fit_the_model_are_refused() {
    let dir = tmp("images");
    let args = setup(&dir);
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let narrow = p("narrow.idx");
    std::fs::write(
        &narrow,
        tinv::idx::encode(&[20, 28, 27], &[0; 20 * 28 * 27]).unwrap(),
    )
    .unwrap();
    fails(
        &with(&args, "--images", &narrow),
        &["narrow.idx: images [20, 28, 27] do not fit the model's 1×28×28 input"],
    );
    let flat = p("flat.idx");
    std::fs::write(
        &flat,
        tinv::idx::encode(&[20, 784], &[0; 20 * 784]).unwrap(),
    )
    .unwrap();
    fails(
        &with(&args, "--images", &flat),
        &["images [20, 784] do not fit"],
    );
    let (none, no_labels) = (p("none.idx"), p("nolabels.idx"));
    std::fs::write(&none, tinv::idx::encode(&[0, 28, 28], &[]).unwrap()).unwrap();
    std::fs::write(&no_labels, tinv::idx::encode(&[0], &[]).unwrap()).unwrap();
    let a = with(&args, "--images", &none);
    let a: Vec<String> = a.into_iter().map(String::from).collect();
    fails(
        &with(&a, "--labels", &no_labels),
        &["none.idx / ", "nolabels.idx: no test images with labels"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Without --fmnist and no engines/fmnist/model.tinv in the working directory, a run warns that
/// it has no Fashion-MNIST rows; a child and `--profile` need none and do not warn.
#[test]
fn a_missing_default_model_is_warned_about_in_a_run_only() {
    let dir = tmp("warn");
    let out = dir.join("out");
    let run = |extra: &[&str]| {
        let o = Command::new(BIN)
            .current_dir(&dir)
            .args([
                "--venv",
                "no-venv",
                "--threads",
                "1",
                "--runs",
                "1",
                "--out",
            ])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let warning = "warning: no engines/fmnist/model.tinv here";
    let err = run(&["--no-vit-tiny"]);
    assert!(err.starts_with(warning), "{err}");
    assert!(
        err.contains("error: no libonnxruntime.so in the venv"),
        "{err}"
    );
    let err = run(&["--child", "tinv", "fmnist", "1"]);
    assert!(!err.contains(warning), "{err}");
    let err = run(&["--profile"]);
    assert!(!err.contains(warning), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The report's folder is the one checked for writing, not the working directory: from a
/// directory that takes no files (/proc), a run with its report elsewhere gets past that check
/// (to the `--ort-lib` that is no library).
#[test]
fn the_report_folder_is_probed_not_the_working_directory() {
    let dir = tmp("probe");
    let args = setup(&dir);
    let o = Command::new(BIN)
        .current_dir("/proc")
        .args(&args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not an ONNX Runtime library"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
