//! The up-front policy of `graph` mode. It starts as the plug-in rule "run the path `j` with the
//! largest `q_j(z) − λ·cost_j`", where `q_j` is a small network's estimate of the probability that
//! path `j` classifies an input with level-1 inputs `z = [φ̃, p]` right — written *exactly* as a
//! policy network of the file format, so PPO fine-tunes the rule itself rather than an imitation
//! — and PPO's result replaces it only if it earns more on the validation split.
//!
//! Why not PPO from scratch: the paths' accuracies differ by a fraction of a point, below PPO's
//! sampling noise, and from a uniform start it settled on the shallowest path for every input.
//! Why not imitating the realized best path (what the predictor does): that is the shallowest
//! path for most inputs too. The expected-correctness estimate carries the systematic part of the
//! difference — kinds of images the deeper paths fix — which is what an up-front decision can use.

use super::budget::GRID;
use super::nets::Mlp;
use super::netvars::{fit, MlpVars};
use super::outcomes::Outcomes;
use super::ppo::{level1_ppo, PpoOpts};
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

/// Hidden width of the expected-correctness network (the policy gets one unit more, for λ).
pub const Q_HIDDEN: usize = 64;

/// Samples its training sees in all: 10 passes over the 55,000-image routing table, more
/// passes (at most `MAX_EPOCHS`) over a small table.
const Q_SAMPLES: usize = 550_000;
const MAX_EPOCHS: usize = 60;

/// Passes of the expected-correctness fit over a table of `n` inputs.
fn fit_epochs(n: usize) -> usize {
    (Q_SAMPLES / n.max(1)).clamp(1, MAX_EPOCHS)
}

/// The graph policy (on standardized inputs): the plug-in rule learned on the routing table `r`
/// (level-1 rows `r_rows`), PPO-fine-tuned on `r`, whichever of the two earns more on `o`
/// (validation, level-1 rows `rows`). `cost[j]` is path j's share of the full FLOPs.
pub fn train(
    o: &Outcomes,
    rows: &[f32],
    r: &Outcomes,
    r_rows: &[f32],
    cost: &[f32],
    opts: &PpoOpts,
    rng: &mut Rng,
) -> Result<Mlp> {
    let width = r_rows.len() / r.n.max(1);
    let rule = plug_in_policy(r, r_rows, width, cost, rng)?;
    let net = MlpVars::from_host(&rule)?;
    level1_ppo(
        &net,
        r_rows,
        r.n,
        opts.graph_lr,
        opts,
        rng,
        "graph",
        |i, lam, k| f32::from(u8::from(r.right(i, k))) - lam * cost[k],
    )?;
    let tuned = net.to_host()?;
    let (g_rule, g_tuned) = (reward(&rule, o, rows, cost), reward(&tuned, o, rows, cost));
    let better = g_tuned > g_rule;
    if opts.verbose {
        crate::errln!(
            "graph policy: mean validation reward over the λ grid {g_rule:.5} (plug-in rule), \
             {g_tuned:.5} (after PPO); keeping the {}",
            if better { "PPO result" } else { "plug-in rule" }
        );
    }
    Ok(if better { tuned } else { rule })
}

/// Mean one-decision reward `right − λ·cost` of the up-front policy `net` on `o` (level-1 rows
/// `rows`), averaged over the budgets of [`GRID`].
fn reward(net: &Mlp, o: &Outcomes, rows: &[f32], cost: &[f32]) -> f64 {
    let w = rows.len() / o.n.max(1);
    let mut total = 0f64;
    for &lam in &GRID {
        for i in 0..o.n {
            let mut z = rows[i * w..(i + 1) * w].to_vec();
            z.push(lam);
            let k = tinv::control::argmax(&net.forward(&z));
            total += f64::from(u8::from(o.right(i, k))) - f64::from(lam * cost[k]);
        }
    }
    total / (o.n.max(1) * GRID.len()) as f64
}

