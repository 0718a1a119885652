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
    let _ = std::fs::remove_dir_all(&d);
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
    // Its clocks: the run's seconds so far cover the first epoch and the two steps of the
    // second, which its partial sums time (read a moment after the run's: 0.1 ms of slack).
    let partial = meta.partial.as_ref().unwrap();
    assert!(partial.seconds > 0.0 && meta.history[0].seconds > 0.0);
    assert!(meta.seconds + 1e-4 >= meta.history[0].seconds + partial.seconds);
    // A stop at an epoch's last step ends the epoch first: validated, recorded, no partial sums.
    let at_end = tmp("at-end");
    let o = RunOpts {
        stop_at: Some(5),
        ..opts(&at_end)
    };
    let (_, m5) = train::train_backbone(&cfg(), &h, &tr, &val, &o).unwrap();
    assert_eq!(
        (m5.epoch, m5.step_in_epoch, m5.global_step, m5.history.len()),
        (1, 0, 5, 1)
    );
    assert!(m5.partial.is_none());
    let (_, m) = tinv_train::checkpoint::load(&at_end).unwrap();
    assert_eq!(train::read_meta(&m, &at_end).unwrap().epoch, 1);
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
    // A run of several checkpoints keeps the state each sidecar replaced: the straight run's
    // last write before its end was step 9's (--ckpt-every 3: steps 3, 6, 9 mid-epoch, and the
    // end of epoch 1 at step 5), written once step 10 had run finite.
    let (_, prev) =
        tinv_train::checkpoint::load(&tinv_train::checkpoint::optim_prev_path(&straight)).unwrap();
    assert_eq!(prev[tinv_train::snapshot::OPTIM_STEP_KEY], "9");
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

/// Training refuses fewer training images than one batch (with none left for a step it
/// "trained" epochs of nothing), and takes exactly one batch's worth: one step an epoch.
#[test]
fn one_batch_of_images_is_the_least_that_trains() {
    let val = synthetic(100, 8);
    let h = Hyper {
        epochs: 2,
        ..hyper()
    };
    let out = tmp("onebatch");
    let few = synthetic(h.batch - 1, 7);
    match train::train_backbone(&cfg(), &h, &few, &val, &opts(&out)) {
        Err(TrainError::Input(m)) => {
            assert_eq!(m, "31 training images, fewer than one batch of 32")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("31 images trained in batches of 32"),
    }
    assert!(!out.exists());
    let one = synthetic(h.batch, 7);
    let (_, meta) = train::train_backbone(&cfg(), &h, &one, &val, &opts(&out)).unwrap();
    assert_eq!(
        (meta.epoch, meta.global_step, meta.history.len()),
        (2, 2, 2)
    );
}

/// The parameter bound is 2^30 and includes 2^30 itself. One block of dim D (one head) over 8×8
/// images in patches of 4, mlp-hidden M and K classes has, by hand: patch embedding 16D + D,
/// class token D, positions 5D; the block's two LayerNorms 4D, qkv 3D² + 3D, proj D² + D, fc1
/// MD + M, fc2 DM + D; the final LayerNorm 2D and head KD + K: 25D + 4D² + 9D + (2D + 1)M +
/// (D + 1)K. At D = 1023, M = 994, K = 1 042 467 that is 25 575 + 4 186 116 + 9 207 +
/// 2 034 718 + 1 067 486 208 = 2^30: such a model passes the bound and fails only at the
/// (missing) file it resumes from, which spares allocating it; one class more (2^30 + 1024) is
/// refused.
#[test]
fn the_parameter_bound_admits_exactly_two_to_the_thirty() {
    let (tr, val) = (synthetic(64, 1), synthetic(8, 2));
    let o = RunOpts {
        resume: Some(tmp("bound").with_file_name("absent.safetensors")),
        ..opts(&tmp("bound"))
    };
    for (classes, count, refused) in [
        (1_042_467usize, 1usize << 30, false),
        (1_042_468, (1 << 30) + 1024, true),
    ] {
        let mut c = cfg();
        (c.dim, c.heads, c.blocks, c.depths) = (1023, 1, 1, vec![1]);
        (c.mlp_hidden, c.classes) = (994, classes);
        let specs: usize = tinv_train::tensors::backbone_specs(&c)
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        assert_eq!(specs, count);
        let err = match train::train_backbone(&c, &hyper(), &tr, &val, &o) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("resumed from a file that does not exist"),
        };
        assert_eq!(
            err.contains(&format!("the model has {count} parameters")),
            refused,
            "{classes}: {err}"
        );
        if !refused {
            assert!(err.contains("absent.safetensors"), "{err}");
        }
    }
}

