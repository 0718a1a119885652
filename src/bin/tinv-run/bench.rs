//! `tinv-run bench`: per-path latency, path-switch cost, GEMM throughput.

use crate::args::Args;
use crate::json::Json;
use std::sync::Arc;
use std::time::Instant;
use tinv::cpu::{gemm, pool::Pool};

pub const HELP: &str = "\
tinv-run bench — latency of every path, path-switch cost, GEMM throughput (CPU backend;
`tinv-run selftest` times the TensorRT engines)

USAGE:
    tinv-run bench [--model M | --synthetic vit-tiny] [--threads N] [--batch B]
                   [--iters N] [--warmup N] [--verify] [--json]

OPTIONS:
    --model M          .tinv file or package directory (default: $TINV_MODEL, else
                       the engines/fmnist package; see tinv-run --help)
    --synthetic NAME   a model with random weights instead: vit-tiny (224², patch 16, dim 192,
                       3 heads, 12 blocks, exits 3/6/9/12)
    --threads N        worker threads, 1 to 256 (default 1)
    --batch B          inputs per call, 1 to 4096 (default 1)
    --iters N          timed runs per path, at least 2 (default 200)
    --warmup N         untimed runs first (default 20)
    --verify           check every tensor checksum and device copy when opening the --model
    --json             one JSON object: kernel, threads, batch,
                       paths [{depth, flops, p50_us, p99_us, gflops}], switch_us
                       (null for a one-path model),
                       gemm [{m, n, k, gflops}], arena_bytes, peak_rss_bytes (the
                       process's peak resident memory after the path and switch timings,
                       before the GEMM test)

Latency is wall time per call, median and 99th percentile. The switch cost is the median
extra time of a call on one path right after a call on another, against the same path twice;
one within two standard errors of that difference (2.6 × the interquartile range / √runs) is
reported as below the noise.
";

