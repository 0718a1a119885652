//! `tinv-bench`: tinv's CPU backend against ONNX Runtime (its C API, dynamically loaded from the
//! library the onnxruntime PyPI wheel ships) and tract, in one harness and one run: same model
//! (tinv's own `--baked` ONNX export, native LayerNormalization for ONNX Runtime, which fuses
//! it; decomposed for tract), same inputs, same thread counts, batch 1. Each
//! (runtime, model, threads) runs in its own child process so its memory increase is its own.
//! Writes `results.json`-like text to `--out` and the report `docs/RESULTS.md` with SVG plots.

#[macro_use]
#[path = "../../../src/bin/tinv-run/out.rs"]
mod out;
mod args;
mod blas;
mod child;
mod profile;
mod report;
mod rounds;
mod svg;
#[cfg(test)]
mod test_support;

use args::parse_args;
pub use args::Args;
pub use rounds::{median, Row};
use rounds::{median_rows, missing_rows, paired_ratios};
use std::path::{Path, PathBuf};
use std::process::Command;
use tinv::format::DType;
use tinv::onnx::{self, ExportOptions, LnFlavour};
use tinv::{Model, OpenOptions};

/// One benchmarked model and its inputs (rebuilt identically in every child).
pub struct Case {
    pub name: String,
    pub tinv: PathBuf,
    /// The full-depth path for ONNX Runtime: baked f32, native LayerNormalization (which ORT
    /// fuses; the decomposed form it cannot fuse cost it ~14 % on Fashion-MNIST).
    pub onnx: PathBuf,
    /// The same path with decomposed LayerNorm, for tract 0.21.
    pub onnx_tract: PathBuf,
    pub chw: (usize, usize, usize),
    pub inputs: Vec<f32>,
    pub labels: Option<Vec<u8>>,
    pub budget: Option<f32>,
    pub ort_lib: PathBuf,
    /// The model has a controller: the case gets a `tinv-adaptive` row (without one, adaptive
    /// mode runs every input at full depth, the `tinv` row again under another name).
    pub adaptive: bool,
}

/// libonnxruntime.so inside the venv's onnxruntime wheel (any `lib/python*/` that has one).
fn find_ort_lib(venv: &Path) -> Option<PathBuf> {
    for py in std::fs::read_dir(venv.join("lib")).ok()?.flatten() {
        let capi = py.path().join("site-packages/onnxruntime/capi");
        let Ok(files) = std::fs::read_dir(capi) else {
            continue;
        };
        for f in files.flatten() {
            if f.file_name()
                .to_string_lossy()
                .starts_with("libonnxruntime.so")
            {
                return Some(f.path());
            }
        }
    }
    None
}

/// Creates the directory `dir` (and its parents) unless it exists; one that exists as a file is
/// named as such ("File exists (os error 17)" said nothing about which).
pub fn create_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{} exists and is not a directory", dir.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The folder of the report's plots: `results/` beside `report`.
pub fn plots_dir(report: &Path) -> PathBuf {
    match report.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join("results"),
        _ => PathBuf::from("results"),
    }
}

