//! Controller training on cached outcomes of the frozen backbone:
//! 1. the complexity predictor (cross-entropy to the oracle path);
//! 2. the level-1 policy over `[φ, p, λ]` (where an `adaptive` run starts), trained with PPO on
//!    one-decision episodes (reward = correct − λ·FLOPs(path)/FLOPs(full));
//! 3. the level-2 exit RNN: a supervised warm start (its output regressed on the decision of the
//!    best confidence-threshold rule for the budget, see `warm_start_exit`), then PPO on
//!    hierarchical episodes that start where level 1 sends them or anywhere (exploration): a
//!    dense reward −λ·ΔFLOPs/FLOPs(full) for every segment run and +1 at the end for a correct
//!    final prediction;
//! 4. the up-front policy of `graph` mode (the one path that runs), same inputs: the plug-in rule
//!    `argmax_j q_j − λ·cost_j` written as a policy network, learned from a larger routing table
//!    when one is given, then PPO fine-tuning, kept only if it earns more on the validation
//!    split (`graph_policy`).
//!
//! PPO: clipped surrogate, a value network as baseline (advantage = return − value, normalized),
//! entropy bonus. λ is drawn per episode from [0, 1]: for level 1 half uniform, half u³, so that
//! the small budgets where accuracy is decided get as much practice as the large ones; for the
//! exit RNN a quarter uniform, three quarters u³ (`sample_lambda_exit`).

use super::nets::{exit_input, level1_input, Controller, Mlp, EXIT_IN};
use super::netvars::{fit, Adam, MlpVars, RnnVars};
use super::outcomes::Outcomes;
use crate::rng::Rng;
use candle_core::{Device, Result, Tensor, D};
use candle_nn::ops::{log_softmax, softmax};

/// Controller training options.
#[derive(Clone, Debug)]
pub struct PpoOpts {
    /// Seed.
    pub seed: u64,
    /// Predictor hidden width Hp.
    pub hp: usize,
    /// Policy hidden width Hq.
    pub hq: usize,
    /// RNN hidden width Hr.
    pub hr: usize,
    /// Predictor epochs (minibatches of 256).
    pub pred_epochs: usize,
    /// PPO iterations per level. Both levels start from a warm start, so PPO fine-tunes; on the
    /// Fashion-MNIST model 150 iterations drifted the exit RNN back towards "always stop"
    /// (adaptive −0.7 points at the default budget), 40 kept what the warm start had.
    pub iters: usize,
    /// Episodes per iteration.
    pub episodes: usize,
    /// PPO epochs per iteration.
    pub ppo_epochs: usize,
    /// Minibatch (episodes).
    pub minibatch: usize,
    /// Surrogate clip ε.
    pub clip: f64,
    /// Entropy bonus at the start (annealed ×0.1 by the end).
    pub ent: f64,
    /// Value-loss weight.
    pub vf: f64,
    /// Adam learning rate.
    pub lr: f64,
    /// Supervised warm-start steps of the exit RNN (batches of 1024) before its PPO.
    pub warm_steps: usize,
    /// Adam learning rate of the `graph` policy's PPO fine-tuning from the plug-in rule.
    pub graph_lr: f64,
    /// Train the `graph` policy too (off for the probes that only choose the default budget).
    pub graph: bool,
    /// Print progress.
    pub verbose: bool,
}

impl Default for PpoOpts {
    fn default() -> PpoOpts {
        PpoOpts {
            seed: 1,
            hp: 32,
            hq: 64,
            hr: 16,
            pred_epochs: 60,
            iters: 40,
            episodes: 4096,
            ppo_epochs: 4,
            minibatch: 1024,
            clip: 0.2,
            ent: 0.01,
            vf: 0.5,
            lr: 2e-3,
            warm_steps: 400,
            graph_lr: 2e-3,
            graph: true,
            verbose: false,
        }
    }
}

