//! `tinv-run` from a test: run it, and check that a failure is one `error:` line.

use std::path::PathBuf;
use std::process::Command;

/// A fresh folder for one test, named after the process and `name`.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinv-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `tinv-run args` with no default model reachable: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .args(args)
        .env("TINV_MODEL", "/nonexistent")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// [`assert_failed_with`] on `tinv-run args`.
pub fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, _, err) = run(args);
    assert_failed_with(code, &err, needle, &args);
}

/// Exit status 1 and exactly one `error: …` line on stderr that contains `needle`.
pub fn assert_failed_with(code: i32, err: &str, needle: &str, what: &dyn std::fmt::Debug) {
    assert_eq!(code, 1, "{what:?} should fail: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what:?}: expected one line, got {err:?}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{what:?}: {err}"
    );
}

/// The value of `"key":` in a JSON object, as written (a number, `null`, a quoted string
/// without a comma, or a nested object without nested objects): its first occurrence.
pub fn field<'a>(obj: &'a str, key: &str) -> &'a str {
    let at = obj
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {obj}"));
    let rest = &obj[at + key.len() + 3..];
    let end = if rest.starts_with('{') {
        rest.find('}').map(|e| e + 1)
    } else {
        rest.find([',', '}'])
    };
    &rest[..end.unwrap_or(rest.len())]
}

/// The number after `"key":` in a JSON object ([`field`] read as a number).
pub fn num(obj: &str, key: &str) -> f64 {
    field(obj, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {obj}"))
}