/// Before any measuring: the report's folder and its `results/` folder for the plots exist (made
/// if missing) and take files. (Found at the end, a bad `--report` threw the measurements away.)
fn check_report_dir(report: &Path) -> Result<(), String> {
    if report.is_dir() {
        return Err(format!("--report {} is a directory", report.display()));
    }
    let plots = plots_dir(report);
    let dir = plots
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let bad = |e: String| format!("--report {}: {e}", report.display());
    create_dir(&plots).map_err(bad)?;
    let probe = dir.join(format!(".tinv-bench-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| bad(format!("cannot write in {}: {e}", dir.display())))
}

fn read_idx(path: &Path) -> Result<tinv::idx::Idx, String> {
    tinv::idx::open(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Labels fit `images` images of a model with `classes` classes: a 1-D IDX file (an image file
/// given as `--labels` was read as labels once), one label per image, each below `classes`.
fn check_labels(labels: &tinv::idx::Idx, images: usize, classes: usize) -> Result<(), String> {
    if labels.dims.len() != 1 {
        return Err(format!(
            "dimensions {:?}: not a label file (a 1-D IDX file, one label per image, expected)",
            labels.dims
        ));
    }
    if labels.dims[0] != images {
        return Err(format!(
            "{} labels for {images} images (one label per image expected)",
            labels.dims[0]
        ));
    }
    match labels.data.iter().position(|&y| usize::from(y) >= classes) {
        Some(i) => Err(format!(
            "label {} (item {i}) is out of range for the model's {classes} classes",
            labels.data[i]
        )),
        None => Ok(()),
    }
}

/// Opens ONNX Runtime's library once and finds its entry point, so that a wrong file (another
/// library, a text file) fails here rather than in every ORT row after the tinv rows have run.
fn check_ort_lib(lib: &Path) -> Result<(), String> {
    let bad =
        |e: libloading::Error| format!("{}: not an ONNX Runtime library ({e})", lib.display());
    // SAFETY: loading runs the library's initializers; it is the library the ORT children load.
    let l = unsafe { libloading::Library::new(lib) }.map_err(bad)?;
    // SAFETY: only looked up, never called.
    unsafe { l.get::<unsafe extern "C" fn()>(b"OrtGetApiBase\0") }.map_err(bad)?;
    Ok(())
}

/// The peers' graph file for `stem`: decomposed LayerNorm (tract) or native (ONNX Runtime).
fn peer_graph(stem: &Path, decomposed: bool) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(if decomposed {
        ".decomposed.onnx"
    } else {
        ".onnx"
    });
    PathBuf::from(name)
}

/// Builds the cases; the parent (`prepare`) also writes the model files and ONNX exports.
fn cases(a: &Args, prepare: bool) -> Result<Vec<Case>, String> {
    let ort_lib = match &a.ort_lib {
        Some(lib) if !lib.is_file() => {
            return Err(format!("--ort-lib {}: no such file", lib.display()))
        }
        Some(lib) => lib.clone(),
        None => find_ort_lib(&a.venv).ok_or(format!(
            "no libonnxruntime.so in the venv {} (lib/python*/site-packages/onnxruntime/capi): \
             create it with `python3 -m venv {0} && {0}/bin/pip install onnxruntime numpy`, or \
             pass --venv DIR or --ort-lib FILE",
            a.venv.display()
        ))?,
    };
    create_dir(&a.out)?;
    // What a case needs to know of its model.
    struct Shape {
        chw: (usize, usize, usize),
        classes: usize,
        controller: bool,
    }
    // The peers' graphs: `<stem>.onnx` (native LayerNorm, ONNX Runtime) and
    // `<stem>.decomposed.onnx` (tract).
    let export = |tinv: &Path, stem: &Path| -> Result<Shape, String> {
        let m = Model::open(tinv, &OpenOptions::default()).map_err(|e| e.to_string())?;
        let c = m.config();
        if prepare {
            let full = *c.depths.last().ok_or("no path")?;
            let tract = cfg!(feature = "tract").then(|| (LnFlavour::Decomposed, true));
            for (ln, decomposed) in [(LnFlavour::Native, false)].into_iter().chain(tract) {
                let path = peer_graph(stem, decomposed);
                let opts = ExportOptions {
                    ln,
                    ..ExportOptions::baked()
                };
                let g = onnx::path_graph(&m, full, &opts).map_err(|e| e.to_string())?;
                std::fs::write(&path, g.bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(Shape {
            chw: (c.channels, c.image_h, c.image_w),
            classes: c.classes,
            controller: m.ctrl().is_some(),
        })
    };
    let mut out = Vec::new();
    if let Some(fm) = &a.fmnist {
        let onnx_path = a.out.join("fmnist.path.full");
        let Shape {
            chw,
            classes,
            controller: adaptive,
        } = export(fm, &onnx_path)?;
        if !adaptive && prepare {
            errln!(
                "{}: no controller, so no tinv-adaptive rows (adaptive mode would run every \
                 input at full depth)",
                fm.display()
            );
        }
        let imgs = read_idx(&a.images)?;
        let labels = read_idx(&a.labels)?;
        let per = chw.0 * chw.1 * chw.2;
        if imgs.dims.len() != 3 || imgs.dims[1..] != [chw.1, chw.2] || chw.0 != 1 {
            return Err(format!(
                "{}: images {:?} do not fit the model's {}×{}×{} input (one-channel IDX expected)",
                a.images.display(),
                imgs.dims,
                chw.0,
                chw.1,
                chw.2
            ));
        }
        check_labels(&labels, imgs.dims[0], classes)
            .map_err(|e| format!("{} (--labels): {e}", a.labels.display()))?;
        let n = a.eval_n.min(imgs.data.len() / per).min(labels.data.len());
        if n == 0 {
            return Err(format!(
                "{} / {}: no test images with labels",
                a.images.display(),
                a.labels.display()
            ));
        }
        out.push(Case {
            name: "fmnist".into(),
            tinv: fm.clone(),
            onnx: peer_graph(&onnx_path, false),
            onnx_tract: peer_graph(&onnx_path, true),
            chw,
            inputs: imgs.data[..n * per]
                .iter()
                .map(|b| f32::from(*b) / 255.0)
                .collect(),
            labels: Some(labels.data[..n].to_vec()),
            budget: None,
            ort_lib: ort_lib.clone(),
            adaptive,
        });
    }
    if a.vit_tiny {
        let cfg = tinv::synth::vit_tiny();
        let tinv_path = a.out.join("vit-tiny.tinv");
        if prepare {
            std::fs::write(&tinv_path, tinv::synth::random_model(&cfg, 1, DType::F32))
                .map_err(|e| e.to_string())?;
        }
        let onnx_path = a.out.join("vit-tiny.path.12");
        let chw = export(&tinv_path, &onnx_path)?.chw;
        out.push(Case {
            name: "vit-tiny".into(),
            tinv: tinv_path,
            onnx: peer_graph(&onnx_path, false),
            onnx_tract: peer_graph(&onnx_path, true),
            chw,
            inputs: tinv::synth::random_inputs(&cfg, 4, 2),
            labels: None,
            budget: None,
            ort_lib: ort_lib.clone(),
            // The synthetic model's controller is random: its adaptive row would time noise.
            adaptive: false,
        });
    }
    // Last of the checks, before any measuring: the inputs are named first.
    check_ort_lib(&ort_lib)?;
    Ok(out)
}

/// Runs `--profile` in a child process and returns its Markdown section.
fn profile_child(a: &Args) -> Result<Option<String>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let threads: Vec<String> = a.threads.iter().map(|t| t.to_string()).collect();
    let out = Command::new(exe)
        .args(["--profile", "--threads", &threads.join(",")])
        .args(["--runs", &a.runs.min(100).to_string(), "--out"])
        .arg(&a.out)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        errln!(
            "  profile failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("no output")
        );
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn spawn(a: &Args, runtime: &str, case: &str, threads: usize) -> Result<Row, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(&a.raw)
        .args(["--child", runtime, case, &threads.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .ok_or_else(|| {
            format!(
                "{runtime} on {case} ({threads} threads) failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no output")
            )
        })?;
    let kv = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    errln!(
        "  {case:8} {runtime:14} {threads} thread(s): {}",
        &line[7..]
    );
    Ok(Row {
        case: case.into(),
        runtime: runtime.into(),
        threads,
        kv,
    })
}

fn main() {
    if let Err(e) = real_main() {
        out::error(e);
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let a = parse_args()?;
    if let Some((rt, case_name, threads)) = &a.child {
        let cases = cases(&a, false)?;
        let case = cases
            .iter()
            .find(|c| &c.name == case_name)
            .ok_or("unknown case")?;
        return child::run(rt, case, *threads, a.warmup, a.runs);
    }
    if a.profile_only {
        let cfg = tinv::synth::vit_tiny();
        create_dir(&a.out)?;
        let path = a.out.join("vit-tiny.tinv");
        std::fs::write(&path, tinv::synth::random_model(&cfg, 1, DType::F32))
            .map_err(|e| e.to_string())?;
        let model = Model::open(&path, &OpenOptions::default()).map_err(|e| e.to_string())?;
        let md =
            profile::Section::measure("vit-tiny", &model, &a.threads, a.runs.min(100))?.markdown();
        out!("{md}");
        return Ok(());
    }
    check_report_dir(&a.report)?;
    let cases = cases(&a, true)?;
    if cases.is_empty() {
        return Err("nothing to benchmark (no --fmnist model and --no-vit-tiny)".into());
    }
    // Every (case, threads, runtime) child runs `--rounds` times, the rounds one after the other,
    // so a burst of noise from the host hits the peers alike; each row keeps the median of its
    // rounds' numbers. Odd rounds run the children in reverse order, so that a drift of the
    // host's load within a round does not always fall on the same runtime.
    let mut expected = Vec::new();
    for c in &cases {
        let mut runtimes = vec!["tinv", "ort"];
        if c.adaptive {
            runtimes.insert(1, "tinv-adaptive");
        }
        // The latency target's ratio: both runtimes in one process, interleaved.
        if c.name == "vit-tiny" {
            runtimes.push(child::PAIR);
        }
        for &t in &a.threads {
            // tract is single-threaded: measured at 1 thread only.
            let tract = (cfg!(feature = "tract") && t == 1).then_some("tract");
            for rt in runtimes.iter().copied().chain(tract) {
                expected.push((c.name.clone(), rt, t));
            }
        }
    }
    let mut rounds: Vec<Vec<Row>> = Vec::new();
    for round in 0..a.rounds {
        errln!("round {}/{}", round + 1, a.rounds);
        let mut order: Vec<&(String, &str, usize)> = expected.iter().collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut rows = Vec::new();
        for (case, rt, t) in order {
            match spawn(&a, rt, case, *t) {
                Ok(r) => rows.push(r),
                Err(e) => errln!("  {e}"),
            }
        }
        rounds.push(rows);
    }
    let paired = paired_ratios(&rounds, "vit-tiny", &a.threads);
    let mut rows = median_rows(rounds);
    let missing = missing_rows(&rows, &expected);
    if !missing.is_empty() {
        return Err(format!(
            "no measurement in any round for {} (errors above); {} not written",
            missing.join(", "),
            a.report.display()
        ));
    }
    // The interleaved rows gave `paired`; the tables list one runtime per row.
    rows.retain(|r| r.runtime != child::PAIR);
    // The profile runs in a child of its own, like every measurement: in this process, after the
    // children and with OpenBLAS loaded, its numbers came out several times too slow.
    let profile = if cases.iter().any(|c| c.name == "vit-tiny") {
        profile_child(&a)?
    } else {
        None
    };
    let blas = blas::Blas::load(&blas::candidates(a.openblas.as_deref(), &a.venv));
    report::write(
        &a,
        &cases,
        &rows,
        &paired,
        blas.as_ref(),
        profile.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::{cases, find_ort_lib, Args};

    /// The Fashion-MNIST case: the first --eval-n images of the IDX file, each byte over 255,
    /// their labels, the model's shape and controller, the peers' graph names (with ONNX
    /// Runtime's library from the venv, which the last check opens; skipped without one).
    #[test]
    fn the_fmnist_case_reads_the_first_eval_n_images_as_bytes_over_255() {
        let venv = crate::test_support::venv();
        let Some(ort) = find_ort_lib(&venv) else {
            eprintln!(
                "SKIP the_fmnist_case_reads…: no onnxruntime in {}",
                venv.display()
            );
            return;
        };
        let dir = crate::test_support::test_dir("bench-cases");
        std::fs::create_dir_all(&dir).unwrap();
        let model = crate::test_support::write_fm_model(&dir);
        let pixels: Vec<u8> = (0..7 * 784).map(|i| (i * 37 % 256) as u8).collect();
        let labels: Vec<u8> = (0..7).map(|i| (i * 3 % 10) as u8).collect();
        std::fs::write(
            dir.join("i.idx"),
            tinv::idx::encode(&[7, 28, 28], &pixels).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("l.idx"), tinv::idx::encode(&[7], &labels).unwrap()).unwrap();
        let a = Args {
            fmnist: Some(model.clone()),
            images: dir.join("i.idx"),
            labels: dir.join("l.idx"),
            eval_n: 5,
            vit_tiny: false,
            threads: vec![1],
            runs: 1,
            warmup: 0,
            venv: venv.clone(),
            ort_lib: Some(ort),
            openblas: None,
            out: dir.join("out"),
            report: dir.join("R.md"),
            rounds: 1,
            profile_only: false,
            child: None,
            raw: Vec::new(),
        };
        let c = cases(&a, false).unwrap();
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert_eq!(
            (c.name.as_str(), c.chw, c.adaptive),
            ("fmnist", (1, 28, 28), true)
        );
        assert_eq!(c.labels.as_deref(), Some(&labels[..5]));
        assert_eq!(c.inputs.len(), 5 * 784);
        for (i, x) in c.inputs.iter().enumerate() {
            // Byte 37·i mod 256, over 255: 0 → 0, 255 → 1.
            assert_eq!(*x, ((i * 37 % 256) as f32) / 255.0, "pixel {i}");
        }
        assert_eq!(c.onnx, dir.join("out/fmnist.path.full.onnx"));
        assert_eq!(
            c.onnx_tract,
            dir.join("out/fmnist.path.full.decomposed.onnx")
        );
        // --eval-n past the 7 images takes the 7.
        let c = cases(&Args { eval_n: 50, ..a }, false).unwrap();
        assert_eq!(
            (c[0].inputs.len(), c[0].labels.as_ref().map(Vec::len)),
            (7 * 784, Some(7))
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
