//! The command line: what it refuses before measuring anything, and its own output (stdout
//! closed or failing). Every failure is one `error:` line and exit status 1, never a panic.
//! Needs no venv.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tinv-bench");

/// A pipe whose reading end is already closed (`… | head -1` after `head` exits).
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// `/dev/full`: every write fails with "No space left on device".
fn dev_full() -> Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

/// Runs the binary with stdout on `stdout`; returns (exit code, stderr).
fn run_to(args: &[&str], stdout: Stdio) -> (Option<i32>, String) {
    let o = Command::new(BIN)
        .args(args)
        .stdout(stdout)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// stdout closed (`| head -1`): a quiet exit 0; stdout failing otherwise (a full disk): one
/// `error:` line and exit 1. Both panicked (exit 101, backtrace).
#[test]
fn a_closed_or_failing_stdout_is_not_a_panic() {
    let args = ["--help"];
    let (code, err) = run_to(&args, closed_pipe());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err, "");
    let (code, err) = run_to(&args, dev_full());
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err,
        "error: writing to stdout: No space left on device (os error 28)\n"
    );
}
