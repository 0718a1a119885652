//! `tinv-train`: command-line front end. See `tinv-train --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use tinv_train::config::{Hyper, ModelConfig};
use tinv_train::control::ppo::PpoOpts;
use tinv_train::{checkpoint, data, report, train};
use tinv_train::{errln, out, outln};

const HELP: &str = "\
tinv-train: train tinv's multi-exit ViT and its controller on an IDX dataset

USAGE: tinv-train fit [OPTIONS]                  train the backbone (multi-exit ViT)
       tinv-train controller CKPT [OPTIONS]      train the controller on CKPT's validation split
       tinv-train eval CKPT [--data DIR] [--split t10k]   accuracy-vs-FLOPs table of a checkpoint
       tinv-train samples --out DIR [--data DIR] [--count N]
                                                 write test images as PNG (Fashion-MNIST names)
       tinv-train --help | --version

Values follow their flag (--lr 1e-3 or --lr=1e-3); each flag may be given once.
Errors print one line `error: ...` and exit with status 1.

fit options:

Data
  --data DIR          IDX files train-images-idx3-ubyte and train-labels-idx1-ubyte, gzipped
                      (.gz) or not [/usr/share/datasets/fashion-mnist: Debian package
                      dataset-fashion-mnist]. Images [n, height, width] (one channel) or
                      [n, height, width, channels] (channels last, as tinv-run reads them);
                      labels [n], 0 .. classes-1
  --val N             last N training images held out for validation, >= 1; the controller
                      stage needs at least 5 (its 5-fold choice of the default budget) [5000]
  --train-limit N     use only the first N training images (0 = all) [0]
Model
  --patch P --dim D --blocks L --heads H --mlp-hidden M   [4, 64, 8, 4, 4*dim]
                      P must divide the image height and width, H must divide D
  --depths a,b,...    exit depths, strictly ascending, last = blocks [2,4,6,8]
  --classes K         number of classes; every label must be below K [largest label + 1]
  --mean m,... --std s,...   input normalization, one value per channel
                      [0.2860 / 0.3530 for every channel, Fashion-MNIST's]
  --ln-eps E          LayerNorm epsilon, in (0, 1) [1e-6]
Training
  --epochs N          epochs, >= 1 [20]
  --batch B           images per step, >= 1 and at most the training images [128]
  --lr X --min-lr X   peak and final learning rate (AdamW, cosine), 0 <= min-lr <= lr [1e-3, 1e-5]
  --warmup STEPS      linear learning-rate warm-up [500]
  --wd X              decoupled weight decay, >= 0 [0.05]
  --clip X            global gradient-norm clip, > 0 [1.0]
  --temperature T --kd W --feat W   distillation temperature (> 0) and weights (>= 0) [2, 1, 0.25]
  --distill-ramp N    ramp the distillation weights up over the first N steps (0 = none) [1000]
  --exit-weights w,...   weight of each exit's cross-entropy, shallowest first, >= 0; the
                      cross-entropy term is their weighted mean [all equal]
  --shift PX          random shift augmentation, pixels, below the image size [2]
  --seed N            seed of every random choice [1]
Run
  --out PATH          checkpoint, written each epoch and every --ckpt-every steps (once the
                      next step has run finite) and at the end, with the optimizer state
                      beside it (PATH less .safetensors, + .optim.safetensors; the one it
                      replaces kept as .optim.prev.safetensors); missing directories are
                      created; not a dataset file; written
                      through a symbolic link, a device or FIFO refused [checkpoint.safetensors]
  --resume PATH       continue from a checkpoint of the same configuration (only --epochs and
                      --shift may differ; the learning-rate schedule follows the new total)
  --log-every N       progress line every N steps (0 = none) [50]
  --ckpt-every N      extra checkpoint every N steps (0 = at epoch ends only) [500]
  --stop-at N         stop with a checkpoint after global step N >= 1 (continue with --resume)
A NaN or infinite loss stops training with an error and keeps the last good checkpoint: a
checkpoint is written only once a step from its weights has run finite.

controller options:
  --data DIR          dataset (the validation split is the checkpoint's own, so give the data
                      it was trained on) [/usr/share/datasets/fashion-mnist]
  --out PATH          final checkpoint with the controller [CKPT, overwritten]
  --iters N --episodes N   PPO iterations per level (0 = warm start only) and episodes per
                      iteration (1 to 1000000) [40, 4096]
  --hp N --hq N --hr N     predictor / policy / exit-RNN hidden widths, 1 to 4096 [32, 64, 16]
  --route N           the first N training-split images (never the validation split) give the
                      outcome table the graph policy learns its routing from: the validation
                      split alone has too few inputs that a deeper path fixes (0 = validation
                      only) [all]
  --tol X             default budget: the largest λ up to which every budget's (cross-
                      validated) validation accuracy is within X of full depth, 0 <= X <= 1;
                      when none is, the most accurate budget (the largest λ among equals)
                      [0.002]
  --seed N            [1]

