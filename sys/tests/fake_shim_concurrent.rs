//! The real `Shim` over the fake of `support/fake_shim.c` from several threads (a call held
//! inside the shim while another thread frees: each handle freed once, after the calls on it,
//! contexts before their engine), then `Shim::load`'s search for the shim and `Shim::shared`
//! (in child processes, which set `TINV_TRT_SHIM_DIR` and `LD_LIBRARY_PATH`). Skips where no C
//! compiler exists (and the order of majors where a real libnvinfer is installed).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use support::{at, scratch, small_plan, wait_for, with_engine, Fake, Mode, A_WHILE, PATIENCE};
use tinv_sys::{Shim, ShimApi, ShimError};

/// A fake, its shim shared between threads, and one engine with one context (E1, C1).
fn setup(
    test: &str,
) -> Option<(
    Fake,
    Arc<Shim>,
    tinv_sys::EngineHandle,
    tinv_sys::ContextHandle,
)> {
    let (f, shim, e) = with_engine(test)?;
    let c = shim.context_create(e).unwrap();
    Some((f, Arc::new(shim), e, c))
}

/// Runs `op` on its own thread.
fn spawn<T: Send + 'static>(
    shim: &Arc<Shim>,
    op: impl FnOnce(&Shim) -> T + Send + 'static,
) -> JoinHandle<T> {
    let shim = Arc::clone(shim);
    std::thread::spawn(move || op(&shim))
}

/// Whether `op` returns within the patience (run on a thread).
fn returns(shim: &Arc<Shim>, op: impl FnOnce(&Shim) + Send + 'static) -> bool {
    let (tx, rx) = mpsc::channel();
    let shim = Arc::clone(shim);
    std::thread::spawn(move || {
        op(&shim);
        // Before saying so: the test's own drop of the shim must be the last one.
        drop(shim);
        let _ = tx.send(());
    });
    rx.recv_timeout(PATIENCE).is_ok()
}

/// Waits until `e`'s free has begun: from then on calls on the engine are refused (before, they
/// reach the fake, which only logs them). A sleep alone would race the scheduler of a loaded
/// machine, where the freeing thread may not have run yet.
fn wait_until_dying(shim: &Shim, e: tinv_sys::EngineHandle) {
    wait_for("the engine's free never began", || {
        shim.engine_io(e).is_err()
    });
    not_live(shim.engine_io(e));
}

fn not_live<T: std::fmt::Debug>(r: Result<T, ShimError>) {
    assert!(
        matches!(&r, Err(ShimError::Argument(m)) if m.contains("not live")),
        "{r:?}"
    );
}

#[test]
fn an_engines_free_waits_for_a_call_on_its_context_and_refuses_new_ones() {
    let Some((f, shim, e, c)) = setup("free_waits") else {
        return;
    };
    f.script("tinv_trt_context_enqueue", 0, 0, Mode::Block, "");
    let call = spawn(&shim, move |s| s.enqueue(c, 0x77));
    f.wait_blocked(1);
    let free = spawn(&shim, move |s| s.engine_free(e));
    // A new call on the dying engine (or context) is refused, never reaching the shim.
    wait_until_dying(&shim, e);
    std::thread::sleep(A_WHILE);
    assert!(!free.is_finished(), "the free waits for the call");
    not_live(shim.set_device_memory(c, 0x100, 4096));
    assert_eq!(f.lines("context_free"), Vec::<String>::new());
    f.release("tinv_trt_context_enqueue");
    call.join().unwrap().unwrap();
    free.join().unwrap();
    let log = f.log();
    assert!(at(&log, "enqueue C1 stream=0x77") < at(&log, "context_free C1"));
    assert!(at(&log, "context_free C1") < at(&log, "engine_free E1"));
    f.assert_clean();
}

#[test]
fn a_contexts_free_waits_for_a_call_on_it() {
    let Some((f, shim, _e, c)) = setup("ctx_free_waits") else {
        return;
    };
    f.script("tinv_trt_context_set_input_shape", 0, 0, Mode::Block, "");
    let call = spawn(&shim, move |s| s.set_input_shape(c, "x", &[1, 3, 8, 8]));
    f.wait_blocked(1);
    let free = spawn(&shim, move |s| s.context_free(c));
    std::thread::sleep(A_WHILE);
    assert!(!free.is_finished(), "the free waits for the call");
    f.release("tinv_trt_context_set_input_shape");
    call.join().unwrap().unwrap();
    free.join().unwrap();
    let log = f.log();
    assert!(at(&log, "set_input_shape C1 x rank=4 [1,3,8,8]") < at(&log, "context_free C1"));
    f.assert_clean();
}

