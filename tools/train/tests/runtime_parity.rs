//! The trainer and the runtime compute the same thing: a small model trained here, folded by
//! `tinv-fold` and run by the runtime's CPU backend gives the trainer's logits at every exit
//! (max |Δ| ≤ 1e-4), and the runtime's controller makes the trainer's decisions with the
//! trainer's FLOPs count, in `adaptive` and `graph` mode at several budgets.

use std::sync::Arc;
use tinv_train::config::{Hyper, ModelConfig};
use tinv_train::control::budget;
use tinv_train::control::nets::Controller;
use tinv_train::control::outcomes::Outcomes;
use tinv_train::control::ppo::PpoOpts;
use tinv_train::data::Dataset;
use tinv_train::rng::Rng;
use tinv_train::train::{self, RunOpts};

fn cfg() -> ModelConfig {
    serde_json::from_value(serde_json::json!({
        "image_size": [12, 12], "channels": 1, "patch": 4, "dim": 16, "blocks": 3, "heads": 2,
        "mlp_hidden": 32, "classes": 3, "ln_eps": 1e-6, "gelu": "erf",
        "mean": [0.3], "std": [0.3], "depths": [1, 2, 3]}))
    .unwrap()
}

/// Class k: a bright bar in row band k, with noise (some inputs ambiguous on purpose).
fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed, 0);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let k = rng.below(3);
        let strength = 40.0 + 120.0 * rng.uniform();
        for y in 0..12 {
            for _ in 0..12 {
                let v = if y / 4 == k { strength } else { 30.0 } + rng.uniform() * 90.0;
                images.push(v as u8);
            }
        }
        labels.push(k as u8);
    }
    Dataset {
        c: 1,
        h: 12,
        w: 12,
        images,
        labels,
    }
}

#[test]
fn folded_runtime_matches_the_trainer() {
    let dir = std::env::temp_dir().join(format!("tinv-train-parity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (tr, val) = (synthetic(192, 1), synthetic(120, 2));
    let h = Hyper {
        epochs: 2,
        batch: 32,
        lr: 3e-3,
        warmup_steps: 3,
        distill_ramp: 6,
        val_count: 120,
        ..Hyper::default()
    };
    let backbone = dir.join("backbone.safetensors");
    let o = RunOpts {
        out: backbone.clone(),
        resume: None,
        log_every: 0,
        ckpt_every: 0,
        stop_at: None,
    };
    train::train_backbone(&cfg(), &h, &tr, &val, &o).unwrap();
    let loaded = tinv_train::report::load(&backbone).unwrap();
    let opts = PpoOpts {
        pred_epochs: 3,
        iters: 8,
        episodes: 512,
        minibatch: 256,
        ..PpoOpts::default()
    };
    let full = dir.join("full.safetensors");
    tinv_train::report::controller_stage(&loaded, &val, Some(&tr), &opts, 0.002, &full).unwrap();

    // Fold and open in the runtime.
    let ck = tinv_fold::Checkpoint::open(&full).unwrap();
    let (_, writer) = tinv_fold::fold(
        &ck,
        None,
        tinv_fold::ConfigSpec::default(),
        &tinv_fold::FoldOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let model = Arc::new(
        tinv::Model::from_bytes(&writer.to_bytes(), &tinv::OpenOptions::default()).unwrap(),
    );
    let n = val.len();
    let mut s = tinv::Session::new(
        Arc::clone(&model),
        tinv::SessionOptions::default().max_batch(n),
    )
    .unwrap();

    // Every exit's logits.
    let vit = tinv_train::report::load_vit(&full).unwrap();
    let input: Vec<f32> = (0..n).flat_map(|i| val.image_f32(i)).collect();
    let ours = vit.logits_all_paths(&input, 64).unwrap();
    let (p, k) = (3, 3);
    let mut theirs = vec![0f32; n * p * k];
    s.infer_all_exits(&input, n, &mut theirs).unwrap();
    let mut worst = 0f32;
    for i in 0..n {
        for j in 0..p {
            for c in 0..k {
                worst = worst.max((ours[j][i * k + c] - theirs[(i * p + j) * k + c]).abs());
            }
        }
    }
    assert!(worst <= 1e-4, "max |Δlogit| {worst}");

    // Controller decisions and FLOPs.
    let l = tinv_train::report::load(&full).unwrap();
    let ctrl = Controller::from_tensors(&l.tensors, p).unwrap();
    let mut c0 = cfg();
    c0.controller = None;
    let out = Outcomes::collect(&vit, &val, 64).unwrap();
    let mut logits = vec![0f32; n * k];
    for (mode, levels) in [(tinv::Mode::Adaptive, 2u8), (tinv::Mode::Graph, 1)] {
        s.set_mode(mode).unwrap();
        for lam in [0.0f32, 0.05, 0.3, 1.0] {
            s.set_budget(lam).unwrap();
            let stats = s.infer(&input, n, &mut logits).unwrap().to_vec();
            let fl = budget::ctrl_flops(&c0, &ctrl, levels);
            let ours = budget::evaluate(&ctrl, &out, lam, levels, fl);
            let mean = stats.iter().map(|st| st.flops as f64).sum::<f64>() / n as f64;
            let right = stats
                .iter()
                .enumerate()
                .filter(|(i, st)| st.class == usize::from(val.labels[*i]))
                .count();
            assert_eq!(
                right as f64 / n as f64,
                ours.accuracy,
                "{mode:?} λ {lam}: accuracy"
            );
            assert!(
                (mean - ours.mean_flops).abs() < 1e-6 * mean,
                "{mode:?} λ {lam}: FLOPs {mean} vs {}",
                ours.mean_flops
            );
            for (j, share) in ours.histogram.iter().enumerate() {
                let cnt = stats.iter().filter(|st| st.path == j).count();
                assert_eq!(
                    cnt as f64 / n as f64,
                    *share,
                    "{mode:?} λ {lam}: share of path {j}"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
