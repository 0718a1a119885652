//! End-to-end training on tiny synthetic data: learning happens (loss falls, accuracy well above
//! chance), runs are reproducible from the seed, checkpoints round-trip, `--resume` refuses a
//! checkpoint of another configuration, a non-finite loss stops training with a clear error, and
//! missing dataset files are named.

use std::path::PathBuf;
use tinv_train::config::{Hyper, ModelConfig};
use tinv_train::data::Dataset;
use tinv_train::rng::Rng;
use tinv_train::train::{self, RunOpts, TrainError};

fn cfg() -> ModelConfig {
    serde_json::from_value(serde_json::json!({
        "image_size": [8, 8], "channels": 1, "patch": 4, "dim": 16, "blocks": 2, "heads": 2,
        "mlp_hidden": 32, "classes": 4, "ln_eps": 1e-6, "gelu": "erf",
        "mean": [0.2], "std": [0.3], "depths": [1, 2]}))
    .unwrap()
}

/// Class k: a bright 4×4 square in quadrant k, plus noise.
fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed, 0);
    let mut images = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let k = rng.below(4);
        let (qy, qx) = (k / 2 * 4, k % 2 * 4);
        for y in 0..8 {
            for x in 0..8 {
                let inside = (qy..qy + 4).contains(&y) && (qx..qx + 4).contains(&x);
                let v = if inside { 150.0 } else { 20.0 } + rng.uniform() * 100.0;
                images.push(v as u8);
            }
        }
        labels.push(k as u8);
    }
    Dataset {
        c: 1,
        h: 8,
        w: 8,
        images,
        labels,
    }
}

