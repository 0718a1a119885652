//! The double must enforce what TensorRT enforces, or tests built on it prove nothing.

use super::*;
use crate::DType;

fn t(name: &str, mode: IoMode, shape: &[i64]) -> IoTensor {
    IoTensor {
        name: name.into(),
        mode,
        dtype: DType::F16,
        shape: shape.to_vec(),
    }
}

/// A double of TensorRT 8.5.2 with no engine (the builds' tests).
fn shim_8_5() -> RecordingShim {
    RecordingShim::new(TrtVersion {
        major: 8,
        minor: 5,
        patch: 2,
        raw: 8502,
    })
}

fn shim() -> (RecordingShim, EngineHandle) {
    let s = RecordingShim::new(TrtVersion {
        major: 10,
        minor: 3,
        patch: 0,
        raw: 100300,
    });
    let spec = EngineSpec {
        io: vec![
            t("x", IoMode::Input, &[1, -1]),
            t("y", IoMode::Output, &[1, 8]),
        ],
        device_memory: 1000,
    };
    s.register_plan(b"plan-a", spec);
    let e = s.deserialize(b"plan-a").unwrap();
    (s, e)
}

fn status(r: Result<(), ShimError>) -> i32 {
    match r {
        Err(ShimError::Call { status, .. }) => status,
        other => panic!("expected a call error, got {other:?}"),
    }
}

#[test]
fn unknown_plans_are_refused_and_known_ones_describe_their_engine() {
    let (s, e) = shim();
    assert!(s
        .deserialize(b"plan-b")
        .unwrap_err()
        .to_string()
        .contains("TensorRT could not deserialize the plan"));
    assert_eq!(s.engine_device_memory_size(e).unwrap(), 1000);
    assert_eq!(s.engine_io(e).unwrap()[1].name, "y");
    assert_eq!(
        s.calls()[..2],
        [Call::Deserialize(Some(e)), Call::Deserialize(None)]
    );
}

#[test]
fn enqueue_needs_memory_and_every_address_like_tensorrt() {
    let (s, e) = shim();
    let c = s.context_create(e).unwrap();
    assert_eq!(status(s.enqueue(c, 0x10)), 4, "no device memory yet");
    assert_eq!(
        status(s.set_device_memory(c, 0x1000, 999)),
        1,
        "smaller than the engine needs"
    );
    assert_eq!(
        status(s.set_device_memory(c, 0x1001, 1000)),
        1,
        "misaligned"
    );
    s.set_device_memory(c, 0x1000, 1000).unwrap();
    s.set_tensor_address(c, "x", 0x2000).unwrap();
    let missing = s.enqueue(c, 0x10).unwrap_err().to_string();
    assert!(
        missing.contains("Address is not set for tensor y"),
        "{missing}"
    );
    assert_eq!(
        status(s.set_tensor_address(c, "z", 0x3000)),
        5,
        "unknown tensor"
    );
    s.set_tensor_address(c, "y", 0x3000).unwrap();
    assert_eq!(
        status(s.enqueue(c, 0)),
        1,
        "the legacy default stream is refused"
    );
    s.enqueue(c, 0x10).unwrap();
}

#[test]
fn input_shapes_must_fit_the_engine() {
    let (s, e) = shim();
    let c = s.context_create(e).unwrap();
    s.set_input_shape(c, "x", &[1, 77]).unwrap(); // -1 accepts any extent
    assert_eq!(status(s.set_input_shape(c, "x", &[2, 77])), 4);
    assert_eq!(status(s.set_input_shape(c, "x", &[1])), 4);
    assert_eq!(
        status(s.set_input_shape(c, "y", &[1, 8])),
        5,
        "outputs have no input shape"
    );
}

#[test]
fn injected_failures_fire_once_after_the_skipped_calls() {
    let (s, e) = shim();
    s.fail_nth(CallKind::ContextCreate, 1);
    let a = s.context_create(e).unwrap();
    assert!(s.context_create(e).is_err());
    let b = s.context_create(e).unwrap();
    assert_eq!(s.live_contexts(), 2);
    s.context_free(a);
    s.context_free(b);
    s.engine_free(e);
    assert_eq!((s.live_contexts(), s.live_engines()), (0, 0));
    assert_eq!(
        status(s.context_create(e).map(|_| ())),
        1,
        "a freed engine is not live"
    );
}

