//! `tinv-run eval` end to end on synthetic models and IDX files: every number it reports is the
//! library's per-input results summed, the images it reads are the ones asked for, and a data set
//! too large for memory is an error.

#[path = "common/cli.rs"]
mod cli_support;
#[path = "common/cli_fixtures.rs"]
mod fixtures;

use cli_support::{assert_failed_with, assert_one_line_error, field, num, run, tmp};
use fixtures::{eval_json, fixture, library_logits, run_limited};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tinv::format::DType;
use tinv::{synth, Model, OpenOptions, Session, SessionOptions};

#[test]
fn eval_reports_required_fields_on_gzip_and_plain_idx() {
    let dir = tmp("eval");
    let (model_path, _) = fixture(&dir);
    let n = 20;
    let imgs: Vec<u8> = (0..n * 64).map(|i| (i * 13 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    let ip = dir.join("imgs.idx");
    std::fs::write(&ip, tinv::idx::encode(&[n, 8, 8], &imgs).unwrap()).unwrap();
    let lp = dir.join("labels.idx.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tinv::idx::encode(&[n], &labels).unwrap()).unwrap();
    std::fs::write(&lp, gz.finish().unwrap()).unwrap();
    let (code, out, err) = eval_json(&model_path, &ip, &lp);
    assert_eq!(code, 0, "{err}");
    for key in [
        "samples",
        "accuracy",
        "accuracy_full_depth",
        "mean_flops",
        "full_flops",
        "flops_reduction",
        "oracle_flops",
        "depth_histogram",
        "latency_us",
        "p50",
        "p99",
        "arena_bytes",
        "peak_rss_bytes",
        "weight_bytes_per_inference",
    ] {
        assert!(
            out.contains(&format!("\"{key}\":")),
            "{key} missing in {out}"
        );
    }
    assert!(out.contains("\"samples\":20"));
    // Images and labels that do not fit each other or the model, each a one-line error.
    let eval_fails = |images: &Path, labels: &Path, needle: &str| {
        let (m, i, l) = (model_path.to_str(), images.to_str(), labels.to_str());
        let args = ["eval", "--model", m.unwrap(), "--images", i.unwrap()];
        assert_one_line_error(&[&args[..], &["--labels", l.unwrap()]].concat(), needle);
    };
    // Mismatched counts: 19 labels for 20 images.
    let lp2 = dir.join("short.idx");
    std::fs::write(&lp2, tinv::idx::encode(&[n - 1], &labels[..n - 1]).unwrap()).unwrap();
    eval_fails(&ip, &lp2, "19 labels for 20 images");
    // An image file given as the labels.
    eval_fails(&ip, &ip, "labels must be [n], found [20, ");
    // Wrong image size for the model.
    let ip3 = dir.join("big.idx");
    std::fs::write(
        &ip3,
        tinv::idx::encode(&[n, 9, 9], &vec![0; n * 81]).unwrap(),
    )
    .unwrap();
    eval_fails(&ip3, &lp, "9x9x1");
}

/// An IDX data set of `n` 8×8 samples in `dir` (pixels from the index, labels `i·7 mod 3`):
/// the two files, then the inputs and labels as the library takes them.
fn eval_data(dir: &Path, n: usize) -> (PathBuf, PathBuf, Vec<f32>, Vec<usize>) {
    let px: Vec<u8> = (0..n * 64)
        .map(|j| ((j * 37 + j / 64 * 11) % 251) as u8)
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i * 7 % 3) as u8).collect();
    let (ip, lp) = (dir.join(format!("x{n}.idx")), dir.join(format!("y{n}.idx")));
    std::fs::write(&ip, tinv::idx::encode(&[n, 8, 8], &px).unwrap()).unwrap();
    std::fs::write(&lp, tinv::idx::encode(&[n], &labels).unwrap()).unwrap();
    let x = px.iter().map(|&v| f32::from(v) / 255.0).collect();
    (ip, lp, x, labels.iter().map(|&l| usize::from(l)).collect())
}

/// What `tinv-run eval` must report, summed here from the library one input at a time.
struct EvalReport {
    n: usize,
    depths: Vec<usize>,
    accuracy: f64,
    exit_accuracy: Vec<f64>,
    mean_flops: f64,
    full_flops: f64,
    oracle_flops: f64,
    oracle_accuracy: f64,
    histogram: Vec<usize>,
    mean_escalations: f64,
    weight_bytes: f64,
    full_weight_bytes: u64,
}

impl EvalReport {
    /// Every input alone through `infer_depth` at every depth (which exits are right, the
    /// oracle: the cost of the shallowest right exit, else of the shallowest), then alone
    /// through a session of `opts` (`infer`, or `infer_depth` at `depth`).
    fn of(
        model: &Path,
        x: &[f32],
        y: &[usize],
        opts: SessionOptions,
        depth: Option<usize>,
    ) -> Self {
        let model = Arc::new(Model::open(model, &OpenOptions::default()).unwrap());
        let cfg = model.config().clone();
        let (n, k, p, len) = (y.len(), cfg.classes, cfg.depths.len(), cfg.input_len());
        let costs: Vec<u64> = model.costs().iter().map(|c| c.backbone_flops).collect();
        let mut fixed = Session::new(model.clone(), SessionOptions::default()).unwrap();
        let mut run = Session::new(model, opts).unwrap();
        let mut logits = vec![0f32; k];
        let mut r = EvalReport {
            n,
            depths: cfg.depths.clone(),
            accuracy: 0.0,
            exit_accuracy: vec![0.0; p],
            mean_flops: 0.0,
            full_flops: costs[p - 1] as f64,
            oracle_flops: 0.0,
            oracle_accuracy: 0.0,
            histogram: vec![0; p],
            mean_escalations: 0.0,
            weight_bytes: 0.0,
            full_weight_bytes: 0,
        };
        let (mut right, mut oracle, mut oracle_right) = (vec![0usize; p], 0u64, 0usize);
        let (mut correct, mut flops, mut bytes, mut esc) = (0usize, 0u64, 0u64, 0u64);
        for (i, &label) in y.iter().enumerate() {
            let xi = &x[i * len..(i + 1) * len];
            let mut first = None;
            for (e, &d) in cfg.depths.iter().enumerate() {
                let st = fixed.infer_depth(xi, 1, d, &mut logits).unwrap()[0];
                if st.class == label {
                    right[e] += 1;
                    first = first.or(Some(e));
                }
                if e == p - 1 {
                    r.full_weight_bytes = st.weight_bytes;
                }
            }
            oracle += costs[first.unwrap_or(0)];
            oracle_right += usize::from(first.is_some());
            let st = match depth {
                Some(d) => run.infer_depth(xi, 1, d, &mut logits),
                None => run.infer(xi, 1, &mut logits),
            }
            .unwrap()[0];
            correct += usize::from(st.class == label);
            flops += st.flops;
            bytes += st.weight_bytes;
            esc += u64::from(st.escalations);
            r.histogram[st.path] += 1;
        }
        let mean = |v: u64| v as f64 / n as f64;
        r.accuracy = mean(correct as u64);
        r.exit_accuracy = right.iter().map(|&c| mean(c as u64)).collect();
        r.mean_flops = mean(flops);
        r.oracle_flops = mean(oracle);
        r.oracle_accuracy = mean(oracle_right as u64);
        r.mean_escalations = mean(esc);
        r.weight_bytes = mean(bytes);
        r
    }

    /// `"depth":value` for each depth, as an object.
    fn per_depth<T: std::fmt::Display>(&self, v: &[T]) -> String {
        let kv: Vec<String> = self
            .depths
            .iter()
            .zip(v)
            .map(|(d, v)| format!("\"{d}\":{v}"))
            .collect();
        format!("{{{}}}", kv.join(","))
    }

    /// The `--json` fields that are not timings or memory, as `eval` must write them.
    fn json_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("samples", self.n.to_string()),
            ("accuracy", self.accuracy.to_string()),
            (
                "accuracy_full_depth",
                self.exit_accuracy.last().unwrap().to_string(),
            ),
            ("mean_flops", self.mean_flops.to_string()),
            ("full_flops", self.full_flops.to_string()),
            (
                "flops_reduction",
                (1.0 - self.mean_flops / self.full_flops).to_string(),
            ),
            ("oracle_flops", self.oracle_flops.to_string()),
            ("oracle_accuracy", self.oracle_accuracy.to_string()),
            ("exit_accuracy", self.per_depth(&self.exit_accuracy)),
            ("depth_histogram", self.per_depth(&self.histogram)),
            ("mean_escalations", self.mean_escalations.to_string()),
            ("weight_bytes_per_inference", self.weight_bytes.to_string()),
            ("full_weight_bytes", self.full_weight_bytes.to_string()),
        ]
    }

    /// The text report's lines that are not timings or memory, `mode` its mode line.
    fn text_lines(&self, mode: &str) -> Vec<String> {
        let pct = |v: f64| v * 100.0;
        let full_acc = *self.exit_accuracy.last().unwrap();
        let mut v = vec![
            format!("samples            {}", self.n),
            "backend            cpu".into(),
            format!("mode               {mode}"),
            format!(
                "accuracy           {:.2}%   (full depth {:.2}%)",
                pct(self.accuracy),
                pct(full_acc)
            ),
            format!(
                "mean FLOPs         {:.3}M of {:.3}M full ({:.1}% {})",
                self.mean_flops / 1e6,
                self.full_flops / 1e6,
                pct(1.0 - self.mean_flops / self.full_flops).abs(),
                if self.mean_flops > self.full_flops {
                    "more"
                } else {
                    "fewer"
                }
            ),
            format!(
                "oracle             {:.3}M FLOPs ({:.1}% of full), {:.2}% accuracy",
                self.oracle_flops / 1e6,
                pct(self.oracle_flops / self.full_flops),
                pct(self.oracle_accuracy)
            ),
            format!(
                "weights read       {:.2} MB per inference of {:.2} MB at full depth",
                self.weight_bytes / 1e6,
                self.full_weight_bytes as f64 / 1e6
            ),
        ];
        for (e, d) in self.depths.iter().enumerate() {
            v.push(format!(
                "exit {d:>3}           accuracy {:.2}%, chosen for {} inputs",
                pct(self.exit_accuracy[e]),
                self.histogram[e]
            ));
        }
        v
    }
}