#[test]
fn a_context_born_while_its_engine_is_freed_takes_no_call_and_is_freed_once_before_the_engine() {
    let Some((f, shim, e, c1)) = setup("born_dying") else {
        return;
    };
    // A call on C1 keeps the engine's free waiting after the creation of C2 has returned.
    f.script("tinv_trt_context_enqueue", 0, 0, Mode::Block, "");
    f.script("tinv_trt_context_create", 0, 0, Mode::Block, "");
    let call = spawn(&shim, move |s| s.enqueue(c1, 0x77));
    let create = spawn(&shim, move |s| s.context_create(e));
    f.wait_blocked(2);
    let free = spawn(&shim, move |s| s.engine_free(e));
    wait_until_dying(&shim, e);
    std::thread::sleep(A_WHILE);
    assert!(
        !free.is_finished(),
        "the engine's free waits for the creation"
    );
    f.release("tinv_trt_context_create");
    let c2 = create.join().unwrap().unwrap();
    // Born dying: no call starts on it (it would run while its engine's free goes ahead), and
    // its creator's free leaves it to the engine's.
    not_live(shim.set_device_memory(c2, 0x100, 4096));
    assert!(returns(&shim, move |s| s.context_free(c2)));
    assert!(
        !free.is_finished(),
        "the engine's free still waits for the call on C1"
    );
    f.release("tinv_trt_context_enqueue");
    call.join().unwrap().unwrap();
    free.join().unwrap();
    let log = f.log();
    assert!(at(&log, "context_create E1 -> C2") < at(&log, "context_free C2"));
    assert!(at(&log, "context_free C1") < at(&log, "engine_free E1"));
    assert!(at(&log, "context_free C2") < at(&log, "engine_free E1"));
    assert_eq!(f.lines("set_device_memory"), Vec::<String>::new());
    not_live(shim.enqueue(c2, 1));
    shim.context_free(c2);
    drop(Arc::into_inner(shim).expect("no other thread holds the shim"));
    assert_eq!(f.lines("context_free").len(), 2);
    f.assert_clean();
}

#[test]
fn a_creation_failing_while_its_engine_is_freed_leaves_nothing_to_free() {
    let Some(f) = Fake::new("born_dead") else {
        return;
    };
    let shim = Arc::new(f.shim());
    let e = shim.deserialize(&small_plan()).unwrap();
    f.script(
        "tinv_trt_context_create",
        0,
        8,
        Mode::Block,
        "tinv_trt_context_create: out of host memory",
    );
    let create = spawn(&shim, move |s| s.context_create(e));
    f.wait_blocked(1);
    let free = spawn(&shim, move |s| s.engine_free(e));
    wait_until_dying(&shim, e);
    std::thread::sleep(A_WHILE);
    assert!(!free.is_finished());
    f.release("tinv_trt_context_create");
    assert!(matches!(
        create.join().unwrap(),
        Err(ShimError::Call { status: 8, .. })
    ));
    free.join().unwrap();
    drop(Arc::into_inner(shim).expect("no other thread holds the shim"));
    assert_eq!(f.lines("context_free"), Vec::<String>::new());
    assert_eq!(f.lines("engine_free"), ["engine_free E1"]);
    f.assert_clean();
}

#[test]
fn a_second_free_of_a_context_being_freed_returns_and_its_engine_waits_for_the_first() {
    let Some((f, shim, e, c)) = setup("second_free") else {
        return;
    };
    f.script("tinv_trt_context_free", 0, 0, Mode::Block, "");
    let first = spawn(&shim, move |s| s.context_free(c));
    f.wait_blocked(1);
    // Inside tinv_trt_context_free now: a second free of the same handle returns at once.
    assert!(returns(&shim, move |s| s.context_free(c)));
    not_live(shim.enqueue(c, 1));
    let engine = spawn(&shim, move |s| s.engine_free(e));
    std::thread::sleep(A_WHILE);
    assert!(
        !engine.is_finished(),
        "the engine's free waits for its context's"
    );
    f.release("tinv_trt_context_free");
    first.join().unwrap();
    engine.join().unwrap();
    let log = f.log();
    assert!(at(&log, "context_free C1") < at(&log, "engine_free E1"));
    f.assert_clean();
}