/// Draws a budget λ ∈ [0, 1].
pub fn sample_lambda(rng: &mut Rng) -> f32 {
    let u = rng.uniform();
    (if rng.uniform() < 0.5 { u } else { u * u * u }) as f32
}

/// Draws a budget λ ∈ [0, 1] for level-2 episodes: mostly u³. Escalating pays only at small λ
/// (one segment costs ≥ λ/P of the full FLOPs while it buys a few points of accuracy), so with
/// the level-1 mixture the rare small-λ episodes were outvoted and the exit RNN learned to
/// always stop.
pub fn sample_lambda_exit(rng: &mut Rng) -> f32 {
    let u = rng.uniform();
    (if rng.uniform() < 0.25 { u } else { u * u * u }) as f32
}

fn dev() -> Device {
    Device::Cpu
}

/// Per-feature mean and std (std floored so constant features stay finite).
fn standardization(o: &Outcomes) -> (Vec<f32>, Vec<f32>) {
    let (n, f) = (o.n.max(1), o.f);
    let mut mean = vec![0f64; f];
    let mut sq = vec![0f64; f];
    for row in o.feats.chunks_exact(f) {
        for j in 0..f {
            mean[j] += f64::from(row[j]);
            sq[j] += f64::from(row[j]).powi(2);
        }
    }
    let mean: Vec<f64> = mean.iter().map(|s| s / n as f64).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| ((s / n as f64 - m * m).max(0.0).sqrt().max(1e-3)) as f32)
        .collect();
    (mean.iter().map(|m| *m as f32).collect(), std)
}

fn sample_categorical(probs: &[f32], rng: &mut Rng) -> usize {
    let u = rng.uniform() as f32;
    let mut acc = 0.0;
    for (j, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return j;
        }
    }
    probs.len() - 1
}

/// `log σ(c)` computed stably: `min(c, 0) − ln(1 + e^{−|c|})`.
fn log_sigmoid(c: &Tensor) -> Result<Tensor> {
    let m = c.minimum(0f32)?;
    let l = ((c.abs()?.neg()?.exp()? + 1.0)?).log()?;
    m - l
}

fn normalize(adv: &mut [f32], mask: Option<&[f32]>) {
    let w: Vec<f32> = mask.map_or_else(|| vec![1.0; adv.len()], |m| m.to_vec());
    let n: f32 = w.iter().sum::<f32>().max(1.0);
    let mean = adv.iter().zip(&w).map(|(a, w)| a * w).sum::<f32>() / n;
    let var = adv
        .iter()
        .zip(&w)
        .map(|(a, w)| w * (a - mean).powi(2))
        .sum::<f32>()
        / n;
    let sd = var.sqrt().max(1e-6);
    for (a, w) in adv.iter_mut().zip(&w) {
        *a = if *w > 0.0 { (*a - mean) / sd } else { 0.0 };
    }
}

/// Trains the predictor (CE to the oracle path) on standardized features.
fn train_predictor(o: &Outcomes, phi: &[f32], opts: &PpoOpts, rng: &mut Rng) -> Result<MlpVars> {
    let net = MlpVars::new(o.f, opts.hp, o.p, rng)?;
    let x = Tensor::from_slice(phi, (o.n, o.f), &dev())?;
    let y: Vec<u32> = (0..o.n).map(|i| o.oracle(i) as u32).collect();
    let y = Tensor::from_vec(y, o.n, &dev())?;
    let means = fit(&net, &x, opts.pred_epochs, rng, |logits, idx| {
        candle_nn::loss::cross_entropy(logits, &y.index_select(idx, 0)?)
    })?;
    if opts.verbose {
        for (ep, m) in means
            .iter()
            .enumerate()
            .filter(|(ep, _)| (ep + 1) % 20 == 0)
        {
            crate::errln!(
                "predictor epoch {}/{}: CE to the oracle path {m:.4}",
                ep + 1,
                opts.pred_epochs
            );
        }
    }
    Ok(net)
}

