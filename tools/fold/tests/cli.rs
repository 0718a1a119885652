//! The binary's own output: stdout closed or failing, `--version`, and what the command line
//! checks before folding. Every failure is one `error:` line and exit status 1, never a panic.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tinv-fold");

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

/// Runs the binary with stdout on `stdout`; returns (exit code, stderr).
fn run_to(args: &[&str], stdout: Stdio) -> (Option<i32>, String) {
    let o = Command::new(BIN)
        .args(args)
        .stdout(stdout)
        .output()
        .expect("runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// stdout closed (`| head -1`): a quiet exit 0; stdout failing otherwise (a full disk): one
/// `error:` line and exit 1. Both panicked (exit 101, backtrace).
#[test]
fn a_closed_or_failing_stdout_is_not_a_panic() {
    for args in [&["--help"][..], &["--version"]] {
        let (code, err) = run_to(args, closed_pipe());
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
        let (code, err) = run_to(args, dev_full());
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert_eq!(
            err, "error: writing to stdout: No space left on device (os error 28)\n",
            "{args:?}"
        );
    }
}
