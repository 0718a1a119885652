//! What every binary of the workspace promises about stdout (src/bin/tinv-run/out.rs): a closed
//! stdout (`… | head -1`) ends it quietly with status 0, a failing one (a full disk) with one
//! `error:` line and status 1, never a panic. Included with `#[path]` by the CLI tests of
//! tinv-fold, tinv-bench and tinv-train.

use std::process::{Command, Stdio};

/// A pipe whose reading end is already closed (`… | head -1` after `head` exits).
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer.into()
}

/// `/dev/full`: every write fails with "No space left on device".
fn dev_full() -> Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
        .into()
}

/// Runs `bin args` with stdout on `stdout`; returns (exit code, stderr).
fn run_to(bin: &str, args: &[&str], stdout: Stdio) -> (Option<i32>, String) {
    let o = Command::new(bin)
        .args(args)
        .stdout(stdout)
        .output()
        .expect("the binary runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts both outcomes for `bin args`.
pub fn assert_closed_and_failing_stdout_handled(bin: &str, args: &[&str]) {
    let (code, err) = run_to(bin, args, closed_pipe());
    assert_eq!(
        (code, err.as_str()),
        (Some(0), ""),
        "{args:?} with stdout closed"
    );
    let (code, err) = run_to(bin, args, dev_full());
    assert_eq!(
        (code, err.as_str()),
        (
            Some(1),
            "error: writing to stdout: No space left on device (os error 28)\n"
        ),
        "{args:?} with stdout on /dev/full"
    );
}