eval options:
  --data DIR          dataset [/usr/share/datasets/fashion-mnist]
  --split NAME        files NAME-images-idx3-ubyte / NAME-labels-idx1-ubyte [t10k]

samples options:
  --data DIR          dataset whose t10k split is written [/usr/share/datasets/fashion-mnist]
  --out DIR           output directory (created), required
  --count N           images to write, cycling through the classes [10]
";

struct Args(Vec<String>);

impl Args {
    /// The arguments after the command, `--flag=value` split into `--flag value` (as tinv-run
    /// and tinv-fold take it: `--out=DIR` said "--out DIR is required").
    /// A flag given twice is refused here, naming the first one repeated on the command line
    /// (checked as each flag was read, it named the first in the order the code reads them).
    fn new(raw: Vec<String>) -> Result<Args, String> {
        let args: Vec<String> = raw
            .into_iter()
            .flat_map(|a| match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => vec![f.to_string(), v.to_string()],
                _ => vec![a],
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(flag) = args
            .iter()
            .filter(|a| a.starts_with("--"))
            .find(|a| !seen.insert(a.as_str()))
        {
            return Err(format!("{flag} given more than once"));
        }
        Ok(Args(args))
    }
}

/// Flags whose whole numbers must be at least 1: 0 is refused too (by the checks after parsing),
/// so their parse errors name the real range.
const AT_LEAST_ONE: [&str; 15] = [
    "--epochs",
    "--batch",
    "--val",
    "--stop-at",
    "--episodes",
    "--hp",
    "--hq",
    "--hr",
    "--patch",
    "--dim",
    "--blocks",
    "--heads",
    "--mlp-hidden",
    "--classes",
    "--depths",
];

/// What a value of type `T` given to `flag` must look like, for parse errors.
fn expected<T>(flag: &str) -> &'static str {
    match std::any::type_name::<T>() {
        "usize" | "u64" | "u32" if AT_LEAST_ONE.contains(&flag) => "a whole number >= 1",
        "usize" | "u64" | "u32" => "a whole number >= 0",
        "f64" | "f32" => "a number",
        _ => "a valid value",
    }
}

impl Args {
    /// Removes `flag` and its value; `None` when absent. A flag given twice, or without a value
    /// (last argument, or followed by another `--flag`), is an error.
    fn take(&mut self, flag: &str) -> Result<Option<String>, String> {
        let hits: Vec<usize> = (0..self.0.len()).filter(|&i| self.0[i] == flag).collect();
        let Some(&i) = hits.first() else {
            return Ok(None);
        };
        if hits.len() > 1 {
            return Err(format!("{flag} given more than once"));
        }
        match self.0.get(i + 1) {
            Some(v) if v.is_empty() => Err(format!("{flag} needs a value, not an empty string")),
            Some(v) if !v.starts_with("--") => {
                let v = self.0.remove(i + 1);
                self.0.remove(i);
                Ok(Some(v))
            }
            _ => Err(format!("{flag} needs a value (see --help)")),
        }
    }
    /// The value of `flag` parsed as a `T`; `None` when it is absent.
    fn opt_num<T: std::str::FromStr>(&mut self, flag: &str) -> Result<Option<T>, String> {
        self.take(flag)?.map(|v| parse_value(flag, &v)).transpose()
    }
    /// The comma-separated values of `flag`; `None` when it is absent.
    fn opt_list<T: std::str::FromStr>(&mut self, flag: &str) -> Result<Option<Vec<T>>, String> {
        self.take(flag)?.map(|v| parse_list(flag, &v)).transpose()
    }
    /// The value of `flag` parsed as a `T`, `default` when it is absent.
    fn num<T: std::str::FromStr>(&mut self, flag: &str, default: T) -> Result<T, String> {
        Ok(self.opt_num(flag)?.unwrap_or(default))
    }
    fn list<T: std::str::FromStr>(
        &mut self,
        flag: &str,
        default: Vec<T>,
    ) -> Result<Vec<T>, String> {
        Ok(self.opt_list(flag)?.unwrap_or(default))
    }
}

