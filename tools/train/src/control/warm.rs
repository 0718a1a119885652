//! Supervised warm start of the level-2 exit RNN, run before its PPO.

use super::nets::{exit_input, EXIT_IN};
use super::netvars::{Adam, RnnVars};
use super::outcomes::Outcomes;
use super::ppo::{sample_lambda_exit, PpoOpts};
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor};

/// Warm start of the exit RNN before PPO: regresses its output on the one-step advantage of
/// continuing, `right(k+1) − λ·ΔFLOPs/FLOPs(full) − right(k)`, at the first exit visited (state
/// zero), for random samples, start paths and budgets. Its sign is then the greedy decision.
/// Without it PPO starts from a coin flip, and since escalating pays only for uncertain inputs at
/// small λ, the average advantage of continuing is negative and the RNN collapses to "always
/// stop" before it has seen enough of the states where continuing is right.
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
    let mut adam = Adam::new(rnn.vars(), opts.lr)?;
    let b = 1024;
    for _ in 0..opts.warm_steps {
        let (mut e, mut y) = (Vec::with_capacity(b * EXIT_IN), Vec::with_capacity(b));
        for _ in 0..b {
            let i = rng.below(o.n);
            let k = rng.below(p - 1);
            let lam = sample_lambda_exit(rng);
            e.extend_from_slice(&exit_input(o.stats[i * p + k], lam, k, p));
            let gain = f32::from(u8::from(o.right(i, k + 1))) - f32::from(u8::from(o.right(i, k)));
            // Scaled so that the logit is decisive where the expected gain is: a policy that starts
            // as a coin flip everywhere is what PPO could not recover from.
            y.push(WARM_SCALE * (gain - lam * step_cost[k]));
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

/// Logit units per unit of one-step advantage in the warm start.
const WARM_SCALE: f32 = 10.0;
