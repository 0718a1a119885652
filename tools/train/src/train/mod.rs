//! The backbone's training loop: seeded shuffling and augmentation, AdamW with warm-up + cosine,
//! gradient clipping, progress lines with ETA, per-epoch validation at every exit, periodic atomic
//! checkpoints, `--resume` (refusing a checkpoint made with another configuration), and a hard
//! stop on a non-finite loss that leaves the last good checkpoint untouched.

mod state;

pub use state::{read_meta, DataStamp, EpochMetrics, EpochSums, TrainMeta};

use crate::checkpoint;
use crate::config::{first_difference, Hyper, ModelConfig};
use crate::data::{self, Dataset};
use crate::optim::{lr_at, AdamW};
use crate::rng::Rng;
use crate::snapshot::{Pending, Snapshot, OPTIM_MODEL_KEY, OPTIM_STEP_KEY};
use crate::tensors::init_backbone;
use crate::vit::{batch_tensor, Vit};
use candle_core::D;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Run options that do not change the result.
#[derive(Clone, Debug)]
pub struct RunOpts {
    /// Checkpoint path (final and periodic).
    pub out: PathBuf,
    /// Checkpoint to resume from.
    pub resume: Option<PathBuf>,
    /// Progress line every this many steps (0 = never).
    pub log_every: usize,
    /// Checkpoint every this many steps (besides each epoch's end; 0 = epoch ends only).
    pub ckpt_every: usize,
    /// Stop (with a checkpoint) once this many optimizer steps have been taken in total, to be
    /// continued later with `resume` (`None` = run to the end).
    pub stop_at: Option<usize>,
}

/// Why training stopped early.
#[derive(Debug)]
pub enum TrainError {
    /// Bad input or I/O; the message says which.
    Input(String),
    /// The loss became NaN or infinite; the message names the step and the last good checkpoint.
    NonFinite(String),
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Input(m) | TrainError::NonFinite(m) => f.write_str(m),
        }
    }
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> TrainError {
        TrainError::Input(format!("candle: {e}"))
    }
}

impl From<String> for TrainError {
    fn from(e: String) -> TrainError {
        TrainError::Input(e)
    }
}

