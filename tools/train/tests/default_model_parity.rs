//! The shipped default model (engines/fmnist): the trainer's forward on its checkpoint and the
//! runtime's CPU backend on its folded `model.tinv` agree on all 10,000 Fashion-MNIST test
//! images, at every exit: max |Δlogit| ≤ 1e-4, and the same prediction everywhere except genuine
//! near-ties (the trainer's top two logits within 1e-4). Needs the Debian package
//! `dataset-fashion-mnist` (scripts/setup.sh installs it); prints SKIP without it.

use std::path::Path;
use std::sync::Arc;

#[test]
fn default_model_trainer_and_runtime_agree_on_the_test_set() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../engines/fmnist");
    let data = Path::new("/usr/share/datasets/fashion-mnist");
    let test = match tinv_train::data::load(data, "t10k") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("SKIP default_model_parity: {e}");
            return;
        }
    };
    let vit = tinv_train::report::load_vit(&root.join("checkpoint.safetensors")).unwrap();
    let model = Arc::new(
        tinv::Model::open(
            root.join("model.tinv"),
            &tinv::OpenOptions::default().verify(true),
        )
        .unwrap(),
    );
    let (p, k) = (model.config().depths.len(), model.config().classes);
    let chunk = 500;
    let mut s = tinv::Session::new(
        Arc::clone(&model),
        tinv::SessionOptions::default().max_batch(chunk),
    )
    .unwrap();
    let (mut worst, mut ties, mut differ) = (0f32, 0usize, Vec::new());
    let mut theirs = vec![0f32; chunk * p * k];
    for start in (0..test.len()).step_by(chunk) {
        let n = chunk.min(test.len() - start);
        let input: Vec<f32> = (start..start + n).flat_map(|i| test.image_f32(i)).collect();
        let ours = vit.logits_all_paths(&input, 250).unwrap();
        s.infer_all_exits(&input, n, &mut theirs[..n * p * k])
            .unwrap();
        for i in 0..n {
            for (j, exit) in ours.iter().enumerate() {
                let a = &exit[i * k..(i + 1) * k];
                let b = &theirs[(i * p + j) * k..(i * p + j + 1) * k];
                for (x, y) in a.iter().zip(b) {
                    worst = worst.max((x - y).abs());
                }
                if tinv::control::argmax(a) != tinv::control::argmax(b) {
                    let mut sorted = a.to_vec();
                    sorted.sort_by(|x, y| y.total_cmp(x));
                    if sorted[0] - sorted[1] < 1e-4 {
                        ties += 1;
                    } else {
                        differ.push((start + i, j));
                    }
                }
            }
        }
    }
    eprintln!(
        "default model, {} test images × {p} exits: max |Δlogit| {worst:.2e}, {ties} near-tie(s)",
        test.len()
    );
    assert!(worst <= 1e-4, "max |Δlogit| {worst}");
    assert!(
        differ.is_empty(),
        "predictions differ at (image, exit) {differ:?}"
    );
}
