//! `tinv-run`: classify images, evaluate on a dataset, inspect a model, benchmark paths, export
//! ONNX, build TensorRT engines. Every failure prints one `error: …` line and exits non-zero.

mod args;
mod bench;
mod classify;
mod eval;
mod export;
mod images;
mod inspect;
mod json;
mod model_path;
#[cfg(feature = "tensorrt")]
mod selftest;
mod soak;
mod trt;

use args::Args;

const USAGE: &str = "\
tinv-run — run input-adaptive-depth Vision Transformers (tinv runtime)

USAGE:
    tinv-run <COMMAND> [OPTIONS]

COMMANDS:
    classify     classify PNG/PGM images with the adaptive controller or a fixed depth
    eval         accuracy, FLOPs and latency on an IDX dataset (adaptive vs full depth vs oracle)
    inspect      configuration, tensors, paths, FLOPs, arena and weight bytes of a model
    bench        per-path latency (median/p99), path-switch cost, GEMM throughput
    export-onnx  one ONNX graph per depth path (FP16 weight inputs shared by all, or --baked)
    soak         many adaptive inferences: RSS drift, throughput over time, identical outputs
    build        build TensorRT engines for every path on this device (feature tensorrt)
    selftest     TensorRT vs CPU logits, per-path CUDA-graph latency (feature tensorrt)
    help         this text, or `tinv-run help <COMMAND>` / `tinv-run <COMMAND> --help`

COMMON OPTIONS:
    --model M    a .tinv file or a package directory holding model.tinv (default: the
                 embedded default package engines/fmnist, or $TINV_MODEL)
    --threads N  worker threads for matrix products and attention (default 1)
    --backend B  auto (default: TensorRT when engines built by `tinv-run build` match this
                 model, TensorRT and GPU, else the CPU), cpu, or tensorrt (an error if unusable)
    --engines D  TensorRT engines folder (default: plans/ beside the model file)
    --json       machine-readable output (one JSON object per line)

Logging: RUST_LOG=info (or debug) prints what the runtime does to stderr.
";

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&argv) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn run(argv: &[String]) -> Result<(), String> {
    let Some((cmd, rest)) = argv.split_first() else {
        print!("{USAGE}");
        return Err("no command given".into());
    };
    let wants_help = rest.iter().any(|a| a == "--help" || a == "-h");
    let help = |text: &str| {
        print!("{text}");
        Ok(())
    };
    match cmd.as_str() {
        "classify" if wants_help => help(classify::HELP),
        "eval" if wants_help => help(eval::HELP),
        "inspect" if wants_help => help(inspect::HELP),
        "bench" if wants_help => help(bench::HELP),
        "export-onnx" if wants_help => help(export::HELP),
        "build" if wants_help => help(trt::BUILD_HELP),
        "soak" if wants_help => help(soak::HELP),
        "selftest" if wants_help => help(trt::SELFTEST_HELP),
        "classify" => classify::run(rest),
        "eval" => eval::run(rest),
        "inspect" => inspect::run(rest),
        "bench" => bench::run(rest),
        "export-onnx" => export::run(rest),
        "build" => trt::build(rest),
        "soak" => soak::run(rest),
        "selftest" => trt::selftest(rest),
        "help" | "--help" | "-h" => match rest.first().map(String::as_str) {
            Some("classify") => help(classify::HELP),
            Some("eval") => help(eval::HELP),
            Some("inspect") => help(inspect::HELP),
            Some("bench") => help(bench::HELP),
            Some("export-onnx") => help(export::HELP),
            Some("build") => help(trt::BUILD_HELP),
            Some("soak") => help(soak::HELP),
            Some("selftest") => help(trt::SELFTEST_HELP),
            _ => help(USAGE),
        },
        "--version" | "-V" => {
            println!("tinv-run {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other => Err(format!("unknown command '{other}' (try: tinv-run --help)")),
    }
}

/// Parses `--threads`, `--budget`, `--mode` and opens a session on the `--model`.
pub fn open_session(a: &Args, max_batch: usize) -> Result<tinv::Session, String> {
    let model = model_path::open(a.get("model"), a.has("verify"))?;
    let threads = a
        .parse_opt::<usize>("threads", "a thread count")?
        .unwrap_or(1);
    let budget = a.parse_opt::<f32>("budget", "a budget λ in [0, 1]")?;
    let mode = match a.get("mode") {
        Some(m) => tinv::Mode::parse(m).map_err(|e| e.to_string())?,
        None => tinv::Mode::Adaptive,
    };
    let backend = match a.get("backend") {
        Some(b) => tinv::Backend::parse(b).map_err(|e| e.to_string())?,
        None => tinv::Backend::Auto,
    };
    let opts = tinv::SessionOptions {
        max_batch,
        threads,
        mode,
        budget,
        backend,
        engines: a.get("engines").map(std::path::PathBuf::from),
        ..tinv::SessionOptions::default()
    };
    tinv::Session::new(std::sync::Arc::new(model), opts).map_err(|e| e.to_string())
}
