//! `tinv-run` end to end on a synthetic model: outputs agree with the library, and every kind of
//! bad input gives one `error:` line and exit code 1, never a panic.

#[path = "common/cli.rs"]
mod cli_support;

use cli_support::{assert_failed_with, assert_one_line_error, field, run, tmp};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tinv::format::{DType, MetaValue};
use tinv::{synth, Model, OpenOptions, Session, SessionOptions};

/// `tinv-run eval --json` of `model` on the IDX files `images` and `labels`.
fn eval_json(model: &Path, images: &Path, labels: &Path) -> (i32, String, String) {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (m, i, l) = (s(model), s(images), s(labels));
    run(&[
        "eval", "--model", &m, "--images", &i, "--labels", &l, "--json",
    ])
}

/// A model of one path (depth 2) and no controller, as a plain timm ViT folds to.
fn one_path_model(dir: &Path) -> PathBuf {
    let cfg = synth::config(8, 1, 4, 16, 2, 2, 3, &[2], false);
    let path = dir.join("one.tinv");
    std::fs::write(&path, synth::random_model(&cfg, 4, DType::F32)).unwrap();
    path
}

/// A 1-channel 8×8 model with a controller, and a PGM image of it.
fn fixture(dir: &Path) -> (PathBuf, tinv::Config) {
    let cfg = synth::tiny(3, true);
    let path = dir.join("m.tinv");
    std::fs::write(&path, synth::random_model(&cfg, 9, DType::F32)).unwrap();
    (path, cfg)
}

fn write_pgm(path: &Path, w: usize, h: usize, px: &[u8]) {
    let mut b = format!("P5\n# test\n{w} {h}\n255\n").into_bytes();
    b.extend_from_slice(px);
    std::fs::write(path, b).unwrap();
}

#[test]
fn classify_matches_library_and_json_fields() {
    let dir = tmp("classify");
    let (model_path, cfg) = fixture(&dir);
    let px: Vec<u8> = (0..64).map(|i| (i * 37 % 256) as u8).collect();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &px);
    let out = classify_json(&model_path, &img);
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    let x: Vec<f32> = px.iter().map(|&v| v as f32 / 255.0).collect();
    let mut logits = vec![0f32; cfg.classes];
    let st = s.infer_depth(&x, 1, 2, &mut logits).unwrap()[0];
    for key in [
        "\"image\":",
        "\"depth\":2",
        "\"confidence\":",
        "\"logits\":[",
        "\"flops\":",
        "\"latency_us\":",
    ] {
        assert!(out.contains(key), "{key} missing in {out}");
    }
    assert!(out.contains(&format!("\"class\":{}", st.class)), "{out}");
    assert!(out.contains(&format!("\"flops\":{}", st.flops)), "{out}");
    // Adaptive mode with a budget runs too (plain text).
    let (code, out, _) = run(&[
        "classify",
        "--model",
        model_path.to_str().unwrap(),
        "--budget",
        "0.5",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("class") && out.contains("depth"));
}

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
                "mean FLOPs         {:.3}M of {:.3}M full ({:.1}% fewer)",
                self.mean_flops / 1e6,
                self.full_flops / 1e6,
                pct(1.0 - self.mean_flops / self.full_flops)
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
    for (model, extra, opts, depth, text_mode, json_mode) in cases {
        let want = EvalReport::of(model, &x, &y, opts, depth);
        escalated |= want.mean_escalations > 0.0;
        oracle_below_full |= want.oracle_accuracy > *want.exit_accuracy.last().unwrap();
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
            .map_or("1", |at| extra[at + 1]);
        assert_eq!(field(&out, "batch"), batch, "{out}");
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
    // The data exercise what the sums count: escalations, and inputs only a shallower exit
    // gets right.
    assert!(escalated && oracle_below_full);
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

#[test]
fn bad_input_gives_one_line_errors() {
    let dir = tmp("errors");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    let img = dir.join("ok.pgm");
    write_pgm(&img, 8, 8, &[128; 64]);
    let i = img.to_str().unwrap();
    assert_one_line_error(
        &["classify", "--model", "/nonexistent.tinv", i],
        "no such model",
    );
    assert_one_line_error(&["classify", i], "TINV_MODEL=/nonexistent");
    // A line break in a file name is written as `\n`: still one line.
    assert_one_line_error(&["classify", "--model", m, "a\nb.png"], "a\\nb.png");
    assert_one_line_error(&["inspect", "--model", "x\r\ny"], "x\\r\\ny");
    // Other control characters (a terminal escape) are written escaped too.
    assert_one_line_error(&["inspect", "--model", "x\u{1b}[2Jy"], "x\\u{1b}[2Jy");
    // A flag that took the only image as its value names the flag (it said "classify needs at
    // least one IMAGE").
    for (flag, want) in [
        ("--depth", "--depth "),
        ("--budget", "--budget "),
        ("--mode", "is not one of adaptive"),
    ] {
        assert_one_line_error(&["classify", "--model", m, flag, i], want);
    }
    // The model named both ways said "unexpected argument".
    assert_one_line_error(&["inspect", m, "--model", m], "the model is given twice");
    // An empty TINV_MODEL counts as unset (the default package, from the crate's root here),
    // as `TINV_MODEL= cmd` means in a shell; it said "TINV_MODEL=: no such model file".
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .args(["inspect"])
        .env("TINV_MODEL", "")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("engines/fmnist/model.tinv"),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Devices are refused before reading (/dev/zero would never end), for images, data sets
    // and models alike.
    assert_one_line_error(
        &["classify", "--model", m, "/dev/zero"],
        "/dev/zero: not a regular file",
    );
    assert_one_line_error(
        &[
            "eval",
            "--model",
            m,
            "--images",
            "/dev/zero",
            "--labels",
            "/dev/zero",
        ],
        "/dev/zero: not a regular file",
    );
    assert_one_line_error(&["inspect", "/dev/zero"], "is not a regular file");
    let big = dir.join("big.pgm");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    assert_one_line_error(
        &["classify", "--model", m, big.to_str().unwrap()],
        "big.pgm: larger than 64 MiB, not an image tinv-run reads",
    );
    std::fs::remove_file(&big).unwrap();
    let junk = dir.join("junk.tinv");
    std::fs::write(
        &junk,
        b"this is not a model at all, just some text bytes that go on for a while......",
    )
    .unwrap();
    assert_one_line_error(
        &["classify", "--model", junk.to_str().unwrap(), i],
        "bad magic",
    );
    // A safetensors checkpoint given as the model: named, with the tool that folds it.
    let ckpt = dir.join("model.safetensors");
    let mut st = 2u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    st.resize(80, 0);
    std::fs::write(&ckpt, st).unwrap();
    assert_one_line_error(
        &["classify", "--model", ckpt.to_str().unwrap(), i],
        "it looks like a safetensors checkpoint: fold it into a .tinv with tinv-fold",
    );
    let mut bytes = std::fs::read(&model_path).unwrap();
    bytes.truncate(bytes.len() - 100);
    let trunc = dir.join("trunc.tinv");
    std::fs::write(&trunc, &bytes).unwrap();
    assert_one_line_error(
        &["inspect", trunc.to_str().unwrap()],
        "truncated or trailing",
    );
    let small = dir.join("small.pgm");
    write_pgm(&small, 4, 4, &[0; 16]);
    assert_one_line_error(
        &["classify", "--model", m, small.to_str().unwrap()],
        "image is 4x4",
    );
    let txt = dir.join("x.png");
    std::fs::write(&txt, b"hello").unwrap();
    assert_one_line_error(
        &["classify", "--model", m, txt.to_str().unwrap()],
        "not a PNG or PGM",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--depth", "5", i],
        "depth 5 is not a path",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--budget", "1.5", i],
        "not in [0, 1]",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--budget", "abc", i],
        "expected a budget",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--mode", "fast", i],
        "mode \"fast\"",
    );
    assert_one_line_error(
        &["classify", "--model", m, "--bogus", i],
        "unknown option --bogus",
    );
    assert_one_line_error(&["frobnicate"], "unknown command");
    assert_one_line_error(&["eval", "--model", m], "--images");
    assert_one_line_error(&["bench", "--synthetic", "vit-huge"], "vit-tiny");
}

#[test]
fn help_explains_every_command() {
    for cmd in [
        "classify",
        "eval",
        "sweep",
        "inspect",
        "bench",
        "export-onnx",
        "soak",
    ] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("USAGE") && out.contains("OPTIONS"), "{cmd}");
    }
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("COMMANDS"));
    // Without a command: the usage and the error on stderr, nothing on stdout.
    let (code, out, err) = run(&[]);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("COMMANDS"), "{err}");
    assert!(err.trim_end().ends_with("error: no command given"), "{err}");
}