#[test]
fn while_an_engines_free_runs_its_handles_take_no_call_and_no_second_free() {
    let Some((f, shim, e, c)) = setup("engine_freeing") else {
        return;
    };
    // The engine's free is inside tinv_trt_context_free of its context.
    f.script("tinv_trt_context_free", 0, 0, Mode::Block, "");
    let free = spawn(&shim, move |s| s.engine_free(e));
    f.wait_blocked(1);
    assert!(returns(&shim, move |s| s.context_free(c)));
    assert!(returns(&shim, move |s| s.engine_free(e)));
    not_live(shim.context_create(e));
    not_live(shim.engine_device_memory_size(e));
    not_live(shim.enqueue(c, 1));
    // Other engines go on meanwhile.
    let e2 = shim.deserialize(&small_plan()).unwrap();
    let c2 = shim.context_create(e2).unwrap();
    shim.enqueue(c2, 2).unwrap();
    f.release("tinv_trt_context_free");
    free.join().unwrap();
    drop(Arc::into_inner(shim).expect("no other thread holds the shim"));
    let log = f.log();
    assert!(at(&log, "context_free C1") < at(&log, "engine_free E1"));
    assert!(at(&log, "context_free C2") < at(&log, "engine_free E2"));
    f.assert_clean();
}

// ---- Shim::load's search, in child processes ----------------------------------------------

/// Set in a child process: `child_loads` loads and prints the outcome.
const CHILD: &str = "TINV_FAKE_SHIM_CHILD";

