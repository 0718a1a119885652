//! Backend selection: `auto` falls back to the CPU, `tensorrt` refuses with a message that says
//! what is missing (no TensorRT support compiled in, or no engines built), `cpu` is the CPU.

use std::sync::Arc;
use tinv::format::DType;
use tinv::{synth, Backend, Model, OpenOptions, Session, SessionOptions};

fn model() -> Arc<Model> {
    let cfg = synth::tiny(3, false);
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

/// `Display` writes the name `FromStr` reads back; `Debug` of a model and a session names the
/// file, the shape and the settings without dumping buffers.
#[test]
fn names_round_trip_and_debug_is_short() {
    use tinv::Mode;
    for b in [Backend::Auto, Backend::Cpu, Backend::TensorRt] {
        assert_eq!(b.to_string().parse::<Backend>().unwrap(), b);
    }
    assert_eq!("trt".parse::<Backend>().unwrap(), Backend::TensorRt);
    for m in [
        Mode::Adaptive,
        Mode::Graph,
        Mode::Threshold(0.7),
        Mode::Threshold(1.0),
    ] {
        assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
    }
    assert_eq!(Mode::Threshold(0.7).to_string(), "threshold:0.7");
    assert!("fast".parse::<Mode>().is_err());
    let m = model();
    let d = format!("{m:?}");
    assert!(
        d.starts_with("Model {") && d.contains("depths: [1, 2]"),
        "{d}"
    );
    assert!(d.contains("controller: false") && d.len() < 200, "{d}");
    let s = Session::new(m, SessionOptions::default()).unwrap();
    let d = format!("{s:?}");
    assert!(
        d.contains("backend: Cpu") && d.contains("max_batch: 1") && d.len() < 200,
        "{d}"
    );
}

/// The options are built with setters (the structs are `non_exhaustive`, so a new setting is
/// not a breaking change); each sets its own field and nothing else.
#[test]
fn option_setters_set_their_field() {
    use tinv::Mode;
    let d = SessionOptions::default();
    let o = SessionOptions::default()
        .max_batch(3)
        .threads(2)
        .mode(Mode::Graph)
        .budget(0.5)
        .backend(Backend::Cpu)
        .engines(std::path::PathBuf::from("e"))
        .cuda_graphs(false)
        .max_arena_bytes(1 << 20);
    assert_eq!((o.max_batch, o.threads, o.mode), (3, 2, Mode::Graph));
    assert_eq!((o.budget, o.backend), (Some(0.5), Backend::Cpu));
    assert_eq!(o.engines.as_deref(), Some(std::path::Path::new("e")));
    assert_eq!((o.cuda_graphs, o.max_arena_bytes), (false, 1 << 20));
    assert_eq!(o.clone().budget(None).budget, None);
    assert_eq!(o.engines(None).engines, None);
    assert_eq!(
        (d.max_batch, d.threads, d.budget, d.cuda_graphs),
        (1, 1, None, true)
    );
    assert!(OpenOptions::default().verify(true).verify && !OpenOptions::default().verify);
}

/// An error's one line already ends with its cause: `source()` is `None`, so a reporter that
/// walks the chain does not print the OS error twice. The cause stays in the variant.
#[test]
fn errors_do_not_repeat_their_cause() {
    use std::error::Error as _;
    let e = Model::open("/nonexistent/x.tinv", &OpenOptions::default()).unwrap_err();
    assert!(e.to_string().contains("No such file"), "{e}");
    assert!(e.source().is_none());
    match e {
        tinv::Error::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("{other}"),
    }
}

#[test]
fn auto_and_cpu_run_on_the_cpu() {
    for backend in [Backend::Auto, Backend::Cpu] {
        let s = Session::new(model(), SessionOptions::default().backend(backend)).unwrap();
        assert_eq!(s.backend(), Backend::Cpu);
    }
}

#[test]
fn tensorrt_without_engines_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("tinv-backend-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = SessionOptions::default()
        .backend(Backend::TensorRt)
        .engines(dir.clone());
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
    let opts = SessionOptions::default()
        .backend(Backend::Auto)
        .engines(dir);
    assert_eq!(Session::new(model(), opts).unwrap().backend(), Backend::Cpu);
}

/// Engines built for something else (here a manifest of another schema, which is found before
/// TensorRT is even loaded) are `Error::EnginesStale`, the one backend failure a program can fix
/// by rebuilding; it came back as `Backend` like a missing GPU. `auto` uses the CPU instead.
#[test]
fn engines_built_for_something_else_are_stale() {
    let dir = std::env::temp_dir().join(format!("tinv-backend-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest"), "tinv-trt-manifest 1\n").unwrap();
    let opts = SessionOptions::default()
        .backend(Backend::TensorRt)
        .engines(dir.clone());
    match Session::new(model(), opts) {
        Err(tinv::Error::EnginesStale(m)) if cfg!(feature = "tensorrt") => {
            assert!(
                m.contains("`schema` is 1") && m.contains("tinv-run build"),
                "{m}"
            )
        }
        Err(tinv::Error::Backend(m)) if !cfg!(feature = "tensorrt") => {
            assert!(m.contains("without the `tensorrt` feature"), "{m}")
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("stale engines must be refused"),
    }
    let opts = SessionOptions::default()
        .backend(Backend::Auto)
        .engines(dir.clone());
    assert_eq!(Session::new(model(), opts).unwrap().backend(), Backend::Cpu);
    let _ = std::fs::remove_dir_all(&dir);
}