/// `eval`'s numbers, in `--json` and as text, in each mode, against [`EvalReport`]: 150 inputs,
/// so the all-exits pass runs chunks of 64, 64 and 22, and `--batch 4` leaves a last call of 2.
/// A model without a controller runs at full depth, or in threshold mode.
#[test]
fn eval_reports_the_librarys_per_input_results_summed() {
    let dir = tmp("eval-sums");
    let (model_path, _) = fixture(&dir);
    let bare = dir.join("bare.tinv");
    std::fs::write(
        &bare,
        synth::random_model(&synth::tiny(3, false), 4, DType::F32),
    )
    .unwrap();
    let (ip, lp, x, y) = eval_data(&dir, 150);
    let default_budget = {
        let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
        Session::new(model, SessionOptions::default())
            .unwrap()
            .budget()
    };
    let o = SessionOptions::default;
    let threshold = || o().mode(tinv::Mode::Threshold(0.6));
    let adaptive = format!("adaptive, budget λ = {default_budget}");
    let full = "full depth (the model has no controller)";
    let cases = [
        (
            &model_path,
            &["--batch", "4"][..],
            o(),
            None,
            adaptive.as_str(),
            "adaptive",
        ),
        (
            &model_path,
            &["--mode", "graph", "--budget", "0"],
            o().mode(tinv::Mode::Graph).budget(0.0),
            None,
            "graph, budget λ = 0",
            "graph",
        ),
        (
            &model_path,
            &["--mode", "threshold:0.6", "--batch", "7"],
            threshold(),
            None,
            "threshold:0.6",
            "threshold:0.6",
        ),
        // τ = 1: every input runs every exit, so the mean is above full depth ("more"); a
        // batch larger than the data set runs the data set in one batch.
        (
            &model_path,
            &["--mode", "threshold:1", "--batch", "4096"],
            o().mode(tinv::Mode::Threshold(1.0)),
            None,
            "threshold:1",
            "threshold:1",
        ),
        (
            &model_path,
            &["--depth", "1"],
            o(),
            Some(1),
            "depth:1",
            "depth:1",
        ),
        (&bare, &[], o(), None, full, "depth:2"),
        (
            &bare,
            &["--mode", "threshold:0.6"],
            threshold(),
            None,
            "threshold:0.6",
            "threshold:0.6",
        ),
    ];
    let mut escalated = false;
    let mut oracle_below_full = false;
    let mut above_full = false;
    for (model, extra, opts, depth, text_mode, json_mode) in cases {
        let want = EvalReport::of(model, &x, &y, opts, depth);
        escalated |= want.mean_escalations > 0.0;
        oracle_below_full |= want.oracle_accuracy > *want.exit_accuracy.last().unwrap();
        above_full |= want.mean_flops > want.full_flops;
        let (m, i, l) = (
            model.to_str().unwrap(),
            ip.to_str().unwrap(),
            lp.to_str().unwrap(),
        );
        let args = [
            &["eval", "--model", m, "--images", i, "--labels", l][..],
            extra,
        ]
        .concat();
        let (code, out, err) = run(&[&args[..], &["--json"]].concat());
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
        for (key, value) in want.json_fields() {
            assert_eq!(field(&out, key), value, "{key} of {args:?}: {out}");
        }
        assert_eq!(field(&out, "mode"), format!("\"{json_mode}\""), "{out}");
        let budget = match json_mode {
            "adaptive" => default_budget.to_string(),
            "graph" => "0".into(),
            _ => "null".into(),
        };
        assert_eq!(field(&out, "budget"), budget, "{out}");
        let batch = extra
            .iter()
            .position(|&a| a == "--batch")
            .map_or(1, |at| extra[at + 1].parse::<usize>().unwrap());
        assert_eq!(field(&out, "batch"), batch.min(want.n).to_string(), "{out}");
        // VmHWM is in KiB: a whole number of them, more than 1 MiB and less than 4 GiB.
        let rss: u64 = field(&out, "peak_rss_bytes").parse().unwrap();
        assert!(
            rss.is_multiple_of(1024) && rss > 1 << 20 && rss < 1 << 32,
            "{out}"
        );

        let (code, out, err) = run(&args);
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
        let lines: Vec<&str> = out.lines().collect();
        for line in want.text_lines(text_mode) {
            assert!(
                lines.contains(&line.as_str()),
                "{line:?} missing in {args:?}:\n{out}"
            );
        }
        let mib = out.split("peak RSS ").nth(1).unwrap();
        let mib: f64 = mib[..mib.find(' ').unwrap()].parse().unwrap();
        assert!((1.0..4096.0).contains(&mib), "{out}");
    }
    // The data exercise what the sums count: escalations, inputs only a shallower exit gets
    // right, and a mean above full depth.
    assert!(escalated && oracle_below_full && above_full);
}