/// One iteration's level-1 rollout.
struct Rollout1 {
    /// Inputs `[m, F+P+1]`.
    z: Tensor,
    /// Actions taken.
    act: Vec<u32>,
    /// Their log-probabilities when sampled.
    old_logp: Vec<f32>,
    /// Normalized advantages.
    adv: Vec<f32>,
    /// Returns.
    ret: Vec<f32>,
}

/// One PPO update of a categorical policy on single-decision episodes.
fn ppo_categorical(
    nets: (&MlpVars, &MlpVars),
    adam: &mut Adam,
    r: &Rollout1,
    opts: &PpoOpts,
    ent: f64,
    rng: &mut Rng,
) -> Result<()> {
    let (pol, val) = nets;
    let (z, act, old_logp, adv, ret) = (&r.z, &r.act, &r.old_logp, &r.adv, &r.ret);
    let m = act.len();
    for _ in 0..opts.ppo_epochs {
        let perm = rng.permutation(m);
        for part in perm.chunks(opts.minibatch.max(1)) {
            let b = part.len();
            let pick = |v: &[f32]| {
                Tensor::from_vec(part.iter().map(|&i| v[i]).collect::<Vec<_>>(), b, &dev())
            };
            let idx = Tensor::from_vec(
                part.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                b,
                &dev(),
            )?;
            let a = Tensor::from_vec(
                part.iter().map(|&i| act[i]).collect::<Vec<_>>(),
                (b, 1),
                &dev(),
            )?;
            let zb = z.index_select(&idx, 0)?;
            let logits = pol.forward(&zb)?;
            let lp_all = log_softmax(&logits, D::Minus1)?;
            let lp = lp_all.gather(&a, 1)?.squeeze(1)?;
            let ratio = (lp - pick(old_logp)?)?.exp()?;
            let advb = pick(adv)?;
            let s1 = (&ratio * &advb)?;
            let s2 = (ratio.clamp(1.0 - opts.clip, 1.0 + opts.clip)? * &advb)?;
            let pg = s1.minimum(&s2)?.mean_all()?.neg()?;
            let entropy = (softmax(&logits, D::Minus1)? * &lp_all)?
                .sum(D::Minus1)?
                .neg()?
                .mean_all()?;
            let v = val.forward(&zb)?.squeeze(1)?;
            let vloss = (v - pick(ret)?)?.sqr()?.mean_all()?;
            let loss = ((pg - (entropy * ent)?)? + (vloss * opts.vf)?)?;
            adam.step(&loss.backward()?, 1.0)?;
        }
    }
    Ok(())
}

/// Trains the whole controller on `o` and returns it in file form.
///
/// `route`, when given, is a larger outcome table of the same backbone (e.g. its training split)
/// for the `graph` policy, whose per-input routing needs more samples than the validation split
/// has; everything else — and the choice of the default budget — uses `o` alone.
pub fn train(
    o: &Outcomes,
    route: Option<&Outcomes>,
    opts: &PpoOpts,
) -> std::result::Result<Controller, String> {
    train_inner(o, route, opts).map_err(|e| format!("controller training: {e}"))
}