/// `train_backbone` is the loop its parts describe, run again here from them: weights from the
/// seed's stream 0 (`init_backbone`); epoch e visits the images in the order of the seed's
/// stream 1000 + e (`permutation`), step s taking places s·B .. (s + 1)·B of it (the last
/// n mod B images left out) and shifting them with stream 2^40 + e·2^20 + s; the loss of
/// `multi_exit` with the distillation ramp of the global step; the gradient scaled to norm at
/// most `clip`; AdamW at `lr_at` of the global step, over steps × epochs. The weights must
/// agree bit for bit (the shipped model's training reproduces only so), and each epoch's
/// metrics must be the mean step loss, the deepest exit's right answers on its (augmented)
/// training batches, and the validation accuracy of the weights at the epoch's end.
#[test]
fn training_is_its_seeded_loop_of_documented_parts() {
    use tinv_train::data;
    use tinv_train::loss::{distill_factor, multi_exit};
    use tinv_train::optim::{lr_at, AdamW};
    use tinv_train::vit::{batch_tensor, Vit};
    let (tr, val) = (synthetic(50, 9), synthetic(20, 10));
    let c = cfg();
    let h = Hyper {
        epochs: 2,
        batch: 16,
        lr: 3e-3,
        min_lr: 1e-4,
        warmup_steps: 2,
        clip: 0.05,
        distill_ramp: 3,
        shift: 1,
        seed: 7,
        ..hyper()
    };
    let out = tmp("reference");
    let (vit, meta) = train::train_backbone(&c, &h, &tr, &val, &opts(&out)).unwrap();

    let init = tinv_train::tensors::init_backbone(&c, &mut Rng::new(7, 0));
    let r = Vit::from_host(&c, &init).unwrap();
    let mut opt = AdamW::new(r.vars()).unwrap();
    let (steps, total) = (3, 6); // 50 images in batches of 16, 2 epochs
    let (mut g, mut clipped) = (0, 0);
    for e in 0..2u64 {
        let perm = Rng::new(7, 1000 + e).permutation(50);
        let (mut loss_sum, mut right) = (0f64, 0usize);
        for s in 0..steps {
            let mut aug = Rng::new(7, (1 << 40) + (e << 20) + s as u64);
            let b = data::batch(&tr, &perm[16 * s..16 * (s + 1)], &c, 1, Some(&mut aug));
            let (x, y) = batch_tensor(&b, &c).unwrap();
            let outs = r.forward(&x).unwrap();
            let loss = multi_exit(&outs, &y, &h, distill_factor(&h, g)).unwrap();
            loss_sum += f64::from(loss.total.to_scalar::<f32>().unwrap());
            let logits = outs.last().unwrap().logits.to_vec2::<f32>().unwrap();
            for (row, &label) in logits.iter().zip(&b.labels) {
                let best = (0..row.len()).fold(0, |a, k| if row[k] > row[a] { k } else { a });
                right += usize::from(best == label as usize);
            }
            let grads = loss.total.backward().unwrap();
            let norm = AdamW::grad_norm(r.vars(), &grads).unwrap();
            clipped += usize::from(norm > 0.05);
            let lr = lr_at(g, total, 2, 3e-3, 1e-4);
            opt.update(r.vars(), &grads, lr, h.weight_decay, (0.05 / norm).min(1.0))
                .unwrap();
            g += 1;
        }
        let m = &meta.history[e as usize];
        assert_eq!(m.epoch, e as usize + 1);
        assert_eq!(m.loss, loss_sum / 3.0, "epoch {e}'s mean loss");
        assert_eq!(
            m.train_acc,
            right as f64 / 48.0,
            "epoch {e}'s training accuracy"
        );
        // Evaluated in chunks of another size: the same right answers.
        assert_eq!(
            m.val_acc,
            train::evaluate(&r, &val, 7).unwrap(),
            "epoch {e}"
        );
    }
    assert!(
        clipped > 0,
        "no step was clipped: the test does not reach the clip"
    );
    assert_eq!(
        (meta.epoch, meta.step_in_epoch, meta.global_step),
        (2, 0, 6)
    );
    assert_eq!(meta.history.len(), 2);
    // Wall-clock time: each epoch's, and the run's covering both.
    assert!(meta.history.iter().all(|m| m.seconds > 0.0));
    assert!(meta.seconds >= meta.history[0].seconds + meta.history[1].seconds);
    assert_eq!(vit.to_host().unwrap(), r.to_host().unwrap());
    let (mut saved, _) = tinv_train::checkpoint::load(&out).unwrap();
    let mut want = r.to_host().unwrap();
    saved.sort_by(|a, b| a.name.cmp(&b.name));
    want.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(saved, want);
}

