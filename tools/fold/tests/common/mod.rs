//! Test-only code: random timm-style checkpoints, an independent safetensors writer, and an
//! UNFOLDED reference ViT forward in f64 that follows timm's `VisionTransformer` literally
//! (LayerNorm with γ/β, separate score scale, class token concatenated before the position
//! embedding). It never reads a folded tensor, so agreement with the runtime on a folded file
//! shows the folding is exact.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

mod folded;
mod reference;
mod refuse;

pub use folded::{folded_forward, max_abs_diff64};
pub use reference::{erf, reference_forward};
pub use refuse::{cli, container_err, fold_err, one_line, with_header};

use std::collections::BTreeMap;
use tinv::synth::Rng;

/// Checkpoint tensors by name: (shape, values).
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Shape and options of a random test ViT.
#[derive(Clone, Debug)]
pub struct Spec {
    pub channels: usize,
    pub image_h: usize,
    pub image_w: usize,
    pub patch: usize,
    pub dim: usize,
    pub heads: usize,
    pub blocks: usize,
    pub mlp: usize,
    pub classes: usize,
    /// Depths below `blocks` that get `exits.{d}.*` heads.
    pub exits: Vec<usize>,
    pub qkv_bias: bool,
    pub eps: f64,
    pub tanh_gelu: bool,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Spec {
    /// A small non-square RGB model with two exits below full depth.
    pub fn small() -> Spec {
        Spec {
            channels: 3,
            image_h: 16,
            image_w: 12,
            patch: 4,
            dim: 24,
            heads: 3,
            blocks: 4,
            mlp: 40,
            classes: 7,
            exits: vec![1, 3],
            qkv_bias: true,
            eps: 1e-6,
            tanh_gelu: false,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    pub fn patches(&self) -> usize {
        (self.image_h / self.patch) * (self.image_w / self.patch)
    }

    pub fn input_len(&self) -> usize {
        self.channels * self.image_h * self.image_w
    }

    /// The `tinv.config` JSON for this spec (the sizes the tool could infer are included too).
    pub fn config_json(&self, depths: &[usize]) -> String {
        format!(
            r#"{{"image_size": [{}, {}], "heads": {}, "ln_eps": {:e}, "gelu": "{}", "mean": {:?}, "std": {:?}, "depths": {:?}}}"#,
            self.image_h,
            self.image_w,
            self.heads,
            self.eps,
            if self.tanh_gelu { "tanh" } else { "erf" },
            self.mean,
            self.std,
            depths
        )
    }
}

fn put(t: &mut Tensors, name: &str, shape: &[usize], data: Vec<f32>) {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}");
    t.insert(name.to_string(), (shape.to_vec(), data));
}

/// LayerNorm parameters away from the identity: γ ≈ 1 ± 0.1, β ≈ ±0.1.
fn norm(t: &mut Tensors, rng: &mut Rng, prefix: &str, d: usize) {
    let g = (0..d).map(|_| 1.0 + rng.sym(0.1)).collect();
    put(t, &format!("{prefix}.weight"), &[d], g);
    put(t, &format!("{prefix}.bias"), &[d], rng.vec(d, 0.1));
}

fn linear(t: &mut Tensors, rng: &mut Rng, prefix: &str, n_out: usize, n_in: usize, bias: bool) {
    let a = (3.0 / n_in as f32).sqrt();
    put(
        t,
        &format!("{prefix}.weight"),
        &[n_out, n_in],
        rng.vec(n_out * n_in, a),
    );
    if bias {
        put(t, &format!("{prefix}.bias"), &[n_out], rng.vec(n_out, 0.1));
    }
}

/// Random timm-named weights (plus `exits.{d}.*` for `spec.exits`).
pub fn random_checkpoint(spec: &Spec, seed: u64) -> Tensors {
    let mut rng = Rng::new(seed);
    let r = &mut rng;
    let mut t = Tensors::new();
    let (c, p, d) = (spec.channels, spec.patch, spec.dim);
    let a = (3.0 / (c * p * p) as f32).sqrt();
    put(
        &mut t,
        "patch_embed.proj.weight",
        &[d, c, p, p],
        r.vec(d * c * p * p, a),
    );
    put(&mut t, "patch_embed.proj.bias", &[d], r.vec(d, 0.1));
    put(&mut t, "cls_token", &[1, 1, d], r.vec(d, 0.5));
    let n = spec.patches() + 1;
    put(&mut t, "pos_embed", &[1, n, d], r.vec(n * d, 0.5));
    for i in 0..spec.blocks {
        let b = format!("blocks.{i}");
        norm(&mut t, r, &format!("{b}.norm1"), d);
        linear(&mut t, r, &format!("{b}.attn.qkv"), 3 * d, d, spec.qkv_bias);
        linear(&mut t, r, &format!("{b}.attn.proj"), d, d, true);
        norm(&mut t, r, &format!("{b}.norm2"), d);
        linear(&mut t, r, &format!("{b}.mlp.fc1"), spec.mlp, d, true);
        linear(&mut t, r, &format!("{b}.mlp.fc2"), d, spec.mlp, true);
    }
    norm(&mut t, r, "norm", d);
    linear(&mut t, r, "head", spec.classes, d, true);
    for e in &spec.exits {
        norm(&mut t, r, &format!("exits.{e}.norm"), d);
        linear(&mut t, r, &format!("exits.{e}.head"), spec.classes, d, true);
    }
    t
}

/// Random controller tensors in the checkpoint's PyTorch `[out, in]` orientation.
pub fn add_controller(t: &mut Tensors, spec: &Spec, paths: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let r = &mut rng;
    let f = 16 * spec.channels + 4;
    let (hp, hq, hr) = (8, 6, 5);
    linear(t, r, "ctrl.pred.fc1", hp, f, true);
    linear(t, r, "ctrl.pred.fc2", paths, hp, true);
    linear(t, r, "ctrl.policy.fc1", hq, f + paths + 1, true);
    linear(t, r, "ctrl.policy.fc2", paths, hq, true);
    put(t, "ctrl.exit.wx", &[hr, 5], r.vec(hr * 5, 0.5));
    put(t, "ctrl.exit.wh", &[hr, hr], r.vec(hr * hr, 0.5));
    put(t, "ctrl.exit.b", &[hr], r.vec(hr, 0.5));
    put(t, "ctrl.exit.out.weight", &[1, hr], r.vec(hr, 0.5));
    put(t, "ctrl.exit.out.bias", &[1], r.vec(1, 0.5));
}

/// Source dtype for [`safetensors_bytes`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Src {
    F32,
    F16,
    BF16,
}

/// Rounds every tensor to what `dtype` can hold, so a reference on these values sees exactly
/// what the folder reads back.
pub fn round_to(t: &Tensors, dtype: Src) -> Tensors {
    let r = |v: f32| match dtype {
        Src::F32 => v,
        Src::F16 => half::f16::from_f32(v).to_f32(),
        Src::BF16 => half::bf16::from_f32(v).to_f32(),
    };
    t.iter()
        .map(|(k, (s, v))| (k.clone(), (s.clone(), v.iter().map(|x| r(*x)).collect())))
        .collect()
}

/// An independent safetensors writer: header JSON with sorted names and back-to-back data,
/// `metadata` as the `__metadata__` map.
pub fn safetensors_bytes(t: &Tensors, dtype: Src, metadata: &[(&str, &str)]) -> Vec<u8> {
    let (tag, size) = match dtype {
        Src::F32 => ("F32", 4),
        Src::F16 => ("F16", 2),
        Src::BF16 => ("BF16", 2),
    };
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        header.insert("__metadata__".into(), m.into());
    }
    let mut data = Vec::new();
    for (name, (shape, vals)) in t {
        let begin = data.len();
        for v in vals {
            match dtype {
                Src::F32 => data.extend_from_slice(&v.to_le_bytes()),
                Src::F16 => data.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes()),
                Src::BF16 => data.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes()),
            }
        }
        assert_eq!(data.len() - begin, vals.len() * size);
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": tag, "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let json = serde_json::Value::Object(header).to_string();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// A random image in [0, 1].
pub fn random_image(spec: &Spec, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..spec.input_len()).map(|_| rng.uniform()).collect()
}

/// Runs the runtime's CPU backend on a folded file at `depth`.
pub fn runtime_logits(tinv_bytes: &[u8], x: &[f32], depth: usize) -> Vec<f32> {
    let model = tinv::Model::from_bytes(tinv_bytes, &tinv::OpenOptions::default())
        .unwrap_or_else(|e| panic!("runtime rejects the folded file: {e}"));
    let k = model.config().classes;
    let mut sess = tinv::Session::new(std::sync::Arc::new(model), tinv::SessionOptions::default())
        .unwrap_or_else(|e| panic!("session: {e}"));
    let mut out = vec![0.0f32; k];
    sess.infer_depth(x, 1, depth, &mut out)
        .unwrap_or_else(|e| panic!("infer_depth({depth}): {e}"));
    out
}

/// Largest |a − b|.
pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - y).abs())
        .fold(0.0, f64::max)
}

/// `tinv-NAME-PID` under the temp folder, with nothing left there: process ids repeat (a fresh
/// CI machine runs the tests twice), so what an earlier run under the same id left is removed.
/// Not created: a test that needs the folder makes it.
pub fn test_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tinv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
