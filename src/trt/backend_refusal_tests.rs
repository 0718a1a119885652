//! The backend's refusals, with the recording doubles of `backend_tests`: a manifest, plan or
//! engine that does not fit the model, weights that cannot be uploaded, failed captures and
//! contexts, run-time device errors, and which plans count as stale. Each refusal is clear and
//! releases what was taken.

use super::backend::{OpenOptions, Sources, TrtModel};
use super::backend_tests::{opts, rig};
use super::device_double::DevCall;
use super::fixtures::sample;
use super::manifest::{self, Manifest};
use super::session::TrtSession;
use super::TrtError;
use std::sync::Arc;
use tinv_sys::double::{Call, CallKind};
use tinv_sys::ShimApi;

#[test]
fn a_manifest_for_another_model_fails_before_touching_the_device() {
    let r = rig(sample());
    let shim: Arc<dyn ShimApi> = r.shim.clone();
    let o = OpenOptions {
        model_hash: 42,
        ..opts(&r.manifest)
    };
    let e = TrtModel::open(shim, r.device.clone(), r.manifest.clone(), &o, &r.files)
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            TrtError::Mismatch {
                field: "model_hash",
                ..
            }
        ),
        "{e}"
    );
    assert!(r.allocs().is_empty() && r.shim.calls().is_empty());
    // Its own kind in the public error (`TINV_ERR_ENGINES_STALE` in C): rebuilding fixes it.
    match crate::Error::from(e) {
        crate::Error::EnginesStale(m) => assert!(m.contains("tinv-run build"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        crate::Error::from(TrtError::Plan("x".into())),
        crate::Error::Backend(_)
    ));
}

#[test]
fn a_refused_plan_names_the_file_and_frees_what_was_loaded() {
    let mut r = rig(sample());
    let other = b"built by TensorRT 8.5.3".to_vec();
    // The manifest's hash matches (a manifest written with this plan), TensorRT refuses it.
    r.manifest.engines[1].plan_hash = crate::format::fnv1a64(&other);
    r.files.plans.insert("path2.plan".into(), other);
    let e = r.open().err().unwrap();
    // Stale, like a manifest mismatch (`TINV_ERR_ENGINES_STALE` in C): rebuilding fixes it.
    assert!(matches!(e, TrtError::StalePlan(_)), "{e:?}");
    assert!(matches!(
        crate::Error::from(e.clone()),
        crate::Error::EnginesStale(_)
    ));
    let e = e.to_string();
    assert!(
        e.contains("plan path2.plan")
            && e.contains("TensorRT could not deserialize the plan")
            && e.contains("`tinv-run build`"),
        "{e}"
    );
    assert_eq!(r.shim.live_engines(), 0);
    assert!(r.allocs().is_empty());
}

#[test]
fn a_plan_replaced_since_the_build_is_stale_before_tensorrt_sees_it() {
    let mut r = rig(sample());
    // Bytes TensorRT would accept (the double knows them: path1's plan), in path2's file.
    let swapped = super::fixtures::plan_bytes("path1");
    r.files.plans.insert("path2.plan".into(), swapped);
    let e = r.open().err().unwrap();
    assert!(matches!(e, TrtError::StalePlan(_)), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("plan path2.plan") && m.contains("not the ones `tinv-run build` wrote"),
        "{m}"
    );
    // Refused before deserializing it; path1's engine, loaded before, is freed.
    let deserialized = r
        .shim
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Deserialize(..)))
        .count();
    assert_eq!(deserialized, 1);
    assert_eq!(r.shim.live_engines(), 0);
}

#[test]
fn an_engine_whose_io_differs_from_the_manifest_is_refused() {
    let mut m = sample();
    let r = rig(m.clone());
    for e in &mut m.engines {
        e.io[0].shape = vec![1, 1, 32, 32]; // the manifest now disagrees with the plans (28×28)
    }
    let shim: Arc<dyn ShimApi> = r.shim.clone();
    let o = OpenOptions {
        input_len: 32 * 32, // a model that agrees with the manifest
        ..opts(&m)
    };
    let e = TrtModel::open(shim, r.device.clone(), m.clone(), &o, &r.files)
        .err()
        .unwrap();
    assert!(matches!(e, TrtError::StalePlan(_)), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("differ from the manifest's engine path1"), "{e}");
}

