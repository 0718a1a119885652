//! `tinv-run`: classify images, evaluate on a dataset, inspect a model, benchmark paths, export
//! ONNX, build TensorRT engines. Every failure prints one `error: …` line and exits non-zero.

#[macro_use]
mod out;
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
mod sweep;
mod trt;

use args::Args;

const USAGE: &str = "\
tinv-run — run input-adaptive-depth Vision Transformers (tinv runtime)

USAGE:
    tinv-run <COMMAND> [OPTIONS]

COMMANDS:
    classify     classify PNG/PGM images with the adaptive controller or a fixed depth
    eval         accuracy, FLOPs and latency on an IDX dataset (adaptive vs full depth vs oracle)
    sweep        accuracy vs FLOPs at many budgets and thresholds; the budget for a FLOPs target
    inspect      configuration, tensors, paths, FLOPs, arena and weight bytes of a model
    bench        per-path latency (median/p99), path-switch cost, GEMM throughput
    export-onnx  one ONNX graph per depth path (FP16 weight inputs shared by all, or --baked)
    soak         many adaptive inferences: RSS drift, throughput over time, identical outputs
    build        build TensorRT engines for every path on this device (feature tensorrt)
    selftest     TensorRT vs CPU logits, per-path CUDA-graph latency (feature tensorrt)
    help         this text, or `tinv-run help <COMMAND>` / `tinv-run <COMMAND> --help`
    --version    the version of tinv-run

COMMON OPTIONS (in parentheses: the commands that take it; `tinv-run <COMMAND> --help` lists
every option of a command, and a command refuses any other):
    --model M    a .tinv file or a package directory holding model.tinv (every command).
                 Without it: $TINV_MODEL when set and not empty, else the package
                 engines/fmnist read from disk, the first found of ./engines/fmnist,
                 engines/fmnist in the folder of the tinv-run binary or one of the three above
                 it, and engines/fmnist in the source tree it was built from (nothing is
                 embedded in the binary)
    --verify     check every tensor checksum and device copy when opening the model (every command)
    --threads N  worker threads for matrix products and attention, 1 to 256, default 1
                 (classify, eval, sweep, bench, soak)
    --backend B  auto (default: TensorRT when this build has it, a GPU is present and engines
                 built by `tinv-run build` match this model, else the CPU), cpu, or tensorrt
                 (an error if unusable) (classify, eval, sweep, soak)
    --engines D  TensorRT engines folder, default plans/ beside the model file (classify, eval,
                 sweep, soak, selftest)
    --json       machine-readable output: one JSON object per line (classify, eval, sweep,
                 inspect, bench, soak)

Logging: RUST_LOG=info (or debug) prints what the runtime does to stderr.
";

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // OsString: a path argument need not be UTF-8 (`std::env::args` panicked on one).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = match run(&argv) {
        Ok(()) => 0,
        Err(e) => {
            out::error(e);
            1
        }
    };
    std::process::exit(code);
}

/// The `--help` text of subcommand `cmd`.
fn help_of(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "classify" => classify::HELP,
        "eval" => eval::HELP,
        "sweep" => sweep::HELP,
        "inspect" => inspect::HELP,
        "bench" => bench::HELP,
        "export-onnx" => export::HELP,
        "build" => trt::BUILD_HELP,
        "soak" => soak::HELP,
        "selftest" => trt::SELFTEST_HELP,
        _ => return None,
    })
}