/// `eval` reports its progress on stderr when it is a terminal or the data set has at least
/// 2,000 samples: the all-exits pass every 40 chunks of 64, the timed run every 2,000 inputs.
#[test]
fn eval_reports_progress_from_2000_samples() {
    let dir = tmp("eval-progress");
    let (model_path, _) = fixture(&dir);
    let (ip, lp, _, _) = eval_data(&dir, 2600);
    let (m, i, l) = (
        model_path.to_str().unwrap(),
        ip.to_str().unwrap(),
        lp.to_str().unwrap(),
    );
    for (extra, want) in [
        (
            &["--batch", "64"][..],
            "eval: all-exits pass 2560/2600\neval: timed run 2048/2600\n",
        ),
        (&["--limit", "2000"], "eval: timed run 2000/2000\n"),
        (&["--limit", "1999"], ""),
    ] {
        let args = [
            &["eval", "--model", m, "--images", i, "--labels", l][..],
            extra,
        ]
        .concat();
        let (code, _, err) = run(&args);
        assert_eq!((code, err.as_str()), (0, want), "{args:?}");
    }
}

/// `eval` on IDX images of 3 channels (`[n, H, W, C]`, HWC bytes to CHW floats) and of 1 as
/// `[n, H, W, 1]`, with `--skip` and `--limit`: the labels of the samples kept are the library's
/// own classes of the hand-converted pixels, every other one wrong, so only the right samples,
/// converted right, score 1. The data set's bounds: a label one past the classes, `--skip` to
/// the last sample and past it, no samples, two dimensions, a missing Fashion-MNIST file.
#[test]
fn eval_converts_idx_channels_and_keeps_the_samples_asked_for() {
    let dir = tmp("eval-idx");
    let (grey, _) = fixture(&dir);
    let colour = dir.join("rgb.tinv");
    let cfg3 = synth::config(8, 3, 4, 16, 2, 2, 3, &[1, 2], false);
    std::fs::write(&colour, synth::random_model(&cfg3, 5, DType::F32)).unwrap();
    let n = 12;
    for (model, c) in [(&colour, 3usize), (&grey, 1)] {
        let mut seed = 0x2545_f491u32 + c as u32;
        let im: Vec<u8> = (0..n * 64 * c)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect();
        let classes: Vec<usize> = (0..n)
            .map(|i| {
                let x: Vec<f32> = (0..c)
                    .flat_map(|ch| (0..64).map(move |p| (ch, p)))
                    .map(|(ch, p)| im[(i * 64 + p) * c + ch] as f32 / 255.0)
                    .collect();
                let l = library_logits(model, &x);
                (0..3).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap()
            })
            .collect();
        let (skip, limit) = (3, 6);
        let labels: Vec<u8> = (0..n)
            .map(|i| (classes[i] + usize::from(!(skip..skip + limit).contains(&i))) as u8 % 3)
            .collect();
        let ip = dir.join(format!("i{c}.idx"));
        std::fs::write(&ip, tinv::idx::encode(&[n, 8, 8, c], &im).unwrap()).unwrap();
        let lp = dir.join(format!("l{c}.idx"));
        std::fs::write(&lp, tinv::idx::encode(&[n], &labels).unwrap()).unwrap();
        let (m, i, l) = (
            model.to_str().unwrap(),
            ip.to_str().unwrap(),
            lp.to_str().unwrap(),
        );
        let eval = [
            "eval", "--model", m, "--images", i, "--labels", l, "--json", "--depth", "2",
        ];
        let (code, out, err) = run(&[&eval[..], &["--skip", "3", "--limit", "6"]].concat());
        assert_eq!(code, 0, "{err}");
        assert_eq!(num(&out, "samples"), 6.0, "{out}");
        assert_eq!(num(&out, "accuracy"), 1.0, "{out}");
        // All of them: 6 of 12 right; from the last one, wrong (its label is off by one).
        let (code, out, err) = run(&eval);
        assert_eq!(code, 0, "{err}");
        assert_eq!(num(&out, "accuracy"), 0.5, "{out}");
        // A limit past the end keeps the rest: 3..12, of which 3..9 right.
        let (code, out, err) = run(&[&eval[..], &["--skip", "3", "--limit", "100"]].concat());
        assert_eq!(code, 0, "{err}");
        assert_eq!(num(&out, "samples"), 9.0, "{out}");
        assert!((num(&out, "accuracy") - 6.0 / 9.0).abs() < 1e-6, "{out}");
        let (code, out, err) = run(&[&eval[..], &["--skip", "11"]].concat());
        assert_eq!(code, 0, "{err}");
        assert_eq!(num(&out, "samples"), 1.0, "{out}");
        assert_eq!(num(&out, "accuracy"), 0.0, "{out}");
        assert_one_line_error(
            &[&eval[..], &["--skip", "12"]].concat(),
            &format!("--skip 12 leaves none of the 12 samples of {i}"),
        );
        // A label equal to the class count, among the samples kept.
        let mut bad = labels.clone();
        bad[4] = 3;
        std::fs::write(&lp, tinv::idx::encode(&[n], &bad).unwrap()).unwrap();
        assert_one_line_error(&eval, "label 3 is not below the model's 3 classes");
    }
    let (ip, lp) = (dir.join("e.idx"), dir.join("el.idx"));
    std::fs::write(&ip, tinv::idx::encode(&[0, 8, 8], &[]).unwrap()).unwrap();
    std::fs::write(&lp, tinv::idx::encode(&[0], &[]).unwrap()).unwrap();
    let (code, _, err) = eval_json(&grey, &ip, &lp);
    assert_failed_with(code, &err, "e.idx: the data set is empty", &"no samples");
    std::fs::write(&ip, tinv::idx::encode(&[8, 8], &[0; 64]).unwrap()).unwrap();
    let (code, _, err) = eval_json(&grey, &ip, &lp);
    let want = "images must be [n, H, W] or [n, H, W, C], found [8, 8]";
    assert_failed_with(code, &err, want, &"two dimensions");
    // One dimension off the model's at a time: height, width, channels.
    let lp = dir.join("l1.idx");
    std::fs::write(&lp, tinv::idx::encode(&[1], &[0]).unwrap()).unwrap();
    for (dims, want) in [
        ([1, 9, 8, 1], "9x8x1"),
        ([1, 8, 9, 1], "8x9x1"),
        ([1, 8, 8, 3], "8x8x3"),
    ] {
        let len = dims.iter().product();
        std::fs::write(&ip, tinv::idx::encode(&dims, &vec![0; len]).unwrap()).unwrap();
        let (code, _, err) = eval_json(&grey, &ip, &lp);
        let want = format!("images are {want}, the model takes 8x8x1");
        assert_failed_with(code, &err, &want, &dims);
    }
    // A Fashion-MNIST file not installed says which package installs it; another does not.
    let fm = Path::new("/usr/share/datasets/tinv-test-none/t10k-images-idx3-ubyte.gz");
    let (code, _, err) = eval_json(&grey, fm, &lp);
    assert_failed_with(
        code,
        &err,
        "(install it with: apt-get install dataset-fashion-mnist)",
        &fm,
    );
    let (code, _, err) = eval_json(&grey, &dir.join("none.idx"), &lp);
    assert!(
        code == 1 && err.contains("none.idx") && !err.contains("apt-get"),
        "{err}"
    );
}