#[test]
fn inspect_json_lists_paths_and_verify_passes() {
    let dir = tmp("inspect");
    let (model_path, _) = fixture(&dir);
    let (code, out, err) = run(&[
        "inspect",
        model_path.to_str().unwrap(),
        "--json",
        "--verify",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"paths\":[{\"depth\":1")
            && out.contains("\"arena_bytes\":")
            && out.contains("\"input_shape\":[1,8,8]"),
        "{out}"
    );
}

/// A one-path model (a plain timm ViT folds to one) has no path switch to time: `bench` says so
/// (JSON `switch_us` null) instead of indexing an empty list, which panicked.
#[test]
fn bench_on_a_one_path_model_reports_no_switch_cost() {
    let dir = tmp("bench-one-path");
    let path = one_path_model(&dir);
    let m = path.to_str().unwrap();
    let (code, out, err) = run(&["bench", "--model", m, "--iters", "2", "--warmup", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("path switch  none (the model has one path)"),
        "{out}"
    );
    let (code, out, err) = run(&[
        "bench", "--model", m, "--iters", "2", "--warmup", "0", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"switch_us\":null"), "{out}");
}

/// An export that fails half-way (here a folder stands where the last graph goes) leaves none of
/// its files behind: the graphs written before the failure loaded as a whole export.
#[test]
fn a_failed_export_removes_what_it_wrote() {
    let dir = tmp("export-fail");
    let (model_path, cfg) = fixture(&dir);
    let last = cfg.depths.last().unwrap();
    // A folder where the last graph goes, and a FIFO there (the write blocked forever on it).
    for fifo in [false, true] {
        let out = dir.join(format!("onnx-{fifo}"));
        let taken = out.join(format!("path.{last}.onnx"));
        if fifo {
            std::fs::create_dir_all(&out).unwrap();
            let made = std::process::Command::new("mkfifo").arg(&taken).status();
            if !made.is_ok_and(|s| s.success()) {
                continue;
            }
        } else {
            std::fs::create_dir_all(&taken).unwrap();
        }
        let (code, stdout, err) = run(&[
            "export-onnx",
            "--model",
            model_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_failed_with(code, &err, &format!("path.{last}.onnx"), &stdout);
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, [format!("path.{last}.onnx")], "{err}");
    }
}

/// `--batch N` fixes the graphs' batch dimension: the files are the library's export with
/// `ExportOptions::batch` = N, where the default export's dimension is symbolic; 0 is refused.
#[test]
fn export_onnx_batch_fixes_the_batch_dimension() {
    let dir = tmp("export-batch");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    let model = tinv::Model::open(&model_path, &tinv::OpenOptions::default()).unwrap();
    for (batch, args) in [(Some(1), &["--batch", "1"][..]), (None, &[][..])] {
        let out = dir.join(format!("onnx-{batch:?}"));
        let mut cmd = vec!["export-onnx", "--model", m, "--out", out.to_str().unwrap()];
        cmd.extend(args);
        let (code, _, err) = run(&cmd);
        assert_eq!(code, 0, "{err}");
        let opts = tinv::onnx::ExportOptions {
            batch,
            ..Default::default()
        };
        for g in tinv::onnx::export_graphs(&model, &opts).unwrap() {
            assert_eq!(std::fs::read(out.join(&g.file_name)).unwrap(), g.bytes);
            assert_eq!(g.inputs[0].dims[0], batch, "{}", g.file_name);
        }
    }
    let out = dir.join("onnx-0");
    assert_one_line_error(
        &[
            "export-onnx",
            "--model",
            m,
            "--out",
            out.to_str().unwrap(),
            "--batch",
            "0",
        ],
        "--batch must be at least 1",
    );
}

#[test]
fn export_onnx_writes_every_path_and_the_weight_blob() {
    let dir = tmp("export");
    let (model_path, cfg) = fixture(&dir);
    let out = dir.join("onnx");
    let export = |model: &Path| {
        run(&[
            "export-onnx",
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (code, stdout, err) = export(&model_path);
    assert_eq!(code, 0, "{err}");
    for d in &cfg.depths {
        assert!(out.join(format!("path.{d}.onnx")).is_file(), "{stdout}");
    }
    assert!(out.join("weights.f16.bin").is_file() && out.join("weights.tsv").is_file());
    assert!(out.join("controller.onnx").is_file());
    assert!(!err.contains("warning"), "{err}");
    // `inspect` names the model hash the graphs carry (tinv.model_hash), written alike.
    let (code, json, err) = run(&["inspect", "--model", model_path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let hash = json
        .split("\"model_hash\":\"")
        .nth(1)
        .and_then(|r| r.get(..18))
        .unwrap_or_else(|| panic!("no model_hash in {json}"));
    let graph = std::fs::read(out.join(format!("path.{}.onnx", cfg.depths[0]))).unwrap();
    assert!(
        hash.starts_with("0x") && graph.windows(18).any(|w| w == hash.as_bytes()),
        "tinv.model_hash {hash} not in the graph"
    );
    // Exporting a one-path model into the same folder is refused: the other paths' graphs and
    // the controller would stay beside its own, and load as one export.
    let (code, _, err) = export(&one_path_model(&dir));
    assert_failed_with(
        code,
        &err,
        "holds files of another export (controller.graph.onnx, controller.onnx, path.1.onnx)",
        &"a second export",
    );
    // An empty value is refused (`--out ""` wrote into the current folder), in either form.
    let m = model_path.to_str().unwrap();
    for args in [
        &["export-onnx", "--model", m, "--out", ""][..],
        &["export-onnx", "--model", m, "--out="],
    ] {
        assert_one_line_error(args, "--out needs a value, not an empty string");
    }
    assert_one_line_error(
        &[
            "export-onnx",
            "--model",
            model_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--layout",
            "x",
        ],
        "--layout x",
    );
}

#[test]
fn tensorrt_commands_explain_what_is_missing() {
    let dir = tmp("trt");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    // No TensorRT here: without the feature the binary says how to get it; with it, the shim
    // (no headers at build time) or the engines (never built) are named.
    let (code, _, err) = run(&["build", "--model", m]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("TensorRT"), "{err}");
    let (code, _, err) = run(&["selftest", "--model", m]);
    assert_eq!(code, 1);
    assert!(
        err.contains("TensorRT") || err.contains("tinv-run build"),
        "{err}"
    );
    // With TensorRT support the bad layout is named before anything is loaded.
    let want = if cfg!(feature = "tensorrt") {
        "--layout diagonal: expected per-path or segments"
    } else {
        "TensorRT"
    };
    assert_one_line_error(&["build", "--model", m, "--layout", "diagonal"], want);
    if cfg!(feature = "tensorrt") {
        assert_one_line_error(
            &["build", "--model", m, "--fp16", "--fp32"],
            "--fp16 and --fp32 exclude each other",
        );
    }
    for cmd in ["build", "selftest"] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("USAGE"));
    }
}

/// A PNG chunk: length, type, data, CRC-32 of type and data.
fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A PNG of `w` × `h` pixels of the given bit depth and colour type (IHDR's two bytes), its
/// IDAT the zlib stream of `scanlines` (each row led by its filter byte).
fn png(w: u32, h: u32, depth_and_type: [u8; 2], scanlines: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = [w.to_be_bytes(), h.to_be_bytes()].concat();
    // Deflate, no filter, no interlace.
    ihdr.extend_from_slice(&[depth_and_type[0], depth_and_type[1], 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(scanlines).unwrap();
    png_chunk(&mut png, b"IDAT", &z.finish().unwrap());
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// `tinv-run classify --depth 2 --json` of `img` with `model`, which must succeed: its stdout.
fn classify_json(model: &Path, img: &Path) -> String {
    let (code, out, err) = run(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--depth",
        "2",
        "--json",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    out
}

/// A colour PNG classified by `tinv-run` and the same pixels converted by the library
/// (`tinv::pixels::to_input`, what `tinv_model_image_input` and camera code use) give the same
/// input bit for bit: the logits printed are the library's.
#[test]
fn a_colour_png_and_its_pixels_through_the_library_give_the_same_logits() {
    let dir = tmp("rgbpng");
    let (model_path, cfg) = fixture(&dir);
    let rgb: Vec<u8> = (0..8 * 8 * 3).map(|i| (i * 89 % 256) as u8).collect();
    let raw: Vec<u8> = rgb
        .chunks(24)
        .flat_map(|row| [&[0u8][..], row].concat())
        .collect();
    let img = dir.join("rgb.png");
    std::fs::write(&img, png(8, 8, [8, 2], &raw)).unwrap(); // 8-bit RGB
    let out = classify_json(&model_path, &img);
    let mut x = vec![0f32; cfg.input_len()];
    tinv::pixels::to_input(
        &cfg,
        &rgb,
        8,
        8,
        24,
        tinv::pixels::PixelFormat::Rgb8,
        &mut x,
    )
    .unwrap();
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    let mut logits = vec![0f32; cfg.classes];
    s.infer_depth(&x, 1, 2, &mut logits).unwrap();
    assert_eq!(printed_logits(&out), logits, "{out}");
}

/// The logits of the first `"logits":[…]` in `classify --json` output.
fn printed_logits(out: &str) -> Vec<f32> {
    let printed = out.split("\"logits\":[").nth(1).unwrap().split(']');
    let printed = printed.clone().next().unwrap();
    printed.split(',').map(|v| v.parse().unwrap()).collect()
}

/// The library's depth-2 logits of input `x` (CHW floats) on `model`.
fn library_logits(model: &Path, x: &[f32]) -> Vec<f32> {
    let model = Arc::new(Model::open(model, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let mut logits = vec![0f32; model.config().classes];
    s.infer_depth(x, 1, 2, &mut logits).unwrap();
    logits
}

/// `tinv-run classify` of the image file `bytes` on `model` runs the library on exactly `x`:
/// the logits it prints are the library's of `x`, bit for bit.
fn assert_input(dir: &Path, model: &Path, name: &str, bytes: &[u8], x: &[f32]) {
    let img = dir.join(name);
    std::fs::write(&img, bytes).unwrap();
    let want = library_logits(model, x);
    assert_eq!(printed_logits(&classify_json(model, &img)), want, "{name}");
}

/// Rows of `w`-byte scanlines, each led by filter byte 0 (none).
fn unfiltered(rows: &[u8], w: usize) -> Vec<u8> {
    rows.chunks(w)
        .flat_map(|r| [&[0u8][..], r].concat())
        .collect()
}

/// Every image kind `classify` reads, for a grey and a colour model, against the input written
/// out by hand: PGM samples over their maxval (8 and 16 bits, binary and plain, comments in the
/// header), PNG grey, grey+alpha, RGBA, 16-bit, 1-bit and palette; alpha dropped, grey copied to
/// every channel, colour through BT.601 luma (0.299 R + 0.587 G + 0.114 B) for a grey model.
#[test]
fn every_image_kind_gives_the_input_computed_by_hand() {
    let dir = tmp("kinds");
    let (grey, _) = fixture(&dir);
    let colour = dir.join("rgb.tinv");
    let cfg3 = synth::config(8, 3, 4, 16, 2, 2, 3, &[1, 2], false);
    std::fs::write(&colour, synth::random_model(&cfg3, 5, DType::F32)).unwrap();
    let v: Vec<u8> = (0..64).map(|i| (i * 53 % 256) as u8).collect();
    let a: Vec<u8> = (0..64).map(|i| (i * 29 % 256) as u8).collect();
    let rgb: Vec<u8> = (0..192).map(|i| (i * 71 % 256) as u8).collect();
    let by255 = |v: &[u8]| v.iter().map(|&p| p as f32 / 255.0).collect::<Vec<f32>>();
    // BT.601 luma of pixel i of 3-byte RGB pixels, in the order R, G, B.
    let luma = |rgb: &[u8], i: usize| {
        let c = |k: usize| rgb[i * 3 + k] as f32 / 255.0;
        0.299f32 * c(0) + 0.587f32 * c(1) + 0.114f32 * c(2)
    };
    let grey_luma: Vec<f32> = (0..64).map(|i| luma(&rgb, i)).collect();
    let planes: Vec<f32> = (0..3)
        .flat_map(|ch| (0..64).map(move |i| (ch, i)))
        .map(|(ch, i)| rgb[i * 3 + ch] as f32 / 255.0)
        .collect();
    let thrice = |x: Vec<f32>| x.repeat(3);
    let rgba: Vec<u8> = (0..64)
        .flat_map(|i| [rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2], a[i]])
        .collect();
    let ga: Vec<u8> = (0..64).flat_map(|i| [v[i], a[i]]).collect();

    // PGM, 8 bits: maxval 255 is one byte a sample; comments and odd whitespace in the header.
    let mut p5 = b"P5 # a comment\n\t8\r\n# another\n8 # width, height\n255\n".to_vec();
    p5.extend_from_slice(&v);
    assert_input(&dir, &grey, "p5.pgm", &p5, &by255(&v));
    assert_input(&dir, &colour, "p5.pgm", &p5, &thrice(by255(&v)));
    // PGM, 16 bits big-endian over maxval 1000; and maxval 65535, the largest.
    for max in [1000u32, 65535] {
        let s: Vec<u32> = (0..64).map(|i| (i * 997 + 3) % (max + 1)).collect();
        let mut p5 = format!("P5\n8 8\n{max}\n").into_bytes();
        s.iter()
            .for_each(|&x| p5.extend_from_slice(&(x as u16).to_be_bytes()));
        let x: Vec<f32> = s.iter().map(|&x| x as f32 / max as f32).collect();
        assert_input(&dir, &grey, "p5-16.pgm", &p5, &x);
    }
    // Plain PGM over maxval 15, samples split by any whitespace.
    let s: Vec<u32> = (0..64).map(|i| i * 7 % 16).collect();
    let body: Vec<String> = s.iter().map(|x| x.to_string()).collect();
    let p2 = format!("P2\n# plain\n8 8\n15\n{}\n", body.join(" \n\t"));
    let x: Vec<f32> = s.iter().map(|&x| x as f32 / 15.0).collect();
    assert_input(&dir, &grey, "p2.pgm", p2.as_bytes(), &x);

    // PNG: grey; grey+alpha (alpha dropped); RGBA to a grey model (luma) and a colour one.
    assert_input(
        &dir,
        &grey,
        "g.png",
        &png(8, 8, [8, 0], &unfiltered(&v, 8)),
        &by255(&v),
    );
    let ga_png = png(8, 8, [8, 4], &unfiltered(&ga, 16));
    assert_input(&dir, &grey, "ga.png", &ga_png, &by255(&v));
    assert_input(&dir, &colour, "ga.png", &ga_png, &thrice(by255(&v)));
    let rgba_png = png(8, 8, [8, 6], &unfiltered(&rgba, 32));
    assert_input(&dir, &grey, "rgba.png", &rgba_png, &grey_luma);
    assert_input(&dir, &colour, "rgba.png", &rgba_png, &planes);
    let rgb_png = png(8, 8, [8, 2], &unfiltered(&rgb, 24));
    assert_input(&dir, &colour, "rgb.png", &rgb_png, &planes);
    // 16 bits a sample: the high byte is kept.
    let g16: Vec<u8> = v.iter().flat_map(|&p| [p, 255 - p]).collect();
    let g16_png = png(8, 8, [16, 0], &unfiltered(&g16, 16));
    assert_input(&dir, &grey, "g16.png", &g16_png, &by255(&v));
    // 1 bit a pixel, the most significant bit first: 0 is black, 1 white.
    let bits: Vec<u8> = (0..8).map(|r| 0b1011_0001u8.rotate_left(r)).collect();
    let x: Vec<f32> = (0..64)
        .map(|i| ((bits[i / 8] >> (7 - i % 8)) & 1) as f32)
        .collect();
    assert_input(
        &dir,
        &grey,
        "g1.png",
        &png(8, 8, [1, 0], &unfiltered(&bits, 1)),
        &x,
    );
    // A palette of 4 colours, indices 0..4: each pixel the luma of its entry.
    let plte = [10u8, 200, 30, 255, 0, 128, 7, 7, 7, 90, 180, 250];
    let idx: Vec<u8> = (0..64).map(|i| (i * 3 % 4) as u8).collect();
    let mut pal = png(8, 8, [8, 3], &unfiltered(&idx, 8));
    let mut plte_chunk = Vec::new();
    png_chunk(&mut plte_chunk, b"PLTE", &plte);
    pal.splice(33..33, plte_chunk); // after the signature (8) and IHDR (25)
    let x: Vec<f32> = idx.iter().map(|&k| luma(&plte, k as usize)).collect();
    assert_input(&dir, &grey, "pal.png", &pal, &x);
}

/// Image headers at and past their bounds, and images a model cannot take: each refused with a
/// one-line error that says why (sizes up to 16384, PGM maxval 1 to 65535, colour only into 1 or
/// 3 channels), the bounds themselves read as far as the size check.
#[test]
fn image_headers_at_their_bounds_and_channels_a_model_cannot_take() {
    let dir = tmp("bounds");
    let (grey, _) = fixture(&dir);
    let two = dir.join("two.tinv");
    let cfg2 = synth::config(8, 2, 4, 16, 2, 2, 3, &[1, 2], false);
    std::fs::write(&two, synth::random_model(&cfg2, 6, DType::F32)).unwrap();
    let fails = |model: &Path, name: &str, bytes: &[u8], needle: &str| {
        let img = dir.join(name);
        std::fs::write(&img, bytes).unwrap();
        let args = [
            "classify",
            "--model",
            model.to_str().unwrap(),
            img.to_str().unwrap(),
        ];
        assert_one_line_error(&args, needle);
    };
    for (head, needle) in [
        ("P5 16385 8 255\n", "PGM 16385x8 maxval 255 not supported"),
        ("P5 8 16385 255\n", "PGM 8x16385 maxval 255 not supported"),
        ("P5 0 8 255\n", "PGM 0x8 maxval 255 not supported"),
        ("P5 8 0 255\n", "PGM 8x0 maxval 255 not supported"),
        ("P5 8 8 0\n", "PGM 8x8 maxval 0 not supported"),
        ("P5 8 8 65536\n", "PGM 8x8 maxval 65536 not supported"),
        (
            "P5 16384 8 255\n",
            "image is 8x16384 (height x width), the model takes 8x8",
        ),
        ("P5 8 16384 255\n", "image is 16384x8 (height x width)"),
        ("P5 8 8 x\n", "bad PGM header"),
        // Headers cut short in whitespace, a comment, a number: read to their last byte only.
        ("P5 8\n", "bad PGM header"),
        ("P5 8 # no end", "bad PGM header"),
        ("P5 8 8 255", "PGM pixel data truncated"),
    ] {
        fails(&grey, "head.pgm", head.as_bytes(), needle);
    }
    let mut short = b"P5 8 8 255\n".to_vec();
    short.extend_from_slice(&[0; 63]);
    fails(&grey, "short.pgm", &short, "PGM pixel data truncated");
    let mut short16 = b"P5 8 8 256\n".to_vec();
    short16.extend_from_slice(&[0; 127]);
    fails(&grey, "short16.pgm", &short16, "PGM pixel data truncated");
    let p2 = |body: &str| format!("P2 8 8 15\n{body}").into_bytes();
    fails(
        &grey,
        "p2.pgm",
        &p2(&"1 ".repeat(63)),
        "PGM pixel data truncated",
    );
    let bad = format!("{}16", "1 ".repeat(63));
    fails(
        &grey,
        "p2.pgm",
        &p2(&bad),
        "bad PGM sample '16' (need an integer 0..=15)",
    );
    fails(&grey, "p2.pgm", &p2("x"), "bad PGM sample 'x'");
    // PNG: width and height past 16384 refused from the header, 16384 itself read on.
    for (w, h, needle) in [
        (16385, 8, "PNG size 16385x8 not supported"),
        (8, 16385, "PNG size 8x16385 not supported"),
        (16384, 8, "image is 8x16384"),
        (8, 16384, "image is 16384x8"),
        (0, 8, "bad PNG"), // the png crate refuses a zero size itself
        (8, 0, "bad PNG"),
    ] {
        fails(&grey, "big.png", &png(w, h, [8, 0], &[]), needle);
    }
    // Colour into a 2-channel model is refused, naming the file's colour type; grey feeds both
    // channels.
    let rgb: Vec<u8> = (0..192).map(|i| (i * 7 % 256) as u8).collect();
    let rgb_png = png(8, 8, [8, 2], &unfiltered(&rgb, 24));
    let want = "cannot convert an RGB image to the model's 2 channels";
    fails(&two, "rgb.png", &rgb_png, want);
    let rgba: Vec<u8> = (0..256).map(|i| (i * 7 % 256) as u8).collect();
    let rgba_png = png(8, 8, [8, 6], &unfiltered(&rgba, 32));
    let want = "cannot convert an RGBA (alpha dropped: RGB) image to the model's 2 channels";
    fails(&two, "rgba.png", &rgba_png, want);
    let v: Vec<u8> = (0..64).map(|i| (i * 41 % 256) as u8).collect();
    let mut p5 = b"P5 8 8 255\n".to_vec();
    p5.extend_from_slice(&v);
    let x: Vec<f32> = v.iter().map(|&p| p as f32 / 255.0).collect();
    assert_input(&dir, &two, "g.pgm", &p5, &x.repeat(2));
}

/// The number after `"key":` in JSON text.
fn json_num(out: &str, key: &str) -> f64 {
    let v = out
        .split(&format!("\"{key}\":"))
        .nth(1)
        .unwrap_or_else(|| panic!("{key}: {out}"));
    v.split([',', '}']).next().unwrap().parse().unwrap()
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
        assert_eq!(json_num(&out, "samples"), 6.0, "{out}");
        assert_eq!(json_num(&out, "accuracy"), 1.0, "{out}");
        // All of them: 6 of 12 right; from the last one, wrong (its label is off by one).
        let (code, out, err) = run(&eval);
        assert_eq!(code, 0, "{err}");
        assert_eq!(json_num(&out, "accuracy"), 0.5, "{out}");
        // A limit past the end keeps the rest: 3..12, of which 3..9 right.
        let (code, out, err) = run(&[&eval[..], &["--skip", "3", "--limit", "100"]].concat());
        assert_eq!(code, 0, "{err}");
        assert_eq!(json_num(&out, "samples"), 9.0, "{out}");
        assert!(
            (json_num(&out, "accuracy") - 6.0 / 9.0).abs() < 1e-6,
            "{out}"
        );
        let (code, out, err) = run(&[&eval[..], &["--skip", "11"]].concat());
        assert_eq!(code, 0, "{err}");
        assert_eq!(json_num(&out, "samples"), 1.0, "{out}");
        assert_eq!(json_num(&out, "accuracy"), 0.0, "{out}");
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

/// A 68-byte PNG whose header declares 16384×16384 RGBA at 16 bits is refused from its header.
/// The decoder used to allocate the decoded frame (1 GiB) first and abort under a memory limit;
/// here the address space is capped at 512 MiB, so that allocation cannot succeed.
#[cfg(unix)]
#[test]
fn png_declaring_a_huge_image_is_refused_before_decoding() {
    let dir = tmp("hugepng");
    let (model_path, _) = fixture(&dir);
    let png = png(16384, 16384, [16, 6], &[0; 8]); // 16-bit RGBA
    let img = dir.join("huge.png");
    std::fs::write(&img, &png).unwrap();
    let (code, err) = run_limited(
        524_288,
        &[
            "classify".as_ref(),
            "--model".as_ref(),
            model_path.as_os_str(),
            img.as_os_str(),
        ],
    );
    assert_failed_with(
        code,
        &err,
        "huge.png: image is 16384x16384 (height x width), the model takes 8x8",
        &"classify huge.png",
    );
}

/// `tinv-run args` under `ulimit -v kib` (the memory of a small device): exit code and stderr.
fn run_limited(kib: u64, args: &[&std::ffi::OsStr]) -> (i32, String) {
    let o = Command::new("sh")
        .args(["-c", &format!("ulimit -v {kib} && exec \"$0\" \"$@\"")])
        .arg(env!("CARGO_BIN_EXE_tinv-run"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A closed stdout (`tinv-run … | head -1`) ends the program quietly with exit status 0; it used
/// to panic ("failed printing to stdout: Broken pipe", exit status 101). The pipe's read end is
/// closed before the child starts, so its first write already fails.
#[test]
fn closed_stdout_ends_every_command_quietly() {
    let dir = tmp("pipe");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &[7; 64]);
    let out = dir.join("onnx");
    let commands: [&[&str]; 7] = [
        &["inspect", m, "--verify", "--tensors"],
        &["inspect", m, "--json"],
        &["--help"],
        &["help", "eval"],
        &["classify", "--model", m, img.to_str().unwrap()],
        &["export-onnx", "--model", m, "--out", out.to_str().unwrap()],
        &["soak", "--model", m, "--count", "20", "--report-every", "1"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
            .args(args)
            .env("TINV_MODEL", "/nonexistent")
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("error"),
            "{args:?}: {err}"
        );
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn arguments_that_would_be_ignored_are_refused() {
    let dir = tmp("strict");
    let (model_path, _) = fixture(&dir);
    let m = model_path.to_str().unwrap();
    let eval = [
        "eval", "--model", m, "--images", "i.idx", "--labels", "l.idx",
    ];
    let with = |extra: &[&'static str]| [&eval[..], extra].concat();
    // --depth runs no controller: --budget and --mode would do nothing (as for classify).
    for extra in [["--budget", "0.9"], ["--mode", "graph"]] {
        for cmd in [
            with(&["--depth", "2"]),
            vec!["classify", "--model", m, "--depth", "2", "x.pgm"],
        ] {
            assert_one_line_error(&[&cmd[..], &extra].concat(), "cannot be combined");
        }
    }
    // A budget in threshold mode, and a budget or controller mode on a model without a
    // controller (it runs at full depth), would be accepted and ignored.
    let n = 6;
    let (ip, lp) = (dir.join("i.idx"), dir.join("l.idx"));
    std::fs::write(&ip, tinv::idx::encode(&[n, 8, 8], &[7; 6 * 64]).unwrap()).unwrap();
    std::fs::write(&lp, tinv::idx::encode(&[n], &[0, 1, 2, 0, 1, 2]).unwrap()).unwrap();
    let bare = dir.join("no-controller.tinv");
    let cfg = synth::tiny(3, false);
    std::fs::write(&bare, synth::random_model(&cfg, 9, DType::F32)).unwrap();
    let b = bare.to_str().unwrap();
    assert_one_line_error(
        &with(&["--mode", "threshold:0.9", "--budget", "0.5"]),
        "threshold mode has none",
    );
    for extra in [&["--budget", "0.5"][..], &["--mode", "graph"]] {
        for cmd in [
            vec!["classify", "--model", b, "x.pgm"],
            vec![
                "eval", "--model", b, "--images", "i.idx", "--labels", "l.idx",
            ],
        ] {
            assert_one_line_error(&[&cmd[..], extra].concat(), "has no controller");
        }
    }
    let (code, out, err) = eval_json(&bare, &ip, &lp);
    assert_eq!(code, 0, "{err}");
    // `mode` stays a value a program can match (it was the text's sentence): the deepest path.
    assert!(out.contains("\"mode\":\"depth:2\""), "{out}");
    assert!(out.contains("\"budget\":null"), "{out}");
    assert!(out.contains("\"backend\":\"cpu\""), "{out}");
    // soak's banner said "adaptive inferences …, budget 0" for a run at full depth.
    let (code, _, err) = run(&["soak", "--model", b, "--count", "4", "--report-every", "4"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("at full depth (the model has no controller)") && !err.contains("budget"),
        "{err}"
    );
    // Extra positional arguments.
    assert_one_line_error(&with(&["extra"]), "unexpected argument 'extra'");
    assert_one_line_error(&["inspect", m, "a", "b", "c"], "unexpected argument 'a'");
    // inspect takes its model either way: a positional beside --model names it twice.
    assert_one_line_error(
        &["inspect", "--model", m, "other"],
        "the model is given twice, by --model and as 'other'",
    );
    for cmd in ["bench", "soak", "export-onnx"] {
        assert_one_line_error(&[cmd, "--model", m, "stray"], "unexpected argument 'stray'");
    }
    assert_one_line_error(&["help", "eval", "more"], "unexpected argument 'more'");
    // Zero counts are errors, not silently 1.
    assert_one_line_error(&with(&["--batch", "0"]), "--batch must be at least 1");
    assert_one_line_error(&with(&["--limit", "0"]), "--limit must be at least 1");
    for (cmd, flag, value, least) in [
        ("bench", "--batch", "0", 1),
        ("bench", "--iters", "1", 2),
        ("soak", "--count", "0", 1),
        ("soak", "--inputs", "0", 1),
        ("soak", "--report-every", "0", 1),
    ] {
        assert_one_line_error(
            &[cmd, "--model", m, flag, value],
            &format!("{flag} must be at least {least}"),
        );
    }
    // A switch given a value, and help on an unknown command.
    assert_one_line_error(
        &["classify", "--model", m, "--json=1", "x.pgm"],
        "--json is a switch and takes no value",
    );
    assert_one_line_error(&["help", "bogus"], "unknown command 'bogus'");
    // Two models named at once, and a checksum check of a model with no file.
    for (cmd, shape) in [("bench", "vit-tiny"), ("soak", "fmnist")] {
        assert_one_line_error(
            &[cmd, "--model", m, "--synthetic", shape],
            "--model and --synthetic both name the model",
        );
        assert_one_line_error(
            &[cmd, "--synthetic", shape, "--verify"],
            "--synthetic has none",
        );
    }
    // An option given twice: the last one won (`--depth 8 --depth 2` ran depth 2).
    assert_one_line_error(
        &[
            "classify", "--model", m, "--depth", "1", "--depth", "2", "x.pgm",
        ],
        "--depth is given twice",
    );
    assert_one_line_error(
        &with(&["--limit", "3", "--limit=2"]),
        "--limit is given twice",
    );
    // A switch given twice was accepted where an option given twice was refused.
    assert_one_line_error(&with(&["--json", "--json"]), "--json is given twice");
    // An empty file name said only ": No such file or directory".
    for args in [
        &["classify", "--model", m, ""][..],
        &["classify", "--model", m, "--", ""],
        &["inspect", ""],
    ] {
        assert_one_line_error(args, "an empty argument is not a file name");
    }
    // A single-dash typo was taken for a file name ("-j: No such file or directory").
    assert_one_line_error(
        &["classify", "--model", m, "-j", "x.pgm"],
        "unknown option -j (options start with --",
    );
    // The library's bounds, said in the options' own names (not "max_batch 4097 not in …").
    assert_one_line_error(&with(&["--batch", "4097"]), "--batch must be at most 4096");
    assert_one_line_error(
        &["bench", "--model", m, "--threads", "257"],
        "--threads must be at most 256",
    );
    // ...and the bounds themselves are accepted: 4096 and 256 run.
    let (i, l) = (ip.to_str().unwrap(), lp.to_str().unwrap());
    let bounds = ["--batch", "4096", "--threads", "256", "--json"];
    let (code, out, err) = run(&[
        &["eval", "--model", m, "--images", i, "--labels", l],
        &bounds[..],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"batch\":4096") && out.contains("\"samples\":6"),
        "{out}"
    );
    // A budget on a model without a controller ran at full depth under a "budget" banner.
    assert_one_line_error(
        &["soak", "--model", b, "--budget", "0.5"],
        "has no controller",
    );
    // An engines folder that `auto` cannot use was skipped silently (only RUST_LOG=debug said
    // so): now a warning names it, and the run says which backend it used.
    let (code, out, err) = run(&[
        "eval",
        "--model",
        m,
        "--images",
        ip.to_str().unwrap(),
        "--labels",
        lp.to_str().unwrap(),
        "--engines",
        "/nonexistent-engines",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("/nonexistent-engines: ") && err.contains("using the CPU backend"),
        "{err}"
    );
    assert!(out.contains("backend            cpu"), "{out}");
    // TensorRT engines named for a run that is told to use the CPU.
    for cmd in [
        vec!["classify", "--model", m, "x.pgm"],
        vec!["soak", "--model", m],
    ] {
        assert_one_line_error(
            &[&cmd[..], &["--backend", "cpu", "--engines", "/tmp"]].concat(),
            "which --backend cpu does not use",
        );
    }
}

/// Paths are bytes on Linux: a file name that is not UTF-8 is an image or a model like any
/// other (`std::env::args` panicked on it), and after `--` an argument starting with `-` is a
/// file.
#[test]
fn non_utf8_and_dash_file_names_are_paths() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tmp("non-utf8");
    let (model_path, _) = fixture(&dir);
    let odd_model = dir.join(OsStr::from_bytes(b"m\xff.tinv"));
    std::fs::copy(&model_path, &odd_model).unwrap();
    let odd_image = dir.join(OsStr::from_bytes(b"\xff\xfe.pgm"));
    write_pgm(&odd_image, 8, 8, &[9; 64]);
    let dash_image = dir.join("-x.pgm");
    write_pgm(&dash_image, 8, 8, &[9; 64]);
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .arg("classify")
        .arg("--model")
        .arg(&odd_model)
        .arg("--depth")
        .arg("2")
        .arg(&odd_image)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains("\u{FFFD}\u{FFFD}.pgm: class "), "{out}");
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .current_dir(&dir)
        .args(["classify", "--depth", "2", "--model"])
        .arg(&model_path)
        .args(["--", "-x.pgm"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("-x.pgm: class "));
    // A lone `-` is no option: it names a file `-` (tinv-run reads no stdin), `--` or not.
    write_pgm(&dir.join("-"), 8, 8, &[9; 64]);
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .current_dir(&dir)
        .args(["classify", "--depth", "2", "--model"])
        .arg(&model_path)
        .arg("-")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("-: class "));
    // A non-UTF-8 value where a number is expected is an error naming the option.
    let o = Command::new(env!("CARGO_BIN_EXE_tinv-run"))
        .args(["classify", "--model"])
        .arg(&model_path)
        .arg("--budget")
        .arg(OsStr::from_bytes(b"0.\xff"))
        .arg(&odd_image)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_failed_with(o.status.code().unwrap_or(-1), &err, "--budget", &"budget");
}

/// classes.txt is read only as a small regular file: a FIFO blocked `classify` forever and a
/// link to /dev/zero grew without end; a directory was skipped without a word. Each is now a
/// warning, and the classes are shown by number.
#[test]
fn a_classes_file_that_is_not_a_regular_file_is_a_warning() {
    let dir = tmp("classes");
    let (model_path, _) = fixture(&dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(&model_path, pkg.join("model.tinv")).unwrap();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &[3; 64]);
    let classes = pkg.join("classes.txt");
    // classify must finish (not block on the FIFO), answer by number and warn.
    let classify = || {
        let (code, out, err) = run(&[
            "classify",
            "--model",
            pkg.to_str().unwrap(),
            img.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("classes.txt: not a regular file"), "{err}");
        assert!(out.contains(": class "), "{out}");
    };
    if Command::new("mkfifo")
        .arg(&classes)
        .status()
        .is_ok_and(|s| s.success())
    {
        classify();
        std::fs::remove_file(&classes).unwrap();
    } else {
        eprintln!("skipped the FIFO case: mkfifo failed");
    }
    std::os::unix::fs::symlink("/dev/zero", &classes).unwrap();
    classify();
    std::fs::remove_file(&classes).unwrap();
    std::fs::create_dir(&classes).unwrap();
    classify();
}

/// `--json` strings are JSON strings: a quote, a backslash, a newline and the other control
/// characters in an image's name or a class's label are escaped (`\"`, `\\`, `\n`, `\u00XX`),
/// everything else (a space, `~`, `é`) is written as it is; the logits are an array.
#[test]
fn classify_json_escapes_names_and_labels() {
    let dir = tmp("json-escape");
    let (model_path, cfg) = fixture(&dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(&model_path, pkg.join("model.tinv")).unwrap();
    // Every class the same name, so the label does not depend on the answer.
    let name = "a \"b\" \\ c\td\u{1}e\u{1f} ~é";
    std::fs::write(
        pkg.join("classes.txt"),
        format!("{name}\n").repeat(cfg.classes),
    )
    .unwrap();
    let img = dir.join("x\"y\\z\n .pgm");
    let px: Vec<u8> = (0..64).map(|i| (i * 29 % 256) as u8).collect();
    write_pgm(&img, 8, 8, &px);
    let (code, out, err) = run(&[
        "classify",
        "--model",
        pkg.to_str().unwrap(),
        "--depth",
        "2",
        "--json",
        img.to_str().unwrap(),
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    let want_img = format!("{}/x\\\"y\\\\z\\n .pgm", dir.to_str().unwrap());
    assert!(
        out.starts_with(&format!("{{\"image\":\"{want_img}\",\"backend\":\"cpu\",")),
        "{out}"
    );
    assert!(
        out.contains("\"label\":\"a \\\"b\\\" \\\\ c\\u0009d\\u0001e\\u001f ~é\","),
        "{out}"
    );
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    let x: Vec<f32> = px.iter().map(|&v| f32::from(v) / 255.0).collect();
    let mut logits = vec![0f32; cfg.classes];
    s.infer_depth(&x, 1, 2, &mut logits).unwrap();
    let logits: Vec<String> = logits.iter().map(|&v| f64::from(v).to_string()).collect();
    assert!(
        out.contains(&format!("\"logits\":[{}],", logits.join(","))),
        "{out}"
    );
    assert!(out.ends_with("}\n"), "{out}");
}

/// NaN and ±∞ are not JSON numbers: `inspect --json` writes a metadata value that is one as
/// `null`, in an array too. The model is the synthetic one written again with two more keys.
#[test]
fn inspect_json_writes_non_finite_metadata_as_null() {
    let dir = tmp("inspect-nan");
    let bytes = synth::random_model(&synth::tiny(3, false), 4, DType::F32);
    let idx = tinv::format::parse(&bytes).unwrap();
    let mut w = tinv::format::TinvWriter::new();
    for (k, v) in idx.meta.entries() {
        w.meta(k, v.clone());
    }
    w.meta("user.nan", MetaValue::F64(f64::NAN));
    w.meta(
        "user.inf",
        MetaValue::F64s(vec![1.5, f64::INFINITY, f64::NEG_INFINITY]),
    );
    for t in &idx.tensors {
        // synth's page breaks: before the stem, each block and each exit head.
        let n = &t.name;
        if n == "stem.patch.weight" || n.ends_with("qkv.weight") || n.ends_with("head.weight") {
            w.page_break();
        }
        let data = bytes[t.offset..t.offset + t.nbytes].to_vec();
        w.raw_tensor(n, t.dtype, t.flags, &t.shape, data);
    }
    let path = dir.join("nan.tinv");
    std::fs::write(&path, w.to_bytes()).unwrap();
    let (code, out, err) = run(&["inspect", path.to_str().unwrap(), "--json"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.contains("\"user.nan\":null"), "{out}");
    assert!(out.contains("\"user.inf\":[1.5,null,null]"), "{out}");
}

/// A classes.txt beside the model with one name per class (blank lines and surrounding spaces
/// not counted) names the class the library predicts, in text and JSON, whether the model is a
/// package folder, its model.tinv or `$TINV_MODEL`; one name too few or too many is a warning
/// and the classes are shown by number.
#[test]
fn classes_txt_names_the_library_class() {
    let dir = tmp("class-names");
    let (model_path, _) = fixture(&dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let file = pkg.join("model.tinv");
    std::fs::copy(&model_path, &file).unwrap();
    let px: Vec<u8> = (0..64).map(|i| (i * 37 % 256) as u8).collect();
    let img = dir.join("a.pgm");
    write_pgm(&img, 8, 8, &px);
    let x: Vec<f32> = px.iter().map(|&v| v as f32 / 255.0).collect();
    let l = library_logits(&model_path, &x);
    let class = (0..3).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
    let names = ["shirt", "trouser", "bag"];
    let classes = pkg.join("classes.txt");
    std::fs::write(&classes, "  shirt \n\ntrouser\n\t\nbag\n").unwrap();
    let classify = |model: Option<&Path>, json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tinv-run"));
        cmd.args(["classify", "--depth", "2"]);
        match model {
            Some(m) => cmd.arg("--model").arg(m).env("TINV_MODEL", "/nonexistent"),
            None => cmd.env("TINV_MODEL", &pkg),
        };
        if json {
            cmd.arg("--json");
        }
        let o = cmd.arg(&img).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(0), "{err}");
        (String::from_utf8_lossy(&o.stdout).to_string(), err)
    };
    let name = names[class];
    for model in [Some(pkg.as_path()), Some(file.as_path()), None] {
        let (out, err) = classify(model, true);
        assert!(err.is_empty(), "{err}");
        let want = format!("\"class\":{class},\"label\":\"{name}\"");
        assert!(out.contains(&want), "{model:?}: {out}");
        let (out, _) = classify(model, false);
        let want = format!("a.pgm: class {class} ({name}) confidence ");
        assert!(out.contains(&want), "{model:?}: {out}");
    }
    for text in ["shirt\ntrouser\n", "shirt\ntrouser\nbag\nsandal\n"] {
        std::fs::write(&classes, text).unwrap();
        let (out, err) = classify(Some(&pkg), true);
        let k = text.lines().count();
        let want = format!("classes.txt has {k} names for 3 classes; showing class numbers");
        assert!(err.starts_with("warning: ") && err.contains(&want), "{err}");
        let want = format!("\"class\":{class},\"label\":\"{class}\"");
        assert!(out.contains(&want), "{out}");
        let (out, _) = classify(Some(&pkg), false);
        assert!(
            out.contains(&format!("a.pgm: class {class} confidence ")),
            "{out}"
        );
    }
}

/// Every key of `inspect --json` is named in `inspect --help`, and `config` holds the model's
/// configuration.
#[test]
fn inspect_json_has_the_config_its_help_promises() {
    let dir = tmp("inspect-config");
    let (model_path, _) = fixture(&dir);
    let (code, out, err) = run(&["inspect", model_path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "\"config\":{\"image_size\":[8,8],\"channels\":1,\"patch\":4,\"dim\":16,\"heads\":2,\
             \"blocks\":2,\"mlp_hidden\":"
        ) && out.contains("\"depths\":[1,2]"),
        "{out}"
    );
    let (_, help, _) = run(&["inspect", "--help"]);
    for key in [
        "file",
        "file_bytes",
        "input_shape",
        "classes",
        "config",
        "image_size",
        "channels",
        "patch",
        "dim",
        "heads",
        "blocks",
        "mlp_hidden",
        "tokens",
        "depths",
        "mean",
        "std",
        "ln_eps",
        "gelu",
        "controller",
        "features",
        "default_budget",
        "paths",
        "flops",
        "weight_bytes",
        "controller_flops",
        "controller_flops_graph",
        "arena_bytes",
        "arena_lower_bound_bytes",
        "kernel",
        "metadata",
        "tensors",
    ] {
        assert!(
            out.contains(&format!("\"{key}\":")),
            "{key} missing in {out}"
        );
        assert!(help.contains(key), "{key} undocumented in {help}");
    }
    // The content hash is above 2^53, where a reader that parses JSON numbers as doubles
    // rounds it: a decimal string, the same value the text shows in hex.
    let at = out
        .find("\"tinv.content_hash\":\"")
        .expect("hash as a string")
        + 21;
    let digits: String = out[at..].chars().take_while(char::is_ascii_digit).collect();
    let hash: u64 = digits.parse().unwrap();
    assert!(hash > 1 << 53, "{hash}");
    let (_, text, _) = run(&["inspect", model_path.to_str().unwrap()]);
    assert!(
        text.contains(&format!("content hash  {hash:#018x}")),
        "{text}"
    );
    // The metadata checksum the writer stores (a decimal string above 2^53, else a number).
    let at = out.find("\"tinv.meta_hash\":").expect("meta hash") + 17;
    let digits: String = out[at..]
        .trim_start_matches('"')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let meta: u64 = digits.parse().unwrap();
    assert!(
        text.contains(&format!("meta hash     {meta:#018x} (checked at open)")),
        "{text}"
    );
}

/// Every command that accepts `--verify` documents it, and the top-level help says where the
/// default model comes from (it is read from disk, not embedded).
#[test]
fn help_documents_verify_and_the_default_model() {
    for cmd in [
        "classify",
        "eval",
        "sweep",
        "inspect",
        "bench",
        "export-onnx",
        "soak",
        "build",
        "selftest",
    ] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("--verify"), "{cmd} --help: {out}");
    }
    let (_, out, _) = run(&["--help"]);
    assert!(!out.contains("embedded default"), "{out}");
    assert!(
        out.contains("$TINV_MODEL") && out.contains("./engines/fmnist"),
        "{out}"
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
