//! `tinv-run inspect` on synthetic models: `--json` lists the paths, passes `--verify`, writes
//! non-finite metadata as `null` and integers above 2^53 as strings, and has the configuration
//! its `--help` promises; the text describes the controller (and, with TensorRT, the engines).

#[path = "common/cli.rs"]
#[allow(dead_code)] // the `assert_*` helpers and `field` are for the other cli_*.rs
mod cli_support;
#[path = "common/cli_fixtures.rs"]
mod fixtures;

use cli_support::{run, tmp};
use fixtures::fixture;
use tinv::format::{DType, MetaValue};
use tinv::synth;

#[test]
fn inspect_json_lists_paths_and_verify_passes() {
    let dir = tmp("inspect");
    let (model_path, _) = fixture(&dir);
    let (code, out, err) = run(&[
        "inspect",
        model_path.to_str().unwrap(),
        "--json",
        "--verify",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"paths\":[{\"depth\":1")
            && out.contains("\"arena_bytes\":")
            && out.contains("\"input_shape\":[1,8,8]"),
        "{out}"
    );
}

/// The synthetic model written again to `dir/name` with the metadata entries `extra` set.
fn with_meta(dir: &std::path::Path, name: &str, extra: &[(&str, MetaValue)]) -> std::path::PathBuf {
    let bytes = synth::random_model(&synth::tiny(3, false), 4, DType::F32);
    let idx = tinv::format::parse(&bytes).unwrap();
    let mut w = tinv::format::TinvWriter::new();
    for (k, v) in idx.meta.entries() {
        w.meta(k, v.clone());
    }
    for (k, v) in extra {
        w.meta(k, v.clone());
    }
    for t in &idx.tensors {
        // synth's page breaks: before the stem, each block and each exit head.
        let n = &t.name;
        if n == "stem.patch.weight" || n.ends_with("qkv.weight") || n.ends_with("head.weight") {
            w.page_break();
        }
        let data = bytes[t.offset..t.offset + t.nbytes].to_vec();
        w.raw_tensor(n, t.dtype, t.flags, &t.shape, data);
    }
    let path = dir.join(name);
    std::fs::write(&path, w.to_bytes()).unwrap();
    path
}

