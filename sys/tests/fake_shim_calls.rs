//! The context calls, frees and builds of the real `Shim` through the fake of
//! `support/fake_shim.c`: handles, names, shapes, addresses, streams and build options passed
//! through, every failure as the typed error with the shim's message, arguments C cannot take
//! and dead handles stopped before the shim (their frees ignored with a warning), and each handle
//! freed once, contexts before their engine and everything before the lib. Skips (printing `SKIPPED:`) only without a C compiler.

mod support;

use std::path::Path;
use support::{at, call, small_plan, with_engine, Fake, Kind, Mode};
use tinv_sys::{BuildOptions, ContextHandle, EngineHandle, Precision, ShimApi, ShimError};

#[test]
fn context_calls_pass_handles_names_shapes_addresses_and_streams_through() {
    let Some((f, shim, e)) = with_engine("context") else {
        return;
    };
    let c = shim.context_create(e).unwrap();
    shim.set_device_memory(c, 0x7f00_0000_0100, 4096).unwrap();
    shim.set_device_memory(c, 0x100, u64::MAX).unwrap();
    shim.set_tensor_address(c, "x", 0xdead_be00).unwrap();
    shim.set_tensor_address(c, "y", 0x1_0000_0000_0200).unwrap();
    shim.set_input_shape(c, "x", &[1, 3, -1, 8]).unwrap();
    shim.set_input_shape(c, "x", &[1, 2, 3, 4, 5, 6, 7, i64::MAX])
        .unwrap();
    shim.set_input_shape(c, "x", &[]).unwrap();
    shim.enqueue(c, 0x5555_0000).unwrap();
    let log = f.log();
    assert_eq!(
        log[log.len() - 9..],
        [
            "context_create E1 -> C1",
            "set_device_memory C1 mem=0x7f0000000100 size=4096",
            "set_device_memory C1 mem=0x100 size=18446744073709551615",
            "set_tensor_address C1 x 0xdeadbe00",
            "set_tensor_address C1 y 0x1000000000200",
            "set_input_shape C1 x rank=4 [1,3,-1,8]",
            "set_input_shape C1 x rank=8 [1,2,3,4,5,6,7,9223372036854775807]",
            "set_input_shape C1 x rank=0 []",
            "enqueue C1 stream=0x55550000",
        ]
    );
    // Each context is its own handle.
    let c2 = shim.context_create(e).unwrap();
    assert_ne!(c, c2);
    shim.enqueue(c2, 0x9).unwrap();
    assert_eq!(
        f.log().last().map(String::as_str),
        Some("enqueue C2 stream=0x9")
    );
    f.assert_clean();
}

#[test]
fn context_call_failures_carry_the_shims_status_and_message() {
    let Some((f, shim, e)) = with_engine("context_fails") else {
        return;
    };
    f.script(
        "tinv_trt_context_create",
        0,
        4,
        Mode::Msg,
        "createExecutionContext failed",
    );
    assert_eq!(
        shim.context_create(e).unwrap_err(),
        call(
            "tinv_trt_context_create",
            4,
            "createExecutionContext failed"
        )
    );
    assert_eq!(f.live(Kind::Context), 0);
    let c = shim.context_create(e).unwrap();
    // The fake's own checks (as the shim's): misaligned, too small, unknown tensor.
    assert_eq!(
        shim.set_device_memory(c, 0x1001, 4096).unwrap_err(),
        call("tinv_trt_context_set_device_memory", 1, "misaligned")
    );
    assert_eq!(
        shim.set_device_memory(c, 0x1000, 4095).unwrap_err(),
        call("tinv_trt_context_set_device_memory", 1, "too small")
    );
    let unknown = shim.set_tensor_address(c, "nope", 0x1000).unwrap_err();
    assert_eq!(
        unknown,
        call(
            "tinv_trt_context_set_tensor_address",
            5,
            "no I/O tensor named nope"
        )
    );
    assert_eq!(
        unknown.to_string(),
        "tinv_trt_context_set_tensor_address failed (unknown tensor): no I/O tensor named nope"
    );
    f.script(
        "tinv_trt_context_set_input_shape",
        0,
        4,
        Mode::Msg,
        "setInputShape failed",
    );
    assert_eq!(
        shim.set_input_shape(c, "x", &[1, 3, 8, 8]).unwrap_err(),
        call(
            "tinv_trt_context_set_input_shape",
            4,
            "setInputShape failed"
        )
    );
    f.script(
        "tinv_trt_context_enqueue",
        0,
        4,
        Mode::Msg,
        "enqueueV3 failed: capture invalidated",
    );
    assert_eq!(
        shim.enqueue(c, 0x10).unwrap_err(),
        call(
            "tinv_trt_context_enqueue",
            4,
            "enqueueV3 failed: capture invalidated"
        )
    );
    // And the context still works.
    shim.enqueue(c, 0x10).unwrap();
    f.assert_clean();
}

