//! A panic caught at the C ABI boundary, on the calling thread or on one of tinv's worker
//! threads, reaches the host's log callback and is not printed to stderr (tinv.h: "without a
//! callback the library prints nothing"); a panic of the host's own goes to the hook that was
//! there before. The scenario runs in a child process of this test, whose stderr is checked.

use std::ffi::{c_char, c_void, CStr};
#[path = "common/child.rs"]
mod child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tinv::capi::status::{boundary, Status};
use tinv::capi::tinv_set_log_callback;
use tinv::cpu::pool::Pool;

const CHILD: &str = "TINV_TEST_PANICS_CHILD";

static RECORDS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn record(level: u32, message: *const c_char, _: *mut c_void) {
    // SAFETY: the library passes a NUL-terminated message valid for this call.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    RECORDS.lock().unwrap().push((level, text));
}

/// The child's side: panics inside an export, on a worker thread inside an export, and on a
/// thread of the host's; prints what the log callback received.
fn child() {
    // SAFETY: `record` is a valid callback for the process's lifetime; user data unused.
    let s = unsafe { tinv_set_log_callback(Some(record), std::ptr::null_mut(), 5) };
    assert_eq!(s, Status::Ok);

    assert_eq!(
        boundary("tinv_test", || panic!("boom-in-export")),
        Status::Panic
    );

    // Chunks run on whichever thread claims them: the caller's wait until a worker has run one,
    // which it does once `dispatch` wakes it (the caller blocked in its first chunk cannot take
    // them all).
    let pool = Pool::new(2);
    let worker_ran = AtomicBool::new(false);
    let s = boundary("tinv_test", || {
        pool.run_chunks(8, |_, _| {
            let name = std::thread::current().name().map(str::to_owned);
            if name.is_some_and(|n| n.starts_with("tinv-pool-")) {
                worker_ran.store(true, Ordering::SeqCst);
                panic!("boom-in-worker");
            }
            let start = Instant::now();
            while !worker_ran.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Ok(())
    });
    assert_eq!(s, Status::Panic);
    assert!(worker_ran.load(Ordering::SeqCst), "no worker ran a chunk");
    // One record per panic: the caller re-raises the worker's own panic, which the hook does
    // not see again; the thread's last error carries its message.
    let records = RECORDS.lock().unwrap().clone();
    assert_eq!(
        records
            .iter()
            .filter(|(_, m)| m.contains("boom-in-worker"))
            .count(),
        1,
        "{records:?}"
    );
    assert!(
        !records
            .iter()
            .any(|(_, m)| m.contains("thread-pool worker")),
        "{records:?}"
    );
    // SAFETY: this thread's NUL-terminated last error, read before its next call into tinv.
    let last = unsafe { CStr::from_ptr(tinv::capi::status::last_error_ptr()) };
    assert!(
        last.to_string_lossy().contains("boom-in-worker"),
        "{last:?}"
    );

    let host = std::thread::spawn(|| panic!("host-panic")).join();
    assert!(host.is_err());
    for (level, m) in RECORDS.lock().unwrap().iter() {
        println!("record {level}: {m}");
    }
}

#[test]
fn panics_inside_the_library_go_to_the_log_callback_not_to_stderr() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let out = child::rerun(
        "panics_inside_the_library_go_to_the_log_callback_not_to_stderr",
        &[(CHILD, "1".as_ref()), ("RUST_BACKTRACE", "1".as_ref())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    for boom in ["boom-in-export", "boom-in-worker"] {
        // (libtest's "test … " may start the first record's line.)
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("record 1: tinv: internal panic") && l.contains(boom)),
            "{boom} not logged at level 1:\n{stdout}"
        );
        assert!(
            !stderr.contains(boom),
            "{boom} printed to stderr:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("host-panic"),
        "the host's own panic did not reach the previous hook:\n{stderr}"
    );
    assert!(!stdout.contains("host-panic"), "{stdout}");
}
