//! Supervised warm starts, run before PPO: of the level-2 exit RNN and of the `graph` policy.

use super::nets::{exit_input, EXIT_IN};
use super::netvars::{bce_with_logits, fit, Adam, MlpVars, RnnVars};
use super::outcomes::Outcomes;
use super::ppo::{sample_lambda, sample_lambda_exit, PpoOpts};
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

/// Warm start of the exit RNN before PPO: regresses its output on `WARM_SCALE·(τ*(λ) − p_max)`,
/// the decision of the best confidence-threshold rule for that budget ("continue while the exit's
/// top probability is below τ", τ*(λ) chosen on these outcomes for the dense reward), at every
/// exit position, for random samples and budgets. PPO then starts from the threshold baseline's
/// behaviour and has to improve on it with the other exit features (entropy, margin, position,
/// the recurrent state). Without a warm start PPO begins as a coin flip, and since escalating pays
/// only for uncertain inputs at small λ, the average advantage of continuing is negative and the
/// RNN collapses to "always stop" before it has seen enough of the states where continuing is
/// right; a warm start on the one-step advantage alone left it below the threshold rule.
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

/// Warm start of an up-front policy (the `graph` policy) before its PPO: imitates the plug-in rule "take the path
/// `j` with the largest `q_j(φ, p) − λ·cost_j`", where `q_j` is a small network's estimate of the
/// probability that path `j` classifies an input with these features right (trained with binary
/// cross-entropy on the outcome table). Imitating the realized best path instead (what the
/// predictor does) collapses to the shallowest path, which is right for most inputs; and PPO
/// from a uniform start sees accuracy differences of a fraction of a point between paths, below
/// its sampling noise, and settled on the shallowest path too. The expected-correctness estimate
/// carries the systematic part of that difference (kinds of images the deeper paths fix), which
/// is what an up-front decision can use. `inputs` are the level-1 rows without λ (`[φ̃, p]`, one
/// row of `width` floats per sample).
pub fn warm_start_level1(
    pol: &MlpVars,
    o: &Outcomes,
    inputs: &[f32],
    width: usize,
    cost: &[f32],
    opts: &PpoOpts,
    rng: &mut Rng,
) -> Result<()> {
    let (n, p) = (o.n, o.p);
    if p < 2 || opts.warm_steps == 0 || n == 0 {
        return Ok(());
    }
    let q = expected_correct(o, inputs, width, opts, rng)?;
    let mut adam = Adam::new(pol.vars(), opts.lr)?;
    let b = 1024;
    for _ in 0..opts.warm_steps {
        let (mut z, mut y) = (Vec::with_capacity(b * (width + 1)), Vec::with_capacity(b));
        for _ in 0..b {
            let i = rng.below(n);
            let lam = sample_lambda(rng);
            z.extend_from_slice(&inputs[i * width..(i + 1) * width]);
            z.push(lam);
            let best = (0..p)
                .map(|j| (j, q[i * p + j] - lam * cost[j]))
                .fold((0, f32::NEG_INFINITY), |a, c| if c.1 > a.1 { c } else { a });
            y.push(best.0 as u32);
        }
        let z = Tensor::from_vec(z, (b, width + 1), &Device::Cpu)?;
        let y = Tensor::from_vec(y, b, &Device::Cpu)?;
        let loss = candle_nn::loss::cross_entropy(&pol.forward(&z)?, &y)?;
        adam.step(&loss.backward()?, 1.0)?;
    }
    Ok(())
}

/// Hidden width of the expected-correctness network.
const Q_HIDDEN: usize = 64;

/// Samples its training sees in all (passes over the table, at most the predictor's epochs): 10
/// passes over the 55,000-image routing table, many more over a small table.
const Q_SAMPLE_PASSES: usize = 550_000;

/// `[n, p]` estimates of P(path j is right | level-1 inputs), from a small network trained
/// with binary cross-entropy on the outcome table.
fn expected_correct(
    o: &Outcomes,
    inputs: &[f32],
    width: usize,
    opts: &PpoOpts,
    rng: &mut Rng,
) -> Result<Vec<f32>> {
    let (n, p) = (o.n, o.p);
    let net = MlpVars::new(width, Q_HIDDEN, p, rng)?;
    let x = Tensor::from_slice(inputs, (n, width), &Device::Cpu)?;
    let t: Vec<f32> = (0..n * p)
        .map(|s| f32::from(u8::from(o.right(s / p, s % p))))
        .collect();
    let t = Tensor::from_vec(t, (n, p), &Device::Cpu)?;
    let epochs = (Q_SAMPLE_PASSES / n.max(1)).clamp(1, opts.pred_epochs.max(1));
    fit(&net, &x, epochs, rng, |logits, idx| {
        bce_with_logits(logits, &t.index_select(idx, 0)?)
    })?;
    let q = candle_nn::ops::sigmoid(&net.forward(&x)?)?;
    q.flatten_all()?.to_vec1::<f32>()
}
