//! tools/bench/fp16_accuracy.py reads the images as tinv does and runs the graphs it names:
//! on a synthetic Fashion-MNIST-shaped model, its f32 predictions per path are tinv's own
//! (`Session::infer_depth`), its FP16 ones too wherever the top two logits are not near a tie,
//! and its table has one row per path. Needs a venv with onnxruntime (`$TINV_VENV`, else
//! `.venv` at the repo root); prints SKIP without one.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use tinv::onnx::{write_export, ExportOptions};
use tinv::{Model, OpenOptions, Session, SessionOptions};

mod common;

/// The integers of the JSON list that follows `key` in `json` (the script's own flat format).
fn list_after(json: &str, key: &str) -> Vec<usize> {
    let start = json.find(key).unwrap_or_else(|| panic!("{key} in {json}")) + key.len();
    let body = &json[start..];
    let open = body.find('[').unwrap() + 1;
    let close = body.find(']').unwrap();
    body[open..close]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect()
}

#[test]
fn fp16_accuracy_script_agrees_with_tinv_on_every_path() {
    let Some(venv) = common::venv() else {
        eprintln!("SKIP: no venv with onnxruntime");
        return;
    };
    let dir = std::env::temp_dir().join(format!("tinv-fp16-acc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let [model_path, images, labels] = common::fmnist_case(&dir, false);
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let (fp16, baked) = (dir.join("fp16"), dir.join("baked"));
    write_export(&model, &ExportOptions::default(), &fp16).unwrap();
    write_export(&model, &ExportOptions::baked(), &baked).unwrap();
    let predictions = dir.join("predictions.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fp16_accuracy.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg("--fp16")
        .arg(&fp16)
        .arg("--baked")
        .arg(&baked)
        .arg("--images")
        .arg(&images)
        .arg("--labels")
        .arg(&labels)
        .arg("--predictions")
        .arg(&predictions)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_to_string(&predictions).unwrap();

    let idx = tinv::idx::parse(&std::fs::read(&images).unwrap()).unwrap();
    let n = idx.dims[0];
    let pixels: Vec<f32> = idx.data.iter().map(|&p| f32::from(p) / 255.0).collect();
    let mut session = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let classes = model.config().classes;
    let (mut compared, mut fp16_compared) = (0, 0);
    for &depth in &model.config().depths {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {depth} | ")))
            .unwrap_or_else(|| panic!("a row for depth {depth}:\n{stdout}"));
        // The FP16 graphs ran: their logits are not the f32 ones.
        let median: f64 = row
            .split('|')
            .nth(5)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(median > 0.0, "{row}");
        let section = &json[json.find(&format!("\"{depth}\": ")).unwrap()..];
        let (f32_pred, fp16_pred) = (
            list_after(section, "\"f32\": "),
            list_after(section, "\"fp16\": "),
        );
        assert_eq!((f32_pred.len(), fp16_pred.len()), (n, n));
        let mut logits = vec![0f32; n * classes];
        for (x, y) in pixels
            .chunks(pixels.len() / n)
            .zip(logits.chunks_mut(classes))
        {
            session.infer_depth(x, 1, depth, y).unwrap();
        }
        for (i, row) in logits.chunks(classes).enumerate() {
            let mut sorted = row.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let top = (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            let (margin, scale) = (
                sorted[0] - sorted[1],
                sorted[0].abs().max(sorted[classes - 1].abs()),
            );
            if margin > 1e-4 * scale {
                assert_eq!(
                    f32_pred[i], top,
                    "depth {depth}, image {i}: f32 graph vs tinv"
                );
                compared += 1;
            }
            // FP16 moves a logit by at most a few 1e-3 of the largest (tests/onnx_parity.rs).
            if margin > 2e-2 * scale {
                assert_eq!(
                    fp16_pred[i], top,
                    "depth {depth}, image {i}: FP16 graph vs tinv"
                );
                fp16_compared += 1;
            }
        }
    }
    let paths = model.config().depths.len();
    assert!(
        compared >= paths * n * 9 / 10,
        "{compared} f32 predictions compared"
    );
    assert!(
        fp16_compared >= paths * n / 2,
        "{fp16_compared} FP16 predictions compared"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