#[test]
fn arguments_c_cannot_take_are_refused_before_the_shim() {
    let Some((f, shim, e)) = with_engine("rust_args") else {
        return;
    };
    let c = shim.context_create(e).unwrap();
    let before = f.log().len();
    assert!(matches!(
        shim.set_tensor_address(c, "x\0y", 0x100),
        Err(ShimError::Argument(m)) if m.contains("NUL")
    ));
    assert!(matches!(
        shim.set_input_shape(c, "x\0", &[1]),
        Err(ShimError::Argument(_))
    ));
    assert_eq!(
        shim.set_input_shape(c, "x", &[1; 9]).unwrap_err(),
        ShimError::Argument("rank 9 of x exceeds 8".into())
    );
    let opts = BuildOptions {
        fp32_layer_substring: Some("norm\0x".into()),
        ..BuildOptions::default()
    };
    assert_eq!(
        shim.build_from_onnx_file(Path::new("/m.onnx"), &opts, None)
            .unwrap_err(),
        ShimError::Argument("FP32 layer-name substring \"norm\\0x\" contains a NUL byte".into())
    );
    assert_eq!(f.log().len(), before, "no call reached the shim");
}

#[test]
fn freed_and_forged_handles_never_reach_the_shim() {
    let Some(f) = Fake::new("stale") else { return };
    let shim = f.shim();
    let e = shim.deserialize(&small_plan()).unwrap();
    let c = shim.context_create(e).unwrap();
    shim.context_free(c);
    shim.context_free(c); // a second free: ignored with a warning
    let forged_c = ContextHandle(c.0 + 8);
    for ctx in [c, forged_c] {
        let not_live = |r: Result<(), ShimError>| {
            assert!(
                matches!(&r, Err(ShimError::Argument(m)) if m.contains("not live")),
                "{r:?}"
            )
        };
        not_live(shim.set_device_memory(ctx, 0x100, 4096));
        not_live(shim.set_tensor_address(ctx, "x", 0x100));
        not_live(shim.set_input_shape(ctx, "x", &[1]));
        not_live(shim.enqueue(ctx, 1));
    }
    shim.context_free(forged_c);
    let forged_e = EngineHandle(e.0 + 8);
    assert!(shim.engine_io(forged_e).is_err());
    assert!(shim.engine_device_memory_size(forged_e).is_err());
    assert!(shim.context_create(forged_e).is_err());
    shim.engine_free(forged_e);
    shim.engine_free(e);
    shim.engine_free(e);
    assert!(shim.engine_io(e).is_err());
    assert!(shim.context_create(e).is_err());
    assert_eq!(
        f.log()[2..],
        [
            &format!("deserialize L1 size={} -> E1", small_plan().len()),
            "context_create E1 -> C1",
            "context_free C1",
            "engine_free E1"
        ]
    );
    f.assert_clean();
}

#[test]
fn the_output_of_a_failed_context_creation_is_never_used() {
    // A shim that writes its output and then fails (the header says outputs are written only
    // on success): Rust must neither return nor free what it wrote.
    let Some((f, shim, e)) = with_engine("partial") else {
        return;
    };
    f.script(
        "tinv_trt_context_create",
        0,
        8,
        Mode::Partial,
        "tinv_trt_context_create: out of host memory",
    );
    assert_eq!(
        shim.context_create(e).unwrap_err(),
        call(
            "tinv_trt_context_create",
            8,
            "tinv_trt_context_create: out of host memory"
        )
    );
    shim.engine_free(e);
    drop(shim);
    f.assert_clean();
    assert_eq!(f.lines("context_free"), Vec::<String>::new());
}

#[test]
fn ok_without_an_output_is_an_error_not_a_null_handle() {
    let Some(f) = Fake::new("null_out") else {
        return;
    };
    let shim = f.shim();
    f.script("tinv_trt_engine_deserialize", 0, 0, Mode::NullOut, "");
    assert_eq!(
        shim.deserialize(&small_plan()).unwrap_err(),
        call(
            "tinv_trt_engine_deserialize",
            4,
            "returned OK without an engine"
        )
    );
    let e = shim.deserialize(&small_plan()).unwrap();
    f.script("tinv_trt_context_create", 0, 0, Mode::NullOut, "");
    assert_eq!(
        shim.context_create(e).unwrap_err(),
        call(
            "tinv_trt_context_create",
            4,
            "returned OK without a context"
        )
    );
    // The engine can still be freed at once: no context was recorded.
    shim.engine_free(e);
    f.script("tinv_trt_build_from_onnx_file", 0, 0, Mode::NullOut, "");
    let opts = BuildOptions::default();
    assert_eq!(
        shim.build_from_onnx_file(Path::new("/m.onnx"), &opts, None)
            .unwrap_err(),
        call(
            "tinv_trt_build_from_onnx_file",
            4,
            "returned OK without a plan"
        )
    );
    drop(shim);
    f.assert_clean();
}

