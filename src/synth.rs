//! Synthetic models with seeded random weights: for tests, fuzzing seeds and `tinv-run bench`
//! on reference shapes (e.g. ViT-Tiny) without a trained checkpoint.

use crate::control::{feature_len, EXIT_FEATURES, FEATURES_V1};
use crate::format::{DType, MetaValue, TinvWriter};
use crate::model::{Config, ControllerConfig, Gelu};

/// A small deterministic generator (SplitMix64), so synthetic models are identical everywhere
/// (tinv-train draws from it too).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [−a, a).
    pub fn sym(&mut self, a: f32) -> f32 {
        (self.uniform() * 2.0 - 1.0) * a
    }
    /// `n` values uniform in [−a, a).
    pub fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.sym(a)).collect()
    }
}

/// A ViT configuration with the given shape, ImageNet-style normalization, ε = 1e-6, erf GELU.
#[allow(clippy::too_many_arguments)] // the shape of a ViT is eight numbers
pub fn config(
    image: usize,
    channels: usize,
    patch: usize,
    dim: usize,
    blocks: usize,
    heads: usize,
    classes: usize,
    depths: &[usize],
    controller: bool,
) -> Config {
    Config {
        image_h: image,
        image_w: image,
        channels,
        patch,
        dim,
        blocks,
        heads,
        mlp_hidden: 4 * dim,
        classes,
        ln_eps: 1e-6,
        gelu: Gelu::Erf,
        mean: vec![0.5; channels],
        std: vec![0.25; channels],
        depths: depths.to_vec(),
        controller: controller.then(|| ControllerConfig {
            features: FEATURES_V1.into(),
            default_budget: 0.3,
        }),
    }
}

/// The smallest model the tests of one behaviour use: 8×8 grey, patch 4 (4 patches), width 16,
/// 2 blocks of 2 heads, exits after blocks 1 and 2.
pub fn tiny(classes: usize, controller: bool) -> Config {
    config(8, 1, 4, 16, 2, 2, classes, &[1, 2], controller)
}

/// The shape of ViT-Tiny (224², patch 16, dim 192, 3 heads, 12 blocks, 1000 classes) with
/// exits after blocks 3, 6, 9 and 12.
pub fn vit_tiny() -> Config {
    config(224, 3, 16, 192, 12, 3, 1000, &[3, 6, 9, 12], false)
}