fn train_inner(o: &Outcomes, route: Option<&Outcomes>, opts: &PpoOpts) -> Result<Controller> {
    let (n, p, f) = (o.n, o.p, o.f);
    if n == 0 {
        candle_core::bail!("no samples");
    }
    let mut rng = Rng::new(opts.seed, 7_000);
    let (mean, std) = standardization(o);
    let phi_std = standardize(&o.feats, f, &mean, &std);
    // 1. Predictor.
    let pred_net = train_predictor(o, &phi_std, opts, &mut rng)?;
    let pred_file = pred_net.to_host()?.fold_standardization(&mean, &std);
    let pred = predictions(&pred_file, &o.feats, f);
    let full = o.full_flops() as f32;
    let cost: Vec<f32> = o.path_flops.iter().map(|&c| c as f32 / full).collect();
    let step_cost: Vec<f32> = o.step_flops.iter().map(|&c| c as f32 / full).collect();
    let rows = level1_inputs(&phi_std, &pred, f, p);
    // 2. Level-1 policy: PPO on one-decision episodes. From a uniform start it settles on the
    //    shallowest path for nearly every input, which is where an `adaptive` run should start:
    //    level 2 escalates the inputs that need more.
    let pol = MlpVars::new(f + p + 1, opts.hq, p, &mut rng)?;
    level1_ppo(
        &pol,
        &rows,
        o.n,
        opts.lr,
        opts,
        &mut rng,
        "level-1",
        |i, lam, k| f32::from(u8::from(o.right(i, k))) - lam * cost[k],
    )?;
    let policy = pol.to_host()?.fold_standardization(&mean, &std);
    // 3. Level-2 exit RNN on hierarchical episodes.
    let start = |phi: &[f32], lam: f32| {
        tinv::control::argmax(&policy.forward(&level1_input(&pred_file, phi, lam)))
    };
    let rnn = train_exit_rnn(o, &cost, &step_cost, &start, opts, &mut rng)?;
    // 4. Up-front policy of `graph` mode: one decision, nothing follows. The plug-in rule
    //    learned on `route` (more samples than the validation split when given), then PPO on
    //    one-decision episodes of the same table; PPO's result is kept only if it earns more
    //    than the rule on the validation split.
    let graph = if opts.graph {
        let r = route.unwrap_or(o);
        let route_rows = route.map(|r| {
            let r_std = standardize(&r.feats, f, &mean, &std);
            level1_inputs(&r_std, &predictions(&pred_file, &r.feats, f), f, p)
        });
        let r_rows = route_rows.as_deref().unwrap_or(&rows);
        let keep = super::graph_policy::train(o, &rows, r, r_rows, &cost, opts, &mut rng)?;
        Some(keep.fold_standardization(&mean, &std))
    } else {
        None
    };
    Ok(Controller {
        p,
        pred: pred_file,
        policy,
        graph,
        rnn,
    })
}

/// `[φ̃, p]` per sample (`f + p` floats each).
fn level1_inputs(phi_std: &[f32], pred: &[f32], f: usize, p: usize) -> Vec<f32> {
    phi_std
        .chunks_exact(f)
        .zip(pred.chunks_exact(p))
        .flat_map(|(a, b)| a.iter().chain(b).copied())
        .collect()
}

/// Features standardized with `mean` and `std`.
fn standardize(feats: &[f32], f: usize, mean: &[f32], std: &[f32]) -> Vec<f32> {
    feats
        .chunks_exact(f)
        .flat_map(|r| {
            r.iter()
                .zip(mean.iter().zip(std))
                .map(|(x, (m, s))| (x - m) / s)
        })
        .collect()
}

/// The predictor's probabilities for every row of raw features.
fn predictions(pred: &Mlp, feats: &[f32], f: usize) -> Vec<f32> {
    feats
        .chunks_exact(f)
        .flat_map(|row| pred.probabilities(row))
        .collect()
}

