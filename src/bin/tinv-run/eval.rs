//! `tinv-run eval`: accuracy and cost of the adaptive run against full depth, every static exit
//! and the oracle lower bound.

use crate::args::Args;
use crate::images;
use crate::json::Json;
use std::io::IsTerminal;
use std::path::Path;

pub const HELP: &str = "\
tinv-run eval — accuracy, FLOPs and latency on an IDX dataset

USAGE:
    tinv-run eval [--model M] --images IDX --labels IDX [--depth D | [--budget λ] [--mode MODE]]
                  [--skip N] [--limit N] [--batch B] [--threads N] [--backend B] [--engines DIR]
                  [--verify] [--json]

OPTIONS:
    --model M      .tinv file or package directory (default: $TINV_MODEL, else
                   the engines/fmnist package; see tinv-run --help)
    --images IDX   image file ([n, H, W] or [n, H, W, C] unsigned bytes; gzip or plain),
                   e.g. /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
    --labels IDX   label file ([n] unsigned bytes)
    --budget λ     controller budget in [0, 1] (default: the model's)
    --depth D      evaluate the fixed path of depth D instead of the controller (no
                   controller runs, so --budget and --mode are refused with it)
    --mode MODE    adaptive (default) | graph | threshold:τ  (see classify --help)
    --skip N       leave out the first N samples (e.g. --skip 55000 on Fashion-MNIST's
                   training files: the last 5,000, its models' validation split)
    --limit N      at most N samples (after --skip)
    --batch B      inputs per call in the timed run, 1 to 4096 (default 1: per-input latency)
    --threads N    worker threads, 1 to 256 (default 1)
    --backend B    auto (default) | cpu | tensorrt (see tinv-run --help)
    --engines DIR  TensorRT engines folder (default: plans/ beside the model file)
    --verify       check every tensor checksum and device copy when opening the model
    --json         one JSON object: samples, backend (cpu | tensorrt), mode (adaptive |
                   graph | threshold:τ | depth:D, and depth:<deepest> for a model without a
                   controller), budget (null where no controller runs), accuracy,
                   accuracy_full_depth, mean_flops, full_flops, flops_reduction,
                   oracle_flops, oracle_accuracy, exit_accuracy{<depth>: accuracy},
                   depth_histogram{<depth>: inputs}, mean_escalations,
                   latency_us{p50,p99,mean} (per call), batch, weight_bytes_per_inference,
                   full_weight_bytes, arena_bytes, peak_rss_bytes

Two passes: one full-depth pass computes every exit once per sample (accuracy of each exit,
full-depth accuracy, the oracle: the FLOPs of the shallowest correct exit per sample, or of the
shallowest exit when none is right); then the real run in the chosen mode gives accuracy,
FLOPs actually spent (controller, escalations and every exit head included) and latency.
";

pub fn run(raw: &[std::ffi::OsString]) -> Result<(), String> {
    let a = Args::parse(
        raw,
        &[
            "model", "images", "labels", "budget", "depth", "mode", "skip", "limit", "batch",
            "threads", "backend", "engines",
        ],
        &["json", "verify"],
    )?
    .max_positional(0)?;
    let data = DataArgs::parse(&a, "eval")?;
    let depth = crate::fixed_depth(&a)?;
    let batch = a.batch()?;
    let mut session = crate::open_session(&a, crate::session_settings(&a)?, batch)?;
    let model = session.model().clone();
    let cfg = model.config().clone();
    crate::check_depth(&cfg, depth)?;
    let (x, y) = data.load(&cfg)?;
    let n = y.len();
    // The session was opened before the data (bad options fail before a long load), for
    // `--batch` inputs a call; a data set smaller than that runs, and reports, batches of all of
    // it, in an arena sized for them.
    let batch = if batch > n {
        session = crate::open_session(&a, crate::session_settings(&a)?, n)?;
        n
    } else {
        batch
    };
    let (len, k, p) = (cfg.input_len(), cfg.classes, cfg.depths.len());
    let progress = std::io::stderr().is_terminal() || n >= 2000;
    // Pass 1 in batches, on the timed session's backend and threads (`--backend cpu` must not
    // compute these numbers with TensorRT engines, and `--threads` speeds this pass up too).
    let mut all = tinv::Session::new(
        model.clone(),
        crate::backend_options(&a)?
            .backend(session.backend())
            .max_batch(ExitTable::CHUNK.min(n))
            .threads(session.threads()),
    )
    .map_err(|e| e.to_string())?;
    let exits = ExitTable::compute(&mut all, &x, &y, progress.then_some("eval"))?;
    drop(all);
    let (exit_acc, oracle_flops, oracle_acc) =
        (&exits.accuracy, exits.oracle_flops, exits.oracle_accuracy);
    let costs = model.costs();

    // Pass 2: the real run, timed per call, after one untimed call: a session's first call is
    // cold (its arena's pages, the caches), which skewed p99 and the mean of a short run.
    let mut out = vec![0f32; batch * k];
    match depth {
        Some(d) => session.infer_depth(&x[..batch * len], batch, d, &mut out),
        None => session.infer(&x[..batch * len], batch, &mut out),
    }
    .map_err(|e| e.to_string())?;
    let mut lat = Vec::with_capacity(n.div_ceil(batch));
    let (mut correct, mut flops, mut wbytes, mut esc) = (0usize, 0f64, 0f64, 0u64);
    let mut hist = vec![0usize; p];
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let xb = &x[start * len..(start + b) * len];
        let stats = match depth {
            Some(d) => session.infer_depth(xb, b, d, &mut out[..b * k]),
            None => session.infer(xb, b, &mut out[..b * k]),
        }
        .map_err(|e| e.to_string())?;
        lat.push(stats[0].latency_us);
        for (i, st) in stats.iter().enumerate() {
            correct += usize::from(st.class == y[start + i]);
            flops += st.flops as f64;
            wbytes += st.weight_bytes as f64;
            esc += u64::from(st.escalations);
            hist[st.path] += 1;
        }
        if progress && (start + b) / 2000 > start / 2000 {
            errln!("eval: timed run {}/{n}", start + b);
        }
    }
    let (lat_p50, lat_p99) = tinv::timing::summary(&mut lat);
    let full = costs[p - 1].backbone_flops as f64;
    let mean_flops = flops / n as f64;
    let acc = correct as f64 / n as f64;
    let full_bytes: u64 = model
        .path_tensors(p - 1)
        .iter()
        .map(|r| model.w_file_range(*r).len() as u64)
        .sum();
    let rss = peak_rss_bytes();
    // A budget applies only where a controller runs: not at a fixed depth, not in threshold
    // mode, not on a model without one (it then runs every input at full depth).
    let threshold = matches!(session.mode(), tinv::Mode::Threshold(_));
    let controlled = depth.is_none() && cfg.controller.is_some() && !threshold;
    let budget = controlled.then(|| session.budget());
    let full_depth = cfg.depths[p - 1];
    let mode = match depth {
        Some(d) => format!("depth:{d}"),
        // The text says why; `--json` keeps `mode` a value a program can match.
        None if cfg.controller.is_none() && !threshold && a.has("json") => {
            format!("depth:{full_depth}")
        }
        None if cfg.controller.is_none() && !threshold => {
            "full depth (the model has no controller)".to_string()
        }
        None => session.mode().to_string(),
    };
    if a.has("json") {
        let j = Json::obj()
            .set("samples", Json::Int(n as u64))
            .set("backend", Json::Str(session.backend().to_string()))
            .set("mode", Json::Str(mode))
            .set("budget", budget.map_or(Json::Null, Json::f32))
            .set("accuracy", Json::Num(acc))
            .set("accuracy_full_depth", Json::Num(exit_acc[p - 1]))
            .set("mean_flops", Json::Num(mean_flops))
            .set("full_flops", Json::Num(full))
            .set("flops_reduction", Json::Num(1.0 - mean_flops / full))
            .set("oracle_flops", Json::Num(oracle_flops))
            .set("oracle_accuracy", Json::Num(oracle_acc))
            .set(
                "exit_accuracy",
                Json::Obj(
                    cfg.depths
                        .iter()
                        .zip(exit_acc)
                        .map(|(d, a)| (d.to_string(), Json::Num(*a)))
                        .collect(),
                ),
            )
            .set(
                "depth_histogram",
                Json::Obj(
                    cfg.depths
                        .iter()
                        .zip(&hist)
                        .map(|(d, c)| (d.to_string(), Json::Int(*c as u64)))
                        .collect(),
                ),
            )
            .set("mean_escalations", Json::Num(esc as f64 / n as f64))
            .set(
                "latency_us",
                Json::obj()
                    .set("p50", Json::Num(lat_p50))
                    .set("p99", Json::Num(lat_p99))
                    .set(
                        "mean",
                        Json::Num(lat.iter().sum::<f64>() / lat.len() as f64),
                    ),
            )
            .set("batch", Json::Int(batch as u64))
            .set("weight_bytes_per_inference", Json::Num(wbytes / n as f64))
            .set("full_weight_bytes", Json::Int(full_bytes))
            .set("arena_bytes", Json::Int(session.arena_bytes() as u64))
            .set("peak_rss_bytes", Json::Int(rss));
        outln!("{}", j.render());
    } else {
        outln!("samples            {n}");
        outln!("backend            {}", session.backend());
        match budget {
            Some(b) => outln!("mode               {mode}, budget λ = {b}"),
            None => outln!("mode               {mode}"),
        }
        outln!(
            "accuracy           {:.2}%   (full depth {:.2}%)",
            acc * 100.0,
            exit_acc[p - 1] * 100.0
        );
        // Above full depth when every input runs deep and the controller or the shallower exit
        // heads come on top (threshold:1).
        let saved = 1.0 - mean_flops / full;
        outln!(
            "mean FLOPs         {:.3}M of {:.3}M full ({:.1}% {})",
            mean_flops / 1e6,
            full / 1e6,
            saved.abs() * 100.0,
            if saved < 0.0 { "more" } else { "fewer" }
        );
        outln!(
            "oracle             {:.3}M FLOPs ({:.1}% of full), {:.2}% accuracy",
            oracle_flops / 1e6,
            oracle_flops / full * 100.0,
            oracle_acc * 100.0
        );
        for (e, d) in cfg.depths.iter().enumerate() {
            outln!(
                "exit {d:>3}           accuracy {:.2}%, chosen for {} inputs",
                exit_acc[e] * 100.0,
                hist[e]
            );
        }
        outln!(
            "latency            p50 {:.1} µs, p99 {:.1} µs (batch {batch})",
            lat_p50,
            lat_p99
        );
        outln!(
            "weights read       {:.2} MB per inference of {:.2} MB at full depth",
            wbytes / n as f64 / 1e6,
            full_bytes as f64 / 1e6
        );
        outln!(
            "arena              {} bytes; peak RSS {:.1} MiB (the whole process, decoded data \
             set included)",
            session.arena_bytes(),
            rss as f64 / f64::from(1u32 << 20)
        );
    }
    Ok(())
}

/// `--images`, `--labels`, `--skip` and `--limit` of a command that reads a data set (eval,
/// sweep), parsed before the model opens.
pub struct DataArgs<'a> {
    images: &'a Path,
    labels: &'a Path,
    skip: usize,
    limit: Option<usize>,
}

