//! PPO on synthetic outcome tables whose right answer is known: where the shallowest exit is
//! always right, the controller must stop there at any λ > 0.1; where only the deepest exit is
//! right, it must reach the deepest at λ ≤ 0.1 — in `graph` mode (level 1 alone) and in
//! `adaptive` mode (both levels). And the `graph` policy's warm start, alone, must route each
//! input to the path that is right for it when a feature decides which one that is — learning
//! it from the routing table when one is given.

use tinv_train::config::ModelConfig;
use tinv_train::control::nets::Controller;
use tinv_train::control::outcomes::Outcomes;
use tinv_train::control::ppo::{self, PpoOpts};
use tinv_train::rng::Rng;

fn cfg() -> ModelConfig {
    serde_json::from_value(serde_json::json!({
        "image_size": [8, 8], "channels": 1, "patch": 4, "dim": 16, "blocks": 4, "heads": 2,
        "mlp_hidden": 32, "classes": 5, "ln_eps": 1e-6, "gelu": "erf",
        "mean": [0.5], "std": [0.25], "depths": [1, 2, 3, 4]}))
    .unwrap()
}

/// `n` samples with uniform random features; path j predicts the label iff
/// `right(first feature, j)`, with random confidence.
fn table(n: usize, right: impl Fn(f32, usize) -> bool, seed: u64) -> Outcomes {
    let c = cfg();
    let (p, k) = (4, 5);
    let mut rng = Rng::new(seed, 0);
    let f = tinv::control::feature_len(1);
    let feats: Vec<f32> = (0..n * f).map(|_| rng.uniform() as f32).collect();
    let labels: Vec<u32> = (0..n).map(|_| rng.below(k) as u32).collect();
    let mut logits = Vec::with_capacity(n * p * k);
    for (i, &y) in labels.iter().enumerate() {
        for j in 0..p {
            let target = if right(feats[i * f], j) {
                y as usize
            } else {
                (y as usize + 1) % k
            };
            // Noise on every class, then the target class strictly on top (by 0.05 to 3.05),
            // so "right" holds by construction, with confidences from near-ties to certain.
            let row: Vec<f32> = (0..k).map(|_| rng.normal() as f32 * 0.5).collect();
            let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lift = 0.05 + 3.0 * rng.uniform() as f32;
            logits.extend(
                row.iter()
                    .enumerate()
                    .map(|(c, &v)| if c == target { top + lift } else { v }),
            );
        }
    }
    Outcomes::from_logits(&c, logits, labels, feats)
}

fn opts() -> PpoOpts {
    PpoOpts {
        pred_epochs: 5,
        iters: 40,
        episodes: 1024,
        minibatch: 512,
        lr: 3e-3,
        ..PpoOpts::default()
    }
}

/// Share of inputs whose (graph, adaptive) final path is `want` at budget `lam`.
fn share(ctrl: &Controller, o: &Outcomes, lam: f32, want: usize) -> (f64, f64) {
    let (mut g, mut a) = (0, 0);
    for i in 0..o.n {
        let phi = &o.feats[i * o.f..(i + 1) * o.f];
        g += usize::from(ctrl.decide_graph(phi, lam) == want);
        a += usize::from(ctrl.run(phi, &o.stats[i * o.p..(i + 1) * o.p], lam).0 == want);
    }
    (g as f64 / o.n as f64, a as f64 / o.n as f64)
}

#[test]
fn shallowest_always_right_stops_at_the_shallowest() {
    let o = table(400, |_, _| true, 1);
    let ctrl = ppo::train(&o, None, &opts()).unwrap();
    for lam in [0.11, 0.2, 0.5, 1.0] {
        let (g, a) = share(&ctrl, &o, lam, 0);
        assert!(
            g >= 0.95 && a >= 0.95,
            "λ {lam}: graph {g}, adaptive {a} at the shallowest path"
        );
    }
}

#[test]
fn only_deepest_right_goes_deepest() {
    let o = table(400, |_, j| j == 3, 2);
    let ctrl = ppo::train(&o, None, &opts()).unwrap();
    for lam in [0.0, 0.05, 0.1] {
        let (g, a) = share(&ctrl, &o, lam, 3);
        assert!(
            g >= 0.95 && a >= 0.95,
            "λ {lam}: graph {g}, adaptive {a} at the deepest path"
        );
    }
}

/// Share of `o`'s inputs the graph policy sends to their right path at λ = 0.05, where path 0
/// is right iff the first feature is below 0.5 and path 2 otherwise.
fn routed_right(ctrl: &Controller, o: &Outcomes) -> f64 {
    let mut hits = 0;
    for i in 0..o.n {
        let phi = &o.feats[i * o.f..(i + 1) * o.f];
        let want = if phi[0] < 0.5 { 0 } else { 2 };
        hits += usize::from(ctrl.decide_graph(phi, 0.05) == want);
    }
    hits as f64 / o.n as f64
}

fn split_by_feature(x: f32, j: usize) -> bool {
    if x < 0.5 {
        j == 0
    } else {
        j == 2
    }
}

#[test]
fn graph_warm_start_routes_by_the_feature_that_decides() {
    // The imitated plug-in rule alone (no PPO) must send each half where it is right.
    let o = table(800, split_by_feature, 3);
    let no_ppo = PpoOpts {
        iters: 0,
        pred_epochs: 60,
        ..opts()
    };
    let ctrl = ppo::train(&o, None, &no_ppo).unwrap();
    let share = routed_right(&ctrl, &o);
    assert!(
        share >= 0.9,
        "{share} of the inputs routed to their right path"
    );
    // The routing comes from `route` when given: a main table where every path is always right
    // carries no routing signal, so only the routing table can teach it.
    let flat = table(400, |_, _| true, 4);
    let ctrl = ppo::train(&flat, Some(&o), &no_ppo).unwrap();
    let share = routed_right(&ctrl, &table(800, split_by_feature, 5));
    assert!(
        share >= 0.9,
        "{share} of fresh inputs routed by the routing table's rule"
    );
    // And without it, nothing to learn from: the graph policy takes path 0, the cheapest.
    let ctrl = ppo::train(&flat, None, &no_ppo).unwrap();
    let share = routed_right(&ctrl, &table(800, split_by_feature, 5));
    assert!(
        share < 0.7,
        "{share}: routed by a rule the tables never showed"
    );
}

/// The warm start's threshold rule, on tables whose best rule is known. Only the deepest exit
/// right: continuing to it pays at every λ ≤ 1 (+1 for at most 3/4 of the full FLOPs), so τ*
/// must exceed every confidence of the first three exits. The shallowest always right: any
/// continuation only costs, so τ* = 0 (the smallest of the tied thresholds at λ = 0).
#[test]
fn best_threshold_matches_hand_worked_tables() {
    use tinv_train::control::warm::best_threshold;
    let o = table(200, |_, j| j == 3, 5);
    let full = o.full_flops() as f32;
    let step: Vec<f32> = o.step_flops.iter().map(|&c| c as f32 / full).collect();
    let top = (0..o.n)
        .flat_map(|i| (0..3).map(move |k| (i, k)))
        .map(|(i, k)| o.stats[i * o.p + k].0)
        .fold(0f32, f32::max);
    for lam in [0.0, 0.5, 1.0] {
        let tau = best_threshold(&o, &step, lam);
        assert!(
            tau > top,
            "λ {lam}: τ* {tau} ≤ the largest confidence {top}"
        );
    }
    let o = table(200, |_, _| true, 6);
    for lam in [0.0, 0.1, 1.0] {
        assert_eq!(best_threshold(&o, &step, lam), 0.0, "λ {lam}");
    }
}
