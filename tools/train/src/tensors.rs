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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dim: usize, hidden: usize, blocks: usize) -> ModelConfig {
        ModelConfig {
            image_size: [4, 4],
            channels: 1,
            patch: 2,
            dim,
            blocks,
            heads: 1,
            mlp_hidden: hidden,
            classes: 3,
            ln_eps: 1e-6,
            gelu: "erf".into(),
            mean: vec![0.0],
            std: vec![1.0],
            depths: vec![1, blocks],
            controller: None,
        }
    }

    /// The specs are the tensors `init_backbone` makes, name for name and shape for shape.
    #[test]
    fn specs_describe_the_initialized_backbone() {
        let m = cfg(4, 8, 2);
        let ts = init_backbone(&m, &mut Rng::new(1, 0));
        let specs = backbone_specs(&m);
        assert_eq!(ts.len(), specs.len());
        for (t, s) in ts.iter().zip(&specs) {
            assert_eq!((&t.name, &t.shape), (&s.name, &s.shape));
            if let Init::Full(v) = s.init {
                assert!(t.data.iter().all(|&x| x == v), "{}", t.name);
            }
        }
        assert_eq!(specs[0].shape, [4, 1, 2, 2]);
        assert!(specs
            .iter()
            .any(|s| s.name == "exits.1.head.weight" && s.shape == [3, 4]));
    }

    /// A small checkpoint whose config declares a huge model (bug 33): the shape check names the
    /// first mismatch from the specs alone. Allocating a random model of that size first (8 G
    /// floats here) aborted the process.
    #[test]
    fn a_huge_declared_config_is_checked_without_allocating_it() {
        let small = init_backbone(&cfg(4, 8, 2), &mut Rng::new(1, 0));
        let huge = cfg(16384, 65536, 1024);
        let e = crate::vit::Vit::from_host(&huge, &small).err().unwrap();
        assert_eq!(
            e,
            "tensor 'patch_embed.proj.weight' has shape [4, 1, 2, 2], the config needs \
             [16384, 1, 2, 2]"
        );
    }

    #[test]
    fn specs_are_timms_names_and_shapes_in_forward_order() {
        // D 4, MLP 8, 3 classes, 2 blocks, paths 1 and 2, 2×2 patches of a 4×4 image: 5 tokens.
        let m = cfg(4, 8, 2);
        let mut want: Vec<(String, Vec<usize>)> = vec![
            ("patch_embed.proj.weight".into(), vec![4, 1, 2, 2]),
            ("patch_embed.proj.bias".into(), vec![4]),
            ("cls_token".into(), vec![1, 1, 4]),
            ("pos_embed".into(), vec![1, 5, 4]),
        ];
        for b in 0..2 {
            for (n, s) in [
                ("norm1.weight", vec![4]),
                ("norm1.bias", vec![4]),
                ("attn.qkv.weight", vec![12, 4]),
                ("attn.qkv.bias", vec![12]),
                ("attn.proj.weight", vec![4, 4]),
                ("attn.proj.bias", vec![4]),
                ("norm2.weight", vec![4]),
                ("norm2.bias", vec![4]),
                ("mlp.fc1.weight", vec![8, 4]),
                ("mlp.fc1.bias", vec![8]),
                ("mlp.fc2.weight", vec![4, 8]),
                ("mlp.fc2.bias", vec![4]),
            ] {
                want.push((format!("blocks.{b}.{n}"), s));
            }
        }
        for (n, s) in [
            ("exits.1.norm.weight", vec![4]),
            ("exits.1.norm.bias", vec![4]),
            ("exits.1.head.weight", vec![3, 4]),
            ("exits.1.head.bias", vec![3]),
            ("norm.weight", vec![4]),
            ("norm.bias", vec![4]),
            ("head.weight", vec![3, 4]),
            ("head.bias", vec![3]),
        ] {
            want.push((n.into(), s));
        }
        let got: Vec<(String, Vec<usize>)> = backbone_specs(&m)
            .into_iter()
            .map(|s| (s.name, s.shape))
            .collect();
        assert_eq!(got, want);
        // Matrices, the class token and the position embedding drawn (|v| ≤ 2·0.02), the rest
        // constant; `find` by name.
        let ts = init_backbone(&m, &mut Rng::new(1, 0));
        let qkv = find(&ts, "blocks.1.attn.qkv.weight").unwrap();
        assert_eq!(qkv.data.len(), 48);
        assert!(qkv.data.iter().all(|v| v.abs() <= 0.04));
        assert!(qkv.data.iter().any(|&v| v != qkv.data[0]));
        assert!(find(&ts, "blocks.2.attn.qkv.weight").is_none());
        assert_eq!(find(&ts, "norm.weight").unwrap().data, [1.0; 4]);
        assert_eq!(
            exit_names(&m, 0),
            ("exits.1.norm".to_string(), "exits.1.head".to_string())
        );
        assert_eq!(exit_names(&m, 1), ("norm".to_string(), "head".to_string()));
    }
}