impl<'a> DataArgs<'a> {
    pub fn parse(a: &'a Args, cmd: &str) -> Result<DataArgs<'a>, String> {
        let need = |name| {
            a.path(name).ok_or(format!(
                "{cmd} needs --{name} IDX (see tinv-run {cmd} --help)"
            ))
        };
        Ok(DataArgs {
            images: need("images")?,
            labels: need("labels")?,
            skip: a.count("skip", "a sample count", 0)?.unwrap_or(0),
            limit: a.count("limit", "a sample count", 1)?,
        })
    }

    /// The samples as f32 inputs in [0, 1] (CHW) and labels; at least one.
    pub fn load(&self, cfg: &tinv::Config) -> Result<(Vec<f32>, Vec<usize>), String> {
        images::load_dataset(self.images, self.labels, cfg, self.skip, self.limit)
    }
}

/// Pass 1 of `eval` (and `sweep`'s static points): every exit of every sample, computed in one
/// full-depth pass per chunk of up to [`ExitTable::CHUNK`] samples.
pub struct ExitTable {
    /// Accuracy of each exit (path) over the samples.
    pub accuracy: Vec<f64>,
    /// Mean FLOPs of the oracle: per sample the shallowest exit that is right, or the
    /// shallowest when none is (its accuracy is then a lower bound).
    pub oracle_flops: f64,
    /// Fraction of samples some exit gets right.
    pub oracle_accuracy: f64,
}

impl ExitTable {
    /// Samples per call, where the session takes that many.
    pub const CHUNK: usize = 64;

