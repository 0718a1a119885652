//! A CPU session on an f16 model widens its tensors to f32 on the host; an allocation the
//! machine refuses there is `Error::OutOfMemory`, not an abort (the C ABI promises a status,
//! never a crash). Opening the model does not widen them (a TensorRT session never needs the
//! copies), so it succeeds under the same cap. The child process of this test, whose heap is
//! fresh, caps its address space just above what it holds plus the mapping of the model file, so
//! that the widened tensors (twice the file) cannot be allocated. And under a cap with room for
//! the widened tensors, widening succeeds: it reserves what the copies need, no more.

#[path = "common/child.rs"]
mod child;
use std::sync::Arc;
use tinv::{format::DType, synth, Model, OpenOptions, Session, SessionOptions};

const CHILD: &str = "TINV_TEST_OPEN_OOM_CHILD";

#[cfg(target_os = "linux")]
#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

#[cfg(target_os = "linux")]
extern "C" {
    fn setrlimit(resource: i32, limit: *const Rlimit) -> i32;
}

/// `RLIMIT_AS` in Linux's generic resource numbers (x86_64, aarch64).
#[cfg(target_os = "linux")]
const RLIMIT_AS: i32 = 9;

/// The process's virtual size in bytes (first field of /proc/self/statm, in pages of 4 KiB).
fn virtual_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    pages * 4096
}

/// Caps this process's address space at `extra` bytes above what it holds now.
#[cfg(target_os = "linux")]
fn cap_address_space(extra: u64) {
    let limit = virtual_bytes() + extra;
    let cap = Rlimit {
        cur: limit,
        max: limit,
    };
    // SAFETY: a valid pointer to a plain struct; lowers this process's own limit.
    assert_eq!(unsafe { setrlimit(RLIMIT_AS, &cap) }, 0);
}

#[cfg(target_os = "linux")]
fn child(path: &std::path::Path) {
    let file = std::fs::metadata(path).unwrap().len();
    // Room for the file's mapping and a little more, not for the widened tensors.
    cap_address_space(file + (4 << 20));
    let model = match Model::open(path, &OpenOptions::default()) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            println!("open failed: {e}");
            return;
        }
    };
    println!("opened, host copies {} bytes", model.host_copy_bytes());
    match Session::new(model, SessionOptions::default()) {
        Err(tinv::Error::OutOfMemory(m)) => println!("refused: {m}"),
        Err(e) => println!("other error: {e}"),
        Ok(_) => println!("session opened"),
    }
}

/// Runs test `name` alone in a child process with `key=value` in its environment and glibc
/// taking large blocks from fresh mappings (a fixed threshold), so that the widened tensors
/// cannot come from memory the process already reserved.
fn rerun(name: &str, key: &str, value: &std::ffi::OsStr) -> std::process::Output {
    child::rerun(
        name,
        &[
            (key, value),
            ("MALLOC_MMAP_THRESHOLD_", "131072".as_ref()),
            ("MALLOC_ARENA_MAX", "1".as_ref()),
        ],
    )
}

#[test]
#[cfg(target_os = "linux")]
fn an_f16_model_too_big_to_widen_opens_and_its_cpu_session_is_out_of_memory() {
    if let Some(path) = std::env::var_os(CHILD) {
        child(path.as_ref());
        return;
    }
    // 512 wide, MLP 2048: 12.6 MB in f16, 25 MB widened.
    let cfg = synth::config(32, 1, 8, 512, 2, 8, 10, &[1, 2], false);
    let path = std::env::temp_dir().join(format!("tinv-oom-{}.tinv", std::process::id()));
    std::fs::write(&path, synth::random_model(&cfg, 3, DType::F16)).unwrap();
    let out = rerun(
        "an_f16_model_too_big_to_widen_opens_and_its_cpu_session_is_out_of_memory",
        CHILD,
        path.as_os_str(),
    );
    std::fs::remove_file(&path).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child died ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("opened, host copies 0 bytes")
            && stdout.contains("refused: ")
            && stdout.contains("needs"),
        "{stdout}"
    );
}

const WIDEN_CHILD: &str = "TINV_TEST_WIDEN_CHILD";

/// The other side: widening needs room for the f32 copies (twice the f16 bytes) and no more.
/// One block of width 512 holds 6 MiB of f16 matrices, 12 MiB widened; the child leaves 6 MiB
/// beyond that, less than the 12 MiB more that reserving four times a 2 MiB matrix's copy
/// (16 MiB where 4 MiB are needed) would take at its peak.
#[test]
#[cfg(target_os = "linux")]
fn widening_under_a_cap_with_room_for_the_f32_copies_succeeds() {
    if std::env::var_os(WIDEN_CHILD).is_some() {
        let cfg = synth::config(32, 1, 8, 512, 1, 8, 10, &[1], false);
        let bytes = synth::random_model(&cfg, 3, DType::F16);
        let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
        let f16: u64 = (model.index().tensors.iter())
            .filter(|t| t.dtype == DType::F16)
            .map(|t| t.nbytes as u64)
            .sum();
        drop(bytes);
        cap_address_space(2 * f16 + (6 << 20));
        match model.widen_host() {
            Ok(()) if model.host_copy_bytes() as u64 == 2 * f16 => {
                println!("widened to twice the f16 bytes")
            }
            Ok(()) => println!("widened {} bytes for {f16}", model.host_copy_bytes()),
            Err(e) => println!("refused: {e}"),
        }
        return;
    }
    let out = rerun(
        "widening_under_a_cap_with_room_for_the_f32_copies_succeeds",
        WIDEN_CHILD,
        "1".as_ref(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the child died: {stdout}");
    assert!(
        stdout.contains("widened to twice the f16 bytes"),
        "{stdout}"
    );
}