/// `eval` copies the whole data set to f32 before it runs. A small gzip declaring 600,000 8×8
/// images (38 MB of bytes, 154 MB as f32) under a 120 MB address-space limit: the copy fails
/// with a one-line error naming `--limit`; it aborted the process ("memory allocation of … bytes
/// failed") before.
#[test]
fn eval_out_of_memory_for_the_data_set_is_an_error_not_an_abort() {
    use std::io::Write;
    let dir = tmp("eval-oom");
    let (model_path, _) = fixture(&dir);
    let n = 600_000usize;
    let gz = |dims: &[usize], fill: usize| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut head = vec![0u8, 0, 8, dims.len() as u8];
        for d in dims {
            head.extend_from_slice(&(*d as u32).to_be_bytes());
        }
        e.write_all(&head).unwrap();
        let zeros = vec![0u8; 1 << 16];
        let mut left = fill;
        while left > 0 {
            let k = left.min(zeros.len());
            e.write_all(&zeros[..k]).unwrap();
            left -= k;
        }
        e.finish().unwrap()
    };
    let (ip, lp) = (dir.join("i.gz"), dir.join("l.gz"));
    // Also 200,000 of 3 channels (the same bytes) on a colour model: the whole copy is asked
    // for up front, not a third of it.
    let colour = dir.join("rgb.tinv");
    let cfg3 = synth::config(8, 3, 4, 16, 2, 2, 3, &[1, 2], false);
    std::fs::write(&colour, synth::random_model(&cfg3, 5, DType::F32)).unwrap();
    for (model, n, dims) in [
        (&model_path, n, vec![n, 8, 8]),
        (&colour, n / 3, vec![n / 3, 8, 8, 3]),
    ] {
        std::fs::write(&ip, gz(&dims, dims.iter().product())).unwrap();
        std::fs::write(&lp, gz(&[n], n)).unwrap();
        let (code, err) = run_limited(
            120_000,
            &[
                "eval".as_ref(),
                "--model".as_ref(),
                model.as_os_str(),
                "--images".as_ref(),
                ip.as_os_str(),
                "--labels".as_ref(),
                lp.as_os_str(),
            ],
        );
        let want = format!("out of memory for {n} images as f32");
        assert_failed_with(code, &err, &want, &"eval under ulimit -v");
        assert!(err.contains("use --limit"), "{err}");
    }
}