/// PPO of an up-front policy `pol` on one-decision episodes: sample `i` (its `[φ̃, p]` row in
/// `rows`) with budget λ, action = path `k`, reward `reward(i, λ, k)`.
#[allow(clippy::too_many_arguments)] // the net, its data, its options and its reward
pub(crate) fn level1_ppo(
    pol: &MlpVars,
    rows: &[f32],
    n: usize,
    lr: f64,
    opts: &PpoOpts,
    rng: &mut Rng,
    what: &str,
    reward: impl Fn(usize, f32, usize) -> f32,
) -> Result<()> {
    let p = pol.outputs();
    let zin = rows.len() / n.max(1) + 1;
    let v1 = MlpVars::new(zin, 64, 1, rng)?;
    let mut vars = pol.vars();
    vars.extend(v1.vars());
    let mut adam = Adam::new(vars, lr)?;
    for it in 0..opts.iters {
        let ent = opts.ent * (1.0 - 0.9 * it as f64 / opts.iters.max(1) as f64);
        let eps: Vec<(usize, f32)> = (0..opts.episodes)
            .map(|_| (rng.below(n), sample_lambda(rng)))
            .collect();
        let mut z = Vec::with_capacity(eps.len() * zin);
        for &(i, lam) in &eps {
            z.extend_from_slice(&rows[i * (zin - 1)..(i + 1) * (zin - 1)]);
            z.push(lam);
        }
        let z = Tensor::from_vec(z, (eps.len(), zin), &dev())?;
        let probs = softmax(&pol.forward(&z)?, D::Minus1)?.to_vec2::<f32>()?;
        let values = v1.forward(&z)?.squeeze(1)?.to_vec1::<f32>()?;
        let (mut act, mut old, mut ret, mut adv) = (vec![], vec![], vec![], vec![]);
        let mut mean_r = 0f32;
        for (m, &(i, lam)) in eps.iter().enumerate() {
            let a = sample_categorical(&probs[m], rng).min(p - 1);
            let r = reward(i, lam, a);
            act.push(a as u32);
            old.push(probs[m][a].max(1e-30).ln());
            ret.push(r);
            adv.push(r - values[m]);
            mean_r += r;
        }
        normalize(&mut adv, None);
        let r = Rollout1 {
            z,
            act,
            old_logp: old,
            adv,
            ret,
        };
        ppo_categorical((pol, &v1), &mut adam, &r, opts, ent, rng)?;
        if opts.verbose && (it + 1) % 25 == 0 {
            crate::errln!(
                "{what} PPO iteration {}/{}: mean reward {:.4}",
                it + 1,
                opts.iters,
                mean_r / eps.len() as f32
            );
        }
    }
    Ok(())
}

