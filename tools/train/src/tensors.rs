//! Named host tensors: what checkpoints hold and what the model is built from. Keeping weights as
//! plain `(name, shape, f32)` records keeps the file format independent of candle.

use crate::config::ModelConfig;
use crate::rng::Rng;

/// One named f32 tensor on the host, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Checkpoint name (timm names for the backbone).
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor filled with `v`.
    pub fn full(name: &str, shape: &[usize], v: f32) -> HostTensor {
        HostTensor {
            name: name.into(),
            shape: shape.to_vec(),
            data: vec![v; shape.iter().product()],
        }
    }
    /// A tensor drawn from a normal with standard deviation `std` truncated at ±2·std.
    pub fn trunc_normal(name: &str, shape: &[usize], std: f64, rng: &mut Rng) -> HostTensor {
        let n = shape.iter().product();
        HostTensor {
            name: name.into(),
            shape: shape.to_vec(),
            data: (0..n).map(|_| rng.trunc_normal(std)).collect(),
        }
    }
}

/// Finds a tensor by name.
pub fn find<'a>(ts: &'a [HostTensor], name: &str) -> Option<&'a HostTensor> {
    ts.iter().find(|t| t.name == name)
}

/// How one backbone tensor starts: timm's truncated normal (std 0.02) or a constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Truncated normal, std 0.02.
    Normal,
    /// Every element this value.
    Full(f32),
}

/// One backbone tensor's name, shape and initialization, without its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Checkpoint name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Initialization.
    pub init: Init,
}

/// The backbone's tensors (timm names + `exits.{d}.*`) as specs, in the order of the forward:
/// what a checkpoint must hold for `m`, known without allocating any of it (a checkpoint's
/// config may declare a model far larger than its tensors).
pub fn backbone_specs(m: &ModelConfig) -> Vec<Spec> {
    let (d, h, k, p, c) = (m.dim, m.mlp_hidden, m.classes, m.patch, m.channels);
    let spec = |name: &str, shape: &[usize], init| Spec {
        name: name.into(),
        shape: shape.to_vec(),
        init,
    };
    let mut v = vec![
        spec("patch_embed.proj.weight", &[d, c, p, p], Init::Normal),
        spec("patch_embed.proj.bias", &[d], Init::Full(0.0)),
        spec("cls_token", &[1, 1, d], Init::Normal),
        spec("pos_embed", &[1, m.tokens(), d], Init::Normal),
    ];
    let norm = |v: &mut Vec<Spec>, name: &str| {
        v.push(spec(&format!("{name}.weight"), &[d], Init::Full(1.0)));
        v.push(spec(&format!("{name}.bias"), &[d], Init::Full(0.0)));
    };
    let linear = |v: &mut Vec<Spec>, name: &str, out: usize, inp: usize| {
        v.push(spec(&format!("{name}.weight"), &[out, inp], Init::Normal));
        v.push(spec(&format!("{name}.bias"), &[out], Init::Full(0.0)));
    };
    for i in 0..m.blocks {
        let b = format!("blocks.{i}");
        norm(&mut v, &format!("{b}.norm1"));
        linear(&mut v, &format!("{b}.attn.qkv"), 3 * d, d);
        linear(&mut v, &format!("{b}.attn.proj"), d, d);
        norm(&mut v, &format!("{b}.norm2"));
        linear(&mut v, &format!("{b}.mlp.fc1"), h, d);
        linear(&mut v, &format!("{b}.mlp.fc2"), d, h);
    }
    for &dep in &m.depths[..m.depths.len().saturating_sub(1)] {
        norm(&mut v, &format!("exits.{dep}.norm"));
        linear(&mut v, &format!("exits.{dep}.head"), k, d);
    }
    norm(&mut v, "norm");
    linear(&mut v, "head", k, d);
    v
}

/// The backbone's tensors, freshly initialized as timm does: truncated normal (std 0.02) for
/// matrices, the class token and the position embedding; zero biases; LayerNorm weight 1, bias
/// 0 ([`backbone_specs`], drawn in that order).
pub fn init_backbone(m: &ModelConfig, rng: &mut Rng) -> Vec<HostTensor> {
    backbone_specs(m)
        .iter()
        .map(|s| match s.init {
            Init::Normal => HostTensor::trunc_normal(&s.name, &s.shape, 0.02, rng),
            Init::Full(v) => HostTensor::full(&s.name, &s.shape, v),
        })
        .collect()
}

/// Names of the norm and head of path `k` (`exits.{d}.*`, or `norm`/`head` for the deepest).
pub fn exit_names(m: &ModelConfig, k: usize) -> (String, String) {
    if k + 1 == m.depths.len() {
        ("norm".into(), "head".into())
    } else {
        (
            format!("exits.{}.norm", m.depths[k]),
            format!("exits.{}.head", m.depths[k]),
        )
    }
}
