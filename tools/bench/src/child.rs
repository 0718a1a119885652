//! One measurement in its own process (so the memory it measures belongs to one runtime): load
//! the model, warm up, time `runs` single-image inferences, print one `RESULT key=value …` line.

use crate::Case;
use std::sync::Arc;
use std::time::Instant;
use tinv::{Mode, Model, OpenOptions, Session, SessionOptions};

/// The memory a model costs this process, in bytes: its anonymous resident pages (heap, arenas,
/// stacks; /proc/self/status `RssAnon`) plus the resident pages mapped from `model` (tinv's
/// memory-mapped weights; /proc/self/smaps). A runtime's own library code is left out on both
/// sides: ONNX Runtime faults most of its 8 MiB of code in while the first session is built and
/// run, after any baseline, and VmRSS counted it as the model's.
pub fn model_memory(model: &std::path::Path) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let anon = kib_field(&status, "RssAnon:");
    let target = std::fs::canonicalize(model).ok();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut mapped = 0;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: `start-end perms offset dev inode [path]`, the path absolute
            // with links resolved.
            let path: Vec<&str> = line.split_whitespace().skip(5).collect();
            inside = target
                .as_deref()
                .is_some_and(|t| t == std::path::Path::new(&path.join(" ")));
        } else if inside && first == "Rss:" {
            mapped += kib_field(line, "Rss:");
        }
    }
    anon + mapped
}

/// The first `key value kB` line of `text`, in bytes (0 when absent).
fn kib_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resident set size and its peak, in bytes, from /proc/self/status.
pub fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (kib_field(&s, "VmRSS:"), kib_field(&s, "VmHWM:"))
}

/// Median (the mean of the middle two for an even count, as everywhere in the report) and 99th
/// percentile (nearest rank) of `v`, sorted in place, in the unit of `v`; 0 for no values.
pub fn percentiles(v: &mut [f64]) -> (f64, f64) {
    tinv::timing::summary(v)
}

/// Timed runs of an adaptive row over `inputs` inputs: the smallest multiple of `inputs` that is
/// at least `runs`, so that its mean latency and FLOPs weigh every test image (`--eval-n`) alike
/// (`runs.max(inputs)` counted the first `runs − inputs` images twice).
pub fn adaptive_runs(runs: usize, inputs: usize) -> usize {
    let n = inputs.max(1);
    runs.max(1).div_ceil(n) * n
}

/// The runtime name of the interleaved tinv / ONNX Runtime measurement ([`pair_run`]).
pub const PAIR: &str = "tinv/ort";

/// What the child measured.
pub struct Measured {
    pub lat_us: Vec<f64>,
    /// [`model_memory`] before the model was loaded.
    pub mem_before: u64,
    /// [`model_memory`] right after the timed runs, with the model and session still alive.
    pub mem_end: u64,
    pub extra: Vec<(String, String)>,
}

/// Runs one runtime on `case` and prints the RESULT line.
pub fn run(
    runtime: &str,
    case: &Case,
    threads: usize,
    warmup: usize,
    runs: usize,
) -> Result<(), String> {
    let m = match runtime {
        PAIR => return pair_run(case, threads, warmup, runs),
        "tinv" => tinv_run(case, threads, warmup, runs, None)?,
        "tinv-adaptive" => tinv_run(case, threads, warmup, runs, Some(Mode::Adaptive))?,
        "ort" => ort_run(case, threads, warmup, runs)?,
        #[cfg(feature = "tract")]
        "tract" => tract_run(case, warmup, runs)?,
        other => return Err(format!("unknown runtime '{other}'")),
    };
    let (_, hwm) = rss();
    outln!("{}", result_line(m, hwm));
    Ok(())
}

/// The RESULT line of `m`, `hwm` the process's peak resident set: p50 and p99 as
/// [`percentiles`] gives them, the mean latency, the count of timed runs, the memory increase
/// (end less before; none when it fell), then `m`'s own pairs.
fn result_line(m: Measured, hwm: u64) -> String {
    let mut lat = m.lat_us.clone();
    let mean = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
    let (p50, p99) = percentiles(&mut lat);
    let mut line = format!(
        "RESULT p50_us={p50:.1} p99_us={p99:.1} mean_us={mean:.1} runs={} mem_increase={} hwm={hwm}",
        lat.len(),
        m.mem_end.saturating_sub(m.mem_before)
    );
    for (k, v) in m.extra {
        line.push_str(&format!(" {k}={v}"));
    }
    line
}

