//! Builds the TensorRT shim (`shim/tinv_trt.cpp`) into `libtinv_trt<MAJOR>.so` when TensorRT and
//! CUDA headers are found, and never links it: the Rust loader dlopens it at run time.
//!
//! Discovery (first hit wins):
//! - TensorRT headers: `TENSORRT_INCLUDE_DIR`, `$TENSORRT_ROOT/include`, then the system defaults
//!   (JetPack's multiarch `/usr/include/aarch64-linux-gnu`, `/usr/include/x86_64-linux-gnu`,
//!   `/usr/include`). The folder must hold `NvInferVersion.h`, `NvInfer.h` and `NvOnnxParser.h`.
//! - CUDA runtime headers: `CUDA_INCLUDE_DIR` (a `:`-separated list is allowed, e.g. the two
//!   folders of the PyPI wheels), `$CUDA_ROOT/include`, `/usr/local/cuda/include`.
//!
//! Without headers nothing is compiled and `tinv_trt_shim_built` stays unset, so
//! `Shim::load()` reports "TensorRT shim not built" at run time. The major comes from
//! `NvInferVersion.h`, so the library is `libtinv_trt8.so`, `libtinv_trt10.so` or `libtinv_trt11.so`.

use std::collections::HashMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    for var in [
        "TENSORRT_ROOT",
        "TENSORRT_INCLUDE_DIR",
        "CUDA_INCLUDE_DIR",
        "CUDA_ROOT",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for file in [
        "shim/tinv_trt.h",
        "shim/tinv_trt.cpp",
        "shim/tinv_trt_build.inc",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rustc-check-cfg=cfg(tinv_trt_shim_built)");

    let Some(trt) = find_trt_include() else {
        println!("cargo:warning=tinv-sys: no TensorRT headers found (set TENSORRT_ROOT or TENSORRT_INCLUDE_DIR); the TensorRT shim is not built");
        return;
    };
    // Headers replaced in place (an apt upgrade, another JetPack) must rebuild the shim: its API
    // calls are chosen by the header version.
    for f in [
        "NvInferVersion.h",
        "NvInfer.h",
        "NvInferRuntime.h",
        "NvOnnxParser.h",
    ] {
        println!("cargo:rerun-if-changed={}", trt.join(f).display());
    }
    let cuda = find_cuda_includes();
    for d in &cuda {
        println!(
            "cargo:rerun-if-changed={}",
            d.join("cuda_runtime_api.h").display()
        );
    }
    if cuda.is_empty() {
        println!("cargo:warning=tinv-sys: TensorRT headers in {} but no CUDA runtime headers (set CUDA_INCLUDE_DIR or CUDA_ROOT); the TensorRT shim is not built", trt.display());
        return;
    }
    let major = match trt_major(&trt.join("NvInferVersion.h")) {
        Ok(m) => m,
        Err(e) => {
            println!("cargo:warning=tinv-sys: {e}; the TensorRT shim is not built");
            return;
        }
    };
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo always sets OUT_DIR"));
    let name = format!("libtinv_trt{major}.so");
    let lib = out_dir.join(&name);
    if let Err(e) = compile_shim(&trt, &cuda, &lib) {
        // A header set that is present but does not compile is a real failure, not "absent".
        panic!(
            "tinv-sys: building {name} against {} failed: {e}",
            trt.display()
        );
    }
    // Also place it beside the final binaries (target/<profile>/) so `Shim::load()` finds it next
    // to the executable; OUT_DIR is target/<profile>/build/tinv-sys-<hash>/out. A shim of another
    // major left by an earlier build with other headers goes: both folders are on the loader's
    // search path, and a copied target folder would carry it to a device.
    let profile_dir = out_dir.ancestors().nth(3);
    for dir in std::iter::once(out_dir.as_path()).chain(profile_dir) {
        for other in [8, 10, 11].iter().filter(|&&m| m != major) {
            let _ = fs::remove_file(dir.join(format!("libtinv_trt{other}.so")));
        }
    }
    if let Some(profile_dir) = profile_dir {
        let _ = fs::copy(&lib, profile_dir.join(&name));
    }
    println!("cargo:rustc-cfg=tinv_trt_shim_built");
    println!(
        "cargo:rustc-env=TINV_TRT_SHIM_BUILD_DIR={}",
        out_dir.display()
    );
    println!("cargo:rustc-env=TINV_TRT_SHIM_BUILT_MAJOR={major}");
    // For the tests of the version check (tests/shim_load.rs).
    if let Ok(minor) = trt_define(&trt.join("NvInferVersion.h"), "NV_TENSORRT_MINOR") {
        println!("cargo:rustc-env=TINV_TRT_SHIM_BUILT_MINOR={minor}");
    }
}

fn has_trt_headers(dir: &Path) -> bool {
    ["NvInferVersion.h", "NvInfer.h", "NvOnnxParser.h"]
        .iter()
        .all(|f| dir.join(f).is_file())
}

fn find_trt_include() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = env::var_os("TENSORRT_INCLUDE_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(root) = env::var_os("TENSORRT_ROOT") {
        candidates.push(PathBuf::from(root).join("include"));
    }
    for dir in [
        "/usr/include/aarch64-linux-gnu",
        "/usr/include/x86_64-linux-gnu",
        "/usr/include",
    ] {
        candidates.push(PathBuf::from(dir));
    }
    candidates.into_iter().find(|d| has_trt_headers(d))
}