fn hyper() -> Hyper {
    Hyper {
        epochs: 6,
        batch: 32,
        lr: 3e-3,
        warmup_steps: 5,
        shift: 1,
        val_count: 100,
        ..Hyper::default()
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinv-train-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join("ckpt.safetensors")
}

fn opts(out: &std::path::Path) -> RunOpts {
    RunOpts {
        out: out.to_path_buf(),
        resume: None,
        log_every: 0,
        ckpt_every: 0,
        stop_at: None,
    }
}

#[test]
fn learns_reproducibly_and_resume_checks_config() {
    let (tr, val) = (synthetic(320, 1), synthetic(100, 2));
    let out = tmp("learn");
    let (_, meta) = train::train_backbone(&cfg(), &hyper(), &tr, &val, &opts(&out)).unwrap();
    let first = &meta.history[0];
    let last = meta.history.last().unwrap();
    assert!(
        last.loss < 0.7 * first.loss,
        "loss {} -> {}",
        first.loss,
        last.loss
    );
    for acc in &last.val_acc {
        assert!(*acc > 0.6, "validation accuracy {acc} (chance is 0.25)");
    }
    // The checkpoint holds the configuration and round-trips into the same model.
    let loaded = tinv_train::report::load(&out).unwrap();
    assert_eq!(loaded.cfg, cfg());
    let vit = tinv_train::vit::Vit::from_host(&cfg(), &loaded.tensors).unwrap();
    let again = train::evaluate(&vit, &val, 50).unwrap();
    assert_eq!(&again, &last.val_acc);

    // Same seed, same result, bit for bit.
    let out2 = tmp("learn2");
    train::train_backbone(&cfg(), &hyper(), &tr, &val, &opts(&out2)).unwrap();
    let (a, _) = tinv_train::checkpoint::load(&out).unwrap();
    let (b, _) = tinv_train::checkpoint::load(&out2).unwrap();
    assert_eq!(a, b, "two runs with the same seed differ");
    // ... and folds to the same file, although the checkpoints record different wall-clock
    // times (the source hash covers what folding reads).
    let fold = |p: &std::path::Path| {
        let ck = tinv_fold::Checkpoint::open(p).unwrap();
        let opts = tinv_fold::FoldOptions::default();
        let spec = tinv_fold::ConfigSpec::default();
        tinv_fold::fold(&ck, None, spec, &opts, &mut |_| {})
            .unwrap()
            .1
            .to_bytes()
    };
    assert_eq!(
        fold(&out),
        fold(&out2),
        "the same training folds differently"
    );

    // Resuming with another configuration is refused, naming the field.
    let mut other = cfg();
    other.dim = 24;
    let o = RunOpts {
        resume: Some(out.clone()),
        ..opts(&tmp("resume"))
    };
    match train::train_backbone(&other, &hyper(), &tr, &val, &o) {
        Err(TrainError::Input(m)) => assert!(
            m.contains("config.model.dim: checkpoint 16, requested 24"),
            "{m}"
        ),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("resume with another dim accepted"),
    }
    let h = Hyper {
        lr: 1e-3,
        ..hyper()
    };
    match train::train_backbone(&cfg(), &h, &tr, &val, &o) {
        Err(TrainError::Input(m)) => assert!(m.contains("config.hyper.lr"), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("resume with another lr accepted"),
    }
}

#[test]
fn resume_continues_where_it_stopped() {
    let (tr, val) = (synthetic(160, 3), synthetic(100, 4));
    let h = Hyper {
        epochs: 2,
        ..hyper()
    };
    // Straight run, with periodic checkpoints that must not change anything.
    let straight = tmp("straight");
    let o = RunOpts {
        ckpt_every: 3,
        ..opts(&straight)
    };
    train::train_backbone(&cfg(), &h, &tr, &val, &o).unwrap();
    // Interrupted mid-epoch-2 (5 steps per epoch), then resumed in a second run.
    let part = tmp("part");
    let o = RunOpts {
        stop_at: Some(7),
        ..opts(&part)
    };
    train::train_backbone(&cfg(), &h, &tr, &val, &o).unwrap();
    let (_, m) = tinv_train::checkpoint::load(&part).unwrap();
    let meta = train::read_meta(&m, &part).unwrap();
    assert_eq!(
        (meta.epoch, meta.step_in_epoch, meta.global_step),
        (1, 2, 7)
    );
    let done = tmp("done");
    let o = RunOpts {
        resume: Some(part.clone()),
        ..opts(&done)
    };
    let (_, meta) = train::train_backbone(&cfg(), &h, &tr, &val, &o).unwrap();
    assert_eq!(meta.global_step, 10);
    let (a, ma) = tinv_train::checkpoint::load(&straight).unwrap();
    let (b, _) = tinv_train::checkpoint::load(&done).unwrap();
    assert_eq!(a, b, "stopping and resuming changed the result");
    // The interrupted epoch's metrics cover all its steps, not only those after the resume.
    let metrics = |m: &train::TrainMeta| -> Vec<(f64, f64, Vec<f64>)> {
        m.history
            .iter()
            .map(|e| (e.loss, e.train_acc, e.val_acc.clone()))
            .collect()
    };
    let whole = train::read_meta(&ma, &straight).unwrap();
    assert_eq!(metrics(&meta), metrics(&whole));
    assert!(meta.partial.is_none() && whole.partial.is_none());

    // An optimizer sidecar of another step (a run killed between writing the two files), with
    // no previous state to fall back on, is refused, naming both steps.
    let mixed = tmp("mixed");
    std::fs::copy(&part, &mixed).unwrap();
    std::fs::copy(
        tinv_train::checkpoint::optim_path(&straight),
        tinv_train::checkpoint::optim_path(&mixed),
    )
    .unwrap();
    let o = RunOpts {
        resume: Some(mixed.clone()),
        ..opts(&tmp("mixed-out"))
    };
    match train::train_backbone(&cfg(), &h, &tr, &val, &o) {
        Err(TrainError::Input(m)) => assert!(
            m.contains("no optimizer state of its own at global step 7")
                && m.contains("is from global step 10"),
            "{m}"
        ),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a mismatched optimizer state was accepted"),
    }
    // A run of several checkpoints keeps the state each sidecar replaced.
    assert!(tinv_train::checkpoint::optim_prev_path(&straight).is_file());
    // What such a run really leaves: the state the sidecar replaced, kept as
    // *.optim.prev.safetensors. The resume picks it by step and ends where the straight run did.
    std::fs::copy(
        tinv_train::checkpoint::optim_path(&part),
        tinv_train::checkpoint::optim_prev_path(&mixed),
    )
    .unwrap();
    let healed = tmp("healed");
    let o = RunOpts {
        resume: Some(mixed.clone()),
        ..opts(&healed)
    };
    train::train_backbone(&cfg(), &h, &tr, &val, &o).unwrap();
    assert_eq!(tinv_train::checkpoint::load(&healed).unwrap().0, a);

    // The epoch count and the shift augmentation may change on resume: a third epoch runs 5
    // more steps, and the new shift is what the checkpoint then records.
    let longer = tmp("longer");
    let o = RunOpts {
        resume: Some(part.clone()),
        ..opts(&longer)
    };
    let h3 = Hyper {
        epochs: 3,
        shift: h.shift + 1,
        ..h
    };
    let (_, meta) = train::train_backbone(&cfg(), &h3, &tr, &val, &o).unwrap();
    assert_eq!(
        (meta.global_step, meta.hyper.epochs, meta.hyper.shift),
        (15, 3, h.shift + 1)
    );
}

#[test]
fn non_finite_loss_stops_with_a_clear_error() {
    let (tr, val) = (synthetic(160, 5), synthetic(100, 6));
    let h = Hyper {
        lr: 1e30,
        warmup_steps: 1,
        epochs: 3,
        ..hyper()
    };
    let out = tmp("nan");
    match train::train_backbone(&cfg(), &h, &tr, &val, &opts(&out)) {
        Err(TrainError::NonFinite(m)) => {
            assert!(
                m.contains("loss became") && m.contains("training stopped"),
                "{m}"
            );
            if out.exists() {
                // Whatever was written before is a finite, loadable checkpoint.
                let (ts, _) = tinv_train::checkpoint::load(&out).unwrap();
                assert!(ts.iter().all(|t| t.data.iter().all(|v| v.is_finite())));
                // Written only after a step from its weights ran finite: always good.
                assert!(m.contains("last good checkpoint"), "{m}");
            }
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("lr 1e30 trained without a non-finite loss"),
    }
}

#[test]
fn missing_dataset_names_the_file_and_package() {
    let dir = tmp("nodata");
    let err = tinv_train::data::load(dir.parent().unwrap(), "train").unwrap_err();
    assert!(err.contains("train-images-idx3-ubyte"), "{err}");
    assert!(
        err.contains("apt-get install dataset-fashion-mnist"),
        "{err}"
    );
}

#[test]
fn a_resumed_checkpoint_from_before_the_validation_stamp_gains_it() {
    // A checkpoint whose data stamp has no `val_fingerprint` (written before it was recorded)
    // resumes, and the checkpoints of the resumed run record the stamp of the data it ran on.
    let (tr, val) = (synthetic(64, 3), synthetic(100, 4));
    let h = Hyper {
        epochs: 1,
        ..hyper()
    };
    let old = tmp("oldstamp");
    train::train_backbone(&cfg(), &h, &tr, &val, &opts(&old)).unwrap();
    let (ts, mut m) = tinv_train::checkpoint::load(&old).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_str(&m[tinv_train::checkpoint::TRAIN_KEY]).unwrap();
    meta["data"]
        .as_object_mut()
        .unwrap()
        .remove("val_fingerprint")
        .unwrap();
    m.insert(tinv_train::checkpoint::TRAIN_KEY.into(), meta.to_string());
    tinv_train::checkpoint::save(&old, &ts, &m).unwrap();
    let new = tmp("newstamp");
    let o = RunOpts {
        resume: Some(old.clone()),
        ..opts(&new)
    };
    let h2 = Hyper { epochs: 2, ..h };
    let (_, meta) = train::train_backbone(&cfg(), &h2, &tr, &val, &o).unwrap();
    assert_eq!(meta.data, Some(train::DataStamp::of(&tr, &val)));
    let (_, m) = tinv_train::checkpoint::load(&new).unwrap();
    let saved = train::read_meta(&m, &new).unwrap();
    assert_eq!(saved.data, Some(train::DataStamp::of(&tr, &val)));
}