#[test]
fn builds_return_the_registered_plan_and_honour_cancel() {
    let s = shim_8_5();
    let onnx = Path::new("/m/path1.onnx");
    s.register_build(onnx, b"plan-1");
    let mut phases = Vec::new();
    let mut log = |p: &str, step: i32, n: i32| {
        phases.push((p.to_string(), step, n));
        true
    };
    assert_eq!(
        s.build_from_onnx_file(onnx, &BuildOptions::default(), Some(&mut log))
            .unwrap(),
        b"plan-1"
    );
    assert_eq!(phases[0], ("parse".to_string(), -1, 1));
    let mut cancel = |_: &str, _: i32, _: i32| false;
    assert!(s
        .build_from_onnx_file(onnx, &BuildOptions::default(), Some(&mut cancel))
        .is_err());
    assert_eq!(
        status(
            s.build_from_onnx_file(Path::new("/nope.onnx"), &BuildOptions::default(), None)
                .map(|_| ())
        ),
        9
    );
}

#[test]
fn fail_next_fails_the_very_next_call_once_and_counts_follow_the_handles() {
    let (s, e) = shim();
    assert_eq!((s.live_engines(), s.live_contexts()), (1, 0));
    s.fail_next(CallKind::EngineIo);
    let failed = s.engine_io(e).unwrap_err();
    assert_eq!(
        failed,
        ShimError::Call {
            function: "tinv_trt_engine_io_info",
            status: 4,
            message: "injected failure".into()
        }
    );
    assert_eq!(s.engine_io(e).unwrap().len(), 2, "once only");
    let c = s.context_create(e).unwrap();
    assert_eq!((s.live_engines(), s.live_contexts()), (1, 1));
    let e2 = s.deserialize(b"plan-a").unwrap();
    assert_eq!((s.live_engines(), s.live_contexts()), (2, 1));
    s.context_free(c);
    s.engine_free(e);
    assert_eq!((s.live_engines(), s.live_contexts()), (1, 0));
    s.engine_free(e2);
    assert_eq!((s.live_engines(), s.live_contexts()), (0, 0));
}

#[test]
fn handles_stay_distinct_and_usable_over_a_long_test() {
    // A test of code built on the double may open hundreds of sessions: every handle it hands
    // out is another token, never 0, and each one works.
    let (s, e) = shim();
    let mut seen = std::collections::HashSet::from([e.0]);
    for _ in 0..300 {
        let c = s.context_create(e).unwrap();
        assert!(c.0 != 0 && seen.insert(c.0), "context {:#x} again", c.0);
        s.set_device_memory(c, 0x1000, 1000).unwrap();
        let e2 = s.deserialize(b"plan-a").unwrap();
        assert!(e2.0 != 0 && seen.insert(e2.0), "engine {:#x} again", e2.0);
        assert_eq!(s.engine_device_memory_size(e2).unwrap(), 1000);
    }
    assert_eq!((s.live_engines(), s.live_contexts()), (301, 300));
}

#[test]
fn tensor_and_memory_addresses_must_be_256_byte_aligned_and_not_null() {
    let (s, e) = shim();
    let c = s.context_create(e).unwrap();
    for addr in [0, 0x2001, 0x2080, 0x20ff] {
        assert_eq!(status(s.set_tensor_address(c, "x", addr)), 1, "{addr:#x}");
        assert_eq!(status(s.set_device_memory(c, addr, 1000)), 1, "{addr:#x}");
    }
    s.set_tensor_address(c, "x", 0x2100).unwrap();
    s.set_device_memory(c, 0x2100, 1000).unwrap();
}

#[test]
fn a_build_reports_parse_then_build_and_a_no_at_any_step_cancels_it() {
    let s = shim_8_5();
    let onnx = Path::new("/m/a.onnx");
    s.register_build(onnx, b"plan");
    let all = [("parse", -1), ("parse", 1), ("build", -1), ("build", 1)];
    // Saying no at each report in turn: the build stops there, with no report after it.
    for stop in 0..all.len() {
        let mut seen = Vec::new();
        let mut progress = |p: &str, step: i32, n: i32| {
            assert_eq!(n, 1);
            seen.push((p.to_string(), step));
            seen.len() - 1 != stop
        };
        let r = s.build_from_onnx_file(onnx, &BuildOptions::default(), Some(&mut progress));
        assert_eq!(
            r.unwrap_err(),
            ShimError::Call {
                function: "tinv_trt_build_from_onnx_file",
                status: 4,
                message: "build cancelled by the progress callback".into()
            }
        );
        let want: Vec<(String, i32)> = all[..=stop]
            .iter()
            .map(|&(p, step)| (p.to_string(), step))
            .collect();
        assert_eq!(seen, want);
    }
}
