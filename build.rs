//! Gives `libtinv.so` a versioned SONAME, so a Jetson can hold several ABI generations side by
//! side and the dynamic linker checks compatibility: `libtinv.so.<major>` from 1.0 on, and
//! `libtinv.so.0.<minor>` before (under Cargo's semver, 0.1 → 0.2 may break the ABI).
//! scripts/install.sh and the C tests make the same name.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| "0".into());
    let (major, minor) = (
        var("CARGO_PKG_VERSION_MAJOR"),
        var("CARGO_PKG_VERSION_MINOR"),
    );
    let abi = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtinv.so.{abi}");
    }
}
