//! `tinv-run classify`'s output on a synthetic model: the class, depth and FLOPs it prints are
//! the library's, its JSON escapes names and labels, and the class names come from the model's
//! classes.txt (one that is not a regular file is a warning).

#[path = "common/cli.rs"]
#[allow(dead_code)] // the `assert_*` helpers and `field` are for the other cli_*.rs
mod cli_support;
#[path = "common/cli_fixtures.rs"]
mod fixtures;

use cli_support::{run, tmp};
use fixtures::{classify_json, fixture, library_logits, write_pgm};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use tinv::{Model, OpenOptions, Session, SessionOptions};

#[test]
fn classify_matches_library_and_json_fields() {
    let dir = tmp("classify");
    let (model_path, cfg) = fixture(&dir);
    let px: Vec<u8> = (0..64).map(|i| (i * 37 % 256) as u8).collect();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &px);
    let out = classify_json(&model_path, &img);
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    let x: Vec<f32> = px.iter().map(|&v| v as f32 / 255.0).collect();
    let mut logits = vec![0f32; cfg.classes];
    let st = s.infer_depth(&x, 1, 2, &mut logits).unwrap()[0];
    for key in [
        "\"image\":",
        "\"depth\":2",
        "\"confidence\":",
        "\"logits\":[",
        "\"flops\":",
        "\"latency_us\":",
    ] {
        assert!(out.contains(key), "{key} missing in {out}");
    }
    assert!(out.contains(&format!("\"class\":{}", st.class)), "{out}");
    assert!(out.contains(&format!("\"flops\":{}", st.flops)), "{out}");
    // Adaptive mode with a budget runs too (plain text).
    let (code, out, _) = run(&[
        "classify",
        "--model",
        model_path.to_str().unwrap(),
        "--budget",
        "0.5",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("class") && out.contains("depth"));
}

