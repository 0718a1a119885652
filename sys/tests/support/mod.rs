//! The fake shim of tests/fake_shim*.rs: `fake_shim.c` (every function of `shim/tinv_trt.h`,
//! scripted; see its header comment) compiled at test time with `cc`, one copy per test so that
//! each test has its own state (a copy is another file, so another dlopen instance), and its
//! control functions called through dlsym.

#![allow(dead_code)] // each test file uses a part

use std::collections::HashMap;
use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tinv_sys::{Shim, ShimApi};

/// The fake shim's source.
pub const SOURCE: &str = include_str!("fake_shim.c");

/// The TensorRT major the default fake reports (`FAKE_MAJOR`).
pub const MAJOR: u32 = 10;

/// How a scripted call fails (`M_*` in the C source).
#[derive(Clone, Copy)]
pub enum Mode {
    /// The message, NUL-terminated (cut to 1023 bytes).
    Msg = 0,
    /// All 1024 bytes of the buffer written, the message repeated, no NUL.
    Unterminated = 1,
    /// The buffer left untouched.
    NoMsg = 2,
    /// A message that is not UTF-8.
    BadUtf8 = 3,
    /// Success with a NULL output (status 0).
    NullOut = 4,
    /// Failure with the output written (a poisoned pointer Rust must never pass back).
    Partial = 5,
    /// The call waits for [`Fake::release`] of its function, then goes on (failing if a status
    /// is given).
    Block = 6,
}

/// Handle kinds counted by `fake_live`.
#[derive(Clone, Copy)]
pub enum Kind {
    /// tinv_trt_lib.
    Lib = 0,
    /// tinv_trt_engine.
    Engine = 1,
    /// tinv_trt_context.
    Context = 2,
    /// tinv_trt_buffer.
    Buffer = 3,
}

/// Whether `cc` runs; prints the `SKIPPED:` line when it does not.
pub fn have_cc() -> bool {
    static CC: OnceLock<bool> = OnceLock::new();
    let ok = *CC.get_or_init(|| {
        Command::new("cc")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        eprintln!("SKIPPED: no C compiler (cc) to build the fake shim");
    }
    ok
}

/// This process's scratch folder (`tinv_fake_shim_<pid>` in the temporary folder); the first
/// call removes those of test processes that have ended.
pub fn scratch() -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let tmp = std::env::temp_dir();
    SWEPT.call_once(|| sweep(&tmp));
    tmp.join(format!("tinv_fake_shim_{}", std::process::id()))
}

