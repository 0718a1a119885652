//! Finding libtinv.so, compiling the C/C++ test programs against it, running them, and reading
//! the header's and the library's lists of functions.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Scratch space of this test binary.
pub fn scratch(sub: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("capi")
        .join(sub);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// target/<profile>: this binary is target/<profile>/deps/capi-<hash>.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// The libtinv.so built with this test. `cargo test` compiles the package's cdylib into
/// target/<profile>/deps/ (only `cargo build` copies it up to target/<profile>/, so that copy
/// may be stale); fall back to the copy when deps/ has none.
pub fn built_library() -> PathBuf {
    let dir = profile_dir();
    let lib = [dir.join("deps/libtinv.so"), dir.join("libtinv.so")]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no libtinv.so under {}: build the cdylib (cargo build)",
                dir.display()
            )
        });
    lib
}

/// The SONAME build.rs gives the library: `libtinv.so.0.<minor>` before 1.0.
pub fn soname() -> String {
    match env!("CARGO_PKG_VERSION_MAJOR") {
        "0" => format!("libtinv.so.0.{}", env!("CARGO_PKG_VERSION_MINOR")),
        major => format!("libtinv.so.{major}"),
    }
}

/// A directory holding `libtinv.so` and its SONAME (the name the loader looks for), both links
/// to the built library.
pub fn lib_dir() -> PathBuf {
    let lib = built_library();
    let dir = scratch("lib");
    for name in ["libtinv.so".to_string(), soname()] {
        // Create under a unique name and rename over: tests run in parallel.
        let tmp = dir.join(format!(
            "{name}.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&lib, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    dir
}

/// Whether `cmd` runs.
pub fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Which program to build.
#[derive(Clone, Copy)]
pub enum Lang {
    /// tests/c/test_tinv.c + errors.c + threads.c (C99).
    C,
    /// tests/c/test_tinv.cpp (C++17).
    Cpp,
    /// tests/c/abi_layout.c: prints sizes, offsets and constants of the header.
    Layout,
    /// examples/ros2_node/check_classifier.cpp: the ROS 2 example's wrapper, without ROS.
    Example,
}

/// Compiles a test program with -Wall -Wextra -Werror (plus `extra`) into scratch/bin/`out`.
pub fn compile(lang: Lang, extra: &[&str], out: &str) -> String {
    let (cc, cxx) = (env_or("CC", "cc"), env_or("CXX", "c++"));
    let (compiler, std, dir, files): (String, &str, &str, &[&str]) = match lang {
        Lang::C => (
            cc,
            "-std=c99",
            "tests/c",
            &["test_tinv.c", "errors.c", "threads.c"],
        ),
        Lang::Cpp => (cxx, "-std=c++17", "tests/c", &["test_tinv.cpp"]),
        Lang::Layout => (cc, "-std=c99", "tests/c", &["abi_layout.c"]),
        Lang::Example => (
            cxx,
            "-std=c++17",
            "examples/ros2_node",
            &["check_classifier.cpp"],
        ),
    };
    let src = root().join(dir);
    let lib = lib_dir();
    let bin = scratch("bin").join(out);
    let mut cmd = Command::new(&compiler);
    cmd.args([
        std,
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-O1",
        "-pthread",
    ])
    .args(extra)
    .arg("-I")
    .arg(root().join("include"))
    .args(files.iter().map(|f| src.join(f)))
    .arg("-o")
    .arg(&bin)
    .arg(format!("-L{}", lib.display()))
    .arg(format!("-Wl,-rpath,{}", lib.display()))
    .args(["-ltinv", "-lm"]);
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    bin.to_string_lossy().into_owned()
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// Runs `args` with `env`, asserts exit status 0, returns stdout.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]).envs(env.iter().copied());
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]));
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        o.status.success(),
        "{cmd:?} exited with {}\nstdout:\n{out}\nstderr:\n{err}",
        o.status
    );
    eprint!("{err}");
    out.into_owned()
}

/// Names of the functions the header declares (`tinv_xxx(` outside comments), sorted.
pub fn header_functions(header: &str) -> Vec<String> {
    let mut code = String::new();
    let mut rest = header;
    while let Some(i) = rest.find("/*") {
        code.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    code.push_str(rest);
    // The identifier right before each '(' (whitespace allowed in between).
    let mut names = Vec::new();
    for (i, _) in code.match_indices('(') {
        let before = code[..i].trim_end();
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |j| j + 1);
        let name = &before[start..];
        if name.starts_with("tinv_") {
            names.push(name.to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Names of the `tinv_*` functions libtinv.so exports (`nm -D --defined-only`), sorted.
pub fn exported_functions() -> Vec<String> {
    let o = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(built_library())
        .output()
        .expect("nm (binutils) is needed for this test");
    assert!(o.status.success());
    let mut names: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[1] == "T" && f[2].starts_with("tinv_")).then(|| f[2].to_string())
        })
        .collect();
    names.sort();
    names
}
