//! `tinv-bench`'s command line: `--help`, the options and their checks.

use std::path::{Path, PathBuf};

const HELP: &str = "\
tinv-bench: tinv vs ONNX Runtime vs tract, same model, same threads, batch 1

USAGE: tinv-bench [OPTIONS]

OPTIONS:
    --fmnist MODEL.tinv   The Fashion-MNIST model (full depth, adaptive, accuracy vs FLOPs).
                          Default: engines/fmnist/model.tinv when it exists.
    --images IDX          Test images (default /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz)
    --labels IDX          Test labels (default .../t10k-labels-idx1-ubyte.gz)
    --eval-n N            Test images used for latency inputs and the accuracy sweep (default 2000)
    --no-vit-tiny         Skip the ViT-Tiny-shaped model (192 dim, 3 heads, 12 blocks, 224², patch 16)
    --threads LIST        Thread counts, each 1 to 256 (default 1,2)
    --runs N              Timed runs per measurement (default 200), after --warmup N (default 20)
    --rounds N            Run every measurement N times, in rotation; report medians (default 3)
    --venv DIR            Python venv holding onnxruntime and numpy (default .venv)
    --ort-lib FILE        libonnxruntime.so (default: the one in the venv's onnxruntime wheel)
    --openblas FILE       OpenBLAS for the sgemm yardstick (default: numpy's, else the system's)
    --out DIR             Scratch and raw results (default target/bench)
    --report FILE         Markdown report (default docs/RESULTS.md; plots beside it in results/)
    --profile             Only print where one ViT-Tiny block's time goes at each thread count
                          (the report's profile section), for quick work on the kernels
    -h, --help            This help
    -V, --version         Print the version
";

/// Parsed command line.
pub struct Args {
    pub fmnist: Option<PathBuf>,
    pub images: PathBuf,
    pub labels: PathBuf,
    pub eval_n: usize,
    pub vit_tiny: bool,
    pub threads: Vec<usize>,
    pub runs: usize,
    pub warmup: usize,
    pub venv: PathBuf,
    pub ort_lib: Option<PathBuf>,
    pub openblas: Option<PathBuf>,
    pub out: PathBuf,
    pub report: PathBuf,
    /// Rounds of every measurement (medians reported).
    pub rounds: usize,
    /// `--profile`: print the block profile and stop.
    pub profile_only: bool,
    /// `--child RUNTIME CASE THREADS`: this process is one measurement's child.
    pub(crate) child: Option<(String, String, usize)>,
    /// The command line as given (`--flag=value` split), passed on to the children.
    pub(crate) raw: Vec<String>,
}

/// The command line, checked; `--help` and `--version` print and exit. Without `--fmnist`,
/// engines/fmnist/model.tinv when it exists.
pub(crate) fn parse_args() -> Result<Args, String> {
    // `--flag=value` is `--flag value`, as tinv-run, tinv-fold and tinv-train take it; a switch
    // takes no value.
    let mut raw: Vec<String> = Vec::new();
    for s in tinv::files::utf8_args()? {
        match s.split_once('=') {
            Some((f, _)) if SWITCHES.contains(&f) => {
                return Err(format!("{f} takes no value (see --help)"));
            }
            Some((f, v)) if f.starts_with("--") => raw.extend([f.to_string(), v.to_string()]),
            _ => raw.push(s),
        }
    }
    let ds = Path::new("/usr/share/datasets/fashion-mnist");
    let default_fm = Path::new("engines/fmnist/model.tinv");
    let mut a = Args {
        fmnist: None,
        images: ds.join("t10k-images-idx3-ubyte.gz"),
        labels: ds.join("t10k-labels-idx1-ubyte.gz"),
        eval_n: 2000,
        vit_tiny: true,
        threads: vec![1, 2],
        runs: 200,
        warmup: 20,
        venv: ".venv".into(),
        ort_lib: None,
        openblas: None,
        out: "target/bench".into(),
        report: "docs/RESULTS.md".into(),
        child: None,
        profile_only: false,
        rounds: 3,
        raw: Vec::new(),
    };
    let mut it = raw.iter();
    let num = |v: Option<&String>, f: &str| -> Result<usize, String> {
        v.and_then(|s| s.parse().ok())
            .ok_or(format!("{f}: expected a number"))
    };
    // A count of at least 1, as tinv-run refuses its zero counts (0 was silently read as 1).
    let count = |v: Option<&String>, f: &str| -> Result<usize, String> {
        match num(v, f)? {
            0 => Err(format!("{f} must be at least 1")),
            n => Ok(n),
        }
    };
    // An empty value is refused, as the other tools do: `--out ""` wrote into the current folder.
    let path = |v: Option<&String>, f: &str| -> Result<PathBuf, String> {
        match v {
            Some(s) if s.is_empty() => Err(format!("{f} needs a path, not an empty string")),
            Some(s) => Ok(PathBuf::from(s)),
            None => Err(format!("{f}: expected a path")),
        }
    };
    let mut seen = std::collections::HashSet::new();
    while let Some(f) = it.next() {
        // The last of two values won silently.
        if f.starts_with("--") && !seen.insert(f.as_str()) {
            return Err(format!("{f} is given twice; give it once"));
        }
        match f.as_str() {
            "--fmnist" => a.fmnist = Some(path(it.next(), f)?),
            "--images" => a.images = path(it.next(), f)?,
            "--labels" => a.labels = path(it.next(), f)?,
            "--eval-n" => a.eval_n = count(it.next(), f)?,
            "--no-vit-tiny" => a.vit_tiny = false,
            "--profile" => a.profile_only = true,
            "--threads" => a.threads = thread_list(it.next().ok_or("--threads: expected a list")?)?,
            "--runs" => a.runs = count(it.next(), f)?,
            "--rounds" => a.rounds = count(it.next(), f)?,
            "--warmup" => a.warmup = num(it.next(), f)?,
            "--venv" => a.venv = path(it.next(), f)?,
            "--ort-lib" => a.ort_lib = Some(path(it.next(), f)?),
            "--openblas" => a.openblas = Some(path(it.next(), f)?),
            "--out" => a.out = path(it.next(), f)?,
            "--report" => a.report = path(it.next(), f)?,
            "--child" => {
                let rt = it.next().ok_or("--child: runtime")?.clone();
                let case = it.next().ok_or("--child: case")?.clone();
                a.child = Some((rt, case, num(it.next(), f)?));
            }
            "-h" | "--help" => {
                out!("{HELP}");
                std::process::exit(0);
            }
            "-V" | "--version" if raw.len() > 1 => {
                return Err(format!("{f} takes no other arguments (see --help)"));
            }
            "-V" | "--version" => {
                outln!("tinv-bench {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
    }
    if a.fmnist.is_none() {
        if default_fm.is_file() {
            a.fmnist = Some(default_fm.to_path_buf());
        } else if a.child.is_none() && !a.profile_only {
            // Relative to the working directory: run elsewhere, the report silently lost its
            // Fashion-MNIST rows and targets.
            errln!(
                "warning: no {} here (run from the repository root, or pass --fmnist): no \
                 Fashion-MNIST rows",
                default_fm.display()
            );
        }
    }
    a.raw = raw;
    Ok(a)
}

/// The options that take no value.
const SWITCHES: [&str; 4] = ["--no-vit-tiny", "--profile", "--help", "--version"];

/// Most threads a tinv session takes (`SessionOptions::threads`): a larger count would be found
/// only after a whole round of measuring.
const MAX_THREADS: usize = 256;

/// `--threads`: a comma-separated list of distinct counts, each 1 to [`MAX_THREADS`] (ONNX
/// Runtime would read 0 as "all cores" while tinv refuses it, so the two would no longer run with
/// the same threads).
fn thread_list(s: &str) -> Result<Vec<usize>, String> {
    let mut v: Vec<usize> = Vec::new();
    for t in s.split(',') {
        let n = t
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_THREADS).contains(n))
            .ok_or(format!(
                "--threads: bad value '{t}' (expected counts 1 to {MAX_THREADS}, e.g. 1,2)"
            ))?;
        if v.contains(&n) {
            return Err(format!("--threads: {n} given twice"));
        }
        v.push(n);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::thread_list;

    #[test]
    fn thread_lists_refuse_zero_junk_and_repeats() {
        assert_eq!(thread_list("1,2").unwrap(), [1, 2]);
        assert_eq!(thread_list(" 4 ").unwrap(), [4]);
        assert_eq!(thread_list("256").unwrap(), [256]);
        for bad in ["0", "1,0", "", "1,,2", "two", "2,2", "-1", "257"] {
            assert!(thread_list(bad).is_err(), "{bad:?} accepted");
        }
    }
}
