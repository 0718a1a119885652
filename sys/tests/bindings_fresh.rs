//! The checked-in bindings must equal what `sys/bindgen.sh` generates from `shim/tinv_trt.h`.
//! Skips (with the reason printed) where bindgen-cli or libclang is not installed.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn bindings_match_the_header() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let probe = Command::new("bindgen").arg("--version").output();
    if !matches!(probe, Ok(ref o) if o.status.success()) {
        eprintln!("SKIPPED bindings_match_the_header: `bindgen` CLI not found (cargo install bindgen-cli)");
        return;
    }
    let out = std::env::temp_dir().join(format!("tinv_trt_bindings_{}.rs", std::process::id()));
    let run = Command::new("sh")
        .arg(dir.join("bindgen.sh"))
        .arg(&out)
        .output()
        .expect("sh runs");
    if !run.status.success() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        if stderr.contains("libclang") {
            eprintln!("SKIPPED bindings_match_the_header: bindgen cannot load libclang: {stderr}");
            return;
        }
        panic!("sys/bindgen.sh failed: {stderr}");
    }
    let fresh = std::fs::read_to_string(&out).expect("bindgen wrote its output");
    let _ = std::fs::remove_file(&out);
    let committed =
        std::fs::read_to_string(dir.join("src/bindings.rs")).expect("src/bindings.rs exists");
    assert!(
        fresh == committed,
        "sys/src/bindings.rs is stale: run sys/bindgen.sh and commit the result"
    );
}