fn run(argv: &[std::ffi::OsString]) -> Result<(), String> {
    let Some((cmd, rest)) = argv.split_first() else {
        // On stderr, with the error: stdout carries only what a command was asked for.
        errln!("{}", USAGE.trim_end());
        return Err("no command given".into());
    };
    let cmd = cmd.to_string_lossy();
    let unknown = |c: &str| format!("unknown command '{c}' (try: tinv-run --help)");
    if matches!(&*cmd, "help" | "--help" | "-h") {
        let text = match rest {
            [] => USAGE,
            // `tinv-run help --help`, `tinv-run --help help`: help about help is the usage.
            [c] if matches!(&*c.to_string_lossy(), "help" | "--help" | "-h") => USAGE,
            [c] => help_of(&c.to_string_lossy()).ok_or_else(|| unknown(&c.to_string_lossy()))?,
            [_, extra, ..] => return Err(args::unexpected(&extra.to_string_lossy())),
        };
        out!("{text}");
        return Ok(());
    }
    // Help wins wherever it stands, except after `--` (where it is a file name).
    let before_files = rest.iter().take_while(|a| *a != "--");
    if let Some(text) =
        help_of(&cmd).filter(|_| before_files.clone().any(|a| a == "--help" || a == "-h"))
    {
        out!("{text}");
        return Ok(());
    }
    match &*cmd {
        "classify" => classify::run(rest),
        "eval" => eval::run(rest),
        "sweep" => sweep::run(rest),
        "inspect" => inspect::run(rest),
        "bench" => bench::run(rest),
        "export-onnx" => export::run(rest),
        "build" => trt::build(rest),
        "soak" => soak::run(rest),
        "selftest" => trt::selftest(rest),
        "--version" | "-V" => match rest.first() {
            Some(extra) => Err(args::unexpected(&extra.to_string_lossy())),
            None => {
                outln!("tinv-run {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        },
        other => Err(unknown(other)),
    }
}

/// `--depth`, refused alongside `--budget` or `--mode`: those steer the controller, which a
/// fixed depth does not run.
pub fn fixed_depth(a: &Args) -> Result<Option<usize>, String> {
    let depth = a.parse_opt::<usize>("depth", "a depth (number of blocks)")?;
    if depth.is_some() && (a.get("budget").is_some() || a.get("mode").is_some()) {
        return Err("--depth fixes the path; it cannot be combined with --budget or --mode".into());
    }
    Ok(depth)
}

/// `--depth d` against the opened model: one of its paths.
pub fn check_depth(cfg: &tinv::Config, depth: Option<usize>) -> Result<(), String> {
    match depth {
        Some(d) if cfg.path_index(d).is_none() => Err(format!(
            "--depth {d} is not a path of this model (paths: {:?})",
            cfg.depths
        )),
        _ => Ok(()),
    }
}

/// The session options a command line gives, parsed without opening the model: `(threads,
/// budget, mode)`. Commands call it before anything costly, so that a flag that took a file as
/// its value is the error reported.
pub fn session_settings(a: &Args) -> Result<SessionSettings, String> {
    let threads = a.threads()?;
    let budget = a.parse_opt::<f32>("budget", "a budget λ in [0, 1]")?;
    if let Some(b) = budget.filter(|b| !(0.0..=1.0).contains(b)) {
        return Err(format!("--budget {b} is not in [0, 1]"));
    }
    let mode = match a.get("mode") {
        Some(m) => tinv::Mode::parse(m).map_err(|e| e.to_string())?,
        None => tinv::Mode::Adaptive,
    };
    Ok((threads, budget, mode))
}

/// `--threads`, `--budget` and `--mode` as [`session_settings`] parses them.
pub type SessionSettings = (usize, Option<f32>, tinv::Mode);

/// Opens a session on the `--model` with the `settings` parsed from the same command line.
pub fn open_session(
    a: &Args,
    settings: SessionSettings,
    max_batch: usize,
) -> Result<tinv::Session, String> {
    let (threads, budget, mode) = settings;
    let model = model_path::open(a.path("model"), a.has("verify"))?;
    // Options that would be accepted and then ignored are refused instead.
    let threshold = matches!(mode, tinv::Mode::Threshold(_));
    if threshold && budget.is_some() {
        return Err(
            "--budget steers the controller (adaptive and graph modes); threshold mode has none"
                .into(),
        );
    }
    if model.config().controller.is_none()
        && !threshold
        && (budget.is_some() || a.get("mode").is_some())
    {
        return Err(no_controller(
            "--budget or --mode adaptive|graph",
            "use --depth D or --mode threshold:τ",
        ));
    }
    let opts = backend_options(a)?
        .max_batch(max_batch)
        .threads(threads)
        .mode(mode)
        .budget(budget);
    tinv::Session::new(std::sync::Arc::new(model), opts).map_err(|e| e.to_string())
}

/// The error for controller options on a model without a controller.
pub fn no_controller(options: &str, hint: &str) -> String {
    format!(
        "this model has no controller, so it runs every input at full depth and takes no \
         {options} ({hint})"
    )
}

/// Session options with `--backend` (default auto) and `--engines`, refusing `--engines` beside
/// `--backend cpu`, which would ignore it.
pub fn backend_options(a: &Args) -> Result<tinv::SessionOptions, String> {
    let b = match a.get("backend") {
        Some(b) => tinv::Backend::parse(b).map_err(|e| e.to_string())?,
        None => tinv::Backend::Auto,
    };
    let engines = a.path("engines").map(std::path::PathBuf::from);
    if b == tinv::Backend::Cpu && engines.is_some() {
        return Err("--engines names TensorRT engines, which --backend cpu does not use".into());
    }
    Ok(tinv::SessionOptions::default().backend(b).engines(engines))
}
