//! Re-running one test of the current test binary in a child process, for tests whose subject
//! is the process itself (what reaches its stderr, how it ends under a resource limit).

use std::ffi::OsStr;
use std::process::{Command, Output};

/// Runs test `name` of this test binary alone in a child process, with `env` added to its
/// environment (the test tells by it that it is the child), and returns what the child did.
pub fn rerun(name: &str, env: &[(&str, &OsStr)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}
