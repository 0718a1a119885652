//! The real shim and loader against fake `libnvinfer` libraries (no TensorRT, no GPU): every
//! failure of `tinv_trt_lib_open` must come back as a typed error with the shim's message.
//! Runs only when tinv-sys was built with TensorRT headers (the shim exists); skips otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use tinv_sys::{Shim, ShimError};

/// Compiles `source` (C) into a shared library named `name` in a fresh temp folder.
fn fake_lib(name: &str, source: &str) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tinv_fake_{}_{}",
        std::process::id(),
        name.replace('.', "_")
    ));
    std::fs::create_dir_all(&dir).ok()?;
    let c = dir.join("fake.c");
    std::fs::write(&c, source).ok()?;
    let out = dir.join(name);
    let ok = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&c)
        .status()
        .ok()?
        .success();
    ok.then_some(out)
}

fn built() -> Option<(u32, PathBuf)> {
    let b = Shim::built_shim();
    if b.is_none() {
        eprintln!("SKIPPED: tinv-sys was built without TensorRT headers, no shim to load");
    }
    b
}

fn open(shim: &Path, major: u32, nvinfer: &Path) -> ShimError {
    match Shim::load_from(shim, major, Some(nvinfer)) {
        Ok(_) => panic!("a fake libnvinfer must not yield a working TensorRT"),
        Err(e) => e,
    }
}

#[test]
fn wrong_library_major_is_a_version_error() {
    let Some((major, shim)) = built() else { return };
    // A library that reports another major than the shim's headers (8.5.3 vs 10.x, or 10.3.0 vs 8.x).
    let other = if major == 8 { 100300 } else { 8503 };
    let src = format!(
        "int getInferLibVersion(void) {{ return {other}; }}\n\
         void* createInferRuntime_INTERNAL(void* l, int v) {{ (void)l; (void)v; return 0; }}\n\
         void* createInferBuilder_INTERNAL(void* l, int v) {{ (void)l; (void)v; return 0; }}\n"
    );
    let Some(lib) = fake_lib("libnvinfer_wrong.so", &src) else {
        return eprintln!("SKIPPED: no C compiler");
    };
    match open(&shim, major, &lib) {
        ShimError::Call {
            function,
            status,
            message,
        } => {
            assert_eq!(function, "tinv_trt_lib_open");
            assert_eq!(status, 3, "TINV_TRT_ERR_VERSION; message: {message}");
            let want = if major == 8 {
                "is TensorRT 10.3"
            } else {
                "is TensorRT 8.5"
            };
            assert!(message.contains(want), "{message}");
            assert!(
                message.contains(&format!("built for TensorRT {major}.x")),
                "{message}"
            );
        }
        e => panic!("expected a call error, got {e}"),
    }
}

/// `getInferLibVersion()`'s encoding of `major.minor.0`: 8503 for 8.5.3, 100300 for 10.3.0.
fn raw_version(major: u32, minor: u32) -> u32 {
    if major < 10 {
        major * 1000 + minor * 100
    } else {
        major * 10000 + minor * 100
    }
}

/// The minor of the headers the shim was built with.
fn built_minor() -> u32 {
    option_env!("TINV_TRT_SHIM_BUILT_MINOR")
        .and_then(|m| m.parse().ok())
        .expect("build.rs records the minor whenever it builds the shim")
}

