//! Supervised warm start of the level-2 exit RNN, run before its PPO.

use super::nets::{exit_input, EXIT_IN};
use super::netvars::{Adam, RnnVars};
use super::outcomes::Outcomes;
use super::ppo::{sample_lambda_exit, PpoOpts};
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

/// Warm start of the exit RNN before PPO: regresses its output on `WARM_SCALE·(τ*(λ) − p_max)`,
/// the decision of the best confidence-threshold rule for that budget ("continue while the exit's
/// top probability is below τ", τ*(λ) chosen on these outcomes for the dense reward), at every
/// exit position, for random samples and budgets. PPO then starts near the threshold baseline's
/// behaviour and has to improve on it with the other exit features (entropy, margin, position,
/// the recurrent state). Near, not at: λ is a raw input on [0, 1] and τ*(λ) steps at small λ
/// (0.78, 0.73, 0.61 between λ = 0 and 0.02 on the default model's validation split), which the
/// RNN blurs; at λ = 0.03 it continued about 150 more of 5,000 inputs per exit than the rule
/// (measured by a review, docs/notes/fmnist-controller-analysis.md). Without a warm start PPO begins as a coin
/// flip, and since escalating pays only for uncertain inputs at small λ, the average advantage of
/// continuing is negative and the RNN collapses to "always stop" before it has seen enough of the
/// states where continuing is right; a warm start on the one-step advantage alone left it below
/// the threshold rule.
pub fn warm_start_exit(
    rnn: &RnnVars,
    o: &Outcomes,
    step_cost: &[f32],
    opts: &PpoOpts,
    rng: &mut Rng,
) -> Result<()> {
    let p = o.p;
    if p < 2 || opts.warm_steps == 0 {
        return Ok(());
    }
    let grid: Vec<f32> = (0..=LAMBDA_GRID)
        .map(|j| (j as f32 / LAMBDA_GRID as f32).powi(3))
        .collect();
    let taus: Vec<f32> = grid
        .iter()
        .map(|&l| best_threshold(o, step_cost, l))
        .collect();
    // A regression with a large constant part (most exits are confident): it needs a larger step
    // than PPO's to reach the discriminating part within the budget of steps.
    let mut adam = Adam::new(rnn.vars(), WARM_LR_FACTOR * opts.lr)?;
    let b = 1024;
    for _ in 0..opts.warm_steps {
        let (mut e, mut y) = (Vec::with_capacity(b * EXIT_IN), Vec::with_capacity(b));
        for _ in 0..b {
            let i = rng.below(o.n);
            let k = rng.below(p - 1);
            let lam = sample_lambda_exit(rng);
            // Nearest grid point of λ = (j/G)³.
            let j = (f64::from(lam).cbrt() * LAMBDA_GRID as f64).round() as usize;
            let tau = taus[j.min(LAMBDA_GRID)];
            let stats = o.stats[i * p + k];
            e.extend_from_slice(&exit_input(stats, lam, k, p));
            y.push(WARM_SCALE * (tau - stats.0));
        }
        let et = Tensor::from_vec(e, (1, b, EXIT_IN), &Device::Cpu)?;
        let c = rnn.forward(&et)?.squeeze(0)?;
        let loss = (c - Tensor::from_vec(y, b, &Device::Cpu)?)?
            .sqr()?
            .mean_all()?;
        adam.step(&loss.backward()?, 1.0)?;
    }
    Ok(())
}

/// Warm-start learning rate relative to PPO's.
const WARM_LR_FACTOR: f64 = 5.0;

/// λ grid points (cubic spacing, dense near 0) at which τ*(λ) is computed.
const LAMBDA_GRID: usize = 40;

/// The threshold τ that maximizes the mean dense reward `right − λ·(escalation FLOPs)/FLOPs(full)`
/// of "start at the first path, continue while p_max < τ" on the outcomes `o`.
pub fn best_threshold(o: &Outcomes, step_cost: &[f32], lambda: f32) -> f32 {
    let p = o.p;
    let mut best = (f64::NEG_INFINITY, 0.0f32);
    for t in 0..=THRESHOLDS {
        let tau = t as f32 / THRESHOLDS as f32;
        let mut total = 0f64;
        for i in 0..o.n {
            let (mut k, mut cost) = (0, 0f32);
            while k + 1 < p && o.stats[i * p + k].0 < tau {
                cost += step_cost[k];
                k += 1;
            }
            total += f64::from(u8::from(o.right(i, k))) - f64::from(lambda * cost);
        }
        if total > best.0 + 1e-9 {
            best = (total, tau);
        }
    }
    best.1
}

/// Thresholds tried: 0, 1/T, …, 1.
const THRESHOLDS: usize = 200;

/// Logit units per unit of distance between p_max and τ*(λ) in the warm start.
const WARM_SCALE: f32 = 20.0;