/// The exit RNN: supervised warm start, then PPO on hierarchical episodes that start where the
/// level-1 policy `start(φ, λ)` sends them (30 %) or at a random path (exploration).
fn train_exit_rnn(
    o: &Outcomes,
    cost: &[f32],
    step_cost: &[f32],
    start: &dyn Fn(&[f32], f32) -> usize,
    opts: &PpoOpts,
    rng: &mut Rng,
) -> Result<super::nets::ExitRnn> {
    let (n, p) = (o.n, o.p);
    let rnn = RnnVars::new(opts.hr, rng)?;
    super::warm::warm_start_exit(&rnn, o, step_cost, opts, rng)?;
    let v2 = MlpVars::new(EXIT_IN, 32, 1, rng)?;
    let mut vars = rnn.vars();
    vars.extend(v2.vars());
    let mut adam = Adam::new(vars, opts.lr)?;
    let t_max = p.saturating_sub(1).max(1);
    for it in 0..opts.iters {
        let ent = opts.ent * (1.0 - 0.9 * it as f64 / opts.iters.max(1) as f64);
        let host = rnn.to_host()?;
        let m = opts.episodes;
        let mut e = vec![0f32; t_max * m * EXIT_IN];
        let (mut mask, mut act, mut old, mut ret) = (
            vec![0f32; t_max * m],
            vec![0f32; t_max * m],
            vec![0f32; t_max * m],
            vec![0f32; t_max * m],
        );
        let mut mean_r = 0f32;
        for ep in 0..m {
            let i = rng.below(n);
            let lam = sample_lambda_exit(rng);
            let phi = &o.feats[i * o.f..(i + 1) * o.f];
            let mut k = if rng.uniform() < 0.3 {
                start(phi, lam)
            } else {
                rng.below(p)
            };
            let mut h = vec![0f32; opts.hr];
            let mut rewards = vec![0f32; t_max];
            let mut t = 0;
            let mut total = -lam * cost[k];
            while k + 1 < p {
                let x = exit_input(o.stats[i * p + k], lam, k, p);
                let c = host.step(&x, &mut h);
                let pc = 1.0 / (1.0 + (-c).exp());
                let go = rng.uniform() < f64::from(pc);
                let s = t * m + ep;
                e[s * EXIT_IN..(s + 1) * EXIT_IN].copy_from_slice(&x);
                mask[s] = 1.0;
                act[s] = f32::from(u8::from(go));
                old[s] = if go {
                    pc.max(1e-30).ln()
                } else {
                    (1.0 - pc).max(1e-30).ln()
                };
                if !go {
                    rewards[t] = f32::from(u8::from(o.right(i, k)));
                    break;
                }
                rewards[t] = -lam * step_cost[k];
                k += 1;
                if k + 1 == p {
                    rewards[t] += f32::from(u8::from(o.right(i, k)));
                }
                t += 1;
            }
            // Returns to go (undiscounted).
            let mut g = 0f32;
            for s in (0..t_max).rev() {
                if mask[s * m + ep] > 0.0 {
                    g += rewards[s];
                    ret[s * m + ep] = g;
                }
            }
            total += rewards.iter().sum::<f32>();
            if p == 1 {
                total += f32::from(u8::from(o.right(i, 0)));
            }
            mean_r += total;
        }
        let et = Tensor::from_slice(&e, (t_max, m, EXIT_IN), &dev())?;
        let values = v2
            .forward(&et.reshape((t_max * m, EXIT_IN))?)?
            .squeeze(1)?
            .to_vec1::<f32>()?;
        let mut adv: Vec<f32> = ret.iter().zip(&values).map(|(r, v)| r - v).collect();
        normalize(&mut adv, Some(&mask));
        for _ in 0..opts.ppo_epochs {
            let perm = rng.permutation(m);
            for part in perm.chunks(opts.minibatch.max(1)) {
                let b = part.len();
                let idx = Tensor::from_vec(
                    part.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    b,
                    &dev(),
                )?;
                let pick = |v: &[f32]| -> Result<Tensor> {
                    let mut out = Vec::with_capacity(t_max * b);
                    for s in 0..t_max {
                        out.extend(part.iter().map(|&i| v[s * m + i]));
                    }
                    Tensor::from_vec(out, (t_max, b), &dev())
                };
                let eb = et.index_select(&idx, 1)?;
                let c = rnn.forward(&eb)?;
                let a = pick(&act)?;
                let mk = pick(&mask)?;
                let ls_go = log_sigmoid(&c)?;
                let ls_stop = log_sigmoid(&c.neg()?)?;
                let lp = ((&a * &ls_go)? + ((1.0 - &a)? * &ls_stop)?)?;
                let ratio = (lp - pick(&old)?)?.exp()?;
                let advb = pick(&adv)?;
                let s1 = (&ratio * &advb)?;
                let s2 = (ratio.clamp(1.0 - opts.clip, 1.0 + opts.clip)? * &advb)?;
                let cnt = mk.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64;
                let pg = ((s1.minimum(&s2)? * &mk)?.sum_all()? / cnt)?.neg()?;
                let pgo = candle_nn::ops::sigmoid(&c)?;
                let entropy = ((((&pgo * &ls_go)? + ((1.0 - &pgo)? * &ls_stop)?)?.neg()? * &mk)?
                    .sum_all()?
                    / cnt)?;
                let v = v2
                    .forward(&eb.reshape((t_max * b, EXIT_IN))?)?
                    .reshape((t_max, b))?;
                let vloss = (((v - pick(&ret)?)?.sqr()? * &mk)?.sum_all()? / cnt)?;
                let loss = ((pg - (entropy * ent)?)? + (vloss * opts.vf)?)?;
                adam.step(&loss.backward()?, 1.0)?;
            }
        }
        if opts.verbose && (it + 1) % 25 == 0 {
            crate::errln!(
                "level-2 PPO iteration {}/{}: mean episode reward {:.4}",
                it + 1,
                opts.iters,
                mean_r / m as f32
            );
        }
    }
    rnn.to_host()
}

#[cfg(test)]
#[path = "ppo_tests.rs"]
mod tests;