#[test]
fn engines_whose_interface_differs_from_the_model_are_refused_before_the_device() {
    let r = rig(sample());
    let refuse = |m: &Manifest, o: &OpenOptions, want: &str| {
        let shim: Arc<dyn ShimApi> = r.shim.clone();
        let e = TrtModel::open(shim, r.device.clone(), m.clone(), o, &r.files)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(want) && e.contains("tinv-run build"), "{e}");
    };
    // A 5-class model against 10-logit engines; a 32×32 model against 28×28 engines.
    let five = OpenOptions {
        classes: 5,
        ..opts(&r.manifest)
    };
    refuse(
        &r.manifest,
        &five,
        "output logits is f32 [1, 10], the model needs f32 with 5",
    );
    let big = OpenOptions {
        input_len: 1024,
        ..opts(&r.manifest)
    };
    refuse(
        &r.manifest,
        &big,
        "input image is f32 [1, 1, 28, 28], the model needs f32 with 1024",
    );
    // FP16 logits would be read as f32 garbage.
    let mut half = r.manifest.clone();
    for e in &mut half.engines {
        e.io.last_mut().unwrap().dtype = manifest::DType::F16;
    }
    refuse(&half, &opts(&half), "output logits is f16 [1, 10]");
    assert!(r.allocs().is_empty(), "refused before any device memory");
}

#[test]
fn missing_weight_bytes_fail_without_leaking() {
    let mut r = rig(sample());
    r.files.weights.get_mut("blk.0.fc.bias").unwrap().pop();
    let e = r.open().err().unwrap().to_string();
    assert!(
        e.contains("weight blk.0.fc.bias has Some(127) device bytes"),
        "{e}"
    );
    assert_eq!((r.device.live(), r.shim.live_engines()), ((0, 0, 0), 0));
    let r = rig(sample());
    r.device.fail_next("memcpy_htod");
    assert!(r
        .open()
        .err()
        .unwrap()
        .to_string()
        .contains("CUDA memcpy_htod failed"));
    assert_eq!(r.device.live(), (0, 0, 0));
}

#[test]
fn a_failed_capture_is_discarded_and_the_session_runs_without_graphs() {
    let r = rig(sample());
    let model = r.open().unwrap();
    r.shim.fail_nth(CallKind::Enqueue, 2); // the two warm-up enqueues pass, the first captured one fails
    let mut s = TrtSession::new(model.clone()).unwrap();
    assert!(!s.uses_graphs());
    let calls = r.device.calls();
    assert!(calls.contains(&DevCall::AbortCapture));
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, DevCall::EndCapture { .. })),
        "no graph from a failed capture, and no capture tried after it"
    );
    // Runs call by call, with the same copies a graph would hold.
    let before = r.shim.calls().len();
    let mut out = vec![0u8; 40];
    s.run(0, &[0u8; 784 * 4], &mut out).unwrap();
    let enqueued = r.shim.calls()[before..]
        .iter()
        .filter(|c| matches!(c, Call::Enqueue(..)))
        .count();
    assert_eq!(enqueued, 1, "path 0 is one engine, enqueued directly");
    assert!(!r
        .device
        .calls()
        .iter()
        .any(|c| matches!(c, DevCall::Launch(_))));
    drop(s);
    drop(model);
    r.assert_all_released();
}

#[test]
fn a_session_whose_engines_fail_even_without_a_graph_is_refused() {
    let r = rig(sample());
    let model = r.open().unwrap();
    // The first captured copy fails; the direct run that would prove the fallback then fails
    // at its enqueue (the two warm-up enqueues pass).
    r.device.fail_next("copy_to_device");
    r.shim.fail_nth(CallKind::Enqueue, 2);
    let e = TrtSession::new(model.clone()).err().unwrap();
    assert!(
        matches!(
            &e,
            TrtError::Shim(tinv_sys::ShimError::Call {
                function: "tinv_trt_context_enqueue",
                ..
            })
        ),
        "{e}"
    );
    assert!(r.device.calls().contains(&DevCall::AbortCapture));
    drop(model);
    r.assert_all_released();
}

#[test]
fn device_and_argument_errors_at_run_time_are_surfaced() {
    let r = rig(sample());
    let model = r.open().unwrap();
    let mut s = TrtSession::new(model).unwrap();
    let mut out = vec![0u8; 40];
    r.device.fail_next("launch");
    assert!(s
        .run(0, &[0u8; 3136], &mut out)
        .err()
        .unwrap()
        .to_string()
        .contains("CUDA launch failed"));
    assert!(s
        .run(0, &[0u8; 3135], &mut out)
        .err()
        .unwrap()
        .to_string()
        .contains("input is 3135 bytes"));
    assert!(s
        .run(0, &[0u8; 3136], &mut out[..39])
        .err()
        .unwrap()
        .to_string()
        .contains("output is 39 bytes"));
    assert!(s.run(5, &[0u8; 3136], &mut out).is_err());
    s.run(0, &[0u8; 3136], &mut out).unwrap();
}