fn find_cuda_includes() -> Vec<PathBuf> {
    if let Some(list) = env::var_os("CUDA_INCLUDE_DIR") {
        let dirs: Vec<PathBuf> = env::split_paths(&list).collect();
        if dirs.iter().any(|d| d.join("cuda_runtime_api.h").is_file()) {
            return dirs;
        }
    }
    let mut candidates = Vec::new();
    if let Some(root) = env::var_os("CUDA_ROOT") {
        candidates.push(PathBuf::from(root).join("include"));
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    candidates
        .into_iter()
        .filter(|d| d.join("cuda_runtime_api.h").is_file())
        .take(1)
        .collect()
}

/// Reads `NV_TENSORRT_MAJOR`, following one level of indirection as 10.8+ headers do
/// (`#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE`).
fn trt_major(version_h: &Path) -> Result<u32, String> {
    trt_define(version_h, "NV_TENSORRT_MAJOR")
}

/// Reads the number `#define`d as `key` in `version_h`, following up to four levels of
/// indirection.
fn trt_define(version_h: &Path, key: &str) -> Result<u32, String> {
    let text =
        fs::read_to_string(version_h).map_err(|e| format!("{}: {e}", version_h.display()))?;
    let mut defines = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("#define") {
            if let (Some(name), Some(value)) = (words.next(), words.next()) {
                defines.insert(name.to_string(), value.to_string());
            }
        }
    }
    let mut value = defines.get(key).cloned();
    for _ in 0..4 {
        match value {
            Some(ref v) if v.parse::<u32>().is_ok() => break,
            Some(ref v) => value = defines.get(v).cloned(),
            None => break,
        }
    }
    value
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| format!("{}: cannot read {key}", version_h.display()))
}

/// Compiles and links the shim as a shared library with the target's C++ compiler (so a
/// cross-build uses e.g. aarch64-linux-gnu-g++). `-Wl,--no-undefined` proves it needs no
/// TensorRT symbol at link time.
fn compile_shim(trt: &Path, cuda: &[PathBuf], out: &Path) -> Result<(), String> {
    let compiler = cc::Build::new().cpp(true).get_compiler();
    // `to_command` keeps the compiler's own arguments: a `CXX_<target>=clang++` gets its
    // `--target=` there, and without it would build the shim for the host.
    let mut cmd = compiler.to_command();
    cmd.args(["-std=c++17", "-O2", "-fPIC", "-shared"])
        .args(["-Wall", "-Wextra", "-Werror", "-Wl,--no-undefined"])
        // Never unmapped once loaded: a lib that TensorRT may still hold a logger of keeps
        // that logger's code (tinv_trt_lib_free detaches the logger but cannot delete it).
        .arg("-Wl,-z,nodelete")
        .arg("-Ishim")
        .arg("-isystem")
        .arg(trt);
    for dir in cuda {
        cmd.arg("-isystem").arg(dir);
    }
    cmd.arg("shim/tinv_trt.cpp").arg("-o").arg(out).arg("-ldl");
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", compiler.path().display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