/// The plug-in policy over `[z, λ]` for the outcome table `o`, whose level-1 inputs `z` are the
/// rows of `inputs` (`width` floats each); `cost[j]` is path j's share of the full FLOPs.
///
/// `q = relu(z·W₁ᵀ + b₁)·W₂ᵀ + b₂` is fitted to the 0/1 correctness of every path by least
/// squares (so `q_j` estimates P(path j right | z), no link function to undo). The policy has
/// the same hidden units plus one that carries λ (`relu(λ) = λ` for λ ∈ [0, 1]), whose output
/// weights are `−cost_j`: its scores are exactly `q_j(z) − λ·cost_j`.
pub fn plug_in_policy(
    o: &Outcomes,
    inputs: &[f32],
    width: usize,
    cost: &[f32],
    rng: &mut Rng,
) -> Result<Mlp> {
    let (n, p, h) = (o.n, o.p, Q_HIDDEN);
    let net = MlpVars::new(width, h, p, rng)?;
    let x = Tensor::from_slice(inputs, (n, width), &Device::Cpu)?;
    let t: Vec<f32> = (0..n * p)
        .map(|s| f32::from(u8::from(o.right(s / p, s % p))))
        .collect();
    let t = Tensor::from_vec(t, (n, p), &Device::Cpu)?;
    let epochs = fit_epochs(n);
    fit(&net, &x, epochs, rng, |q, idx| {
        (q - t.index_select(idx, 0)?)?.sqr()?.mean_all()
    })?;
    let q = net.to_host()?;
    let zin = width + 1;
    let mut w1 = vec![0f32; (h + 1) * zin];
    for u in 0..h {
        w1[u * zin..u * zin + width].copy_from_slice(&q.w1[u * width..(u + 1) * width]);
    }
    w1[h * zin + width] = 1.0;
    let mut b1 = q.b1.clone();
    b1.push(0.0);
    let mut w2 = Vec::with_capacity(p * (h + 1));
    for (row, c) in q.w2.chunks_exact(h).zip(cost) {
        w2.extend_from_slice(row);
        w2.push(-c);
    }
    Ok(Mlp {
        w1,
        b1,
        w2,
        b2: q.b2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_scores_are_q_minus_lambda_cost() {
        // Any table will do: the identity between the two networks does not depend on the fit.
        let c: crate::config::ModelConfig = serde_json::from_value(serde_json::json!({
            "image_size": [8, 8], "channels": 1, "patch": 4, "dim": 16, "blocks": 2, "heads": 2,
            "mlp_hidden": 32, "classes": 3, "ln_eps": 1e-6, "gelu": "erf",
            "mean": [0.5], "std": [0.25], "depths": [1, 2]}))
        .unwrap();
        let mut rng = Rng::new(3, 0);
        let (n, f) = (64, tinv::control::feature_len(1));
        let feats: Vec<f32> = (0..n * f).map(|_| rng.uniform() as f32).collect();
        let labels: Vec<u32> = (0..n).map(|_| rng.below(3) as u32).collect();
        let logits: Vec<f32> = (0..n * 2 * 3).map(|_| rng.normal() as f32).collect();
        let o = Outcomes::from_logits(&c, logits, labels, feats.clone());
        let cost = [0.5f32, 1.0];
        let pol = plug_in_policy(&o, &feats, f, &cost, &mut rng).unwrap();
        // Rebuild q from the policy's first H units and compare on fresh inputs and budgets.
        let h = Q_HIDDEN;
        let q = Mlp {
            w1: (0..h)
                .flat_map(|u| pol.w1[u * (f + 1)..u * (f + 1) + f].to_vec())
                .collect(),
            b1: pol.b1[..h].to_vec(),
            w2: (0..2)
                .flat_map(|j| pol.w2[j * (h + 1)..j * (h + 1) + h].to_vec())
                .collect(),
            b2: pol.b2.clone(),
        };
        for lam in [0.0f32, 0.3, 1.0] {
            let z: Vec<f32> = (0..f).map(|_| rng.uniform() as f32).collect();
            let mut zl = z.clone();
            zl.push(lam);
            let (s, qv) = (pol.forward(&zl), q.forward(&z));
            for j in 0..2 {
                let want = qv[j] - lam * cost[j];
                assert!(
                    (s[j] - want).abs() < 1e-5,
                    "λ {lam} path {j}: {} vs {want}",
                    s[j]
                );
            }
        }
    }

    #[test]
    fn policy_is_the_least_squares_fit_of_each_paths_correctness() {
        // The same fit, run again from the same seed with the targets read straight from the
        // table ([n, p] row-major, 1 where the path is right), 550 000 / 64 → 60 epochs: the
        // policy's scores at every λ are its outputs less λ·cost.
        let c: crate::config::ModelConfig = serde_json::from_value(serde_json::json!({
            "image_size": [8, 8], "channels": 1, "patch": 4, "dim": 16, "blocks": 3, "heads": 2,
            "mlp_hidden": 32, "classes": 3, "ln_eps": 1e-6, "gelu": "erf",
            "mean": [0.5], "std": [0.25], "depths": [1, 2, 3]}))
        .unwrap();
        let mut rng = Rng::new(4, 0);
        let (n, f, p) = (64, tinv::control::feature_len(1), 3);
        let feats: Vec<f32> = (0..n * f).map(|_| rng.uniform() as f32).collect();
        let labels: Vec<u32> = (0..n).map(|_| rng.below(3) as u32).collect();
        let logits: Vec<f32> = (0..n * p * 3).map(|_| rng.normal() as f32).collect();
        let o = Outcomes::from_logits(&c, logits, labels, feats.clone());
        let cost = [0.25f32, 0.5, 1.0];
        let pol = plug_in_policy(&o, &feats, f, &cost, &mut Rng::new(9, 0)).unwrap();
        let mut r2 = Rng::new(9, 0);
        let net = MlpVars::new(f, Q_HIDDEN, p, &mut r2).unwrap();
        let x = Tensor::from_slice(&feats, (n, f), &Device::Cpu).unwrap();
        let t: Vec<f32> = o.correct.iter().map(|&r| f32::from(u8::from(r))).collect();
        let t = Tensor::from_vec(t, (n, p), &Device::Cpu).unwrap();
        fit(&net, &x, 60, &mut r2, |q, idx| {
            (q - t.index_select(idx, 0)?)?.sqr()?.mean_all()
        })
        .unwrap();
        let q = net.to_host().unwrap();
        for (i, lam) in [(0, 0.0f32), (5, 0.4), (63, 1.0)] {
            let z = &feats[i * f..(i + 1) * f];
            let mut zl = z.to_vec();
            zl.push(lam);
            let (s, qv) = (pol.forward(&zl), q.forward(z));
            for j in 0..p {
                let want = qv[j] - lam * cost[j];
                assert!(
                    (s[j] - want).abs() < 1e-5,
                    "input {i} λ {lam} path {j}: {} vs {want}",
                    s[j]
                );
            }
        }
    }

    #[test]
    fn the_fit_sees_about_550_000_samples_in_at_most_60_passes() {
        // 550 000 / 55 000 = 10 passes over a routing table of the training split; a small
        // table gets 60, a huge one at least 1.
        assert_eq!(fit_epochs(55_000), 10);
        assert_eq!(fit_epochs(50_000), 11);
        assert_eq!(fit_epochs(9_166), 60);
        assert_eq!(fit_epochs(9_167), 59);
        assert_eq!(fit_epochs(64), 60);
        assert_eq!(fit_epochs(0), 60);
        assert_eq!(fit_epochs(2_000_000), 1);
    }

    #[test]
    fn reward_is_the_mean_over_the_grid_and_the_inputs() {
        // On the outcome tests' table (path accuracies 1/4, 1/2, 1/2), a policy over [20
        // features, λ] that runs path 1 while λ < 0.25 (scores 0, 0.25 − λ, −1 through a hidden
        // unit relu(λ)) and path 0 above. Costs 0.2, 0.5, 1. The 13 budgets of the grid up to
        // 0.2 sum to 0.658, the 5 above to 2.95:
        // (13·0.5 − 0.5·0.658 + 5·0.25 − 0.2·2.95) / 18 = 6.831 / 18.
        let o = crate::control::outcomes::tests::table();
        let mut w1 = vec![0.0; 21];
        w1[20] = 1.0;
        let net = Mlp {
            w1,
            b1: vec![0.0],
            w2: vec![0.0, -1.0, 0.0],
            b2: vec![0.0, 0.25, -1.0],
        };
        let got = reward(&net, &o, &o.feats, &[0.2, 0.5, 1.0]);
        assert!((got - 6.831 / 18.0).abs() < 1e-6, "{got}");
    }

    #[test]
    fn without_ppo_steps_train_keeps_the_plug_in_rule() {
        // No PPO iteration: the tuned policy is the rule itself, and the rule is what the
        // plug-in fit gives from the same generator. Routing table: the outcome tests' table
        // (width 20 rows), validation: the same.
        let o = crate::control::outcomes::tests::table();
        let cost = [0.2f32, 0.5, 1.0];
        let opts = PpoOpts {
            iters: 0,
            ..PpoOpts::default()
        };
        let got = train(
            &o,
            &o.feats,
            &o,
            &o.feats,
            &cost,
            &opts,
            &mut Rng::new(6, 0),
        )
        .unwrap();
        let want = plug_in_policy(&o, &o.feats, 20, &cost, &mut Rng::new(6, 0)).unwrap();
        assert_eq!(got, want);
        assert_eq!(got.inputs(), 21);
    }

    /// A random outcome table of `n` inputs over 2 paths (3 classes, 20 features).
    fn random_table(seed: u64, n: usize) -> Outcomes {
        let c: crate::config::ModelConfig = serde_json::from_value(serde_json::json!({
            "image_size": [8, 8], "channels": 1, "patch": 4, "dim": 16, "blocks": 2, "heads": 2,
            "mlp_hidden": 32, "classes": 3, "ln_eps": 1e-6, "gelu": "erf",
            "mean": [0.5], "std": [0.25], "depths": [1, 2]}))
        .unwrap();
        let mut rng = Rng::new(seed, 0);
        let f = tinv::control::feature_len(1);
        let feats: Vec<f32> = (0..n * f).map(|_| rng.uniform() as f32).collect();
        let labels: Vec<u32> = (0..n).map(|_| rng.below(3) as u32).collect();
        let logits: Vec<f32> = (0..n * 2 * 3).map(|_| rng.normal() as f32).collect();
        Outcomes::from_logits(&c, logits, labels, feats)
    }

    /// The mean of `right − λ·cost` over the grid's budgets and `o`'s inputs for the path
    /// `net` picks, written again here.
    fn grid_reward(net: &Mlp, o: &Outcomes, cost: &[f32]) -> f64 {
        let f = o.feats.len() / o.n;
        let (mut sum, mut count) = (0f64, 0usize);
        for &lam in &GRID {
            for i in 0..o.n {
                let mut z = o.feats[i * f..(i + 1) * f].to_vec();
                z.push(lam);
                let s = net.forward(&z);
                let k = if s[1] > s[0] { 1 } else { 0 };
                let right = if o.right(i, k) { 1.0 } else { 0.0 };
                sum += right - f64::from(lam) * f64::from(cost[k]);
                count += 1;
            }
        }
        sum / count as f64
    }

    #[test]
    fn train_keeps_whichever_of_rule_and_ppo_result_earns_more_on_validation() {
        // `train` composed by hand from the same generator: the plug-in rule fitted on the
        // routing table, PPO from it on one-decision episodes of the routing table rewarded
        // right − λ·cost, then whichever of the two earns more on the validation table (a
        // tie keeps the rule), validation being the routing table itself or another. Over
        // these learning rates and seeds both choices occur, and a tie (a learning rate too
        // small to move any decision).
        let (r, other) = (random_table(11, 64), random_table(12, 48));
        let cost = [0.4f32, 1.0];
        let mut seen = [false; 3]; // PPO kept, rule kept over a lower PPO reward, a tie
        let cases = [
            (1e-9, 1, false),
            (1e-4, 1, true),
            (1e-4, 1, false),
            (1e-4, 2, true),
            (1e-3, 1, true),
        ];
        for (lr, seed, same) in cases {
            let o = if same { &r } else { &other };
            let opts = PpoOpts {
                iters: 3,
                episodes: 64,
                ppo_epochs: 2,
                minibatch: 32,
                graph_lr: lr,
                ..PpoOpts::default()
            };
            let got = train(
                o,
                &o.feats,
                &r,
                &r.feats,
                &cost,
                &opts,
                &mut Rng::new(seed, 0),
            )
            .unwrap();
            let mut rng = Rng::new(seed, 0);
            let rule = plug_in_policy(&r, &r.feats, 20, &cost, &mut rng).unwrap();
            let net = MlpVars::from_host(&rule).unwrap();
            let reward = |i: usize, lam: f32, k: usize| {
                (if r.right(i, k) { 1.0 } else { 0.0 }) - lam * cost[k]
            };
            level1_ppo(&net, &r.feats, r.n, lr, &opts, &mut rng, "", reward).unwrap();
            let tuned = net.to_host().unwrap();
            assert_ne!(tuned, rule, "lr {lr}: PPO moved no weight");
            let (gr, gt) = (grid_reward(&rule, o, &cost), grid_reward(&tuned, o, &cost));
            let want = if gt > gr { &tuned } else { &rule };
            assert_eq!(&got, want, "lr {lr} seed {seed}: rule {gr}, PPO {gt}");
            seen[if gt > gr {
                0
            } else if gt < gr {
                1
            } else {
                2
            }] = true;
        }
        assert_eq!(seen, [true; 3], "PPO kept, rule kept, tie");
    }
}