    /// The table of the samples `x` (labels `y`), run on `all` in chunks of at most
    /// [`ExitTable::CHUNK`] and of its `max_batch`. With `progress`, the subcommand's name,
    /// it reports every 40 chunks on stderr.
    pub fn compute(
        all: &mut tinv::Session,
        x: &[f32],
        y: &[usize],
        progress: Option<&str>,
    ) -> Result<ExitTable, String> {
        let model = all.model().clone();
        let cfg = model.config();
        let (len, k, p, n) = (cfg.input_len(), cfg.classes, cfg.depths.len(), y.len());
        let chunk = Self::CHUNK.min(all.max_batch()).min(n);
        let mut logits = vec![0f32; chunk * p * k];
        let mut right = vec![false; n * p];
        for start in (0..n).step_by(chunk) {
            let b = chunk.min(n - start);
            all.infer_all_exits(
                &x[start * len..(start + b) * len],
                b,
                &mut logits[..b * p * k],
            )
            .map_err(|e| e.to_string())?;
            for i in 0..b {
                for e in 0..p {
                    let row = &logits[(i * p + e) * k..(i * p + e + 1) * k];
                    right[(start + i) * p + e] = tinv::control::argmax(row) == y[start + i];
                }
            }
            if let Some(cmd) = progress.filter(|_| (start / chunk) % 40 == 39) {
                errln!("{cmd}: all-exits pass {}/{n}", start + b);
            }
        }
        let costs = model.costs();
        let accuracy = (0..p)
            .map(|e| (0..n).filter(|&i| right[i * p + e]).count() as f64 / n as f64)
            .collect();
        let (mut oracle_flops, mut oracle_right) = (0f64, 0usize);
        for i in 0..n {
            let e = (0..p).find(|&e| right[i * p + e]);
            oracle_right += usize::from(e.is_some());
            oracle_flops += costs[e.unwrap_or(0)].backbone_flops as f64;
        }
        Ok(ExitTable {
            accuracy,
            oracle_flops: oracle_flops / n as f64,
            oracle_accuracy: oracle_right as f64 / n as f64,
        })
    }
}

/// Peak resident set size of this process (VmHWM), 0 where /proc is unavailable.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
