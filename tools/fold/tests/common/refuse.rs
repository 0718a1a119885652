//! Helpers for the tests of refused input: fold or parse expecting an error, check that the
//! message is one line, run the binary.

use super::{safetensors_bytes, Src, Tensors};
use std::process::Command;
use tinv_fold::{fold, Checkpoint, ConfigSpec, FoldError, FoldOptions};

/// Folds `t` (written as F32) with `flags`, expecting a refusal.
pub fn fold_err(t: &Tensors, flags: ConfigSpec) -> FoldError {
    let ck = Checkpoint::parse(safetensors_bytes(t, Src::F32, &[])).expect("container is fine");
    match fold(&ck, None, flags, &FoldOptions::default(), &mut |_| {}) {
        Ok(_) => panic!("fold accepted a bad checkpoint"),
        Err(e) => e,
    }
}

/// The message, asserted to be one line.
pub fn one_line(e: &FoldError) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "multi-line message: {s}");
    s
}

/// A safetensors file with a hand-written header and `data_len` zero bytes of data.
pub fn with_header(header: &str, data_len: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.resize(b.len() + data_len, 0);
    b
}

/// Parses `bytes`, expecting a container error; returns its message.
pub fn container_err(bytes: Vec<u8>) -> String {
    match Checkpoint::parse(bytes) {
        Ok(_) => panic!("bad container accepted"),
        Err(e) => {
            assert!(matches!(e, FoldError::Safetensors(_)), "{e:?}");
            one_line(&e)
        }
    }
}

/// Runs the `tinv-fold` binary: (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tinv-fold"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