fn parse_list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>, String> {
    v.split(',')
        .map(|s| {
            s.trim().parse().map_err(|_| {
                format!(
                    "{flag}: cannot parse '{s}' in '{v}' (expected comma-separated values, each {})",
                    expected::<T>(flag)
                )
            })
        })
        .collect()
}

fn parse_value<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| {
        format!(
            "{flag}: cannot parse '{v}' (expected {})",
            expected::<T>(flag)
        )
    })
}

fn fit(mut a: Args) -> Result<(), String> {
    let d = Hyper::default();
    let data_dir = data_dir(&mut a)?;
    let h = Hyper {
        seed: a.num("--seed", d.seed)?,
        epochs: a.num("--epochs", d.epochs)?,
        batch: a.num("--batch", d.batch)?,
        lr: a.num("--lr", d.lr)?,
        min_lr: a.num("--min-lr", d.min_lr)?,
        warmup_steps: a.num("--warmup", d.warmup_steps)?,
        weight_decay: a.num("--wd", d.weight_decay)?,
        clip: a.num("--clip", d.clip)?,
        temperature: a.num("--temperature", d.temperature)?,
        kd_weight: a.num("--kd", d.kd_weight)?,
        feat_weight: a.num("--feat", d.feat_weight)?,
        distill_ramp: a.num("--distill-ramp", d.distill_ramp)?,
        exit_weights: a.list("--exit-weights", d.exit_weights.clone())?,
        shift: a.num("--shift", d.shift)?,
        val_count: a.num("--val", d.val_count)?,
        train_limit: a.num("--train-limit", d.train_limit)?,
    };
    // Every flag is read and checked before the dataset is loaded, so a typo fails at once.
    let patch: usize = a.num("--patch", 4)?;
    let dim = a.num("--dim", 64usize)?;
    let blocks: usize = a.num("--blocks", 8)?;
    let heads: usize = a.num("--heads", 4)?;
    let mlp_hidden: usize = a.num("--mlp-hidden", 4 * dim)?;
    let classes: Option<usize> = a.opt_num("--classes")?;
    let ln_eps: f64 = a.num("--ln-eps", 1e-6)?;
    // The runtime keeps ε as an f32: 1e-50 became 0 and was reported as "vit.ln_eps 0".
    if ln_eps > 0.0 && ln_eps < f64::from(f32::MIN_POSITIVE) {
        return Err(format!(
            "--ln-eps {ln_eps:e}: too small for the f32 the model stores it in (at least {:e})",
            f32::MIN_POSITIVE
        ));
    }
    let mean: Option<Vec<f64>> = a.opt_list("--mean")?;
    let std: Option<Vec<f64>> = a.opt_list("--std")?;
    let depths: Vec<usize> = a.list("--depths", vec![2, 4, 6, 8])?;
    let opts = train::RunOpts {
        out: PathBuf::from(
            a.take("--out")?
                .unwrap_or_else(|| "checkpoint.safetensors".into()),
        ),
        resume: a.take("--resume")?.map(PathBuf::from),
        log_every: a.num("--log-every", 50)?,
        ckpt_every: a.num("--ckpt-every", 500)?,
        stop_at: a.opt_num("--stop-at")?,
    };
    no_extra(&a)?;
    h.validate()?;
    if h.val_count < report::FOLDS {
        // Said now, not after the training: the controller stage refuses such a checkpoint.
        crate::errln!(
            "tinv-train: warning: --val {}: the controller stage needs at least {} validation \
             images, so this backbone cannot be given a controller",
            h.val_count,
            report::FOLDS
        );
    }
    if !h.exit_weights.is_empty() && h.exit_weights.len() != depths.len() {
        return Err(format!(
            "--exit-weights has {} value(s), --depths {} exit(s): give one weight per exit",
            h.exit_weights.len(),
            depths.len()
        ));
    }
    if opts.stop_at == Some(0) {
        return Err("--stop-at must be at least 1".into());
    }
    if let Some(r) = &opts.resume {
        checkpoint::check_resume(r)?;
    }
    checkpoint::check_writable(&opts.out)?;
    checkpoint::check_sidecars_writable(&opts.out)?;
    let sides = [
        checkpoint::optim_path(&opts.out),
        checkpoint::optim_prev_path(&opts.out),
    ];
    data::refuse_overwrite(
        &data_dir,
        &[
            ("--out", &opts.out),
            ("--out's optimizer state", &sides[0]),
            ("--out's previous optimizer state", &sides[1]),
        ],
    )?;
    let full = data::load(&data_dir, "train")?;
    let mut seen = [false; 256];
    full.labels
        .iter()
        .for_each(|&y| seen[usize::from(y)] = true);
    let distinct = seen.iter().filter(|&&s| s).count();
    if distinct == 1 {
        errln!(
            "tinv-train: warning: every label is {}: there is nothing to learn",
            full.labels.first().copied().unwrap_or(0)
        );
    }
    for (flag, v) in [("--mean", &mean), ("--std", &std)] {
        if let Some(v) = v.as_ref().filter(|v| v.len() != full.c) {
            return Err(format!(
                "{flag} has {} value(s), the images have {} channel(s): give one per channel",
                v.len(),
                full.c
            ));
        }
    }
    if classes.is_none() {
        // The class count comes from the largest label: a single corrupt label (255) would make
        // a 256-class model without a word.
        if full.classes() > 2 * distinct {
            errln!(
                "tinv-train: warning: the largest label makes {} classes, but only {distinct} \
                 labels occur; pass --classes K if that is not intended",
                full.classes()
            );
        }
    }
    let cfg = ModelConfig {
        image_size: [full.h, full.w],
        channels: full.c,
        patch,
        dim,
        blocks,
        heads,
        mlp_hidden,
        classes: classes.unwrap_or_else(|| full.classes()),
        ln_eps,
        gelu: "erf".into(),
        mean: mean.unwrap_or_else(|| vec![0.2860; full.c]),
        std: std.unwrap_or_else(|| vec![0.3530; full.c]),
        depths,
        controller: None,
    };
    cfg.to_runtime()
        .map_err(|e| format!("model configuration: {}", in_flags(&e.to_string())))?;
    if h.shift >= full.h.min(full.w) {
        return Err(format!(
            "--shift {} must be smaller than the {}x{} images",
            h.shift, full.h, full.w
        ));
    }
    let n = if h.train_limit > 0 {
        h.train_limit.min(full.len())
    } else {
        full.len()
    };
    if h.val_count >= n {
        return Err(format!(
            "--val {} leaves no training images out of {n}",
            h.val_count
        ));
    }
    // Checked before the split, so an image is named by its place in the files.
    data::check_first(&full, n, &cfg)
        .map_err(|e| format!("{} (training files): {e}", data_dir.display()))?;
    let tr = full.slice(0..n - h.val_count);
    let val = full.slice(n - h.val_count..n);
    errln!(
        "tinv-train: {} train / {} validation images, {} classes, model {}x{} patch {} dim {} blocks {} heads {} exits {:?}",
        tr.len(),
        val.len(),
        cfg.classes,
        cfg.image_size[0],
        cfg.image_size[1],
        cfg.patch,
        cfg.dim,
        cfg.blocks,
        cfg.heads,
        cfg.depths
    );
    let (_vit, meta) =
        train::train_backbone(&cfg, &h, &tr, &val, &opts).map_err(|e| e.to_string())?;
    errln!("backbone done in {:.0} s", meta.seconds);
    Ok(())
}

