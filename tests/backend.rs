//! Backend selection: `auto` falls back to the CPU, `tensorrt` refuses with a message that says
//! what is missing (no TensorRT support compiled in, or no engines built), `cpu` is the CPU.

use std::sync::Arc;
use tinv::format::DType;
use tinv::{synth, Backend, Model, OpenOptions, Session, SessionOptions};

fn model() -> Arc<Model> {
    let cfg = synth::config(8, 1, 4, 16, 2, 2, 3, &[1, 2], false);
    Arc::new(
        Model::from_bytes(
            &synth::random_model(&cfg, 1, DType::F32),
            &OpenOptions::default(),
        )
        .unwrap(),
    )
}

#[test]
fn parse_names() {
    assert_eq!(Backend::parse("auto").unwrap(), Backend::Auto);
    assert_eq!(Backend::parse("cpu").unwrap(), Backend::Cpu);
    assert_eq!(Backend::parse("tensorrt").unwrap(), Backend::TensorRt);
    assert!(Backend::parse("cuda")
        .unwrap_err()
        .to_string()
        .contains("auto, cpu, tensorrt"));
}

#[test]
fn auto_and_cpu_run_on_the_cpu() {
    for backend in [Backend::Auto, Backend::Cpu] {
        let s = Session::new(
            model(),
            SessionOptions {
                backend,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.backend(), Backend::Cpu);
    }
}

#[test]
fn tensorrt_without_engines_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("tinv-backend-{}", std::process::id()));
    let opts = SessionOptions {
        backend: Backend::TensorRt,
        engines: Some(dir.clone()),
        ..Default::default()
    };
    let err = match Session::new(model(), opts) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("no engines exist: tensorrt must be refused"),
    };
    if cfg!(feature = "tensorrt") {
        // The engines folder has no manifest: the message says how to build them.
        assert!(err.contains("tinv-run build"), "{err}");
    } else {
        assert!(err.contains("without the `tensorrt` feature"), "{err}");
    }
    // `auto` with the same missing engines quietly uses the CPU.
    let opts = SessionOptions {
        backend: Backend::Auto,
        engines: Some(dir),
        ..Default::default()
    };
    assert_eq!(Session::new(model(), opts).unwrap().backend(), Backend::Cpu);
}