/// Accuracy of every path on `ds` (no augmentation).
pub fn evaluate(vit: &Vit, ds: &Dataset, chunk: usize) -> Result<Vec<f64>, TrainError> {
    let p = vit.cfg.depths.len();
    let mut right = vec![0usize; p];
    let idx: Vec<usize> = (0..ds.len()).collect();
    for part in idx.chunks(chunk.max(1)) {
        let b = data::batch(ds, part, &vit.cfg, 0, None);
        let (x, y) = batch_tensor(&b, &vit.cfg)?;
        for (k, o) in vit.forward(&x)?.iter().enumerate() {
            let logits = o.logits.detach();
            // A NaN or infinite logit anywhere makes the sum non-finite: an accuracy from such
            // logits is noise, not a measurement.
            let sum = logits.sum_all()?.to_scalar::<f32>()?;
            if !sum.is_finite() {
                return Err(TrainError::NonFinite(format!(
                    "exit {} gives non-finite logits on the validation images (sum {sum})",
                    vit.cfg.depths.get(k).copied().unwrap_or(0)
                )));
            }
            let pred = logits.argmax(D::Minus1)?;
            right[k] += pred
                .eq(&y)?
                .to_dtype(candle_core::DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()? as usize;
        }
    }
    Ok(right
        .iter()
        .map(|&r| r as f64 / ds.len().max(1) as f64)
        .collect())
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn stopped(out: &Path, meta: &TrainMeta) {
    crate::errln!(
        "tinv-train: stopped after global step {} (--stop-at) with checkpoint {}; continue with --resume {}",
        meta.global_step,
        out.display(),
        out.display()
    );
}

/// Most backbone parameters `fit` takes (2^30 f32: 4 GiB of weights).
const MAX_PARAMS: usize = 1 << 30;

/// Trains the backbone for `h.epochs` epochs (or the rest of them, when resuming).
pub fn train_backbone(
    cfg: &ModelConfig,
    h: &Hyper,
    train: &Dataset,
    val: &Dataset,
    opts: &RunOpts,
) -> Result<(Vit, TrainMeta), TrainError> {
    cfg.to_runtime()?;
    h.validate()?;
    data::check(train, cfg)?;
    data::check(val, cfg)?;
    if train.len() < h.batch || h.batch == 0 {
        return Err(TrainError::Input(format!(
            "{} training images, fewer than one batch of {}",
            train.len(),
            h.batch
        )));
    }
    let mut backbone_cfg = cfg.clone();
    backbone_cfg.controller = None;
    // Weights, gradients and Adam's two moments are all held: a model beyond this bound (4 GiB
    // of weights, 16 GiB in all, before activations) aborted allocating instead of saying so.
    let params: usize = crate::tensors::backbone_specs(&backbone_cfg)
        .iter()
        .map(|s| s.shape.iter().product::<usize>())
        .fold(0usize, usize::saturating_add);
    if params > MAX_PARAMS {
        return Err(TrainError::Input(format!(
            "the model has {params} parameters; this CPU trainer takes at most {MAX_PARAMS} \
             (--dim, --mlp-hidden, --blocks)"
        )));
    }
    let (vit, mut opt, mut meta) = match &opts.resume {
        Some(path) => {
            let (ts, m) = checkpoint::load(path)?;
            let meta = read_meta(&m, path)?;
            // Training changes the backbone the controller was fitted to: it is not carried on.
            if ts.iter().any(|t| t.name.starts_with("ctrl.")) {
                crate::errln!(
                    "tinv-train: warning: {} has a controller; the checkpoints of this run will \
                     not (run `tinv-train controller` on the result)",
                    path.display()
                );
            }
            // The epoch count and the shift augmentation may change on resume (lengthen a run,
            // or add augmentation once the model starts to overfit): the learning-rate schedule
            // then follows the new total from the current step on. Everything else must match.
            let planned = Hyper {
                epochs: h.epochs,
                shift: h.shift,
                ..meta.hyper.clone()
            };
            let saved = serde_json::json!({"model": meta.model, "hyper": planned});
            let want = serde_json::json!({"model": backbone_cfg, "hyper": h});
            if let Some(d) = first_difference("config", &saved, &want) {
                return Err(TrainError::Input(format!(
                    "{} was trained with another configuration ({d}); refusing to resume",
                    path.display()
                )));
            }
            let here = DataStamp::of(train, val);
            here.check(meta.data.as_ref(), path, "refusing to resume")
                .map_err(TrainError::Input)?;
            if let Some(stop) = opts.stop_at.filter(|&s| s <= meta.global_step) {
                return Err(TrainError::Input(format!(
                    "--stop-at {stop}: {} is already at global step {}",
                    path.display(),
                    meta.global_step
                )));
            }
            if meta.hyper.epochs != h.epochs {
                crate::errln!(
                    "tinv-train: resuming a run planned for {} epochs with --epochs {}; the learning-rate schedule follows the new total",
                    meta.hyper.epochs, h.epochs
                );
            }
            if meta.hyper.shift != h.shift {
                crate::errln!(
                    "tinv-train: resuming a run trained with --shift {} with --shift {}",
                    meta.hyper.shift,
                    h.shift
                );
            }
            let vit = Vit::from_host(&backbone_cfg, &ts)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let mut opt = AdamW::new(vit.vars())?;
            // The sidecar, else the one it replaced (a run stopped between writing the two):
            // the first whose step is the checkpoint's and that was written with this very
            // model. Sidecars written before the step or the model was recorded pass that test.
            // Over the tensors the backbone binds, as the sidecar's writer took them: a
            // checkpoint `controller` rewrote in place carries ctrl.* tensors besides.
            let fingerprint = format!("{:#018x}", checkpoint::model_fingerprint(&vit.to_host()?));
            let mut found = None;
            let mut steps = Vec::new();
            for op in checkpoint::resume_optim(path).map_err(TrainError::Input)? {
                let (ots, om) = checkpoint::load(&op)?;
                match (om.get(OPTIM_STEP_KEY), om.get(OPTIM_MODEL_KEY)) {
                    (Some(st), _) if *st != meta.global_step.to_string() => {
                        steps.push(format!("{} is from global step {st}", op.display()))
                    }
                    (_, Some(fp)) if *fp != fingerprint => steps.push(format!(
                        "{} was written with another checkpoint's weights",
                        op.display()
                    )),
                    _ => {
                        found = Some((op, ots));
                        break;
                    }
                }
            }
            let Some((op, ots)) = found else {
                return Err(TrainError::Input(format!(
                    "{}: no optimizer state of its own at global step {} ({}); resume from a \
                     pair written together",
                    path.display(),
                    meta.global_step,
                    steps.join(", ")
                )));
            };
            opt.load_host(vit.vars(), &ots, meta.global_step)
                .map_err(|e| format!("{}: {e}", op.display()))?;
            let meta = TrainMeta {
                hyper: h.clone(),
                data: Some(here),
                ..meta
            };
            (vit, opt, meta)
        }
        None => {
            let ts = init_backbone(&backbone_cfg, &mut Rng::new(h.seed, 0));
            let vit = Vit::from_host(&backbone_cfg, &ts)?;
            let opt = AdamW::new(vit.vars())?;
            let meta = TrainMeta {
                model: backbone_cfg.clone(),
                hyper: h.clone(),
                epoch: 0,
                step_in_epoch: 0,
                global_step: 0,
                seconds: 0.0,
                history: Vec::new(),
                data: Some(DataStamp::of(train, val)),
                partial: None,
            };
            (vit, opt, meta)
        }
    };
    let steps = train.len() / h.batch;
    let total = steps * h.epochs;
    let run_start = Instant::now();
    let start_step = meta.global_step;
    // Checkpoints are held until a step from their weights runs finite (snapshot.rs).
    let mut ckpts = Pending::new(
        opts.out.clone(),
        opts.resume.clone().map(|p| (p, meta.global_step)),
    );
    if meta.epoch >= h.epochs {
        crate::errln!(
            "tinv-train: the checkpoint has already completed {} of {} epochs; nothing to train \
             (raise --epochs to continue)",
            meta.epoch,
            h.epochs
        );
    }
    let base_seconds = meta.seconds;
    while meta.epoch < h.epochs {
        let e = meta.epoch;
        let perm = Rng::new(h.seed, 1_000 + e as u64).permutation(train.len());
        let ep_start = Instant::now();
        // A resumed epoch goes on from the sums its checkpoint recorded.
        let mut sums = meta.partial.take().unwrap_or_default();
        let ep_seconds = sums.seconds;
        let mut win = (0f64, 0usize, 0usize, Instant::now());
        while meta.step_in_epoch < steps {
            let s = meta.step_in_epoch;
            let idx = &perm[s * h.batch..(s + 1) * h.batch];
            let mut aug = Rng::new(h.seed, (1u64 << 40) + ((e as u64) << 20) + s as u64);
            let b = data::batch(train, idx, cfg, h.shift, Some(&mut aug));
            let (x, y) = batch_tensor(&b, cfg)?;
            let outs = vit.forward(&x)?;
            let factor = crate::loss::distill_factor(h, meta.global_step);
            let loss = crate::loss::multi_exit(&outs, &y, h, factor)?;
            let lv = loss.total.to_scalar::<f32>()?;
            if !lv.is_finite() {
                let keep = ckpts.kept();
                return Err(TrainError::NonFinite(format!(
                    "loss became {lv} at epoch {} step {} (global step {}); training stopped, {keep}",
                    e + 1,
                    s + 1,
                    meta.global_step + 1
                )));
            }
            let grads = loss.total.backward()?;
            let norm = AdamW::grad_norm(vit.vars(), &grads)?;
            if !norm.is_finite() {
                // A NaN or infinite gradient would make the weights (and Adam's moments) NaN;
                // stop before the update so no checkpoint is written from it.
                let keep = ckpts.kept();
                return Err(TrainError::NonFinite(format!(
                    "gradient norm became {norm} (loss {lv}) at epoch {} step {} (global step \
                     {}); training stopped, {keep}",
                    e + 1,
                    s + 1,
                    meta.global_step + 1
                )));
            }
            // This step's loss and gradient are finite: the weights it started from are good.
            ckpts.step_ran_finite()?;
            let scale = if norm > h.clip { h.clip / norm } else { 1.0 };
            let lr = lr_at(meta.global_step, total, h.warmup_steps, h.lr, h.min_lr);
            opt.update(vit.vars(), &grads, lr, h.weight_decay, scale)?;
            let Some(deepest) = outs.last() else { break };
            let ok = deepest
                .logits
                .detach()
                .argmax(D::Minus1)?
                .eq(&y)?
                .to_dtype(candle_core::DType::F32)?;
            let ok = ok.sum_all()?.to_scalar::<f32>()? as usize;
            sums.loss_sum += f64::from(lv);
            sums.right += ok;
            sums.seen += b.len;
            sums.steps += 1;
            win.0 += f64::from(lv);
            win.1 += ok;
            win.2 += b.len;
            meta.step_in_epoch += 1;
            meta.global_step += 1;
            if opts.log_every > 0 && meta.global_step % opts.log_every == 0 {
                let done = (meta.global_step - start_step) as f64;
                let rate = run_start.elapsed().as_secs_f64() / done.max(1.0);
                let eta = rate * (total - meta.global_step) as f64;
                // Steps in this window: fewer than --log-every right after a resume or an epoch end.
                let n = (win.2 / h.batch).max(1) as f64;
                crate::errln!(
                    "epoch {}/{} step {}/{} loss {:.4} (ce {:.3} kd {:.3} feat {:.3}) acc {:.1}% lr {:.2e} |g| {:.2} {:.2} s/step ETA {}",
                    e + 1,
                    h.epochs,
                    meta.step_in_epoch,
                    steps,
                    win.0 / n,
                    loss.ce,
                    loss.kd,
                    loss.feat,
                    100.0 * win.1 as f64 / win.2.max(1) as f64,
                    lr,
                    norm,
                    win.3.elapsed().as_secs_f64() / n,
                    fmt_secs(eta)
                );
                win = (0.0, 0, 0, Instant::now());
            }
            meta.seconds = base_seconds + run_start.elapsed().as_secs_f64();
            let stop = opts.stop_at.is_some_and(|s| meta.global_step >= s);
            let periodic = opts.ckpt_every > 0 && meta.global_step % opts.ckpt_every == 0;
            if (stop || periodic) && meta.step_in_epoch < steps {
                sums.seconds = ep_seconds + ep_start.elapsed().as_secs_f64();
                meta.partial = Some(sums.clone());
                let snap = Snapshot::take(&vit, Some(&opt), &meta)?;
                meta.partial = None;
                if stop {
                    ckpts.write_now(snap)?;
                    stopped(&opts.out, &meta);
                    return Ok((vit, meta));
                }
                ckpts.hold(snap);
            }
        }
        let val_acc = evaluate(&vit, val, 500).map_err(|err| match err {
            TrainError::NonFinite(m) => TrainError::NonFinite(format!(
                "{m} after epoch {}; training stopped, {}",
                e + 1,
                ckpts.kept()
            )),
            other => other,
        })?;
        let m = EpochMetrics {
            epoch: e + 1,
            loss: sums.loss_sum / sums.steps.max(1) as f64,
            train_acc: sums.right as f64 / sums.seen.max(1) as f64,
            val_acc: val_acc.clone(),
            seconds: ep_seconds + ep_start.elapsed().as_secs_f64(),
        };
        let accs: Vec<String> = cfg
            .depths
            .iter()
            .zip(&val_acc)
            .map(|(d, a)| format!("d{d} {:.2}%", 100.0 * a))
            .collect();
        crate::errln!(
            "epoch {}/{} done: loss {:.4} train-acc {:.2}% val {} ({:.0} s)",
            e + 1,
            h.epochs,
            m.loss,
            100.0 * m.train_acc,
            accs.join(" "),
            m.seconds
        );
        meta.history.push(m);
        meta.epoch += 1;
        meta.step_in_epoch = 0;
        meta.seconds = base_seconds + run_start.elapsed().as_secs_f64();
        let snap = Snapshot::take(&vit, Some(&opt), &meta)?;
        let stop = opts.stop_at.is_some_and(|s| meta.global_step >= s);
        if stop || meta.epoch >= h.epochs {
            // Nothing follows to test it: the last epoch's result, or an explicit stop.
            ckpts.write_now(snap)?;
        } else {
            ckpts.hold(snap);
        }
        if stop {
            if meta.epoch < h.epochs {
                stopped(&opts.out, &meta);
            }
            return Ok((vit, meta));
        }
    }
    if !ckpts.out_written() {
        // Nothing was trained in this run (a finished run resumed): still leave the result at `out`.
        ckpts.write_now(Snapshot::take(&vit, Some(&opt), &meta)?)?;
    }
    Ok((vit, meta))
}

#[cfg(test)]
mod tests {
    use super::state::tests::ds;
    use super::*;

    #[test]
    fn seconds_print_as_hours_minutes_seconds() {
        assert_eq!(fmt_secs(0.0), "0:00:00");
        assert_eq!(fmt_secs(3725.9), "1:02:05");
        assert_eq!(fmt_secs(36_000.0 + 59.0 * 60.0 + 59.0), "10:59:59");
        assert_eq!(fmt_secs(-5.0), "0:00:00");
    }

    #[test]
    fn evaluate_counts_each_exit_right() {
        // Every weight 0 but the heads' biases: the shallow exit always answers class 0, the
        // deep one class 1. Labels 1, 0, 1, 1, 2: accuracies 1/5 and 3/5, in chunks of 2.
        let cfg: ModelConfig = serde_json::from_value(serde_json::json!({
            "image_size": [4, 4], "channels": 1, "patch": 2, "dim": 4, "blocks": 2, "heads": 1,
            "mlp_hidden": 4, "classes": 3, "ln_eps": 1e-6, "gelu": "erf",
            "mean": [0.0], "std": [1.0], "depths": [1, 2]}))
        .unwrap();
        let mut ts = init_backbone(&cfg, &mut Rng::new(1, 0));
        for t in &mut ts {
            t.data.fill(0.0);
            match t.name.as_str() {
                "exits.1.head.bias" => t.data[0] = 1.0,
                "head.bias" => t.data[1] = 1.0,
                _ => {}
            }
        }
        let vit = Vit::from_host(&cfg, &ts).unwrap();
        let d = ds(vec![1, 0, 1, 1, 2]);
        for chunk in [0, 2, 500] {
            assert_eq!(
                evaluate(&vit, &d, chunk).unwrap(),
                [0.2, 0.6],
                "chunk {chunk}"
            );
        }
        // A NaN weight in the deep head: named by its exit.
        for t in &mut ts {
            if t.name == "head.bias" {
                t.data[2] = f32::NAN;
            }
        }
        let vit = Vit::from_host(&cfg, &ts).unwrap();
        match evaluate(&vit, &d, 2) {
            Err(TrainError::NonFinite(m)) => assert!(
                m.starts_with("exit 2 gives non-finite logits on the validation images"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