/// Input `i` of `case`, cycling over its images (C×H×W floats each).
fn input(case: &Case, i: usize) -> &[f32] {
    let (ch, h, w) = case.chw;
    let per = ch * h * w;
    let n = case.inputs.len() / per;
    &case.inputs[(i % n) * per..(i % n + 1) * per]
}

/// A CPU session of batch 1 on `case`'s model, in `mode` at the case's budget.
fn tinv_session(case: &Case, threads: usize, mode: Mode) -> Result<Session, String> {
    let model =
        Arc::new(Model::open(&case.tinv, &OpenOptions::default()).map_err(|e| e.to_string())?);
    let opts = SessionOptions::default()
        .max_batch(1)
        .threads(threads)
        .mode(mode)
        .budget(case.budget)
        .backend(tinv::Backend::Cpu);
    Session::new(model, opts).map_err(|e| e.to_string())
}

fn tinv_run(
    case: &Case,
    threads: usize,
    warmup: usize,
    runs: usize,
    mode: Option<Mode>,
) -> Result<Measured, String> {
    let mem_before = model_memory(&case.tinv);
    let mut s = tinv_session(case, threads, mode.unwrap_or(Mode::Adaptive))?;
    let c = s.model().config().clone();
    let n = case.inputs.len() / c.input_len();
    let full = *c.depths.last().ok_or("model has no path")?;
    let runs = if mode.is_some() {
        adaptive_runs(runs, n)
    } else {
        runs
    };
    let mut logits = vec![0.0; c.classes];
    let (mut flops, mut wbytes, mut hist) = (0u64, 0u64, vec![0usize; c.depths.len()]);
    let mut lat = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let x = input(case, i);
        let t = Instant::now();
        let st = match mode {
            None => s.infer_depth(x, 1, full, &mut logits),
            Some(_) => s.infer(x, 1, &mut logits),
        }
        .map_err(|e| e.to_string())?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        if i >= warmup {
            lat.push(us);
            flops += st[0].flops;
            wbytes += st[0].weight_bytes;
            hist[st[0].path] += 1;
        }
    }
    let r = runs.max(1) as u64;
    let hist: Vec<String> = hist.iter().map(|h| h.to_string()).collect();
    Ok(Measured {
        mem_end: model_memory(&case.tinv),
        lat_us: lat,
        mem_before,
        extra: vec![
            ("mean_flops".into(), (flops / r).to_string()),
            (
                "weight_bytes_per_inference".into(),
                (wbytes / r).to_string(),
            ),
            ("arena_bytes".into(), s.arena_bytes().to_string()),
            ("depth_histogram".into(), hist.join(",")),
        ],
    })
}

/// ONNX Runtime's environment (its library loaded) and a session on `case`'s graph, with the
/// model memory ([`model_memory`]) sampled between the two.
///
/// `stop_spinning` (the interleaved run only): the idle worker stops spinning when a run returns
/// (`session.force_spinning_stop`) instead of spinning on for about 40 ms into the other
/// runtime's block; inside a run it spins as by default.
fn ort_session(
    case: &Case,
    threads: usize,
    stop_spinning: bool,
) -> Result<(ort::session::Session, u64), String> {
    use ort::session::builder::GraphOptimizationLevel;
    use ort::session::Session as OrtSession;
    let e = |e: ort::Error| e.to_string();
    let env = ort::init_from(&case.ort_lib)
        .map_err(|e| format!("{}: {e}", case.ort_lib.display()))?
        .with_name("tinv-bench")
        .build()
        .map_err(e)?;
    let mem_before = model_memory(&case.onnx);
    let sess = OrtSession::builder(&env)
        .map_err(e)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|x| x.to_string())?
        .with_intra_threads(threads)
        .map_err(|x| x.to_string())?
        .with_inter_threads(1)
        .map_err(|x| x.to_string())?
        .with_config_entry(
            "session.force_spinning_stop",
            if stop_spinning { "1" } else { "0" },
        )
        .map_err(|x| x.to_string())?
        .commit_from_file(&case.onnx)
        .map_err(e)?;
    Ok((sess, mem_before))
}

