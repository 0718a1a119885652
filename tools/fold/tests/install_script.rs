//! scripts/install.sh on bad arguments: one `error:` line and exit status 1. (Here rather than in
//! the top-level tests/ beside the install test of tests/capi.rs only because this change was
//! made from the tools; it needs nothing from tinv-fold.)

use std::path::Path;
use std::process::Command;

#[test]
fn install_script_options_need_values() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install.sh");
    let run = |args: &[&str]| {
        let o = Command::new("sh")
            .arg(&script)
            .args(args)
            .output()
            .expect("sh runs");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // A missing value said "scripts/install.sh: 18: 2: parameter not set"; an empty --prefix
    // would have installed into /lib.
    for flag in ["--prefix", "--from"] {
        for args in [&[flag][..], &[flag, ""], &["--from", "/nonexistent", flag]] {
            assert_eq!(
                run(args),
                (Some(1), format!("error: {flag} needs a value\n")),
                "{args:?}"
            );
        }
    }
    assert_eq!(
        run(&["--bogus"]),
        (
            Some(1),
            "error: unknown argument --bogus (see --help)\n".to_string()
        )
    );
}
