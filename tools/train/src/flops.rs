//! FLOPs per path and per controller decision, counted as the runtime counts them
//! (`src/model/flops.rs`: 2 per multiply-add of every matrix product; elementwise work free).
//! The runtime keeps those functions private, so they are restated here; the reward of the PPO
//! policies and the trainer's reports both use them.

use crate::config::ModelConfig;

/// FLOPs of the stem (patch embedding).
pub fn stem(c: &ModelConfig) -> u64 {
    2 * (c.patches() * c.channels * c.patch * c.patch * c.dim) as u64
}

/// FLOPs of one encoder block.
pub fn block(c: &ModelConfig) -> u64 {
    let (n, d, h) = (c.tokens() as u64, c.dim as u64, c.mlp_hidden as u64);
    2 * n * d * 3 * d + 2 * 2 * n * n * d + 2 * n * d * d + 2 * 2 * n * d * h
}

/// FLOPs of one exit head.
pub fn exit(c: &ModelConfig) -> u64 {
    2 * (c.dim * c.classes) as u64
}

/// Backbone FLOPs of path `k` run from scratch: stem, its blocks, its exit head.
pub fn path(c: &ModelConfig, k: usize) -> u64 {
    stem(c) + c.depths[k] as u64 * block(c) + exit(c)
}

/// FLOPs of continuing from path `k` to path `k + 1`: the blocks in between and the new exit.
pub fn step(c: &ModelConfig, k: usize) -> u64 {
    (c.depths[k + 1] - c.depths[k]) as u64 * block(c) + exit(c)
}

/// Level-1 controller FLOPs (features, predictor, policy) with hidden widths `hp`, `hq`.
pub fn ctrl_up_front(c: &ModelConfig, hp: usize, hq: usize) -> u64 {
    let f = tinv::control::feature_len(c.channels) as u64;
    let p = c.paths() as u64;
    let (hp, hq) = (hp as u64, hq as u64);
    tinv::control::feature_flops(c.channels, c.image_size[0], c.image_size[1])
        + 2 * (f * hp + hp * p)
        + 2 * ((f + p + 1) * hq + hq * p)
}

/// FLOPs of one level-2 decision (exit statistics + one RNN step) with hidden width `hr`.
pub fn ctrl_exit(c: &ModelConfig, hr: usize) -> u64 {
    let hr = hr as u64;
    4 * c.classes as u64 + 2 * (tinv::control::EXIT_FEATURES as u64 * hr + hr * hr + hr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_counted_block() {
        // 28x28, patch 7: 16 patches, 17 tokens; D 8, H 16, 2 classes.
        let c: ModelConfig = serde_json::from_value(serde_json::json!({
            "image_size": [28, 28], "channels": 1, "patch": 7, "dim": 8, "blocks": 2, "heads": 2,
            "mlp_hidden": 16, "classes": 2, "ln_eps": 1e-6, "gelu": "erf",
            "mean": [0.0], "std": [1.0], "depths": [1, 2]}))
        .unwrap();
        assert_eq!(stem(&c), 2 * 16 * 49 * 8);
        let qkv = 2 * 17 * 8 * 24;
        let attn = 2 * 2 * 17 * 17 * 8;
        let proj = 2 * 17 * 8 * 8;
        let mlp = 2 * 2 * 17 * 8 * 16;
        assert_eq!(block(&c), qkv + attn + proj + mlp);
        assert_eq!(path(&c, 1), stem(&c) + 2 * block(&c) + 32);
        assert_eq!(path(&c, 0) + step(&c, 0), path(&c, 1) + exit(&c));
    }

    #[test]
    fn hand_counted_two_channel_model_and_controller() {
        // two-channel 8×12 images, patch 4: 2 × 3 = 6 patches, 7 tokens; D 8, H 16,
        // 4 classes, paths at depths 1, 2, 3.
        let c: ModelConfig = serde_json::from_value(serde_json::json!({
            "image_size": [8, 12], "channels": 2, "patch": 4, "dim": 8, "blocks": 3, "heads": 2,
            "mlp_hidden": 16, "classes": 4, "ln_eps": 1e-6, "gelu": "erf",
            "mean": [0.0, 0.0], "std": [1.0, 1.0], "depths": [1, 2, 3]}))
        .unwrap();
        // Stem: 2 · 6 patches · 2 channels · 16 pixels · 8 = 3072.
        assert_eq!(stem(&c), 3072);
        // Block: qkv 2·7·8·24 = 2688, attention 2·2·7·7·8 = 1568, projection 2·7·8·8 = 896,
        // MLP 2·2·7·8·16 = 3584: 8736. Exit head 2·8·4 = 64.
        assert_eq!(block(&c), 8736);
        assert_eq!(exit(&c), 64);
        assert_eq!(path(&c, 0), 3072 + 8736 + 64);
        assert_eq!(path(&c, 2), 3072 + 3 * 8736 + 64);
        assert_eq!(step(&c, 1), 8736 + 64);
        // Controller, hidden widths 5 (predictor), 7 (policy), 3 (RNN). Features: 2·16 + 4 = 36
        // of them, 6 FLOPs per input value: 6·2·8·12 = 1152. Predictor 36 → 5 → 3:
        // 2·(180 + 15) = 390; policy [φ, p, λ] = 40 → 7 → 3: 2·(280 + 21) = 602.
        assert_eq!(ctrl_up_front(&c, 5, 7), 1152 + 390 + 602);
        // Exit: statistics 4·K = 16; RNN 5 → 3 with a 3 × 3 recurrence and the output
        // 2·(15 + 9 + 3) = 54.
        assert_eq!(ctrl_exit(&c, 3), 16 + 54);
    }
}
