//! `tinv-fold`: the command line over the `tinv_fold` library.

#[macro_use]
#[path = "../../../src/bin/tinv-run/out.rs"]
mod out;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tinv::format::DType;
use tinv_fold::config::parse_gelu;
use tinv_fold::{Checkpoint, ConfigSpec, FoldError, FoldOptions};

const HELP: &str = "\
tinv-fold: fold a timm-style ViT checkpoint into a .tinv file (docs/FORMAT.md)

USAGE:
    tinv-fold [OPTIONS] CHECKPOINT.safetensors [-o OUT.tinv]

The checkpoint holds timm ViT tensors (patch_embed.proj.*, cls_token, pos_embed, blocks.{i}.*,
norm.*, head.*), optionally exit heads (exits.{d}.norm.*, exits.{d}.head.*) and a controller
(ctrl.*), in F32, F16 or BF16. The configuration comes from, weakest first: the safetensors
metadata key `tinv.config`, --config FILE, then the flags below; what is still missing is
inferred from the tensor shapes (patch, dim, blocks, channels, mlp_hidden, classes; the image
size from pos_embed when its grid is square). `heads` cannot be inferred. A --config or flag
value that changes one the checkpoint was trained with (its `tinv.config`) is refused: the
folded model would compute something else. --depths and --budget choose among the trained
paths and budgets.

Folding: LayerNorm γ/β into the next linear layer, 1/sqrt(head_dim) into the Q columns, fused
QKV, class token + its position embedding pre-added, patch convolution as a GEMM weight, exit-head
norms into the exit heads, controller weights transposed to [in, out]. Refused: a NaN or infinite
weight, a folded value that overflows its storage (f32, or f16 with --dtype f16 and --device),
and any tensor the tool does not know.

