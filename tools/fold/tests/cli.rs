//! The binary's own output: stdout closed or failing, `--version`, and what the command line
//! checks before folding. Every failure is one `error:` line and exit status 1, never a panic.

use std::process::Command;

#[path = "../../../tests/common/stdout.rs"]
mod stdout;

const BIN: &str = env!("CARGO_BIN_EXE_tinv-fold");

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