pub fn run(raw: &[std::ffi::OsString]) -> Result<(), String> {
    let a = Args::parse(
        raw,
        &["model", "synthetic", "threads", "batch", "iters", "warmup"],
        &["json", "verify"],
    )?
    .max_positional(0)?;
    let threads = a.threads()?;
    let batch = a.batch()?;
    let iters = a.count("iters", "a run count", 2)?.unwrap_or(200);
    let warmup = a.parse_opt::<usize>("warmup", "a run count")?.unwrap_or(20);
    a.one_model()?;
    let model = match a.get("synthetic") {
        Some("vit-tiny") => {
            let cfg = tinv::synth::vit_tiny();
            let bytes = tinv::synth::random_model(&cfg, 1, tinv::format::DType::F32);
            tinv::Model::from_bytes(&bytes, &tinv::OpenOptions::default())
                .map_err(|e| e.to_string())?
        }
        Some(other) => return Err(format!("--synthetic {other}: known shapes are: vit-tiny")),
        None => crate::model_path::open(a.path("model"), a.has("verify"))?,
    };
    let model = Arc::new(model);
    let c = model.config().clone();
    // The CPU backend, whatever engines lie beside the model: the rows carry the CPU's kernel
    // and arena (`selftest` times the TensorRT engines).
    let opts = tinv::SessionOptions::default()
        .backend(tinv::Backend::Cpu)
        .max_batch(batch)
        .threads(threads);
    let mut s = tinv::Session::new(model.clone(), opts).map_err(|e| e.to_string())?;
    let x = tinv::synth::random_inputs(&c, batch, 3);
    let mut out = vec![0f32; batch * c.classes];
    let mut paths = Vec::new();
    for (k, &d) in c.depths.iter().enumerate() {
        for _ in 0..warmup {
            s.infer_depth(&x, batch, d, &mut out)
                .map_err(|e| e.to_string())?;
        }
        let mut t: Vec<f64> = (0..iters)
            .map(|_| {
                s.infer_depth(&x, batch, d, &mut out)
                    .map(|st| st[0].latency_us)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let (p50, p99) = tinv::timing::summary(&mut t);
        let flops = model.costs()[k].backbone_flops * batch as u64;
        paths.push((d, flops, p50, p99));
        errln!("bench: depth {d} p50 {p50:.1} µs");
    }
    // Switch cost: alternate the shallowest and deepest path vs repeat the deepest (none for a
    // one-path model: there is nothing to switch to).
    let (d0, dl) = (c.depths[0], c.depths[c.depths.len() - 1]);
    let (mut same, mut switched) = (Vec::new(), Vec::new());
    for i in (0..iters).filter(|_| d0 != dl) {
        let first = if i % 2 == 0 { d0 } else { dl };
        s.infer_depth(&x, batch, first, &mut out)
            .map_err(|e| e.to_string())?;
        let t = s
            .infer_depth(&x, batch, dl, &mut out)
            .map_err(|e| e.to_string())?[0]
            .latency_us;
        if first == dl {
            same.push(t)
        } else {
            switched.push(t)
        }
    }
    let switch_us = (d0 != dl)
        .then(|| tinv::timing::summary(&mut switched).0 - tinv::timing::summary(&mut same).0);
    // How far the difference of two medians of n runs moves by chance: about two standard
    // errors, 2 × √2 × 0.93 × IQR / √n (a median's standard error is ≈ 0.93 IQR / √n for
    // roughly normal times; `same` is sorted by `summary`). A switch cost inside it is not told
    // apart from the host's noise.
    let spread = (same.len() >= 4).then(|| {
        let iqr = same[same.len() * 3 / 4] - same[same.len() / 4];
        2.63 * iqr / (same.len() as f64).sqrt()
    });
    // Read before the GEMM test, whose matrices are not inference's (at --batch 512 they doubled
    // the figure).
    let peak_rss = crate::eval::peak_rss_bytes();
    let gemms = gemm_throughput(&c, batch, threads, iters.min(100));
    if a.has("json") {
        let j = Json::obj()
            .set("kernel", Json::Str(gemm::kernel_name().into()))
            .set("threads", Json::Int(threads as u64))
            .set("batch", Json::Int(batch as u64))
            .set(
                "paths",
                Json::Arr(
                    paths
                        .iter()
                        .map(|(d, f, p50, p99)| {
                            Json::obj()
                                .set("depth", Json::Int(*d as u64))
                                .set("flops", Json::Int(*f))
                                .set("p50_us", Json::Num(*p50))
                                .set("p99_us", Json::Num(*p99))
                                .set("gflops", Json::Num(*f as f64 / p50 / 1e3))
                        })
                        .collect(),
                ),
            )
            .set("switch_us", switch_us.map_or(Json::Null, Json::Num))
            .set(
                "gemm",
                Json::Arr(
                    gemms
                        .iter()
                        .map(|(m, n, k, g)| {
                            Json::obj()
                                .set("m", Json::Int(*m as u64))
                                .set("n", Json::Int(*n as u64))
                                .set("k", Json::Int(*k as u64))
                                .set("gflops", Json::Num(*g))
                        })
                        .collect(),
                ),
            )
            .set("arena_bytes", Json::Int(s.arena_bytes() as u64))
            .set("peak_rss_bytes", Json::Int(peak_rss));
        outln!("{}", j.render());
    } else {
        outln!(
            "kernel {}, {threads} thread(s), batch {batch}, {iters} runs per path",
            gemm::kernel_name()
        );
        for (d, f, p50, p99) in &paths {
            outln!(
                "depth {d:>3}  p50 {p50:>10.1} µs  p99 {p99:>10.1} µs  {:>8.2} MFLOPs  {:>6.1} GFLOP/s",
                *f as f64 / 1e6,
                *f as f64 / p50 / 1e3
            );
        }
        match (switch_us, spread) {
            (Some(us), Some(sp)) if us.abs() <= sp => outln!(
                "path switch  below the noise: {us:+.1} µs (median, depth {d0} → {dl} vs {dl} → \
                 {dl}), within ±{sp:.1} µs, two standard errors of the difference"
            ),
            (Some(us), _) => {
                outln!("path switch  {us:+.1} µs (median, depth {d0} → {dl} vs {dl} → {dl})")
            }
            (None, _) => outln!("path switch  none (the model has one path)"),
        }
        for (m, n, k, g) in &gemms {
            outln!("gemm m={m:<5} n={n:<5} k={k:<5} {g:>7.1} GFLOP/s");
        }
        outln!("arena {} bytes", s.arena_bytes());
    }
    Ok(())
}

/// GFLOP/s of the model's weight GEMMs (QKV, projection, MLP up and down) at this batch.
fn gemm_throughput(
    c: &tinv::Config,
    batch: usize,
    threads: usize,
    iters: usize,
) -> Vec<(usize, usize, usize, f64)> {
    let m = c.tokens() * batch;
    let (d, h) = (c.dim, c.mlp_hidden);
    let pool = Pool::new(threads);
    let mut r = tinv::synth::Rng::new(5);
    [(m, 3 * d, d), (m, d, d), (m, h, d), (m, d, h)]
        .into_iter()
        .map(|(m, n, k)| {
            let a = r.vec(m * k, 1.0);
            let b = r.vec(k * n, 1.0);
            let mut cbuf = vec![0f32; m * n];
            let mut scratch = vec![0f32; gemm::scratch_len(m, n, k, threads)];
            let mut t: Vec<f64> = (0..iters + 5)
                .map(|_| {
                    let t0 = Instant::now();
                    gemm::sgemm(
                        m,
                        n,
                        k,
                        &a,
                        k,
                        &b,
                        n,
                        &mut cbuf,
                        n,
                        None,
                        false,
                        &mut scratch,
                        &pool,
                    );
                    t0.elapsed().as_secs_f64()
                })
                .skip(5)
                .collect();
            let secs = tinv::timing::summary(&mut t).0;
            (m, n, k, 2.0 * (m * n * k) as f64 / secs / 1e9)
        })
        .collect()
}
