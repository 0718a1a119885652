//! `tinv-train`: command-line front end. See `tinv-train --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use tinv_train::config::{Hyper, ModelConfig};
use tinv_train::control::ppo::PpoOpts;
use tinv_train::{data, report, train};

const HELP: &str = "\
tinv-train: train tinv's multi-exit ViT and its controller on an IDX dataset

USAGE: tinv-train fit [OPTIONS]                  train the backbone (multi-exit ViT)
       tinv-train controller CKPT [OPTIONS]      train the controller on CKPT's validation split
       tinv-train eval CKPT [--split t10k]       accuracy-vs-FLOPs table of a checkpoint
       tinv-train samples --out DIR [--count N]  write test images as PNG (Fashion-MNIST names)

fit options:

Data
  --data DIR          IDX files (train-images-idx3-ubyte[.gz], ...) [/usr/share/datasets/fashion-mnist]
  --val N             last N training images held out for validation [5000]
  --train-limit N     use only the first N training images (0 = all) [0]
Model
  --patch P --dim D --blocks L --heads H --mlp-hidden M   [4, 64, 8, 4, 4*dim]
  --depths a,b,...    exit depths, ascending, last = blocks [2,4,6,8]
  --mean m --std s    input normalization per channel [0.2860 / 0.3530, Fashion-MNIST]
  --ln-eps E          LayerNorm epsilon [1e-6]
Training
  --epochs N --batch B --lr X --min-lr X --warmup STEPS --wd X --clip X   [20, 128, 1e-3, 1e-5, 500, 0.05, 1.0]
  --temperature T --kd W --feat W   distillation temperature and weights [2, 1, 0.25]
  --distill-ramp N    ramp the distillation weights up over the first N steps [1000]
  --shift PX          random shift augmentation, pixels [2]
  --seed N            seed of every random choice [1]
Run
  --out PATH          checkpoint (written each epoch and at the end) [checkpoint.safetensors]
  --resume PATH       continue from a checkpoint of the same configuration (only --epochs and
                      --shift may differ; the learning-rate schedule follows the new total)
  --log-every N       progress line every N steps [50]
  --ckpt-every N      extra checkpoint every N steps [500]
  --stop-at N         stop with a checkpoint after global step N (continue with --resume)

controller options:
  --data DIR          dataset (the validation split is the checkpoint's own) [/usr/share/datasets/fashion-mnist]
  --out PATH          final checkpoint with the controller [CKPT]
  --iters N --episodes N   PPO iterations per level and episodes per iteration [40, 4096]
  --hp N --hq N --hr N     predictor / policy / exit-RNN hidden widths [32, 64, 16]
  --route N           the first N training-split images (never the validation split) give the
                      outcome table the graph policy learns its routing from: the validation
                      split alone has too few inputs that a deeper path fixes (0 = validation
                      only) [all]
  --tol X             default budget: largest λ whose validation accuracy is within X of full depth [0.002]
  --seed N            [1]
";

struct Args(Vec<String>);

impl Args {
    fn take(&mut self, flag: &str) -> Option<String> {
        let i = self.0.iter().position(|a| a == flag)?;
        if i + 1 >= self.0.len() {
            return None;
        }
        let v = self.0.remove(i + 1);
        self.0.remove(i);
        Some(v)
    }
    /// The value of `flag` parsed as a `T`, `default` when it is absent.
    fn num<T: std::str::FromStr>(&mut self, flag: &str, default: T) -> Result<T, String> {
        match self.take(flag) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{flag}: cannot parse '{v}'")),
        }
    }
    fn list<T: std::str::FromStr>(
        &mut self,
        flag: &str,
        default: Vec<T>,
    ) -> Result<Vec<T>, String> {
        match self.take(flag) {
            None => Ok(default),
            Some(v) => v
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse()
                        .map_err(|_| format!("{flag}: cannot parse '{s}'"))
                })
                .collect(),
        }
    }
}

