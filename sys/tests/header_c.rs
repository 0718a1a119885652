//! `shim/tinv_trt.h` is a pure-C header: it must compile as strict C99 and as C++ on its own,
//! with every warning an error. Skips (printing why) where no C compiler is installed.

use std::path::PathBuf;
use std::process::Command;

fn compile(compiler: &str, args: &[&str], source: &str, ext: &str) -> Option<Result<(), String>> {
    let dir = std::env::temp_dir().join(format!("tinv_trt_header_{}_{ext}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let file = dir.join(format!("use.{ext}"));
    std::fs::write(&file, source).ok()?;
    let shim = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shim");
    let out = Command::new(compiler)
        .args(args)
        .arg("-I")
        .arg(&shim)
        .arg(&file)
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

/// Uses every type and names a few functions, so a broken declaration cannot hide.
const USE: &str = r#"
#include "tinv_trt.h"
int check(void) {
  tinv_trt_error err;
  tinv_trt_dims dims;
  tinv_trt_io_info info;
  tinv_trt_build_options opts;
  tinv_trt_buffer buf;
  tinv_trt_version v;
  tinv_trt_lib *lib = 0;
  err.msg[0] = 0;
  dims.nb_dims = TINV_TRT_MAX_DIMS;
  info.dtype = TINV_TRT_DTYPE_HALF;
  opts.precision = TINV_TRT_PRECISION_FP16;
  buf.size = 0;
  v.raw = 0;
  (void)info; (void)opts; (void)buf; (void)v; (void)dims;
  return tinv_trt_lib_open(0, 0, 0, 0, TINV_TRT_SEVERITY_WARNING, &lib, &err) == TINV_TRT_OK
      && sizeof(err.msg) == TINV_TRT_ERROR_LEN && TINV_TRT_ABI_VERSION == 1;
}
"#;

#[test]
fn header_compiles_as_strict_c_and_cpp() {
    let c = [
        "-std=c99",
        "-pedantic",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-fsyntax-only",
    ];
    let cpp = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"];
    match compile("cc", &c, USE, "c") {
        None => return eprintln!("SKIPPED header_compiles_as_strict_c_and_cpp: no C compiler"),
        Some(r) => r.expect("tinv_trt.h must be valid C99"),
    }
    match compile("c++", &cpp, USE, "cpp") {
        None => eprintln!("SKIPPED the C++ half: no C++ compiler"),
        Some(r) => r.expect("tinv_trt.h must be valid C++"),
    }
}
