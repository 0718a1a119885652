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

#[cfg(test)]
mod tests {
    use super::best_threshold;
    use crate::control::outcomes::tests::table;

    #[test]
    fn best_threshold_of_a_hand_made_table() {
        // The outcome tests' table: p_max per input 0.9 0.95 0.99 | 0.6 0.8 0.9 | 0.5 0.7 0.6
        // | 0.7 0.7 0.2; right: every path | path 1 | path 2 | none. Steps cost 0.3 (0 → 1)
        // and 0.5 (1 → 2) of the full FLOPs. "Continue while p_max < τ", summed over inputs:
        //   τ ≤ 0.5:         all stop at path 0; input 0 right:           1
        //   0.5 < τ ≤ 0.6:   input 2 to path 1 (wrong):                   1 − 0.3λ
        //   0.6 < τ ≤ 0.7:   input 1 to path 1 (right) too:               2 − 0.6λ
        //   0.7 < τ ≤ 0.8:   inputs 2 and 3 to path 2 (2 right, 3 not):   3 − 1.9λ
        //   0.8 < τ ≤ 0.9:   input 1 to path 2 (wrong):                   2 − 2.4λ
        //   beyond:          input 0 deeper too (right):                  2 − 2.7λ, 2 − 3.2λ
        // The first grid value (t/200) of the best stretch wins: λ = 0 and 0.5: 0.705; λ = 1:
        // 0.605 (1.4 against 1.1); λ = 2: 0 (1 against 0.8).
        let o = table();
        let step = [0.3f32, 0.5];
        assert_eq!(best_threshold(&o, &step, 0.0), 141.0 / 200.0);
        assert_eq!(best_threshold(&o, &step, 0.5), 141.0 / 200.0);
        assert_eq!(best_threshold(&o, &step, 1.0), 121.0 / 200.0);
        assert_eq!(best_threshold(&o, &step, 2.0), 0.0);
    }

    #[test]
    fn the_warm_start_runs_only_with_an_exit_to_decide_and_steps_to_take() {
        use super::warm_start_exit;
        use crate::control::netvars::RnnVars;
        use crate::control::outcomes::tests::cfg;
        use crate::control::outcomes::Outcomes;
        use crate::control::ppo::PpoOpts;
        use crate::rng::Rng;
        // Whether `warm_start_exit` changed a fresh RNN, on `o` with `steps` steps.
        let changes = |o: &Outcomes, steps: usize| {
            let mut rng = Rng::new(3, 0);
            let rnn = RnnVars::new(2, &mut rng).unwrap();
            let before = rnn.to_host().unwrap();
            let opts = PpoOpts {
                warm_steps: steps,
                ..PpoOpts::default()
            };
            let cost = vec![0.25; o.p.saturating_sub(1)];
            warm_start_exit(&rnn, o, &cost, &opts, &mut rng).unwrap();
            rnn.to_host().unwrap() != before
        };
        // Two paths (one exit decision) and three: one step moves the weights.
        let two = Outcomes::from_logits(
            &cfg(&[1, 3]),
            (0..24).map(|v| (v % 5) as f32).collect(),
            vec![0, 1, 2, 0],
            vec![0.5; 80],
        );
        assert!(changes(&two, 1));
        assert!(changes(&table(), 1));
        // No steps, or a single path (nothing to decide): untouched.
        assert!(!changes(&table(), 0));
        let one = Outcomes::from_logits(&cfg(&[2]), vec![0.0; 12], vec![0; 4], vec![0.5; 80]);
        assert!(!changes(&one, 1));
    }

    /// Runs the warm start on `o` and checks the RNN against the regression written again in
    /// f64 from a twin of the generator: each step draws 1,024 (input, exit, λ) samples, an
    /// input uniformly, an exit before the last path, λ as level-2 episodes draw it; the
    /// target is 20·(τ − p_max) with τ the best threshold at the grid budget (j/40)³ whose
    /// j/40 is nearest to λ's cube root; the loss is the mean squared error of the RNN's
    /// first step (zero state) on `[p_max, entropy, margin, λ, k/(P−1)]`; Adam with the
    /// gradient clipped to norm 1 at five times PPO's learning rate.
    fn warm_start_against_f64(o: &crate::control::outcomes::Outcomes, step: &[f32], seed: u64) {
        use super::warm_start_exit;
        use crate::control::netvars::RnnVars;
        use crate::control::ppo::{sample_lambda_exit, PpoOpts};
        use crate::control::reference64::{flat_rnn, gradient, max_diff, rnn64, Adam64};
        use crate::rng::Rng;
        let (hr, steps, lr) = (2, 3, 0.004);
        let opts = PpoOpts {
            warm_steps: steps,
            lr,
            ..PpoOpts::default()
        };
        let mut rng = Rng::new(seed, 0);
        let rnn = RnnVars::new(hr, &mut rng).unwrap();
        let mut th = flat_rnn(&rnn.to_host().unwrap());
        let mut twin = rng.clone();
        warm_start_exit(&rnn, o, step, &opts, &mut rng).unwrap();
        let got = flat_rnn(&rnn.to_host().unwrap());

        let p = o.p;
        let tau_at = |lam: f32| {
            let root = f64::from(lam).cbrt();
            let j = (0..=40)
                .min_by(|&a, &b| {
                    let da = (f64::from(a) / 40.0 - root).abs();
                    let db = (f64::from(b) / 40.0 - root).abs();
                    da.total_cmp(&db)
                })
                .unwrap();
            best_threshold(o, step, (f64::from(j) / 40.0).powi(3) as f32)
        };
        let mut adam = Adam64::new(th.len(), 5.0 * lr);
        for _ in 0..steps {
            let mut xs = vec![];
            for _ in 0..1024 {
                let i = twin.below(o.n);
                let k = twin.below(p - 1);
                let lam = sample_lambda_exit(&mut twin);
                let (pmax, ent, margin) = o.stats[i * p + k];
                let pos = k as f32 / (p - 1) as f32;
                let x = [pmax, ent, margin, lam, pos].map(f64::from);
                xs.push((x, 20.0 * f64::from(tau_at(lam) - pmax)));
            }
            let loss = |t: &[f64]| {
                let sq = xs.iter().map(|(x, y)| {
                    let c = rnn64(t, hr, x, &mut vec![0.0; hr]);
                    (c - y).powi(2)
                });
                sq.sum::<f64>() / xs.len() as f64
            };
            let g = gradient(&th, loss);
            adam.step(&mut th, &g);
        }
        let d = max_diff(&got, &th);
        assert!(d < 1e-5, "largest difference {d}: {got:?} vs {th:?}");
        // The steps moved the weights well beyond that.
        let start = flat_rnn(
            &RnnVars::new(hr, &mut Rng::new(seed, 0))
                .unwrap()
                .to_host()
                .unwrap(),
        );
        assert!(max_diff(&got, &start) > 1e-3);
    }

    #[test]
    fn the_warm_start_regresses_on_the_best_thresholds_decisions_as_in_f64() {
        // The outcome tests' table (3 paths: τ* is 0.705 at small λ, 0.605 at λ = 1), steps
        // 0.3 and 0.5 of the full FLOPs; and its four-path variant, steps 0.1, 0.2, 0.3.
        warm_start_against_f64(&table(), &[0.3, 0.5], 1);
        let four = crate::control::outcomes::tests::four_path_table();
        for seed in 0..3 {
            warm_start_against_f64(&four, &[0.1, 0.2, 0.3], seed);
        }
    }
}