#[test]
fn an_engines_free_takes_its_contexts_first_and_drop_frees_everything_left_in_order() {
    let Some(f) = Fake::new("order") else { return };
    let shim = f.shim();
    let e1 = shim.deserialize(&small_plan()).unwrap();
    let e2 = shim.deserialize(&small_plan()).unwrap();
    let c: Vec<ContextHandle> = (0..3).map(|_| shim.context_create(e1).unwrap()).collect();
    let c4 = shim.context_create(e2).unwrap();
    shim.context_free(c[1]);
    shim.engine_free(e1);
    let log = f.log();
    let freed_e1 = at(&log, "engine_free E1");
    assert!(at(&log, "context_free C2") < at(&log, "context_free C1"));
    assert!(at(&log, "context_free C1") < freed_e1);
    assert!(at(&log, "context_free C3") < freed_e1);
    assert_eq!(f.live(Kind::Context), 1);
    // Left for Drop: E2 with C4, and E3 without contexts.
    let _e3 = shim.deserialize(&small_plan()).unwrap();
    let _ = c4;
    drop(shim);
    let log = f.log();
    assert!(at(&log, "context_free C4") < at(&log, "engine_free E2"));
    let last = at(&log, "lib_free L1");
    assert_eq!(last, log.len() - 1);
    assert!(at(&log, "engine_free E2") < last && at(&log, "engine_free E3") < last);
    assert_eq!(f.lines("context_free").len(), 4);
    assert_eq!(f.lines("engine_free").len(), 3);
    for kind in [Kind::Lib, Kind::Engine, Kind::Context] {
        assert_eq!(f.live(kind), 0);
    }
    f.assert_clean();
}

#[test]
fn build_passes_every_option_and_returns_the_plans_bytes() {
    let Some(f) = Fake::new("build") else { return };
    let shim = f.shim();
    let opts = BuildOptions {
        precision: Precision::Fp32,
        workspace_bytes: 12345,
        disable_external_tactics: false,
        max_aux_streams: None,
        fp32_layer_substring: Some("LayerNorm".into()),
    };
    let mut seen = Vec::new();
    let mut progress = |phase: &str, step: i32, steps: i32| {
        seen.push((phase.to_string(), step, steps));
        true
    };
    let plan = shim
        .build_from_onnx_file(Path::new("/models/a b.onnx"), &opts, Some(&mut progress))
        .unwrap();
    assert_eq!(plan, b"PLAN</models/a b.onnx>\0\x01\xff");
    let want: Vec<(String, i32, i32)> = [
        ("parse", -1, 1),
        ("parse", 1, 1),
        ("build", -1, 1),
        ("tactics", -1, 2),
        ("tactics", 1, 2),
        ("tactics", 2, 2),
        ("build", 1, 1),
    ]
    .iter()
    .map(|&(p, s, n)| (p.to_string(), s, n))
    .collect();
    assert_eq!(seen, want);
    let size = std::mem::size_of::<tinv_sys::bindings::tinv_trt_build_options>();
    let log = f.log();
    assert_eq!(
        log[2..5],
        [
            "build_options_default".to_string(),
            format!("build /models/a b.onnx struct_size={size} precision=0 workspace=12345 no_external=0 aux=-1 fp32=LayerNorm progress=1 user=set"),
            // A NULL phase goes on without calling the closure.
            "progress NULL 0/0 -> 1".to_string(),
        ]
    );
    assert_eq!(
        log[log.len() - 2..],
        [
            format!("build -> B1 size={}", plan.len()),
            "buffer_free B1".into()
        ]
    );
    // The defaults, no progress, and more auxiliary streams than C's int holds.
    let opts = BuildOptions {
        max_aux_streams: Some(u32::MAX),
        ..BuildOptions::default()
    };
    shim.build_from_onnx_file(Path::new("/m.onnx"), &opts, None)
        .unwrap();
    assert_eq!(
        f.lines("build /m.onnx"),
        [format!("build /m.onnx struct_size={size} precision=1 workspace=1073741824 no_external=1 aux=2147483647 fp32=NULL progress=0 user=NULL")]
    );
    assert_eq!(f.lines("buffer_free"), ["buffer_free B1", "buffer_free B2"]);
    assert_eq!(f.live(Kind::Buffer), 0);
    f.assert_clean();
}

