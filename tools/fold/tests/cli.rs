//! The binary's own output: stdout closed or failing, `--version`, and what the command line
//! checks before folding. Every failure is one `error:` line and exit status 1, never a panic.

use std::process::Command;

#[path = "../../../tests/common/stdout.rs"]
mod stdout;

const BIN: &str = env!("CARGO_BIN_EXE_tinv-fold");

/// `tinv-fold -q ARGS…`.
fn fold_quiet<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    Command::new(BIN)
        .arg("-q")
        .args(args)
        .output()
        .expect("runs")
}

/// Exit status 1 and one `error:` line on stderr containing `want` (and starting with
/// `error: {prefix}`).
fn assert_one_error(
    r: &std::process::Output,
    prefix: &str,
    want: &str,
    what: &dyn std::fmt::Debug,
) {
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{what:?}: {err}");
    assert!(
        err.lines().count() == 1
            && err.starts_with(&format!("error: {prefix}"))
            && err.contains(want),
        "{what:?}: {err}"
    );
}

/// stdout closed (`| head -1`): a quiet exit 0; stdout failing otherwise (a full disk): one
/// `error:` line and exit 1. Both panicked (exit 101, backtrace).
#[test]
fn a_closed_or_failing_stdout_is_not_a_panic() {
    for args in [&["--help"][..], &["--version"]] {
        stdout::assert_closed_and_failing_stdout_handled(BIN, args);
    }
}

/// `--depths` on the shipped checkpoint, which has a controller: a depth without an exit head is
/// named, a subset of the paths is refused (both said "tensor 'ctrl.policy.fc1.weight' has
/// shape [64, 25], expected [_, 23]").
#[test]
fn depths_on_a_controller_checkpoint() {
    let ck = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../engines/fmnist/checkpoint.safetensors");
    let ck = ck.to_str().expect("utf-8 path");
    let out =
        std::env::temp_dir().join(format!("tinv-fold-cli-depths-{}.tinv", std::process::id()));
    let o = out.to_str().expect("utf-8 path");
    for (depths, want) in [
        (
            "3,8",
            "tensor 'exits.3.norm.weight' is missing from the checkpoint (exit head of the \
             depth-3 path; the checkpoint has exits at depths [2, 4, 6])",
        ),
        (
            "2,8",
            "paths [2, 8] leave out some of [2, 4, 6, 8], the paths the checkpoint's controller",
        ),
    ] {
        let o = Command::new(BIN)
            .args([ck, "-q", "-o", o, "--depths", depths])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{depths}: {err}");
        assert_eq!(err.lines().count(), 1, "{depths}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{depths}: {err}"
        );
    }
    assert!(!out.exists());
}

/// Inputs that are not regular files (a FIFO blocked the read forever), an option given twice
/// (`-o x -o y` wrote only y) and an argument that is not UTF-8 (a panic) are one-line errors.
#[test]
fn irregular_inputs_repeats_and_non_utf8_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::env::temp_dir().join(format!("tinv-fold-cli-irregular-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let fifo = dir.join("ck.safetensors");
    let _ = std::fs::remove_file(&fifo);
    let f = if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        fifo.to_str().expect("utf-8").to_string()
    } else {
        "/dev/zero".to_string()
    };
    let ck = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../engines/fmnist/checkpoint.safetensors");
    let ck = ck.to_str().expect("utf-8 path");
    let out = dir.join("o.tinv");
    let o = out.to_str().expect("utf-8");
    // An existing file named by both --config and -o (it was replaced by the .tinv bytes).
    std::fs::write(&out, "{}").expect("config");
    for (args, want) in [
        (vec![f.as_str(), "-o", o], "not a regular file"),
        (
            vec![ck, "--config", f.as_str(), "-o", o],
            "not a regular file",
        ),
        (vec![ck, "-o", o, "--output", o], "--output is given twice"),
        (
            vec![ck, "--heads", "4", "--heads=4", "-o", o],
            "--heads is given twice",
        ),
        (vec![ck, "--config", o, "-o", o], "is the --config file"),
        (
            vec![ck, "-o", "/nonexistent/dir/z.tinv"],
            "folder /nonexistent/dir does not exist",
        ),
        (
            vec![ck, "-o", "newdir/"],
            "is a directory; give a file name",
        ),
        // An empty output folded everything, then said ": No such file or directory".
        (vec![ck, "-o", ""], "-o needs a value, not an empty string"),
        (
            vec![ck, "--output="],
            "--output needs a value, not an empty string",
        ),
        (vec![""], "an empty argument is not a file name"),
        // A regular file where the output's folder should be was "a folder that does not exist".
        (
            vec![ck, "-o", &format!("{o}/z.tinv")],
            "o.tinv is not a folder",
        ),
        (vec!["-V", ck], "-V takes no other arguments"),
    ] {
        assert_one_error(&fold_quiet(&args), "", want, &args);
    }
    let r = Command::new(BIN)
        .arg(std::ffi::OsStr::from_bytes(b"m\xff.safetensors"))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("is not valid UTF-8"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).expect("config"), "{}");
    std::fs::remove_dir_all(&dir).ok();
}