fn data_dir(a: &mut Args) -> Result<PathBuf, String> {
    Ok(PathBuf::from(a.take("--data")?.unwrap_or_else(|| {
        "/usr/share/datasets/fashion-mnist".into()
    })))
}

fn no_extra(a: &Args) -> Result<(), String> {
    match a.0.first() {
        Some(extra) => Err(format!("unknown argument '{extra}' (see --help)")),
        None => Ok(()),
    }
}

fn positional(a: &mut Args, what: &str) -> Result<PathBuf, String> {
    if a.0.is_empty() || a.0[0].starts_with("--") {
        return Err(format!(
            "missing {what}: it comes right after the command (see --help)"
        ));
    }
    // `tinv-train eval ""` said only ": No such file or directory".
    if a.0[0].is_empty() {
        return Err(format!("the {what} is an empty argument, not a file name"));
    }
    Ok(PathBuf::from(a.0.remove(0)))
}

/// A runtime configuration error in the words of the command line: the checked field's name
/// (`vit.heads`, `paths.depths`) becomes the flag that sets it.
fn in_flags(msg: &str) -> String {
    const FLAGS: [(&str, &str); 10] = [
        ("paths.depths", "--depths"),
        ("vit.blocks", "--blocks"),
        ("vit.classes", "--classes"),
        ("vit.dim", "--dim"),
        ("vit.heads", "--heads"),
        ("vit.ln_eps", "--ln-eps"),
        ("vit.mean", "--mean"),
        ("vit.std", "--std"),
        ("vit.mlp_hidden", "--mlp-hidden"),
        ("vit.patch", "--patch"),
    ];
    FLAGS
        .iter()
        .fold(msg.to_string(), |m, (key, flag)| m.replace(key, flag))
}