#[test]
fn a_build_cancelled_or_refused_is_an_error_and_leaves_no_buffer() {
    let Some(f) = Fake::new("build_fails") else {
        return;
    };
    let shim = f.shim();
    let opts = BuildOptions::default();
    let cancelled = call(
        "tinv_trt_build_from_onnx_file",
        4,
        "build cancelled by the progress callback",
    );
    let mut stop = |phase: &str, step: i32, _: i32| !(phase == "tactics" && step == 1);
    assert_eq!(
        shim.build_from_onnx_file(Path::new("/m.onnx"), &opts, Some(&mut stop))
            .unwrap_err(),
        cancelled
    );
    assert_eq!(
        f.lines("progress tactics 1/2"),
        ["progress tactics 1/2 -> 0"]
    );
    // A panicking closure cancels too (its panic does not unwind into C).
    let mut panics = |_: &str, _: i32, _: i32| -> bool { panic!("progress closure fails") };
    assert_eq!(
        shim.build_from_onnx_file(Path::new("/m.onnx"), &opts, Some(&mut panics))
            .unwrap_err(),
        cancelled
    );
    f.script(
        "tinv_trt_build_from_onnx_file",
        0,
        9,
        Mode::Msg,
        "ONNX parser: node 3 (LayerNorm): unsupported",
    );
    let e = shim
        .build_from_onnx_file(Path::new("/m.onnx"), &opts, None)
        .unwrap_err();
    assert_eq!(
        e,
        call(
            "tinv_trt_build_from_onnx_file",
            9,
            "ONNX parser: node 3 (LayerNorm): unsupported"
        )
    );
    assert!(e.to_string().contains("(ONNX parse error)"), "{e}");
    // Paths and substrings C cannot take never reach the shim.
    let before = f.log().len();
    let bad = [
        (Path::new("/m\0.onnx"), BuildOptions::default()),
        (
            Path::new("/m.onnx"),
            BuildOptions {
                fp32_layer_substring: Some("Layer\0Norm".into()),
                ..BuildOptions::default()
            },
        ),
    ];
    for (path, opts) in &bad {
        assert!(matches!(
            shim.build_from_onnx_file(path, opts, None),
            Err(ShimError::Argument(_))
        ));
    }
    {
        use std::os::unix::ffi::OsStrExt;
        let latin1 = Path::new(std::ffi::OsStr::from_bytes(b"/mod\xe8le.onnx"));
        assert!(matches!(
            shim.build_from_onnx_file(latin1, &opts, None),
            Err(ShimError::Argument(_))
        ));
    }
    assert_eq!(f.log().len(), before);
    assert_eq!(f.lines("build ->"), Vec::<String>::new());
    assert_eq!(f.live(Kind::Buffer), 0);
    f.assert_clean();
}

/// Every record tinv-sys itself logged (not TensorRT's, target `tensorrt`), with its thread: the
/// tests of this binary run on threads of their own, and only one reads them.
static RECORDS: std::sync::Mutex<Vec<(std::thread::ThreadId, log::Level, String)>> =
    std::sync::Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        if !r.target().starts_with("tinv_sys") {
            return;
        }
        RECORDS.lock().unwrap().push((
            std::thread::current().id(),
            r.level(),
            r.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

#[test]
fn a_free_of_a_handle_that_is_not_live_is_ignored_with_a_warning_and_only_then() {
    let Some(f) = Fake::new("free_warnings") else {
        return;
    };
    static CAPTURE: Capture = Capture;
    // The only test of this binary that sets the logger.
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let me = std::thread::current().id();
    let mine = || -> Vec<(log::Level, String)> {
        RECORDS
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, level, _)| *t == me && *level <= log::Level::Warn)
            .map(|(_, l, m)| (*l, m.clone()))
            .collect()
    };
    let shim = f.shim();
    let e = shim.deserialize(&small_plan()).unwrap();
    let c1 = shim.context_create(e).unwrap();
    let c2 = shim.context_create(e).unwrap();
    // Live handles (C1 by itself, C2 with its engine): freed without a word.
    shim.context_free(c1);
    shim.engine_free(e);
    assert_eq!(mine(), []);
    // Freed already, or never handed out: one warning each (ShimApi's contract), naming it.
    let forged_c = ContextHandle(c1.0 + 8);
    let forged_e = EngineHandle(e.0 + 8);
    shim.context_free(c1);
    shim.context_free(c2);
    shim.context_free(forged_c);
    shim.engine_free(e);
    shim.engine_free(forged_e);
    let warn = |what: &str, h: usize| {
        (
            log::Level::Warn,
            format!("{what}_free: {what} handle {h:#x} is not live in this shim"),
        )
    };
    assert_eq!(
        mine(),
        [
            warn("context", c1.0),
            warn("context", c2.0),
            warn("context", forged_c.0),
            warn("engine", e.0),
            warn("engine", forged_e.0),
        ]
    );
    // None of them reached the shim.
    assert_eq!(
        f.lines("context_free"),
        ["context_free C1", "context_free C2"]
    );
    assert_eq!(f.lines("engine_free"), ["engine_free E1"]);
    f.assert_clean();
}