OPTIONS:
    -o, --output FILE     Output .tinv file (default: the checkpoint path with extension .tinv).
                          Written atomically (temporary file, then rename), through a
                          symbolic link. Must not be the checkpoint, the --config file, a
                          directory, a device or a FIFO, and its folder must exist (all
                          checked before folding).
    --config FILE         JSON configuration, the same object as `tinv.config` (see FORMAT.md).
    --heads N             Attention heads; must divide the embedding width.
    --image-size HxW|N    Input height and width in pixels (N means NxN). Must match pos_embed.
    --depths D1,D2,...    Depths of the paths, ascending, the last = number of blocks. Every
                          depth but the last needs exits.{d}.* tensors; exits not listed are
                          skipped. Default: every exit in the checkpoint plus full depth.
                          A checkpoint with a controller (ctrl.*) folds only with all of its
                          paths (the controller chooses among exactly those): a subset is
                          refused.
    --ln-eps EPS          LayerNorm epsilon (default 1e-6, timm's ViT).
    --gelu erf|tanh       GELU variant (default erf, PyTorch/timm).
    --mean M1,M2,...      Input normalization mean per channel, for x in [0, 1]
                          (default for 3 channels: ImageNet 0.485,0.456,0.406).
    --std S1,S2,...       Input normalization std per channel (default for 3 channels:
                          ImageNet 0.229,0.224,0.225).
    --budget L            Default controller budget λ in [0, 1] (needed when the checkpoint
                          has ctrl.* tensors and its config does not give one; refused when
                          it has none).
    --dtype f32|f16       Storage of the matrices (default f32). With f16, biases, stem.cls and
                          stem.pos (and the small controller) stay f32.
    --device              Also write the device section for TensorRT: an f16 copy dev.<name> of
                          every GEMM weight ([K, N] row-major), after all host tensors.
    -q, --quiet           No progress lines.
    -h, --help            This help.
    -V, --version         Print the version.

Progress goes to stderr, one line per stage; errors are one line `error: ...`, exit status 1.
";

struct Args {
    input: PathBuf,
    output: Option<PathBuf>,
    config: Option<PathBuf>,
    spec: ConfigSpec,
    dtype: DType,
    device: bool,
    quiet: bool,
}

fn usage(msg: impl Into<String>) -> FoldError {
    FoldError::Usage(msg.into())
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, FoldError> {
    v.parse()
        .map_err(|_| usage(format!("{flag}: '{v}' is not a valid number")))
}

fn list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>, FoldError> {
    v.split(',').map(|x| num(flag, x.trim())).collect()
}

/// `None` means: print help/version and exit successfully.
fn parse_args(argv: &[String]) -> Result<Option<Args>, FoldError> {
    let mut a = Args {
        input: PathBuf::new(),
        output: None,
        config: None,
        spec: ConfigSpec::default(),
        dtype: DType::F32,
        device: false,
        quiet: false,
    };
    let mut input = None;
    let mut seen = std::collections::HashSet::new();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        // The last of two values won silently (`-o x.tinv -o y.tinv` wrote only y.tinv).
        let canonical = match flag {
            "-o" => "--output",
            "-q" => "--quiet",
            f => f,
        };
        if canonical.starts_with("--") && !seen.insert(canonical) {
            return Err(usage(format!("{canonical} is given twice; give it once")));
        }
        // A switch takes no value: `--device=0` must not silently mean "on".
        let switch = |on: &mut bool| match &inline {
            Some(_) => Err(usage(format!("{flag} takes no value"))),
            None => {
                *on = true;
                Ok(())
            }
        };
        let mut value = || -> Result<String, FoldError> {
            let v = match &inline {
                Some(v) => v.clone(),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| usage(format!("{flag} needs a value")))?,
            };
            // `-o ""` folded everything, then failed with ": No such file or directory".
            if v.is_empty() {
                return Err(usage(format!("{flag} needs a value, not an empty string")));
            }
            Ok(v)
        };
        match flag {
            "-h" | "--help" => {
                out!("{HELP}");
                return Ok(None);
            }
            // As tinv-run and tinv-train: `-V x.safetensors` printed the version and folded nothing.
            "-V" | "--version" if argv.len() > 1 || inline.is_some() => {
                return Err(usage(format!("{flag} takes no other arguments")))
            }
            "-V" | "--version" => {
                outln!("tinv-fold {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "-q" | "--quiet" => switch(&mut a.quiet)?,
            "--device" => switch(&mut a.device)?,
            "-o" | "--output" => a.output = Some(PathBuf::from(value()?)),
            "--config" => a.config = Some(PathBuf::from(value()?)),
            "--heads" => a.spec.heads = Some(num(flag, &value()?)?),
            "--image-size" => {
                let v = value()?;
                a.spec.image_size = Some(match v.split_once(['x', 'X']) {
                    Some((h, w)) => (num(flag, h)?, num(flag, w)?),
                    None => {
                        let n = num(flag, &v)?;
                        (n, n)
                    }
                });
            }
            "--depths" => a.spec.depths = Some(list(flag, &value()?)?),
            "--ln-eps" => a.spec.ln_eps = Some(num(flag, &value()?)?),
            "--gelu" => a.spec.gelu = Some(parse_gelu(&value()?)?),
            "--mean" => a.spec.mean = Some(list(flag, &value()?)?),
            "--std" => a.spec.std = Some(list(flag, &value()?)?),
            "--budget" => a.spec.default_budget = Some(num(flag, &value()?)?),
            "--dtype" => {
                a.dtype = match value()?.as_str() {
                    "f32" => DType::F32,
                    "f16" => DType::F16,
                    other => {
                        return Err(usage(format!("--dtype must be f32 or f16, not '{other}'")))
                    }
                }
            }
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(usage(format!("unknown option '{f}'")))
            }
            "" => return Err(usage("an empty argument is not a file name")),
            _ => {
                if input.replace(PathBuf::from(arg)).is_some() {
                    return Err(usage(format!("more than one checkpoint given ('{arg}')")));
                }
            }
        }
    }
    a.input = input.ok_or_else(|| usage("no checkpoint given"))?;
    Ok(Some(a))
}

fn read_text(path: &Path) -> Result<String, FoldError> {
    // A config is small JSON: a regular file under 16 MiB (a FIFO blocked forever).
    tinv::files::read_regular_text(path, 16 << 20).map_err(|source| FoldError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses an output that would destroy the checkpoint or the config (the rename replaces it) or
/// that cannot be written, before the folding.
fn check_output(input: &Path, config: Option<&Path>, out: &Path) -> Result<(), FoldError> {
    if out.is_dir() || out.to_string_lossy().ends_with('/') {
        return Err(usage(format!(
            "output '{}' is a directory; give a file name",
            out.display()
        )));
    }
    let same = |other: &Path| match (std::fs::canonicalize(other), std::fs::canonicalize(out)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(input) {
        return Err(usage(format!(
            "output '{}' is the checkpoint itself; choose another -o",
            out.display()
        )));
    }
    if config.is_some_and(same) {
        return Err(usage(format!(
            "output '{}' is the --config file; choose another -o",
            out.display()
        )));
    }
    // The folder must exist (the write does not create it): found before folding, not after.
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent.filter(|d| !d.is_dir()) {
        let what = if dir.exists() {
            format!("{} is not a folder", dir.display())
        } else {
            format!("folder {} does not exist", dir.display())
        };
        return Err(usage(format!("output '{}': {what}", out.display())));
    }
    // A device or FIFO (also behind a link) would be replaced by the rename: refused.
    tinv::files::write_destination(out).map_err(|e| usage(format!("output {e}")))?;
    Ok(())
}

fn run(argv: &[String]) -> Result<(), FoldError> {
    let Some(args) = parse_args(argv)? else {
        return Ok(());
    };
    let quiet = args.quiet;
    let mut progress = |msg: &str| {
        if !quiet {
            errln!("tinv-fold: {msg}");
        }
    };
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| args.input.with_extension("tinv"));
    progress(&format!("reading {}", args.input.display()));
    let ck = Checkpoint::open(&args.input)?;
    // After the input (its errors come first), before the folding.
    check_output(&args.input, args.config.as_deref(), &out)?;
    let config_json = args.config.as_deref().map(read_text).transpose()?;
    refuse_overrides(&ck, config_json.as_deref(), &args.spec)?;
    let opts = FoldOptions {
        matrix_dtype: args.dtype,
        device: args.device,
    };
    let (_, writer) =
        tinv_fold::fold(&ck, config_json.as_deref(), args.spec, &opts, &mut progress)?;
    writer.write(&out).map_err(|source| FoldError::Io {
        path: out.clone(),
        source,
    })?;
    let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    progress(&format!("wrote {} ({len} bytes)", out.display()));
    Ok(())
}

/// Refuses `--config` or a flag that changes a value the checkpoint was trained with: a model
/// folded with another head count or normalization than it was trained with computes something
/// else (it was a warning, and `--heads 3` on the 4-head default model wrote such a model).
fn refuse_overrides(
    ck: &Checkpoint,
    config_json: Option<&str>,
    flags: &ConfigSpec,
) -> Result<(), FoldError> {
    let parse = |text: &str| ConfigSpec::from_json(text).ok();
    let trained = ck
        .metadata()
        .get(tinv_fold::CONFIG_META_KEY)
        .and_then(|t| parse(t));
    let Some(trained) = trained else {
        return Ok(());
    };
    let mut changes = config_json
        .and_then(parse)
        .map_or_else(Vec::new, |c| trained.changed_by(&c));
    changes.extend(trained.changed_by(flags));
    if changes.is_empty() {
        return Ok(());
    }
    Err(usage(format!(
        "the checkpoint was trained with another configuration ({}): the folded model would \
         compute something else; drop the option (its tinv.config is what it was trained with)",
        changes.join(", ")
    )))
}

fn main() -> ExitCode {
    let argv = match tinv::files::utf8_args() {
        Ok(a) => a,
        Err(e) => {
            out::error(e);
            return ExitCode::FAILURE;
        }
    };
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out::error(e);
            ExitCode::FAILURE
        }
    }
}