/// One ONNX Runtime inference of image `i` (modulo the inputs) of `case`.
fn ort_infer(sess: &mut ort::session::Session, case: &Case, i: usize) -> Result<(), String> {
    use ort::value::TensorRef;
    let e = |e: ort::Error| e.to_string();
    let (ch, h, w) = case.chw;
    let x = TensorRef::from_array_view(([1usize, ch, h, w], input(case, i))).map_err(e)?;
    let out = sess.run(ort::inputs!["pixels" => x]).map_err(e)?;
    let (_, logits) = out["logits"].try_extract_tensor::<f32>().map_err(e)?;
    std::hint::black_box(logits);
    Ok(())
}

fn ort_run(case: &Case, threads: usize, warmup: usize, runs: usize) -> Result<Measured, String> {
    let (mut sess, mem_before) = ort_session(case, threads, false)?;
    let mut lat = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let t = Instant::now();
        ort_infer(&mut sess, case, i)?;
        if i >= warmup {
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(Measured {
        mem_end: model_memory(&case.onnx),
        lat_us: lat,
        mem_before,
        extra: vec![],
    })
}

/// Inferences per block of the interleaved measurement: ViT-Tiny's 10 take about 0.4 s, short
/// against the host's bursts of noise, long against either runtime's spin-then-park workers.
pub const PAIR_BLOCK: usize = 10;

/// Untimed inferences at the start of each block of the interleaved measurement, after the
/// switch from the other runtime.
pub const PAIR_SETTLE: usize = 2;

/// tinv at full depth and ONNX Runtime in this one process, in alternating blocks of
/// [`PAIR_BLOCK`] timed inferences (`runs` each, after `warmup` each; each block after
/// [`PAIR_SETTLE`] untimed ones, the two sides' order swapped every block): each tinv block's
/// p50 over the p50 of its neighbouring ORT block gives one ratio, and the line carries their
/// median. Back-to-back processes put seconds between the two sides of a ratio, and this host's
/// noise comes in bursts of seconds.
fn pair_run(case: &Case, threads: usize, warmup: usize, runs: usize) -> Result<(), String> {
    // Full depth through `infer_depth`: the session's mode does not apply.
    let mut s = tinv_session(case, threads, Mode::Adaptive)?;
    let c = s.model().config().clone();
    let full = *c.depths.last().ok_or("model has no path")?;
    let (mut ort, _) = ort_session(case, threads, true)?;
    let mut logits = vec![0.0; c.classes];
    let mut tinv_one = |i: usize| -> Result<f64, String> {
        let x = input(case, i);
        let t = Instant::now();
        s.infer_depth(x, 1, full, &mut logits)
            .map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64() * 1e6)
    };
    let mut ort_one = |i: usize| -> Result<f64, String> {
        let t = Instant::now();
        ort_infer(&mut ort, case, i)?;
        Ok(t.elapsed().as_secs_f64() * 1e6)
    };
    for i in 0..warmup {
        tinv_one(i)?;
        ort_one(i)?;
    }
    let blocks = runs.div_ceil(PAIR_BLOCK).max(1);
    let (mut all_t, mut all_o, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for b in 0..blocks {
        let idx = b * PAIR_BLOCK..(b + 1) * PAIR_BLOCK;
        // Each block starts with PAIR_SETTLE untimed inferences, and ONNX Runtime's session
        // stops spinning when a run returns: its idle worker spun about 40 ms after each run
        // and shared the 2 vCPUs with the first tinv inferences after an ORT block. The order
        // alternates so that whatever a switch costs falls on both sides alike.
        let block = |one: &mut dyn FnMut(usize) -> Result<f64, String>| {
            for i in 0..PAIR_SETTLE {
                one(idx.start + i)?;
            }
            idx.clone().map(one).collect::<Result<Vec<f64>, String>>()
        };
        let (mut t, mut o) = if b % 2 == 0 {
            let t = block(&mut tinv_one)?;
            (t, block(&mut ort_one)?)
        } else {
            let o = block(&mut ort_one)?;
            (block(&mut tinv_one)?, o)
        };
        all_t.extend_from_slice(&t);
        all_o.extend_from_slice(&o);
        ratios.push(block_ratio(&mut t, &mut o));
    }
    let ratio = crate::median(ratios).unwrap_or(0.0);
    outln!(
        "RESULT ratio={ratio:.4} blocks={blocks} block={PAIR_BLOCK} tinv_runs={} ort_runs={} \
         tinv_p50_us={:.1} ort_p50_us={:.1}",
        all_t.len(),
        all_o.len(),
        percentiles(&mut all_t).0,
        percentiles(&mut all_o).0
    );
    Ok(())
}

/// The ratio of one pair of neighbouring blocks: tinv's p50 over ONNX Runtime's.
fn block_ratio(tinv: &mut [f64], ort: &mut [f64]) -> f64 {
    percentiles(tinv).0 / percentiles(ort).0
}

#[cfg(feature = "tract")]
fn tract_run(case: &Case, warmup: usize, runs: usize) -> Result<Measured, String> {
    use tract_onnx::prelude::*;
    let e = |e: TractError| format!("{e:#}");
    let mem_before = model_memory(&case.onnx_tract);
    let (ch, h, w) = case.chw;
    let model = tract_onnx::onnx()
        .model_for_path(&case.onnx_tract)
        .map_err(e)?
        .with_input_fact(0, f32::fact([1, ch, h, w]).into())
        .map_err(e)?
        .into_optimized()
        .map_err(e)?
        .into_runnable()
        .map_err(e)?;
    let mut lat = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let x = input(case, i).to_vec();
        let t = Instant::now();
        let input = Tensor::from_shape(&[1, ch, h, w], &x).map_err(e)?;
        let out = model.run(tvec!(input.into())).map_err(e)?;
        std::hint::black_box(&out);
        if i >= warmup {
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(Measured {
        mem_end: model_memory(&case.onnx_tract),
        lat_us: lat,
        mem_before,
        extra: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::{
        adaptive_runs, block_ratio, model_memory, percentiles, result_line, rss, tinv_run, Measured,
    };
    use crate::Case;
    use tinv::{Mode, Model, OpenOptions, Session, SessionOptions};

    #[test]
    fn the_result_line_has_p50_p99_mean_runs_and_the_memory_increase() {
        // 1, 2, 3 and 10 µs: p50 (2 + 3) / 2 = 2.5, p99 the 4th of 4 (nearest rank ⌈0.99 × 4⌉),
        // mean 16 / 4 = 4; 5096 − 1000 bytes more at the end.
        let m = |lat: Vec<f64>, before: u64, end: u64| Measured {
            lat_us: lat,
            mem_before: before,
            mem_end: end,
            extra: vec![("mean_flops".into(), "12".into())],
        };
        assert_eq!(
            result_line(m(vec![10.0, 2.0, 3.0, 1.0], 1000, 5096), 7),
            "RESULT p50_us=2.5 p99_us=10.0 mean_us=4.0 runs=4 mem_increase=4096 hwm=7 \
             mean_flops=12"
        );
        // Memory that fell is no increase; three runs of 1, 1, 4: mean 2.
        assert_eq!(
            result_line(m(vec![1.0, 4.0, 1.0], 5096, 1000), 0),
            "RESULT p50_us=1.0 p99_us=4.0 mean_us=2.0 runs=3 mem_increase=0 hwm=0 mean_flops=12"
        );
    }

    #[test]
    fn a_block_pairs_ratio_is_tinvs_p50_over_orts() {
        // p50s 20 (of 10, 20, 30) and 55 (of 40, 50, 60, 70).
        let r = block_ratio(&mut [30.0, 10.0, 20.0], &mut [70.0, 40.0, 60.0, 50.0]);
        assert_eq!(r, 20.0 / 55.0);
    }

    /// VmRSS and VmHWM in bytes: whole KiB, more than a MiB in any test process, the peak at
    /// least the current.
    #[test]
    fn rss_is_the_resident_set_and_its_peak_in_bytes() {
        let (now, peak) = rss();
        assert!(now > 1 << 20 && now % 1024 == 0, "{now}");
        assert!(peak >= now && peak % 1024 == 0, "{peak} < {now}");
    }

    /// A tinv row's FLOPs and weight bytes per inference are the means of what the session
    /// reports for the inputs it timed, its histogram counts the timed inferences per path, its
    /// arena is the session's. Full depth: every input costs the full path. Adaptive: 6 images
    /// and --runs 5 time each image once (6 runs; input `i` is image `i mod 6`, after 1 warm-up).
    #[test]
    fn tinv_rows_report_the_means_of_the_timed_inferences() {
        let dir = crate::test_support::test_dir("bench-child");
        std::fs::create_dir_all(&dir).unwrap();
        let path = crate::test_support::write_fm_model(&dir);
        let inputs = tinv::synth::random_inputs(&crate::test_support::fm_config(), 6, 5);
        let case = Case {
            name: "fmnist".into(),
            tinv: path.clone(),
            onnx: dir.join("unused.onnx"),
            onnx_tract: dir.join("unused.decomposed.onnx"),
            chw: (1, 28, 28),
            inputs: inputs.clone(),
            labels: None,
            budget: None,
            ort_lib: dir.join("unused.so"),
            adaptive: true,
        };
        let extra = |m: &Measured, k: &str| {
            m.extra
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let model = std::sync::Arc::new(Model::open(&path, &OpenOptions::default()).unwrap());
        let opts = SessionOptions::default().max_batch(1).threads(1);
        let mut s = Session::new(model, opts).unwrap();
        let mut logits = vec![0f32; 10];
        let full = s.infer_depth(&inputs[..784], 1, 4, &mut logits).unwrap()[0];
        let m = tinv_run(&case, 1, 1, 5, None).unwrap();
        assert_eq!(m.lat_us.len(), 5);
        assert_eq!(extra(&m, "mean_flops"), full.flops.to_string());
        assert_eq!(
            extra(&m, "weight_bytes_per_inference"),
            full.weight_bytes.to_string()
        );
        assert_eq!(extra(&m, "depth_histogram"), "0,5");
        assert_eq!(extra(&m, "arena_bytes"), s.arena_bytes().to_string());
        let (mut flops, mut bytes, mut hist) = (0, 0, [0; 2]);
        s.set_mode(Mode::Adaptive).unwrap();
        for x in inputs.chunks_exact(784) {
            let st = s.infer(x, 1, &mut logits).unwrap()[0];
            (flops, bytes) = (flops + st.flops, bytes + st.weight_bytes);
            hist[st.path] += 1;
        }
        let m = tinv_run(&case, 1, 1, 5, Some(Mode::Adaptive)).unwrap();
        assert_eq!(m.lat_us.len(), 6);
        assert_eq!(extra(&m, "mean_flops"), (flops / 6).to_string());
        assert_eq!(
            extra(&m, "weight_bytes_per_inference"),
            (bytes / 6).to_string()
        );
        assert_eq!(
            extra(&m, "depth_histogram"),
            format!("{},{}", hist[0], hist[1])
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn model_memory_counts_the_pages_mapped_from_the_model_file() {
        // A 3 MiB model file, memory-mapped and read through (`verify`) by tinv.
        let cfg = tinv::synth::config(32, 1, 4, 128, 4, 4, 10, &[2, 4], false);
        let bytes = tinv::synth::random_model(&cfg, 1, tinv::format::DType::F32);
        let path = std::env::temp_dir().join(format!("tinv-bench-mem-{}.tinv", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let opts = tinv::OpenOptions::default().verify(true);
        let model = tinv::Model::open(&path, &opts).unwrap();
        let with = model_memory(&path);
        let without = model_memory(std::path::Path::new("/nonexistent"));
        // Between the two reads anonymous memory may move by a few pages; the file's are there.
        let mapped = with.saturating_sub(without) as f64;
        assert!(
            mapped > 0.9 * bytes.len() as f64 && mapped < 1.1 * bytes.len() as f64 + 65536.0,
            "{mapped} bytes mapped for a {} byte file",
            bytes.len()
        );
        drop(model);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn adaptive_rows_time_every_input_equally_often() {
        assert_eq!(adaptive_runs(200, 2000), 2000);
        assert_eq!(adaptive_runs(30, 30), 30);
        // 50 runs over 30 images: 60, each image twice (not 20 of them twice).
        assert_eq!(adaptive_runs(50, 30), 60);
        assert_eq!(adaptive_runs(0, 7), 7);
    }

    #[test]
    fn p50_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(percentiles(&mut [3.0, 1.0]), (2.0, 3.0));
        assert_eq!(percentiles(&mut [5.0, 1.0, 3.0]), (3.0, 5.0));
        assert_eq!(percentiles(&mut []), (0.0, 0.0));
    }
}