/// Removes the scratch folders whose process is gone (Linux's /proc tells; elsewhere none).
fn sweep(tmp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("tinv_fake_shim_"))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Compiles the fake with `defines` (once per set per process); `None` without a compiler. A
/// compiler that is there but fails is a test failure.
pub fn compiled(defines: &[&str]) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    if !have_cc() {
        return None;
    }
    let key = defines.join(" ");
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(&key) {
        return Some(p.clone());
    }
    let dir = scratch().join(format!("build{}", built.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("fake_shim.c");
    std::fs::write(&c, SOURCE).unwrap();
    let out = dir.join("libfake.so");
    let shim_h = Path::new(env!("CARGO_MANIFEST_DIR")).join("shim");
    let run = Command::new("cc")
        .args(["-shared", "-fPIC", "-std=c99", "-Wall", "-Wextra", "-o"])
        .arg(&out)
        .arg("-I")
        .arg(&shim_h)
        .args(defines)
        .arg(&c)
        .arg("-lpthread")
        .output()
        .expect("cc ran a moment ago");
    assert!(
        run.status.success(),
        "the fake shim does not compile ({defines:?}):\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    built.insert(key, out.clone());
    Some(out)
}

/// A test's own copy of the fake, named `libtinv_trt<major>.so` in `scratch()/<test>/`, with
/// its control functions.
pub struct Fake {
    /// The copy's path.
    pub path: PathBuf,
    lib: libloading::Library,
}

impl Fake {
    /// The default fake (ABI of the bindings, major [`MAJOR`]) for test `test`.
    pub fn new(test: &str) -> Option<Fake> {
        Fake::variant(test, &[], MAJOR)
    }

    /// A fake compiled with `defines`, named for `major`.
    pub fn variant(test: &str, defines: &[&str], major: u32) -> Option<Fake> {
        let built = compiled(defines)?;
        let dir = scratch().join(test);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("libtinv_trt{major}.so"));
        std::fs::copy(built, &path).unwrap();
        // SAFETY: our own fake; its only initializers are static data.
        let lib = unsafe { libloading::Library::new(&path) }.unwrap();
        Some(Fake { path, lib })
    }

    /// Opens TensorRT through this fake (`nvinfer` = "/fake/libnvinfer.so.10").
    pub fn shim(&self) -> Shim {
        Shim::load_from(&self.path, MAJOR, Some(Path::new("/fake/libnvinfer.so.10"))).unwrap()
    }

    fn sym<T: Copy>(&self, name: &[u8]) -> T {
        // SAFETY: every caller names a function of fake_shim.c with the type given.
        unsafe { *self.lib.get::<T>(name).unwrap() }
    }

    /// Makes the call of `function` after `after` more calls of it behave as `mode` says.
    pub fn script(&self, function: &str, after: i32, status: i32, mode: Mode, msg: &str) {
        let f: unsafe extern "C" fn(*const c_char, i32, i32, i32, *const c_char) =
            self.sym(b"fake_script\0");
        let (function, msg) = (
            std::ffi::CString::new(function).unwrap(),
            std::ffi::CString::new(msg).unwrap(),
        );
        // SAFETY: two NUL-terminated strings the fake copies.
        unsafe { f(function.as_ptr(), after, status, mode as i32, msg.as_ptr()) };
    }

    /// Every line the fake logged so far.
    pub fn log(&self) -> Vec<String> {
        let f: unsafe extern "C" fn(*mut u8, usize) -> usize = self.sym(b"fake_log\0");
        let mut buf = vec![0u8; 1 << 16];
        // SAFETY: `buf` has room for the length passed.
        let n = unsafe { f(buf.as_mut_ptr(), buf.len()) };
        buf.truncate(n.min(buf.len()));
        String::from_utf8_lossy(&buf)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The logged lines that start with `prefix`.
    pub fn lines(&self, prefix: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Misuses the fake detected (double frees, use after free, order): must stay 0.
    pub fn violations(&self) -> i32 {
        let f: unsafe extern "C" fn() -> i32 = self.sym(b"fake_violations\0");
        // SAFETY: no arguments.
        unsafe { f() }
    }

    /// Asserts the fake saw no misuse, showing its log when it did.
    pub fn assert_clean(&self) {
        assert_eq!(self.violations(), 0, "log:\n{}", self.log().join("\n"));
    }

    /// Handles of `kind` alive in the fake.
    pub fn live(&self, kind: Kind) -> i32 {
        let f: unsafe extern "C" fn(i32) -> i32 = self.sym(b"fake_live\0");
        // SAFETY: any kind is accepted.
        unsafe { f(kind as i32) }
    }

    /// Waits until `n` calls blocked by [`Mode::Block`] scripts wait in the fake.
    pub fn wait_blocked(&self, n: i32) {
        let f: unsafe extern "C" fn() -> i32 = self.sym(b"fake_waiting\0");
        // SAFETY: no arguments.
        wait_for("no call blocked in the fake", || unsafe { f() } >= n);
    }

    /// Lets the blocked call of `function` go on.
    pub fn release(&self, function: &str) {
        let f: unsafe extern "C" fn(*const c_char) = self.sym(b"fake_release\0");
        let function = std::ffi::CString::new(function).unwrap();
        // SAFETY: a NUL-terminated string the fake copies.
        unsafe { f(function.as_ptr()) }
    }
}

/// Polls `done` until it holds; fails, saying `what`, after [`PATIENCE`].
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How long a test waits for another thread before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How long a test lets a thread run to show that it waits (it must not have finished).
pub const A_WHILE: Duration = Duration::from_millis(150);

/// A plan of the fake: `mem` bytes of device memory, then `io` tokens
/// (`name:mode:dtype:rank[,dim]*`).
pub fn plan(mem: u64, io: &[&str]) -> Vec<u8> {
    let mut s = format!("FAKEPLAN mem={mem}");
    for t in io {
        s.push_str(" io=");
        s.push_str(t);
    }
    s.into_bytes()
}

/// The plan most tests use: one input `x` [1,3,8,8] f32, one output `y` [1,10] f16, 4096 bytes.
pub fn small_plan() -> Vec<u8> {
    plan(4096, &["x:1:0:4,1,3,8,8", "y:2:1:2,1,10"])
}

/// A test's own fake, the shim opened through it, and one engine of [`small_plan`] (E1).
pub fn with_engine(test: &str) -> Option<(Fake, Shim, tinv_sys::EngineHandle)> {
    let f = Fake::new(test)?;
    let shim = f.shim();
    let e = shim.deserialize(&small_plan()).unwrap();
    Some((f, shim, e))
}

/// The shim's error for `function` with `status` and `message`.
pub fn call(function: &'static str, status: i32, message: &str) -> tinv_sys::ShimError {
    tinv_sys::ShimError::Call {
        function,
        status,
        message: message.to_string(),
    }
}

/// Where `line` is in `log` (it must be there exactly once).
pub fn at(log: &[String], line: &str) -> usize {
    let hits: Vec<usize> = (0..log.len()).filter(|&i| log[i] == line).collect();
    assert_eq!(hits.len(), 1, "{line:?} once in:\n{}", log.join("\n"));
    hits[0]
}