/// The controller stage chooses the default budget by 5-fold cross-validation on the validation
/// split: with 12 inputs the folds are inputs 0..2, 2..4, 4..7, 7..9 and 9..12 (fold f is
/// ⌊12f/5⌋ .. ⌊12(f + 1)/5⌋), each scored in `adaptive` mode by a controller trained on the
/// other four without a graph policy, the points pooled by fold size. Every input is held out
/// exactly once, so each pooled accuracy is a whole number of the 12 inputs. The report's rows,
/// its default budget and the checkpoint's are those of this pooling; the controller written is
/// the one trained on all 12.
#[test]
fn the_default_budget_is_cross_validated_over_five_folds() {
    use tinv_train::control::budget;
    use tinv_train::control::outcomes::Outcomes;
    use tinv_train::control::ppo::{self, PpoOpts};
    let (tr, val) = (synthetic(160, 11), synthetic(12, 12));
    let h = Hyper {
        epochs: 2,
        ..hyper()
    };
    let backbone = tmp("cv");
    train::train_backbone(&cfg(), &h, &tr, &val, &opts(&backbone)).unwrap();
    let loaded = tinv_train::report::load(&backbone).unwrap();
    let opts = PpoOpts {
        hp: 4,
        hq: 4,
        hr: 4,
        pred_epochs: 2,
        iters: 1,
        episodes: 16,
        minibatch: 16,
        warm_steps: 10,
        ..PpoOpts::default()
    };
    let out = backbone.with_file_name("full.safetensors");
    let tol = 0.05;
    let report =
        tinv_train::report::controller_stage(&loaded, &val, None, &opts, tol, &out).unwrap();

    let vit = tinv_train::report::load_vit(&backbone).unwrap();
    let all = Outcomes::collect(&vit, &val, 5).unwrap();
    let probe_opts = PpoOpts {
        graph: false,
        ..opts.clone()
    };
    let (mut parts, mut sizes) = (Vec::new(), Vec::new());
    for fold in [0..2, 2..4, 4..7, 7..9, 9..12] {
        let probe = ppo::train(&all.without(fold.clone()), None, &probe_opts).unwrap();
        let flops = budget::ctrl_flops(&cfg(), &probe, 2);
        parts.push(budget::sweep(&probe, &all.subset(fold.clone()), 2, flops));
        sizes.push(fold.len());
    }
    let pooled = budget::pool(&parts, &sizes);
    let rows: Vec<Vec<&str>> = report
        .lines()
        .skip_while(|l| !l.starts_with("|---"))
        .skip(1)
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), pooled.len(), "{report}");
    let full = all.path_accuracy()[1];
    for (row, pt) in rows.iter().zip(&pooled) {
        assert_eq!(row[0].parse::<f32>().unwrap(), pt.lambda, "{report}");
        let acc: f64 = row[1].parse().unwrap();
        assert!((acc - 100.0 * pt.accuracy).abs() < 0.006, "{report}");
        let whole = pt.accuracy * 12.0;
        assert!((whole - whole.round()).abs() < 1e-9, "{}", pt.accuracy);
        let share: f64 = row[2].parse().unwrap();
        let want = 100.0 * pt.mean_flops / all.full_flops() as f64;
        assert!((share - want).abs() < 0.06, "{report}");
    }
    let (lam, _) = budget::choose_from(&pooled, full, tol);
    assert!(
        report.contains(&format!("default budget λ = {lam}: ")),
        "{report}"
    );
    let saved = tinv_train::report::load(&out).unwrap();
    assert_eq!(saved.cfg.controller.unwrap().default_budget as f32, lam);
    // The controller that ships: trained on all 12 (with its graph policy).
    let ctrl = ppo::train(&all, None, &opts).unwrap().to_tensors();
    for t in &ctrl {
        assert_eq!(saved.tensors.iter().find(|s| s.name == t.name), Some(t));
    }
}
