//! `tinv-run export-onnx` on a synthetic model: it writes every path and the weight blob,
//! `--batch` fixes the batch dimension, and an export that fails half-way removes what it wrote.

#[path = "common/cli.rs"]
#[allow(dead_code)] // `field` is for the JSON reports of cli_eval.rs and cli_sweep.rs
mod cli_support;
#[path = "common/cli_fixtures.rs"]
mod fixtures;

use cli_support::{assert_failed_with, assert_one_line_error, run, tmp};
use fixtures::{fixture, one_path_model};
use std::path::Path;

/// An export that fails half-way (here a folder stands where the last graph goes) leaves none of
/// its files behind: the graphs written before the failure loaded as a whole export.
#[test]
fn a_failed_export_removes_what_it_wrote() {
    let dir = tmp("export-fail");
    let (model_path, cfg) = fixture(&dir);
    let last = cfg.depths.last().unwrap();
    // A folder where the last graph goes, and a FIFO there (the write blocked forever on it).
    for fifo in [false, true] {
        let out = dir.join(format!("onnx-{fifo}"));
        let taken = out.join(format!("path.{last}.onnx"));
        if fifo {
            std::fs::create_dir_all(&out).unwrap();
            let made = std::process::Command::new("mkfifo").arg(&taken).status();
            if !made.is_ok_and(|s| s.success()) {
                continue;
            }
        } else {
            std::fs::create_dir_all(&taken).unwrap();
        }
        let (code, stdout, err) = run(&[
            "export-onnx",
            "--model",
            model_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_failed_with(code, &err, &format!("path.{last}.onnx"), &stdout);
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, [format!("path.{last}.onnx")], "{err}");
    }
}

/// `--batch N` fixes the graphs' batch dimension: the files are the library's export with
/// `ExportOptions::batch` = N, where the default export's dimension is symbolic; 0 is refused.
#[test]
fn export_onnx_batch_fixes_the_batch_dimension() {
    let dir = tmp("export-batch");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    let model = tinv::Model::open(&model_path, &tinv::OpenOptions::default()).unwrap();
    for (batch, args) in [(Some(1), &["--batch", "1"][..]), (None, &[][..])] {
        let out = dir.join(format!("onnx-{batch:?}"));
        let mut cmd = vec!["export-onnx", "--model", m, "--out", out.to_str().unwrap()];
        cmd.extend(args);
        let (code, _, err) = run(&cmd);
        assert_eq!(code, 0, "{err}");
        let opts = tinv::onnx::ExportOptions {
            batch,
            ..Default::default()
        };
        for g in tinv::onnx::export_graphs(&model, &opts).unwrap() {
            assert_eq!(std::fs::read(out.join(&g.file_name)).unwrap(), g.bytes);
            assert_eq!(g.inputs[0].dims[0], batch, "{}", g.file_name);
        }
    }
    let out = dir.join("onnx-0");
    assert_one_line_error(
        &[
            "export-onnx",
            "--model",
            m,
            "--out",
            out.to_str().unwrap(),
            "--batch",
            "0",
        ],
        "--batch must be at least 1",
    );
}

#[test]
fn export_onnx_writes_every_path_and_the_weight_blob() {
    let dir = tmp("export");
    let (model_path, cfg) = fixture(&dir);
    let out = dir.join("onnx");
    let export = |model: &Path| {
        run(&[
            "export-onnx",
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (code, stdout, err) = export(&model_path);
    assert_eq!(code, 0, "{err}");
    for d in &cfg.depths {
        assert!(out.join(format!("path.{d}.onnx")).is_file(), "{stdout}");
    }
    assert!(out.join("weights.f16.bin").is_file() && out.join("weights.tsv").is_file());
    assert!(out.join("controller.onnx").is_file());
    assert!(!err.contains("warning"), "{err}");
    // `inspect` names the model hash the graphs carry (tinv.model_hash), written alike.
    let (code, json, err) = run(&["inspect", "--model", model_path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let hash = json
        .split("\"model_hash\":\"")
        .nth(1)
        .and_then(|r| r.get(..18))
        .unwrap_or_else(|| panic!("no model_hash in {json}"));
    let graph = std::fs::read(out.join(format!("path.{}.onnx", cfg.depths[0]))).unwrap();
    assert!(
        hash.starts_with("0x") && graph.windows(18).any(|w| w == hash.as_bytes()),
        "tinv.model_hash {hash} not in the graph"
    );
    // Exporting a one-path model into the same folder is refused: the other paths' graphs and
    // the controller would stay beside its own, and load as one export.
    let (code, _, err) = export(&one_path_model(&dir));
    assert_failed_with(
        code,
        &err,
        "holds files of another export (controller.graph.onnx, controller.onnx, path.1.onnx)",
        &"a second export",
    );
    // An empty value is refused (`--out ""` wrote into the current folder), in either form.
    let m = model_path.to_str().unwrap();
    for args in [
        &["export-onnx", "--model", m, "--out", ""][..],
        &["export-onnx", "--model", m, "--out="],
    ] {
        assert_one_line_error(args, "--out needs a value, not an empty string");
    }
    assert_one_line_error(
        &[
            "export-onnx",
            "--model",
            model_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--layout",
            "x",
        ],
        "--layout x",
    );
}
