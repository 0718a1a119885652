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

/// The backbone's tensors (timm names + `exits.{d}.*`), freshly initialized as timm does:
/// truncated normal (std 0.02) for matrices, the class token and the position embedding; zero
/// biases; LayerNorm weight 1, bias 0. The order is the order of the forward.
pub fn init_backbone(m: &ModelConfig, rng: &mut Rng) -> Vec<HostTensor> {
    let (d, h, k, p, c) = (m.dim, m.mlp_hidden, m.classes, m.patch, m.channels);
    let mut v = vec![
        HostTensor::trunc_normal("patch_embed.proj.weight", &[d, c, p, p], 0.02, rng),
        HostTensor::full("patch_embed.proj.bias", &[d], 0.0),
        HostTensor::trunc_normal("cls_token", &[1, 1, d], 0.02, rng),
        HostTensor::trunc_normal("pos_embed", &[1, m.tokens(), d], 0.02, rng),
    ];
    let norm = |v: &mut Vec<HostTensor>, name: &str| {
        v.push(HostTensor::full(&format!("{name}.weight"), &[d], 1.0));
        v.push(HostTensor::full(&format!("{name}.bias"), &[d], 0.0));
    };
    let linear = |v: &mut Vec<HostTensor>, rng: &mut Rng, name: &str, out: usize, inp: usize| {
        v.push(HostTensor::trunc_normal(
            &format!("{name}.weight"),
            &[out, inp],
            0.02,
            rng,
        ));
        v.push(HostTensor::full(&format!("{name}.bias"), &[out], 0.0));
    };
    for i in 0..m.blocks {
        let b = format!("blocks.{i}");
        norm(&mut v, &format!("{b}.norm1"));
        linear(&mut v, rng, &format!("{b}.attn.qkv"), 3 * d, d);
        linear(&mut v, rng, &format!("{b}.attn.proj"), d, d);
        norm(&mut v, &format!("{b}.norm2"));
        linear(&mut v, rng, &format!("{b}.mlp.fc1"), h, d);
        linear(&mut v, rng, &format!("{b}.mlp.fc2"), d, h);
    }
    for &dep in &m.depths[..m.depths.len().saturating_sub(1)] {
        norm(&mut v, &format!("exits.{dep}.norm"));
        linear(&mut v, rng, &format!("exits.{dep}.head"), k, d);
    }
    norm(&mut v, "norm");
    linear(&mut v, rng, "head", k, d);
    v
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
