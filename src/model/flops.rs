//! FLOPs accounting: 2 per multiply-add of every matrix product (patch embedding, QKV, attention
//! scores and values, projection, MLP, exit heads, controller). Elementwise work (norms, softmax,
//! GELU) is not counted, as in the paper and most FLOPs tables. See docs/ARCHITECTURE.md.

use super::{Config, CtrlW};
use crate::control;

/// What one path costs per input (computed at open; `non_exhaustive`: a new cost is not a
/// breaking change).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PathCost {
    /// Depth of the path (blocks run).
    pub depth: usize,
    /// FLOPs of the stem, blocks 1..depth and this path's exit head (no controller).
    pub backbone_flops: u64,
    /// FLOPs of the exit head alone.
    pub exit_flops: u64,
}

/// The product of `factors`, saturating at `u64::MAX`: a [`Config`] built by hand (not read
/// from a file, whose limits keep these small) must not overflow into a panic or a wrap.
fn product(factors: &[usize]) -> u64 {
    factors
        .iter()
        .fold(1u64, |a, &f| a.saturating_mul(f as u64))
}

/// FLOPs of the stem (patch embedding).
pub fn stem_flops(c: &Config) -> u64 {
    product(&[2, c.patches(), c.channels, c.patch, c.patch, c.dim])
}

/// FLOPs of one encoder block (saturating, as every function here).
pub fn block_flops(c: &Config) -> u64 {
    let (n, d, h) = (c.tokens(), c.dim, c.mlp_hidden);
    let qkv = product(&[2, n, d, 3, d]);
    let attn = product(&[2, 2, n, n, d]); // scores and weighted values, all heads
    let proj = product(&[2, n, d, d]);
    let mlp = product(&[2, 2, n, d, h]);
    qkv.saturating_add(attn)
        .saturating_add(proj)
        .saturating_add(mlp)
}

/// FLOPs of one exit head.
pub fn exit_flops(c: &Config) -> u64 {
    product(&[2, c.dim, c.classes])
}

/// FLOPs of the up-front controller (features, predictor, the mode's up-front policy: `graph`
/// mode's own when `graph` and the file has one), charged once per input.
pub fn controller_up_front_flops(c: &Config, w: &CtrlW, graph: bool) -> u64 {
    let f = control::feature_len(c.channels) as u64;
    let p = c.depths.len() as u64;
    let hq = w.up_front(graph).1 as u64;
    control::feature_flops(c.channels, c.image_h, c.image_w)
        + 2 * (f * w.hp as u64 + w.hp as u64 * p)
        + 2 * ((f + p + 1) * hq + hq * p)
}

/// FLOPs of one level-2 decision at an exit (exit statistics + one RNN step).
pub fn controller_exit_flops(c: &Config, w: &CtrlW) -> u64 {
    let hr = w.hr as u64;
    4 * c.classes as u64 + 2 * (control::EXIT_FEATURES as u64 * hr + hr * hr + hr)
}

/// Costs of every path.
pub fn path_costs(c: &Config) -> Vec<PathCost> {
    c.depths
        .iter()
        .map(|&depth| PathCost {
            depth,
            backbone_flops: stem_flops(c)
                .saturating_add((depth as u64).saturating_mul(block_flops(c)))
                .saturating_add(exit_flops(c)),
            exit_flops: exit_flops(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every count against docs/ARCHITECTURE.md's "Accounting", multiplied out by hand for a
    /// shape whose sizes all differ (an 8×12 image of 2 channels, patch 4: 6 patches, 7 tokens;
    /// D 16, MLP 64, 3 classes, paths 1 and 2; synth's controller widths 16, 16, 12 and 8).
    #[test]
    fn counts_match_the_documented_definition_by_hand() {
        let mut c = crate::synth::config(8, 2, 4, 16, 2, 2, 3, &[1, 2], true);
        c.image_w = 12;
        let bytes = crate::synth::random_model(&c, 1, crate::format::DType::F32);
        let m = crate::Model::from_bytes(&bytes, &Default::default()).unwrap();
        let w = m.ctrl().unwrap();
        assert_eq!((w.hp, w.hq, w.hg, w.hr), (16, 16, 12, 8));
        // Patch embedding: 6 patches × (2·4·4 → 16).
        assert_eq!(stem_flops(&c), 2 * 6 * 32 * 16);
        // QKV 7×16 → 48 (10 752), scores and values 2 × 7×7×16 (3 136), proj 7×16 → 16
        // (3 584), MLP 7×16 → 64 → 16 (28 672).
        assert_eq!(block_flops(&c), 10_752 + 3_136 + 3_584 + 28_672);
        assert_eq!(exit_flops(&c), 2 * 16 * 3);
        let costs: Vec<_> = path_costs(&c)
            .iter()
            .map(|p| (p.depth, p.backbone_flops, p.exit_flops))
            .collect();
        assert_eq!(costs, [(1, 52_384, 96), (2, 98_528, 96)]);
        // Features 6 per input value (2·8·12), 36 of them (2·16 + 4); predictor 36 → 16 → 2;
        // the level-1 policy (36 + 2 + 1) → 16 → 2, graph mode's own (36 + 2 + 1) → 12 → 2.
        let (features, pred) = (6 * 192, 2 * (36 * 16 + 16 * 2));
        assert_eq!(
            controller_up_front_flops(&c, w, false),
            features + pred + 2 * (39 * 16 + 16 * 2)
        );
        assert_eq!(
            controller_up_front_flops(&c, w, true),
            features + pred + 2 * (39 * 12 + 12 * 2)
        );
        // 4 per class for the exit statistics, then the RNN: 5 → 8, 8 → 8 and 8 → 1.
        assert_eq!(
            controller_exit_flops(&c, w),
            4 * 3 + 2 * (5 * 8 + 8 * 8 + 8)
        );
    }

    /// A configuration built by hand, far beyond what a file may hold: the counts saturate
    /// instead of panicking (debug) or wrapping (release).
    #[test]
    fn absurd_configurations_saturate() {
        let mut c = crate::synth::tiny(3, false);
        assert_eq!(exit_flops(&c), 2 * 16 * 3);
        c.dim = 1 << 40;
        c.mlp_hidden = 1 << 40;
        assert_eq!(block_flops(&c), u64::MAX);
        assert_eq!(path_costs(&c)[1].backbone_flops, u64::MAX);
        assert_eq!(exit_flops(&c), (2 * 3) << 40);
    }
}