#[test]
fn context_setup_failures_release_the_session() {
    for kind in [
        CallKind::ContextCreate,
        CallKind::SetDeviceMemory,
        CallKind::SetTensorAddress,
        CallKind::SetInputShape,
    ] {
        let r = rig(sample());
        let model = r.open().unwrap();
        r.shim.fail_nth(kind, 1);
        assert!(TrtSession::new(model.clone()).is_err(), "{kind:?}");
        assert_eq!(r.shim.live_contexts(), 0, "{kind:?}");
        assert_eq!(
            r.device.live(),
            (1, 0, 0),
            "only the model's weights remain after {kind:?}"
        );
    }
}

#[test]
fn only_tensorrts_refusal_of_a_plan_makes_it_stale() {
    let call = |status, message: &str| tinv_sys::ShimError::Call {
        function: "tinv_trt_engine_deserialize",
        status,
        message: format!("TensorRT could not deserialize the plan: {message}"),
    };
    // TensorRT's version and corruption messages (8.x, 10.x): stale, rebuild.
    for logged in [
        "1: [stdArchiveReader.cpp::StdArchiveReader::40] Error Code 1: Serialization (Serialization          assertion stdVersionRead == serializationVersion failed.Version tag does not match.)",
        "4: [runtime.cpp::deserializeCudaEngine::65] Error Code 4: Internal Error (Engine          deserialization failed.)",
        "",
    ] {
        let refused = super::backend::not_deserialized("path1.plan", call(4, logged));
        assert!(matches!(refused, TrtError::StalePlan(_)), "{refused:?}");
    }
    // No device memory for the engine's weights (TensorRT 8 and 10 logs): not fixed by a
    // rebuild, so not stale (a caller that rebuilds on stale plans would loop).
    for logged in [
        "1: [defaultAllocator.cpp::allocate::20] Error Code 1: Cuda Runtime (out of memory)",
        "2: Requested amount of GPU memory (1073741824 bytes) could not be allocated. There may          not be enough free memory for allocation to succeed.",
        "2: [executionContext.cpp::ExecutionContext::564] Error Code 2: OutOfMemory (no further          information)",
    ] {
        let oom = super::backend::not_deserialized("path1.plan", call(4, logged));
        match &oom {
            TrtError::Plan(m) => assert!(m.contains("out of device memory"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    // Out of host memory (8) is not fixed by a rebuild.
    let no_memory = super::backend::not_deserialized("path1.plan", call(8, "m"));
    assert!(matches!(no_memory, TrtError::Plan(_)), "{no_memory:?}");
    assert!(matches!(
        crate::Error::from(no_memory),
        crate::Error::Backend(_)
    ));
}

#[test]
fn a_plan_that_cannot_be_read_is_not_stale_but_a_missing_one_is() {
    /// Plans that cannot be read for `kind`.
    struct Unreadable(std::io::ErrorKind);
    impl Sources for Unreadable {
        fn plan(&self, file: &str) -> Result<Vec<u8>, (std::io::ErrorKind, String)> {
            Err((self.0, format!("{file}: cannot read")))
        }
        fn weight(&self, _: &str) -> Option<&[u8]> {
            None
        }
    }
    let r = rig(sample());
    for (kind, stale) in [
        (std::io::ErrorKind::NotFound, true),
        (std::io::ErrorKind::PermissionDenied, false),
        (std::io::ErrorKind::InvalidInput, false),
    ] {
        let shim: Arc<dyn ShimApi> = r.shim.clone();
        let m = r.manifest.clone();
        let e = TrtModel::open(
            shim,
            r.device.clone(),
            m.clone(),
            &opts(&m),
            &Unreadable(kind),
        )
        .err()
        .unwrap();
        // A rebuild fixes a missing plan (EnginesStale), not a permission or I/O error: a
        // program that rebuilds on EnginesStale would loop.
        assert_eq!(
            matches!(crate::Error::from(e.clone()), crate::Error::EnginesStale(_)),
            stale,
            "{kind:?}: {e:?}"
        );
    }
}