/// Serializes a model with random folded weights (scaled like trained ones: matrices
/// ±√(3/fan_in)) laid out exactly as `tinv-fold` lays out a real one.
///
/// # Panics
/// When [`Config::validate`] refuses `cfg` (a zero patch, a width the heads do not divide, …):
/// this is a test and benchmark helper, and a wrong shape there is the caller's bug.
pub fn random_model(cfg: &Config, seed: u64, dtype: DType) -> Vec<u8> {
    if let Err(e) = cfg.validate() {
        #[allow(clippy::panic)]
        {
            panic!("synth::random_model: invalid config: {e}");
        }
    }
    let mut r = Rng::new(seed);
    let mut w = TinvWriter::new();
    let mut meta = crate::format::Metadata::new();
    cfg.to_meta(&mut meta);
    for (k, v) in meta.entries() {
        w.meta(k, v.clone());
    }
    w.meta("tinv.producer", MetaValue::Str("tinv synth".into()));
    let (d, h, k) = (cfg.dim, cfg.mlp_hidden, cfg.classes);
    let mat = |w: &mut TinvWriter, r: &mut Rng, name: &str, i: usize, o: usize| {
        let a = (3.0 / i as f32).sqrt();
        w.tensor(name, &[i, o], &r.vec(i * o, a), dtype);
    };
    if cfg.controller.is_some() {
        let (f, p, hp, hq, hr) = (feature_len(cfg.channels), cfg.depths.len(), 16, 16, 8);
        mat(&mut w, &mut r, "ctrl.pred.fc1.weight", f, hp);
        w.tensor("ctrl.pred.fc1.bias", &[hp], &r.vec(hp, 0.1), DType::F32);
        mat(&mut w, &mut r, "ctrl.pred.fc2.weight", hp, p);
        w.tensor("ctrl.pred.fc2.bias", &[p], &r.vec(p, 0.1), DType::F32);
        mat(&mut w, &mut r, "ctrl.policy.fc1.weight", f + p + 1, hq);
        w.tensor("ctrl.policy.fc1.bias", &[hq], &r.vec(hq, 0.1), DType::F32);
        mat(&mut w, &mut r, "ctrl.policy.fc2.weight", hq, p);
        w.tensor("ctrl.policy.fc2.bias", &[p], &r.vec(p, 0.1), DType::F32);
        // `graph` mode's own policy, narrower than the level-1 policy so that a mix-up of the
        // two shows; drawn from a stream of its own so the other weights stay as they were.
        let (mut g, hg) = (Rng::new(seed ^ 0x6a09_e667), 12);
        mat(&mut w, &mut g, "ctrl.graph.fc1.weight", f + p + 1, hg);
        w.tensor("ctrl.graph.fc1.bias", &[hg], &g.vec(hg, 0.1), DType::F32);
        mat(&mut w, &mut g, "ctrl.graph.fc2.weight", hg, p);
        w.tensor("ctrl.graph.fc2.bias", &[p], &g.vec(p, 0.1), DType::F32);
        mat(&mut w, &mut r, "ctrl.exit.wx", EXIT_FEATURES, hr);
        mat(&mut w, &mut r, "ctrl.exit.wh", hr, hr);
        w.tensor("ctrl.exit.b", &[hr], &r.vec(hr, 0.1), DType::F32);
        mat(&mut w, &mut r, "ctrl.exit.out.weight", hr, 1);
        w.tensor("ctrl.exit.out.bias", &[1], &[0.05], DType::F32);
    }
    let cpp = cfg.channels * cfg.patch * cfg.patch;
    w.page_break();
    mat(&mut w, &mut r, "stem.patch.weight", cpp, d);
    w.tensor("stem.patch.bias", &[d], &r.vec(d, 0.1), DType::F32);
    w.tensor("stem.cls", &[d], &r.vec(d, 0.5), DType::F32);
    w.tensor(
        "stem.pos",
        &[cfg.patches(), d],
        &r.vec(cfg.patches() * d, 0.5),
        DType::F32,
    );
    for i in 0..cfg.blocks {
        let n = |s: &str| format!("blk.{i}.{s}");
        w.page_break();
        mat(&mut w, &mut r, &n("qkv.weight"), d, 3 * d);
        w.tensor(&n("qkv.bias"), &[3 * d], &r.vec(3 * d, 0.1), DType::F32);
        mat(&mut w, &mut r, &n("proj.weight"), d, d);
        w.tensor(&n("proj.bias"), &[d], &r.vec(d, 0.1), DType::F32);
        mat(&mut w, &mut r, &n("fc1.weight"), d, h);
        w.tensor(&n("fc1.bias"), &[h], &r.vec(h, 0.1), DType::F32);
        mat(&mut w, &mut r, &n("fc2.weight"), h, d);
        w.tensor(&n("fc2.bias"), &[d], &r.vec(d, 0.1), DType::F32);
        if cfg.depths.contains(&(i + 1)) {
            w.page_break();
            mat(&mut w, &mut r, &format!("exit.{}.head.weight", i + 1), d, k);
            w.tensor(
                &format!("exit.{}.head.bias", i + 1),
                &[k],
                &r.vec(k, 0.1),
                DType::F32,
            );
        }
    }
    w.to_bytes()
}

/// `n` random raw inputs in [0, 1) for `cfg`.
///
/// # Panics
/// When `n` inputs of `cfg` overflow `usize`.
pub fn random_inputs(cfg: &Config, n: usize, seed: u64) -> Vec<f32> {
    let Some(len) = n.checked_mul(cfg.input_len()) else {
        #[allow(clippy::panic)]
        {
            panic!("synth::random_inputs: {n} inputs overflow usize");
        }
    };
    let mut r = Rng::new(seed);
    (0..len).map(|_| r.uniform()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64 as published (Vigna's splitmix64.c): the first five outputs for the seed
    /// 1234567, the reference sequence other implementations are checked against.
    #[test]
    fn rng_is_splitmix64() {
        let mut r = Rng::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    /// A zero patch would divide by zero deep inside the writer; the helper names the problem.
    #[test]
    #[should_panic(expected = "invalid config: vit.patch must be > 0")]
    fn random_model_refuses_an_invalid_config_by_name() {
        let mut cfg = tiny(3, false);
        cfg.patch = 0;
        random_model(&cfg, 1, DType::F32);
    }
}
