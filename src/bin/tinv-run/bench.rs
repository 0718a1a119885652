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
    let mut runs = Vec::new();
    for first in switch_firsts(iters, d0, dl) {
        s.infer_depth(&x, batch, first, &mut out)
            .map_err(|e| e.to_string())?;
        let t = s
            .infer_depth(&x, batch, dl, &mut out)
            .map_err(|e| e.to_string())?[0]
            .latency_us;
        runs.push((first, t));
    }
    let (switch_us, spread) = switch_cost(&runs, dl);
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
                                .set("gflops", Json::Num(gflops(*f as f64, *p50)))
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
                gflops(*f as f64, *p50)
            );
        }
        outln!("{}", switch_line(switch_us, spread, d0, dl));
        for (m, n, k, g) in &gemms {
            outln!("gemm m={m:<5} n={n:<5} k={k:<5} {g:>7.1} GFLOP/s");
        }
        outln!("arena {} bytes", s.arena_bytes());
    }
    Ok(())
}

/// The path run before each timed call of the deepest path `dl` in the switch test: the
/// shallowest `d0` and `dl` in turn, `iters` in all; none when they are one path.
fn switch_firsts(iters: usize, d0: usize, dl: usize) -> impl Iterator<Item = usize> {
    (0..iters)
        .filter(move |_| d0 != dl)
        .map(move |i| if i % 2 == 0 { d0 } else { dl })
}

/// The switch cost from `runs`, (path run first, µs of the deepest path `dl` after it): the
/// median after another path minus the median after `dl` itself, and how far such a difference
/// moves by chance: about two standard errors, 2 × √2 × 0.93 × IQR / √n (a median's standard
/// error is ≈ 0.93 IQR / √n for roughly normal times), from the spread of the runs after `dl`;
/// `None` under 4 of them. A switch cost inside it is not told apart from the host's noise. No
/// runs (a one-path model) give no cost.
fn switch_cost(runs: &[(usize, f64)], dl: usize) -> (Option<f64>, Option<f64>) {
    let (mut same, mut switched) = (Vec::new(), Vec::new());
    for &(first, t) in runs {
        if first == dl {
            same.push(t)
        } else {
            switched.push(t)
        }
    }
    let us = (!runs.is_empty())
        .then(|| tinv::timing::summary(&mut switched).0 - tinv::timing::summary(&mut same).0);
    // `summary` sorted `same`.
    let spread = (same.len() >= 4).then(|| {
        let iqr = same[same.len() * 3 / 4] - same[same.len() / 4];
        2.63 * iqr / (same.len() as f64).sqrt()
    });
    (us, spread)
}

/// The text report's switch line.
fn switch_line(switch_us: Option<f64>, spread: Option<f64>, d0: usize, dl: usize) -> String {
    match (switch_us, spread) {
        (Some(us), Some(sp)) if us.abs() <= sp => format!(
            "path switch  below the noise: {us:+.1} µs (median, depth {d0} → {dl} vs {dl} → \
             {dl}), within ±{sp:.1} µs, two standard errors of the difference"
        ),
        (Some(us), _) => {
            format!("path switch  {us:+.1} µs (median, depth {d0} → {dl} vs {dl} → {dl})")
        }
        (None, _) => "path switch  none (the model has one path)".into(),
    }
}

/// GFLOP/s of `flops` done in `us` microseconds.
fn gflops(flops: f64, us: f64) -> f64 {
    flops / us / 1e3
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
            let us = tinv::timing::summary(&mut t).0 * 1e6;
            (m, n, k, gflops(2.0 * (m * n * k) as f64, us))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_test_alternates_the_shallowest_and_deepest_paths() {
        assert_eq!(switch_firsts(5, 2, 8).collect::<Vec<_>>(), [2, 8, 2, 8, 2]);
        assert_eq!(switch_firsts(4, 8, 8).count(), 0);
    }

    #[test]
    fn switch_cost_is_a_difference_of_medians_with_a_noise_band() {
        // After depth 8 itself: 14, 10, 13, 11 (sorted 10 11 13 14: median 12, IQR 14 − 11 = 3,
        // band 2.63 × 3 / √4 = 3.945); after depth 2: 15, 17, 16 (median 16).
        let runs = [
            (2, 15.0),
            (8, 14.0),
            (2, 17.0),
            (8, 10.0),
            (2, 16.0),
            (8, 13.0),
            (8, 11.0),
        ];
        let (us, band) = switch_cost(&runs, 8);
        assert_eq!(us, Some(4.0));
        assert!((band.unwrap() - 3.945).abs() < 1e-12, "{band:?}");
        // Three runs after the deepest path give no band.
        assert_eq!(
            switch_cost(&[(8, 1.0), (8, 2.0), (2, 5.0), (8, 3.0)], 8),
            (Some(3.0), None)
        );
        // A one-path model makes no runs, and has no cost.
        assert_eq!(switch_cost(&[], 8), (None, None));
    }

    #[test]
    fn the_switch_line_says_when_the_cost_is_below_the_noise() {
        let tail = "(median, depth 2 → 8 vs 8 → 8)";
        for us in [1.0, -2.0, 2.0] {
            assert_eq!(
                switch_line(Some(us), Some(2.0), 2, 8),
                format!(
                    "path switch  below the noise: {us:+.1} µs (median, depth 2 → 8 vs 8 → 8), \
                     within ±2.0 µs, two standard errors of the difference"
                )
            );
        }
        assert_eq!(
            switch_line(Some(-3.0), Some(2.0), 2, 8),
            format!("path switch  -3.0 µs {tail}")
        );
        assert_eq!(
            switch_line(Some(3.0), None, 2, 8),
            format!("path switch  +3.0 µs {tail}")
        );
        assert_eq!(
            switch_line(None, None, 8, 8),
            "path switch  none (the model has one path)"
        );
    }

    #[test]
    fn gflops_are_flops_per_nanosecond() {
        // 2·10⁹ FLOPs in 10⁶ µs (one second).
        assert_eq!(gflops(2e9, 1e6), 2.0);
        assert_eq!(gflops(3e6, 500.0), 6.0);
    }

    #[test]
    fn gemm_throughput_times_the_four_weight_gemms_at_this_batch() {
        let c = tinv::synth::config(8, 1, 4, 16, 2, 2, 3, &[1, 2], false);
        let (m, d, h) = (c.tokens() * 3, c.dim, c.mlp_hidden);
        let g = gemm_throughput(&c, 3, 1, 2);
        let shapes: Vec<_> = g.iter().map(|&(m, n, k, _)| (m, n, k)).collect();
        assert_eq!(shapes, [(m, 3 * d, d), (m, d, d), (m, h, d), (m, d, h)]);
        // A unit check, not a speed target: any CPU's GFLOP/s lie far inside (10⁻³, 10⁵); a
        // time in seconds read as µs, or the other way round, lands outside.
        assert!(g.iter().all(|r| r.3 > 1e-3 && r.3 < 1e5), "{g:?}");
    }
}