/// Largest controller hidden width (`--hp/--hq/--hr`): the exit RNN's 4096 × 4096 recurrent
/// matrix is 64 MiB; the shipped widths are 32, 64 and 16.
const MAX_HIDDEN: usize = 4096;
/// Most PPO episodes per iteration (each keeps its trajectory until the update).
const MAX_EPISODES: usize = 1_000_000;

fn controller(mut a: Args) -> Result<(), String> {
    let ckpt = positional(&mut a, "checkpoint")?;
    let dir = data_dir(&mut a)?;
    let d = PpoOpts::default();
    let opts = PpoOpts {
        seed: a.num("--seed", d.seed)?,
        hp: a.num("--hp", d.hp)?,
        hq: a.num("--hq", d.hq)?,
        hr: a.num("--hr", d.hr)?,
        iters: a.num("--iters", d.iters)?,
        episodes: a.num("--episodes", d.episodes)?,
        verbose: true,
        ..d
    };
    let tol: f64 = a.num("--tol", 0.002)?;
    let route_n: usize = a.num("--route", usize::MAX)?;
    let out = a.take("--out")?.map_or_else(|| ckpt.clone(), PathBuf::from);
    no_extra(&a)?;
    // Upper bounds too: --hr 100000000 asked for 40 PB and aborted in the allocator.
    for (flag, v, max) in [
        ("--hp", opts.hp, MAX_HIDDEN),
        ("--hq", opts.hq, MAX_HIDDEN),
        ("--hr", opts.hr, MAX_HIDDEN),
        ("--episodes", opts.episodes, MAX_EPISODES),
    ] {
        if v == 0 || v > max {
            return Err(format!("{flag} {v}: must be between 1 and {max}"));
        }
    }
    if !(tol.is_finite() && (0.0..=1.0).contains(&tol)) {
        return Err(format!(
            "--tol {tol}: must be an accuracy difference between 0 and 1"
        ));
    }
    checkpoint::check_writable(&out)?;
    data::refuse_overwrite(&dir, &[("--out", &out)])?;
    let loaded = report::load(&ckpt)?;
    let meta = train::read_meta(&loaded.meta, &ckpt)?;
    let full = data::load(&dir, "train")?;
    let h = &meta.hyper;
    let n = if h.train_limit > 0 {
        h.train_limit.min(full.len())
    } else {
        full.len()
    };
    if h.val_count < report::FOLDS {
        return Err(format!(
            "{}'s validation split has {} image(s); the controller needs at least {} (one per \
             fold of its choice of the default budget): train with a larger --val",
            ckpt.display(),
            h.val_count,
            report::FOLDS
        ));
    }
    if h.val_count == 0 || h.val_count >= n {
        return Err(format!(
            "{} has {n} training images, too few for the validation split of {} (the last {} \
             images, --val); pass the --data it was trained on",
            dir.display(),
            ckpt.display(),
            h.val_count
        ));
    }
    let train_end = n - h.val_count;
    // The validation split is the last --val images of the training split the backbone saw:
    // other data would train the controller on images the backbone learned from.
    let train_split = full.slice(0..train_end);
    let val = full.slice(train_end..n);
    train::DataStamp::of(&train_split, &val).check(
        meta.data.as_ref(),
        &ckpt,
        "pass the --data it was trained on",
    )?;
    // By default the whole training split routes: the copy made for its stamp serves.
    let route = match route_n {
        0 => None,
        r if r >= train_end => Some(train_split),
        r => Some(full.slice(0..r)),
    };
    let rep = report::controller_stage(&loaded, &val, route.as_ref(), &opts, tol, &out)?;
    outln!("{rep}");
    errln!("wrote {}", out.display());
    Ok(())
}