#[test]
fn older_library_minor_is_a_version_error() {
    let Some((major, shim)) = built() else { return };
    let minor = built_minor();
    if minor == 0 {
        return eprintln!("SKIPPED: the shim's headers are {major}.0, no older minor exists");
    }
    // A library one minor older than the headers: it lacks what the shim calls (8.5 under an
    // 8.6 shim has no setMaxAuxStreams, 10.0 under a 10.3 shim no V2 device-memory calls).
    let src = format!(
        "int getInferLibVersion(void) {{ return {}; }}\n\
         void* createInferRuntime_INTERNAL(void* l, int v) {{ (void)l; (void)v; return 0; }}\n\
         void* createInferBuilder_INTERNAL(void* l, int v) {{ (void)l; (void)v; return 0; }}\n",
        raw_version(major, minor - 1)
    );
    let Some(lib) = fake_lib("libnvinfer_older.so", &src) else {
        return eprintln!("SKIPPED: no C compiler");
    };
    match open(&shim, major, &lib) {
        ShimError::Call {
            status, message, ..
        } => {
            assert_eq!(status, 3, "TINV_TRT_ERR_VERSION; message: {message}");
            let want = format!(
                "is TensorRT {major}.{} but this shim was built with {major}.{minor} headers",
                minor - 1
            );
            assert!(message.contains(&want), "{message}");
        }
        e => panic!("expected a call error, got {e}"),
    }
}

#[test]
fn runtime_creation_failure_is_a_tensorrt_error() {
    let Some((major, shim)) = built() else { return };
    // The headers' own version, and a newer minor: both pass the version check.
    for same in [
        raw_version(major, built_minor()),
        raw_version(major, built_minor() + 1),
    ] {
        check_runtime_failure(major, &shim, same);
    }
}

fn check_runtime_failure(major: u32, shim: &Path, same: u32) {
    let src = format!(
        "int getInferLibVersion(void) {{ return {same}; }}\n\
         void* createInferRuntime_INTERNAL(void* l, int v) {{ (void)l; (void)v; return 0; }}\n\
         void* createInferBuilder_INTERNAL(void* l, int v) {{ (void)l; (void)v; return 0; }}\n"
    );
    let Some(lib) = fake_lib("libnvinfer_null.so", &src) else {
        return eprintln!("SKIPPED: no C compiler");
    };
    let e = open(shim, major, &lib);
    assert!(matches!(e, ShimError::Call { status: 4, .. }), "{e}");
    assert!(e.to_string().contains("createInferRuntime failed"), "{e}");
}

#[test]
fn missing_factory_symbol_is_a_load_error() {
    let Some((major, shim)) = built() else { return };
    let Some(lib) = fake_lib(
        "libnvinfer_bare.so",
        "int getInferLibVersion(void) { return 0; }\n",
    ) else {
        return eprintln!("SKIPPED: no C compiler");
    };
    let e = open(&shim, major, &lib);
    assert!(matches!(e, ShimError::Call { status: 2, .. }), "{e}");
    assert!(
        e.to_string().contains("lacks a TensorRT factory symbol"),
        "{e}"
    );
}

#[test]
fn absent_library_is_a_load_error_naming_it() {
    let Some((major, shim)) = built() else { return };
    let missing = Path::new("/nonexistent/libnvinfer.so.99");
    let e = open(&shim, major, missing);
    assert!(matches!(e, ShimError::Call { status: 2, .. }), "{e}");
    assert!(
        e.to_string().contains("/nonexistent/libnvinfer.so.99"),
        "{e}"
    );
}

#[test]
fn load_without_tensorrt_names_every_attempt() {
    // No libnvinfer exists on this machine (CI): the error lists the majors tried, or says the
    // shim was not built at all.
    if Command::new("sh")
        .args(["-c", "ldconfig -p | grep -q libnvinfer.so"])
        .status()
        .is_ok_and(|s| s.success())
    {
        return eprintln!("SKIPPED: a real libnvinfer is installed here");
    }
    match Shim::load() {
        Ok(_) => panic!("no TensorRT is installed, load must fail"),
        Err(ShimError::NotBuilt) => assert!(Shim::built_shim().is_none()),
        Err(ShimError::Load(m)) => {
            for major in [10, 11, 8] {
                assert!(m.contains(&format!("libnvinfer.so.{major}")), "{m}");
            }
            assert!(
                m.contains("not installed, or not on the loader's path"),
                "{m}"
            );
            assert!(
                !m.contains("libnvinfer.so.10: libnvinfer.so.10"),
                "dlerror names the library once: {m}"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}