/// classes.txt is read only as a small regular file: a FIFO blocked `classify` forever and a
/// link to /dev/zero grew without end; a directory was skipped without a word. Each is now a
/// warning, and the classes are shown by number.
#[test]
fn a_classes_file_that_is_not_a_regular_file_is_a_warning() {
    let dir = tmp("classes");
    let (model_path, _) = fixture(&dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(&model_path, pkg.join("model.tinv")).unwrap();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &[3; 64]);
    let classes = pkg.join("classes.txt");
    // classify must finish (not block on the FIFO), answer by number and warn.
    let classify = || {
        let (code, out, err) = run(&[
            "classify",
            "--model",
            pkg.to_str().unwrap(),
            img.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("classes.txt: not a regular file"), "{err}");
        assert!(out.contains(": class "), "{out}");
    };
    if Command::new("mkfifo")
        .arg(&classes)
        .status()
        .is_ok_and(|s| s.success())
    {
        classify();
        std::fs::remove_file(&classes).unwrap();
    } else {
        eprintln!("skipped the FIFO case: mkfifo failed");
    }
    std::os::unix::fs::symlink("/dev/zero", &classes).unwrap();
    classify();
    std::fs::remove_file(&classes).unwrap();
    std::fs::create_dir(&classes).unwrap();
    classify();
}

/// `--json` strings are JSON strings: a quote, a backslash, a newline and the other control
/// characters in an image's name or a class's label are escaped (`\"`, `\\`, `\n`, `\u00XX`),
/// everything else (a space, `~`, `é`) is written as it is; the logits are an array.
#[test]
fn classify_json_escapes_names_and_labels() {
    let dir = tmp("json-escape");
    let (model_path, cfg) = fixture(&dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(&model_path, pkg.join("model.tinv")).unwrap();
    // Every class the same name, so the label does not depend on the answer.
    let name = "a \"b\" \\ c\td\u{1}e\u{1f} ~é";
    std::fs::write(
        pkg.join("classes.txt"),
        format!("{name}\n").repeat(cfg.classes),
    )
    .unwrap();
    let img = dir.join("x\"y\\z\n .pgm");
    let px: Vec<u8> = (0..64).map(|i| (i * 29 % 256) as u8).collect();
    write_pgm(&img, 8, 8, &px);
    let (code, out, err) = run(&[
        "classify",
        "--model",
        pkg.to_str().unwrap(),
        "--depth",
        "2",
        "--json",
        img.to_str().unwrap(),
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    let want_img = format!("{}/x\\\"y\\\\z\\n .pgm", dir.to_str().unwrap());
    assert!(
        out.starts_with(&format!("{{\"image\":\"{want_img}\",\"backend\":\"cpu\",")),
        "{out}"
    );
    assert!(
        out.contains("\"label\":\"a \\\"b\\\" \\\\ c\\u0009d\\u0001e\\u001f ~é\","),
        "{out}"
    );
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    let x: Vec<f32> = px.iter().map(|&v| f32::from(v) / 255.0).collect();
    let mut logits = vec![0f32; cfg.classes];
    s.infer_depth(&x, 1, 2, &mut logits).unwrap();
    let logits: Vec<String> = logits.iter().map(|&v| f64::from(v).to_string()).collect();
    assert!(
        out.contains(&format!("\"logits\":[{}],", logits.join(","))),
        "{out}"
    );
    assert!(out.ends_with("}\n"), "{out}");
    // The text output escapes the same control characters: one line, no raw escape code.
    let (code, out, err) = run(&[
        "classify",
        "--model",
        pkg.to_str().unwrap(),
        "--depth",
        "2",
        img.to_str().unwrap(),
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    let want = format!("{}/x\"y\\z\\n .pgm: class ", dir.to_str().unwrap());
    assert!(out.starts_with(&want), "{out}");
    assert!(
        out.contains("(a \"b\" \\ c\\td\\u{1}e\\u{1f} ~é) confidence"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// A classes.txt beside the model with one name per class (blank lines and surrounding spaces
/// not counted) names the class the library predicts, in text and JSON, whether the model is a
/// package folder, its model.tinv or `$TINV_MODEL`; one name too few or too many is a warning
/// and the classes are shown by number.
#[test]
fn classes_txt_names_the_library_class() {
    let dir = tmp("class-names");
    let (model_path, _) = fixture(&dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let file = pkg.join("model.tinv");
    std::fs::copy(&model_path, &file).unwrap();
    let px: Vec<u8> = (0..64).map(|i| (i * 37 % 256) as u8).collect();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &px);
    let x: Vec<f32> = px.iter().map(|&v| v as f32 / 255.0).collect();
    let l = library_logits(&model_path, &x);
    let class = (0..3).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
    let names = ["shirt", "trouser", "bag"];
    let classes = pkg.join("classes.txt");
    std::fs::write(&classes, "  shirt \n\ntrouser\n\t\nbag\n").unwrap();
    let classify = |model: Option<&Path>, json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tinv-run"));
        cmd.args(["classify", "--depth", "2"]);
        match model {
            Some(m) => cmd.arg("--model").arg(m).env("TINV_MODEL", "/nonexistent"),
            None => cmd.env("TINV_MODEL", &pkg),
        };
        if json {
            cmd.arg("--json");
        }
        let o = cmd.arg(&img).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(0), "{err}");
        (String::from_utf8_lossy(&o.stdout).to_string(), err)
    };
    let name = names[class];
    for model in [Some(pkg.as_path()), Some(file.as_path()), None] {
        let (out, err) = classify(model, true);
        assert!(err.is_empty(), "{err}");
        let want = format!("\"class\":{class},\"label\":\"{name}\"");
        assert!(out.contains(&want), "{model:?}: {out}");
        let (out, _) = classify(model, false);
        let want = format!("a.pgm: class {class} ({name}) confidence ");
        assert!(out.contains(&want), "{model:?}: {out}");
    }
    for text in ["shirt\ntrouser\n", "shirt\ntrouser\nbag\nsandal\n"] {
        std::fs::write(&classes, text).unwrap();
        let (out, err) = classify(Some(&pkg), true);
        let k = text.lines().count();
        let want = format!("classes.txt has {k} names for 3 classes; showing class numbers");
        assert!(err.starts_with("warning: ") && err.contains(&want), "{err}");
        let want = format!("\"class\":{class},\"label\":\"{class}\"");
        assert!(out.contains(&want), "{out}");
        let (out, _) = classify(Some(&pkg), false);
        assert!(
            out.contains(&format!("a.pgm: class {class} confidence ")),
            "{out}"
        );
    }
}