fn fit(mut a: Args) -> Result<(), String> {
    let d = Hyper::default();
    let data_dir = data_dir(&mut a);
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
        shift: a.num("--shift", d.shift)?,
        val_count: a.num("--val", d.val_count)?,
        train_limit: a.num("--train-limit", d.train_limit)?,
    };
    let full = data::load(&data_dir, "train")?;
    let dim = a.num("--dim", 64usize)?;
    let cfg = ModelConfig {
        image_size: [full.h, full.w],
        channels: full.c,
        patch: a.num("--patch", 4)?,
        dim,
        blocks: a.num("--blocks", 8)?,
        heads: a.num("--heads", 4)?,
        mlp_hidden: a.num("--mlp-hidden", 4 * dim)?,
        classes: a.num("--classes", full.classes())?,
        ln_eps: a.num("--ln-eps", 1e-6)?,
        gelu: "erf".into(),
        mean: a.list("--mean", vec![0.2860; full.c])?,
        std: a.list("--std", vec![0.3530; full.c])?,
        depths: a.list("--depths", vec![2, 4, 6, 8])?,
        controller: None,
    };
    cfg.to_runtime()
        .map_err(|e| format!("model configuration: {e}"))?;
    let opts = train::RunOpts {
        out: PathBuf::from(
            a.take("--out")
                .unwrap_or_else(|| "checkpoint.safetensors".into()),
        ),
        resume: a.take("--resume").map(PathBuf::from),
        log_every: a.num("--log-every", 50)?,
        ckpt_every: a.num("--ckpt-every", 500)?,
        stop_at: a
            .take("--stop-at")
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--stop-at: cannot parse '{v}'"))
            })
            .transpose()?,
    };
    no_extra(&a)?;
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
    let tr = full.slice(0..n - h.val_count);
    let val = full.slice(n - h.val_count..n);
    eprintln!(
        "tinv-train: {} train / {} validation images, model {}x{} patch {} dim {} blocks {} heads {} exits {:?}",
        tr.len(),
        val.len(),
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
    eprintln!("backbone done in {:.0} s", meta.seconds);
    Ok(())
}

fn data_dir(a: &mut Args) -> PathBuf {
    PathBuf::from(
        a.take("--data")
            .unwrap_or_else(|| "/usr/share/datasets/fashion-mnist".into()),
    )
}

fn no_extra(a: &Args) -> Result<(), String> {
    match a.0.first() {
        Some(extra) => Err(format!("unknown argument '{extra}' (see --help)")),
        None => Ok(()),
    }
}

fn positional(a: &mut Args, what: &str) -> Result<PathBuf, String> {
    if a.0.is_empty() || a.0[0].starts_with("--") {
        return Err(format!("missing {what} (see --help)"));
    }
    Ok(PathBuf::from(a.0.remove(0)))
}

fn controller(mut a: Args) -> Result<(), String> {
    let ckpt = positional(&mut a, "checkpoint")?;
    let dir = data_dir(&mut a);
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
    let out = a.take("--out").map_or_else(|| ckpt.clone(), PathBuf::from);
    no_extra(&a)?;
    let loaded = report::load(&ckpt)?;
    let meta = train::read_meta(&loaded.meta, &ckpt)?;
    let full = data::load(&dir, "train")?;
    let h = &meta.hyper;
    let n = if h.train_limit > 0 {
        h.train_limit.min(full.len())
    } else {
        full.len()
    };
    let train_end = n.saturating_sub(h.val_count);
    let val = full.slice(train_end..n);
    let route = (route_n > 0).then(|| full.slice(0..route_n.min(train_end)));
    let rep = report::controller_stage(&loaded, &val, route.as_ref(), &opts, tol, &out)?;
    println!("{rep}");
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn eval(mut a: Args) -> Result<(), String> {
    let ckpt = positional(&mut a, "checkpoint")?;
    let dir = data_dir(&mut a);
    let split = a.take("--split").unwrap_or_else(|| "t10k".into());
    no_extra(&a)?;
    let loaded = report::load(&ckpt)?;
    let ds = data::load(&dir, &split)?;
    println!("{}", report::eval(&loaded, &ds)?);
    Ok(())
}

fn samples(mut a: Args) -> Result<(), String> {
    let dir = data_dir(&mut a);
    let out = PathBuf::from(a.take("--out").ok_or("samples: --out DIR is required")?);
    let count: usize = a.num("--count", 10)?;
    no_extra(&a)?;
    let ds = data::load(&dir, "t10k")?;
    for name in tinv_train::samples::write(&ds, &out, count)? {
        println!("{}", name.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let cmd = args.remove(0);
    let r = match cmd.as_str() {
        "fit" => fit(Args(args)),
        "controller" => controller(Args(args)),
        "eval" => eval(Args(args)),
        "samples" => samples(Args(args)),
        other => Err(format!("unknown command '{other}' (see --help)")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
