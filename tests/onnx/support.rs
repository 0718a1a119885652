//! Test plumbing: .npy files, the ONNX Runtime runner (tests/onnx/run_ort.py) and small random
//! `.tinv` models written with `TinvWriter`.

use std::path::{Path, PathBuf};
use std::process::Command;
use tinv::control::{feature_len, EXIT_FEATURES, FEATURES_V1};
use tinv::format::{DType, Metadata, TinvWriter};
use tinv::model::{Config, ControllerConfig, Gelu};

// ---------------------------------------------------------------------------------------------
// .npy (format version 1.0, C order)

/// Writes an .npy file; `descr` is `<f4` or `<f2`, `data` the little-endian element bytes.
pub fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

/// Writes f32 values as an .npy file.
pub fn write_f32(path: &Path, shape: &[usize], v: &[f32]) {
    assert_eq!(shape.iter().product::<usize>(), v.len());
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, "<f4", shape, &bytes);
}

/// Reads a little-endian f32 .npy file written by numpy: (shape, values).
pub fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &b[..6],
        b"\x93NUMPY",
        "{}: not an .npy file",
        path.display()
    );
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let open = header.find("'shape': (").unwrap() + 10;
    let close = open + header[open..].find(')').unwrap();
    let shape: Vec<usize> = header[open..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data: Vec<f32> = b[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

// ---------------------------------------------------------------------------------------------
// ONNX Runtime

/// The Python interpreter with onnxruntime: `$TINV_PYTHON`, else `.venv/bin/python` at the repo
/// root. `None` (after printing a loud SKIP line) when neither exists.
pub fn python(test: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TINV_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    eprintln!(
        "SKIP {test}: no ONNX Runtime: set TINV_PYTHON to a python with onnxruntime and numpy, \
         or create .venv at the repo root (see README, test command)"
    );
    None
}

/// One ONNX Runtime run.
#[derive(Default)]
pub struct Job {
    pub model: PathBuf,
    pub inputs: Vec<(String, PathBuf)>,
    /// Weight blob and binding table feeding the weight inputs.
    pub blob: Option<(PathBuf, PathBuf)>,
    pub outputs: Vec<(String, PathBuf)>,
}

fn json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn json_map(pairs: &[(String, PathBuf)]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", json_str(k), json_str(&v.to_string_lossy())))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Runs `jobs` in order in one Python process; panics with its output if it fails.
pub fn run_ort(python: &Path, dir: &Path, jobs: &[Job]) {
    let mut items = Vec::new();
    for j in jobs {
        let mut s = format!(
            "{{\"model\": {}, \"inputs\": {}, \"outputs\": {}",
            json_str(&j.model.to_string_lossy()),
            json_map(&j.inputs),
            json_map(&j.outputs)
        );
        if let Some((bin, table)) = &j.blob {
            s.push_str(&format!(
                ", \"blob\": {{\"bin\": {}, \"table\": {}}}",
                json_str(&bin.to_string_lossy()),
                json_str(&table.to_string_lossy())
            ));
        }
        s.push('}');
        items.push(s);
    }
    let jobs_path = dir.join("jobs.json");
    std::fs::write(&jobs_path, format!("[{}]", items.join(",\n"))).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx/run_ort.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&jobs_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "ONNX Runtime failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinv-onnx-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// Random test models

/// SplitMix64, so the test models are the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// `n` values uniform in [−a, a).
    pub fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| (self.unit() * 2.0 - 1.0) * a).collect()
    }
}

/// The configuration of a small test ViT.
#[allow(clippy::too_many_arguments)]
pub fn config(
    (image_h, image_w, channels): (usize, usize, usize),
    patch: usize,
    dim: usize,
    blocks: usize,
    heads: usize,
    depths: &[usize],
    gelu: Gelu,
    controller: bool,
) -> Config {
    Config {
        image_h,
        image_w,
        channels,
        patch,
        dim,
        blocks,
        heads,
        mlp_hidden: 2 * dim,
        classes: 5,
        ln_eps: 1e-6,
        gelu,
        mean: (0..channels).map(|c| 0.4 + 0.05 * c as f32).collect(),
        std: (0..channels).map(|c| 0.25 + 0.02 * c as f32).collect(),
        depths: depths.to_vec(),
        controller: controller.then(|| ControllerConfig {
            features: FEATURES_V1.into(),
            default_budget: 0.3,
        }),
    }
}

/// A `.tinv` file with seeded random weights for `cfg`, laid out as docs/FORMAT.md orders it.
pub fn random_model(cfg: &Config, seed: u64) -> Vec<u8> {
    random_model_as(cfg, seed, DType::F32)
}

/// [`random_model`] with every tensor stored as `dtype`.
pub fn random_model_as(cfg: &Config, seed: u64, dtype: DType) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut w = TinvWriter::new();
    let mut meta = Metadata::new();
    cfg.to_meta(&mut meta);
    for (k, v) in meta.entries() {
        w.meta(k, v.clone());
    }
    let mat = |w: &mut TinvWriter, r: &mut Rng, name: &str, i: usize, o: usize| {
        let a = 1.7 / (i as f32).sqrt();
        w.tensor(name, &[i, o], &r.vec(i * o, a), dtype);
    };
    let vecf = |w: &mut TinvWriter, r: &mut Rng, name: &str, n: usize, a: f32| {
        w.tensor(name, &[n], &r.vec(n, a), dtype);
    };
    let (d, h, k, p) = (cfg.dim, cfg.mlp_hidden, cfg.classes, cfg.depths.len());
    if cfg.controller.is_some() {
        let f = feature_len(cfg.channels);
        let (hp, hq, hr) = (8, 6, 4);
        mat(&mut w, &mut r, "ctrl.pred.fc1.weight", f, hp);
        vecf(&mut w, &mut r, "ctrl.pred.fc1.bias", hp, 0.2);
        mat(&mut w, &mut r, "ctrl.pred.fc2.weight", hp, p);
        vecf(&mut w, &mut r, "ctrl.pred.fc2.bias", p, 0.2);
        mat(&mut w, &mut r, "ctrl.policy.fc1.weight", f + p + 1, hq);
        vecf(&mut w, &mut r, "ctrl.policy.fc1.bias", hq, 0.2);
        mat(&mut w, &mut r, "ctrl.policy.fc2.weight", hq, p);
        vecf(&mut w, &mut r, "ctrl.policy.fc2.bias", p, 0.2);
        mat(&mut w, &mut r, "ctrl.exit.wx", EXIT_FEATURES, hr);
        mat(&mut w, &mut r, "ctrl.exit.wh", hr, hr);
        vecf(&mut w, &mut r, "ctrl.exit.b", hr, 0.2);
        mat(&mut w, &mut r, "ctrl.exit.out.weight", hr, 1);
        vecf(&mut w, &mut r, "ctrl.exit.out.bias", 1, 0.2);
    }
    let cpp = cfg.channels * cfg.patch * cfg.patch;
    mat(&mut w, &mut r, "stem.patch.weight", cpp, d);
    vecf(&mut w, &mut r, "stem.patch.bias", d, 0.1);
    vecf(&mut w, &mut r, "stem.cls", d, 0.5);
    let np = cfg.patches();
    w.tensor("stem.pos", &[np, d], &r.vec(np * d, 0.5), dtype);
    for i in 0..cfg.blocks {
        w.page_break();
        mat(&mut w, &mut r, &format!("blk.{i}.qkv.weight"), d, 3 * d);
        vecf(&mut w, &mut r, &format!("blk.{i}.qkv.bias"), 3 * d, 0.1);
        mat(&mut w, &mut r, &format!("blk.{i}.proj.weight"), d, d);
        vecf(&mut w, &mut r, &format!("blk.{i}.proj.bias"), d, 0.1);
        mat(&mut w, &mut r, &format!("blk.{i}.fc1.weight"), d, h);
        vecf(&mut w, &mut r, &format!("blk.{i}.fc1.bias"), h, 0.1);
        mat(&mut w, &mut r, &format!("blk.{i}.fc2.weight"), h, d);
        vecf(&mut w, &mut r, &format!("blk.{i}.fc2.bias"), d, 0.1);
        if cfg.depths.contains(&(i + 1)) {
            w.page_break();
            mat(&mut w, &mut r, &format!("exit.{}.head.weight", i + 1), d, k);
            vecf(&mut w, &mut r, &format!("exit.{}.head.bias", i + 1), k, 0.1);
        }
    }
    w.to_bytes()
}

/// `n` random raw images in [0, 1], CHW each.
pub fn random_images(cfg: &Config, n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    (0..n * cfg.input_len()).map(|_| r.unit()).collect()
}