fn eval(mut a: Args) -> Result<(), String> {
    let ckpt = positional(&mut a, "checkpoint")?;
    let dir = data_dir(&mut a)?;
    let split = a.take("--split")?.unwrap_or_else(|| "t10k".into());
    no_extra(&a)?;
    let loaded = report::load(&ckpt)?;
    let ds = data::load(&dir, &split)?;
    outln!("{}", report::eval(&loaded, &ds)?);
    Ok(())
}

fn samples(mut a: Args) -> Result<(), String> {
    let dir = data_dir(&mut a)?;
    let out = PathBuf::from(a.take("--out")?.ok_or("samples: --out DIR is required")?);
    let count: usize = a.num("--count", 10)?;
    if count == 0 {
        return Err("--count must be at least 1 (0 wrote nothing and said nothing)".into());
    }
    no_extra(&a)?;
    tinv_train::samples::check_dir(&out)?;
    let ds = data::load(&dir, "t10k")?;
    // It wrote every image and said nothing of the rest.
    if count > ds.len() {
        return Err(format!(
            "--count {count}: the test set has only {} images",
            ds.len()
        ));
    }
    for name in tinv_train::samples::write(&ds, &out, count)? {
        outln!("{}", name.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    // The unfused kernels' rounding on every host: the default model was trained with it, and
    // the controller stage turns a last-bit difference into another policy (see `set_fused`).
    tinv::cpu::kernels::set_fused(false);
    let mut args = match tinv::files::utf8_args() {
        Ok(a) => a,
        Err(e) => {
            out::error(e);
            return ExitCode::FAILURE;
        }
    };
    // No command: the usage on stdout and an error, as `tinv-run` does.
    if args.is_empty() {
        out!("{HELP}");
        errln!("error: no command given");
        return ExitCode::FAILURE;
    }
    if args[0] == "help" || args.iter().any(|a| a == "--help" || a == "-h") {
        out!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let cmd = args.remove(0);
    let r = match cmd.as_str() {
        "fit" => Args::new(args).and_then(fit),
        "controller" => Args::new(args).and_then(controller),
        "eval" => Args::new(args).and_then(eval),
        "samples" => Args::new(args).and_then(samples),
        "--version" | "-V" => Args::new(args).and_then(|a| no_extra(&a)).map(|()| {
            outln!("tinv-train {}", env!("CARGO_PKG_VERSION"));
        }),
        other => Err(format!("unknown command '{other}' (see --help)")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out::error(e);
            ExitCode::FAILURE
        }
    }
}