/// In a child (see [`load_in_child`]): `Shim::load` (one line saying how it went; the shim is
/// then dropped), `Shim::shared` twice (one line: the same shim, or the same error), and the
/// fake's log when it loaded.
#[test]
fn child_loads() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // After the harness's "test child_loads ... ", which has no newline yet.
    println!();
    let first = Shim::load();
    // Another handle on the fake keeps it (and its log) mapped after the shim is dropped.
    let fake = first.as_ref().ok().map(|s| {
        // SAFETY: the fake just loaded by `Shim::load`.
        unsafe { libloading::Library::new(s.path()) }.unwrap()
    });
    match &first {
        Ok(shim) => println!("LOADED {} {}", shim.path().display(), shim.version()),
        Err(e) => println!("FAILED {e:?}"),
    }
    drop(first);
    match (Shim::shared(), Shim::shared()) {
        (Ok(a), Ok(b)) => println!("SHARED same shim {}", Arc::ptr_eq(&a, &b)),
        (Err(a), Err(b)) => println!("SHARED same error {}", a == b),
        _ => println!("SHARED once loaded, once not"),
    }
    let Some(fake) = fake else { return };
    // SAFETY: fake_log(char *, size_t) -> size_t.
    let log: libloading::Symbol<'_, unsafe extern "C" fn(*mut u8, usize) -> usize> =
        unsafe { fake.get(b"fake_log\0") }.unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` has the room passed.
    let n = unsafe { log(buf.as_mut_ptr(), buf.len()) }.min(buf.len());
    for line in String::from_utf8_lossy(&buf[..n]).lines() {
        println!("FAKE {line}");
    }
}

/// Runs `child_loads` in a child with `shim_dir` as `TINV_TRT_SHIM_DIR` (none: unset) and
/// `lib_path` as `LD_LIBRARY_PATH`; returns its lines starting with LOADED, FAILED, SHARED or
/// FAKE.
fn load_in_child(shim_dir: Option<&Path>, lib_path: &Path) -> Vec<String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_loads", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("LD_LIBRARY_PATH", lib_path)
        .env_remove("TINV_TRT_SHIM_DIR");
    if let Some(d) = shim_dir {
        cmd.env("TINV_TRT_SHIM_DIR", d);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| {
            ["LOADED ", "FAILED ", "SHARED ", "FAKE "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

/// A folder `scratch()/<test>/<name>` holding stand-in libnvinfer.so.<major> files (any shared
/// library: `Shim::load` only dlopens them, the fake shim never does).
fn nvinfer_dir(test: &str, majors: &[u32]) -> PathBuf {
    let base = support::compiled(&[]).expect("checked by the caller");
    let dir = scratch().join(test).join("nv");
    std::fs::create_dir_all(&dir).unwrap();
    for m in majors {
        std::fs::copy(&base, dir.join(format!("libnvinfer.so.{m}"))).unwrap();
    }
    dir
}

/// Copies a fake variant into `dir` as `libtinv_trt<major>.so`.
fn shim_into(dir: &Path, test: &str, defines: &[&str], major: u32) -> PathBuf {
    let f = Fake::variant(test, defines, major).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let to = dir.join(format!("libtinv_trt{major}.so"));
    std::fs::copy(&f.path, &to).unwrap();
    to
}

/// Whether a real libnvinfer is installed (it would be found before the stand-ins of another
/// major).
fn real_tensorrt() -> bool {
    Command::new("sh")
        .args(["-c", "ldconfig -p 2>/dev/null | grep -q libnvinfer.so"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn load_takes_the_shim_from_tinv_trt_shim_dir_and_lets_it_pick_libnvinfer() {
    if support::compiled(&[]).is_none() {
        return;
    }
    let nv = nvinfer_dir("load_env", &[10]);
    let dir = scratch().join("load_env").join("shims");
    let shim = shim_into(&dir, "load_env_10", &[], 10);
    let out = load_in_child(Some(&dir), &nv);
    assert_eq!(
        out,
        [
            format!("LOADED {} 10.3.1", shim.display()),
            "SHARED same shim true".into(),
            "FAKE lib_open nvinfer=NULL parser=NULL log=1 user=NULL sev=3 -> L1".into(),
            "FAKE lib_version L1".into(),
            "FAKE lib_free L1".into(),
            // Shim::shared: loaded once, and kept.
            "FAKE lib_open nvinfer=NULL parser=NULL log=1 user=NULL sev=3 -> L2".into(),
            "FAKE lib_version L2".into(),
        ]
    );
}

#[test]
fn load_tries_the_majors_in_order_10_11_8() {
    if support::compiled(&[]).is_none() || real_tensorrt() {
        return eprintln!("SKIPPED: no C compiler, or a real libnvinfer would be found first");
    }
    let dir = scratch().join("load_order").join("shims");
    let s11 = shim_into(&dir, "load_order_11", &["-DFAKE_MAJOR=11"], 11);
    let s8 = shim_into(&dir, "load_order_8", &["-DFAKE_MAJOR=8"], 8);
    // No libnvinfer.so.10: 11 comes before 8.
    let nv = nvinfer_dir("load_order", &[11, 8]);
    assert_eq!(
        load_in_child(Some(&dir), &nv)[0],
        format!("LOADED {} 11.3.1", s11.display())
    );
    let nv8 = nvinfer_dir("load_order8", &[8]);
    assert_eq!(
        load_in_child(Some(&dir), &nv8)[0],
        format!("LOADED {} 8.3.1", s8.display())
    );
}

#[test]
fn load_refuses_a_shim_of_another_abi_and_names_every_attempt() {
    if support::compiled(&[]).is_none() {
        return;
    }
    let nv = nvinfer_dir("load_abi", &[10]);
    let dir = scratch().join("load_abi").join("shims");
    let bad = shim_into(&dir, "load_abi_10", &["-DFAKE_ABI=2"], 10);
    let out = load_in_child(Some(&dir), &nv);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[1], "SHARED same error true");
    let line = &out[0];
    assert!(line.starts_with("FAILED Load("), "{line}");
    assert!(
        line.contains(&format!(
            "{}: cannot load TensorRT: shim ABI 2, these bindings expect 1",
            bad.display()
        )),
        "{line}"
    );
    // The loader's path was tried last, by the bare name.
    assert!(
        line.contains("; libtinv_trt10.so: cannot load TensorRT: libtinv_trt10.so: cannot open"),
        "{line}"
    );
}

#[test]
fn load_finds_the_shim_on_the_loaders_path_last() {
    if support::compiled(&[]).is_none() {
        return;
    }
    // The variable is set (to a folder without the shim) so that a build without the real shim
    // searches at all; the loader's path holds libnvinfer and the shim.
    let nv = nvinfer_dir("load_bare", &[10]);
    shim_into(&nv, "load_bare_10", &[], 10);
    let empty = scratch().join("load_bare").join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_eq!(
        load_in_child(Some(&empty), &nv)[0],
        "LOADED libtinv_trt10.so 10.3.1"
    );
    // Without the variable, a build without the real shim says so and searches nothing.
    if Shim::built_shim().is_none() {
        assert_eq!(
            load_in_child(None, &nv),
            ["FAILED NotBuilt", "SHARED same error true"]
        );
    }
}