/// NaN and ±∞ are not JSON numbers: `inspect --json` writes a metadata value that is one as
/// `null`, in an array too; an integer above 2^53, which a reader of doubles would round, as a
/// decimal string, and up to 2^53 as a number. The model is the synthetic one written again with
/// five more keys.
#[test]
fn inspect_json_writes_non_finite_metadata_as_null() {
    let dir = tmp("inspect-nan");
    let path = with_meta(
        &dir,
        "nan.tinv",
        &[
            ("user.nan", MetaValue::F64(f64::NAN)),
            (
                "user.inf",
                MetaValue::F64s(vec![1.5, f64::INFINITY, f64::NEG_INFINITY]),
            ),
            ("user.small", MetaValue::U64(7)),
            ("user.exact", MetaValue::U64(1 << 53)),
            ("user.above", MetaValue::U64((1 << 53) + 1)),
        ],
    );
    let (code, out, err) = run(&["inspect", path.to_str().unwrap(), "--json"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.contains("\"user.nan\":null"), "{out}");
    assert!(out.contains("\"user.inf\":[1.5,null,null]"), "{out}");
    assert!(out.contains("\"user.small\":7,"), "{out}");
    assert!(out.contains("\"user.exact\":9007199254740992,"), "{out}");
    assert!(out.contains("\"user.above\":\"9007199254740993\""), "{out}");
}

/// A string from the file (the producer) and the file's name are printed escaped: a newline
/// or a terminal escape code in them neither adds a line nor reaches the terminal.
#[test]
fn inspect_text_escapes_control_characters_from_the_file() {
    let dir = tmp("inspect-escape");
    let producer = MetaValue::Str("tool\u{1b}[2J\nfake line".into());
    let path = with_meta(&dir, "a\nb.tinv", &[("tinv.producer", producer)]);
    let (code, out, err) = run(&["inspect", path.to_str().unwrap()]);
    assert_eq!((code, err.as_str()), (0, ""));
    let lines: Vec<&str> = out.lines().collect();
    let file = format!("file          {}/a\\nb.tinv (", dir.to_str().unwrap());
    assert!(lines[0].starts_with(&file), "{out}");
    assert_eq!(
        lines[1], "producer      tool\\u{1b}[2J\\nfake line",
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "{out}");
}

/// The text names the controller's features and its up-front FLOPs in both modes (the
/// library's count), and says which TensorRT engines it found where the feature is built.
#[test]
fn inspect_text_describes_the_controller_and_the_engines() {
    let dir = tmp("inspect-text");
    let (path, cfg) = fixture(&dir);
    let (code, out, err) = run(&["inspect", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let model = tinv::Model::open(&path, &tinv::OpenOptions::default()).unwrap();
    let w = model.ctrl().unwrap();
    let flops = [false, true].map(|g| tinv::model::flops::controller_up_front_flops(&cfg, w, g));
    let features = &cfg.controller.as_ref().unwrap().features;
    let line = out
        .lines()
        .find(|l| l.starts_with("controller    "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.starts_with(&format!("controller    {features} (predictor ")),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "{} FLOPs up front ({} in graph mode)",
            flops[0], flops[1]
        )),
        "{line}"
    );
    let engines = out.lines().find(|l| l.starts_with("engines       "));
    if cfg!(feature = "tensorrt") {
        let plans = dir.join("plans");
        let want = format!("engines       none usable in {}", plans.display());
        assert!(engines.is_some_and(|l| l.starts_with(&want)), "{out}");
    } else {
        assert_eq!(engines, None, "{out}");
    }
}

/// Every key of `inspect --json` is named in `inspect --help`, and `config` holds the model's
/// configuration.
#[test]
fn inspect_json_has_the_config_its_help_promises() {
    let dir = tmp("inspect-config");
    let (model_path, _) = fixture(&dir);
    let (code, out, err) = run(&["inspect", model_path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "\"config\":{\"image_size\":[8,8],\"channels\":1,\"patch\":4,\"dim\":16,\"heads\":2,\
             \"blocks\":2,\"mlp_hidden\":"
        ) && out.contains("\"depths\":[1,2]"),
        "{out}"
    );
    let (_, help, _) = run(&["inspect", "--help"]);
    for key in [
        "file",
        "file_bytes",
        "input_shape",
        "classes",
        "config",
        "image_size",
        "channels",
        "patch",
        "dim",
        "heads",
        "blocks",
        "mlp_hidden",
        "tokens",
        "depths",
        "mean",
        "std",
        "ln_eps",
        "gelu",
        "controller",
        "features",
        "default_budget",
        "paths",
        "flops",
        "weight_bytes",
        "controller_flops",
        "controller_flops_graph",
        "arena_bytes",
        "arena_lower_bound_bytes",
        "kernel",
        "metadata",
        "tensors",
    ] {
        assert!(
            out.contains(&format!("\"{key}\":")),
            "{key} missing in {out}"
        );
        assert!(help.contains(key), "{key} undocumented in {help}");
    }
    // The content hash is above 2^53, where a reader that parses JSON numbers as doubles
    // rounds it: a decimal string, the same value the text shows in hex.
    let at = out
        .find("\"tinv.content_hash\":\"")
        .expect("hash as a string")
        + 21;
    let digits: String = out[at..].chars().take_while(char::is_ascii_digit).collect();
    let hash: u64 = digits.parse().unwrap();
    assert!(hash > 1 << 53, "{hash}");
    let (_, text, _) = run(&["inspect", model_path.to_str().unwrap()]);
    assert!(
        text.contains(&format!("content hash  {hash:#018x}")),
        "{text}"
    );
    // The metadata checksum the writer stores (a decimal string above 2^53, else a number).
    let at = out.find("\"tinv.meta_hash\":").expect("meta hash") + 17;
    let digits: String = out[at..]
        .trim_start_matches('"')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let meta: u64 = digits.parse().unwrap();
    assert!(
        text.contains(&format!("meta hash     {meta:#018x} (checked at open)")),
        "{text}"
    );
}