/// An output that is a device or a FIFO, also behind a symbolic link, is refused before folding
/// (the rename replaced it with a plain file and exited 0: as root, `-o /dev/null` did that to
/// /dev/null); a link to a file is written through and stays a link.
#[test]
fn outputs_that_are_devices_fifos_or_links() {
    let dir = std::env::temp_dir().join(format!("tinv-fold-cli-dest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let ck = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../engines/fmnist/checkpoint.safetensors");
    // Only links and a FIFO of our own: if the check failed, the rename would replace them, not
    // the device.
    let to_dev = dir.join("to-dev.tinv");
    std::os::unix::fs::symlink("/dev/null", &to_dev).expect("link");
    let fifo = dir.join("fifo.tinv");
    let mut refused = vec![(
        to_dev.clone(),
        "/dev/null is not a regular file".to_string(),
    )];
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        refused.push((
            fifo.clone(),
            format!("{} is not a regular file", fifo.display()),
        ));
    }
    for (out, want) in &refused {
        let r = fold_quiet(&[ck.as_os_str(), "-o".as_ref(), out.as_os_str()]);
        assert_one_error(&r, "output ", want, out);
        let kind = std::fs::symlink_metadata(out)
            .expect("still there")
            .file_type();
        assert!(!kind.is_file(), "{out:?} was replaced by a file");
    }
    // Through a link: the file it names is written, the link stays.
    let (link, target) = (dir.join("link.tinv"), dir.join("target.tinv"));
    std::os::unix::fs::symlink("target.tinv", &link).expect("link");
    let r = fold_quiet(&[ck.as_os_str(), "-o".as_ref(), link.as_os_str()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    let bytes = std::fs::read(&target).expect("written through the link");
    assert_eq!(&bytes[1..5], b"TINV");
    std::fs::remove_dir_all(&dir).ok();
}

/// A flag that changes a value the checkpoint was trained with is refused, naming the values
/// (it was a warning, and `--heads 3` on the 4-head default model wrote a model computing
/// something else); the same value, or a path subset, folds.
#[test]
fn overriding_a_trained_value_is_refused() {
    let ck = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../engines/fmnist/checkpoint.safetensors");
    let ck = ck.to_str().expect("utf-8 path");
    let out = std::env::temp_dir().join(format!("tinv-fold-cli-warn-{}.tinv", std::process::id()));
    let o = out.to_str().expect("utf-8 path");
    let run = |extra: &[&str]| {
        let r = Command::new(BIN)
            .args([ck, "-q", "-o", o])
            .args(extra)
            .output()
            .expect("runs");
        (
            r.status.code(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--heads", "3", "--gelu", "tanh"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with(
            "error: the checkpoint was trained with another configuration (heads 4 → 3, gelu Erf \
             → Tanh)"
        ) && err.lines().count() == 1,
        "{err}"
    );
    assert!(!out.exists(), "nothing is written");
    assert_eq!(
        run(&["--heads", "4", "--budget", "0.1"]),
        (Some(0), String::new())
    );
    std::fs::remove_file(&out).ok();
}
