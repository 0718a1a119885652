//! Tests of PPO: its helpers against hand values, its five training loops against PPO written
//! again in f64 from the same draws, and what it learns on small tables.

use super::*;
use crate::control::outcomes::tests::table;
use crate::control::reference64::*;

#[test]
fn budgets_are_drawn_from_the_stated_mixtures() {
    // E[u] = 1/2, E[u³] = 1/4: level 1 (half and half) 0.375; level 2 (a quarter
    // uniform) 0.3125. 40 000 draws: standard errors below 0.0015.
    let mut rng = Rng::new(2, 0);
    let n = 40_000;
    let (mut a, mut b) = (0f64, 0f64);
    for _ in 0..n {
        let (x, y) = (sample_lambda(&mut rng), sample_lambda_exit(&mut rng));
        assert!((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y));
        a += f64::from(x);
        b += f64::from(y);
    }
    let (a, b) = (a / n as f64, b / n as f64);
    assert!((a - 0.375).abs() < 0.008, "level 1: mean {a}");
    assert!((b - 0.3125).abs() < 0.008, "level 2: mean {b}");
}

#[test]
fn standardization_of_a_hand_made_table() {
    // Two features over three inputs: (1, 5), (2, 5), (6, 5). Feature 0: mean 3, variance
    // (4 + 1 + 9) / 3; feature 1 is constant: std floored at 1e-3.
    let mut o = crate::control::outcomes::tests::table().subset(0..3);
    o.f = 2;
    o.feats = vec![1.0, 5.0, 2.0, 5.0, 6.0, 5.0];
    let (mean, std) = standardization(&o);
    assert_eq!(mean, [3.0, 5.0]);
    assert!(
        (f64::from(std[0]) - (14.0f64 / 3.0).sqrt()).abs() < 1e-6,
        "{std:?}"
    );
    assert_eq!(std[1], 1e-3);
    assert_eq!(
        standardize(&o.feats, 2, &[3.0, 5.0], &[2.0, 0.5]),
        [-1.0, 0.0, -0.5, 0.0, 1.5, 0.0]
    );
    assert_eq!(
        level1_inputs(&[1.0, 2.0, 3.0, 4.0], &[0.1, 0.9, 0.6, 0.4], 2, 2),
        [1.0, 2.0, 0.1, 0.9, 3.0, 4.0, 0.6, 0.4]
    );
}

#[test]
fn categorical_draws_follow_the_cumulative_probabilities() {
    // The draw is the first j with u < p₀ + … + pⱼ, u the generator's next uniform.
    let probs = [0.2f32, 0.5, 0.3];
    let (mut rng, mut twin) = (Rng::new(8, 0), Rng::new(8, 0));
    let mut seen = [0; 3];
    for _ in 0..200 {
        let u = twin.uniform() as f32;
        let want = if u < 0.2 {
            0
        } else if u < 0.7 {
            1
        } else {
            2
        };
        assert_eq!(sample_categorical(&probs, &mut rng), want, "u = {u}");
        seen[want] += 1;
    }
    // One uniform a draw, and every class drawn.
    assert!(seen.iter().all(|&c| c > 0), "{seen:?}");
    // Probabilities summing below u: the last.
    let mut rng = Rng::new(8, 0);
    while rng.clone().uniform() < 0.5 {
        rng.uniform();
    }
    assert_eq!(sample_categorical(&[0.1, 0.1], &mut rng), 1);
}

#[test]
fn log_sigmoid_and_normalize_by_hand() {
    let c = Tensor::from_slice(&[-30.0f32, -1.0, 0.0, 2.0, 30.0], 5, &Device::Cpu).unwrap();
    let got = log_sigmoid(&c).unwrap().to_vec1::<f32>().unwrap();
    for (g, x) in got.iter().zip([-30.0f64, -1.0, 0.0, 2.0, 30.0]) {
        let want = -(1.0 + (-x).exp()).ln();
        assert!((f64::from(*g) - want).abs() < 1e-5, "{x}: {g} vs {want}");
    }
    // (1, 2, 3): mean 2, variance 2/3.
    let mut a = [1.0f32, 2.0, 3.0];
    normalize(&mut a, None);
    let s = (1.5f32).sqrt();
    assert!(
        (a[0] + s).abs() < 1e-6 && a[1].abs() < 1e-6 && (a[2] - s).abs() < 1e-6,
        "{a:?}"
    );
    // Masked: (1, ·, 3) of weight 1, 0, 1: mean 2, variance 1; the masked one is 0.
    let mut a = [1.0f32, 100.0, 3.0];
    normalize(&mut a, Some(&[1.0, 0.0, 1.0]));
    assert_eq!(a, [-1.0, 0.0, 1.0]);
    // All equal: the deviation is floored, no division by zero.
    let mut a = [4.0f32; 3];
    normalize(&mut a, None);
    assert_eq!(a, [0.0; 3]);
}

#[test]
fn predictions_are_each_rows_probabilities() {
    // Scores (relu(x₀), 0): their softmax.
    let pred = Mlp {
        w1: vec![1.0, 0.0],
        b1: vec![0.0],
        w2: vec![1.0, 0.0],
        b2: vec![0.0, 0.0],
    };
    let got = predictions(&pred, &[0.0, 7.0, 1.0, 7.0], 2);
    assert_eq!(got.len(), 4);
    let e = 1f32.exp();
    let want = [0.5, 0.5, e / (e + 1.0), 1.0 / (e + 1.0)];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?}");
    }
}

// The training loops against PPO written again in f64: the same draws from a twin of the
// generator, the documented rollouts and losses, central-difference gradients and Adam
// (β 0.9 / 0.999, ε 1e-8, the gradient clipped to global norm 1). A few Adam steps: after
// the first, every gradient's size matters, not only its sign.

/// Advantages standardized over the steps of weight 1 (mean 0, deviation 1, floored at
/// 1e-6); steps of weight 0 get 0.
fn normalize64(adv: &mut [f64], w: &[f64]) {
    let n = w.iter().sum::<f64>().max(1.0);
    let mean = adv.iter().zip(w).map(|(a, w)| a * w).sum::<f64>() / n;
    let var = adv
        .iter()
        .zip(w)
        .map(|(a, w)| w * (a - mean).powi(2))
        .sum::<f64>()
        / n;
    let sd = var.sqrt().max(1e-6);
    for (a, w) in adv.iter_mut().zip(w) {
        *a = if *w > 0.0 { (*a - mean) / sd } else { 0.0 };
    }
}

/// The clipped surrogate's term of one decision: `min(ρ·A, clamp(ρ, 1 − ε, 1 + ε)·A)`.
fn surrogate(lp: f64, old: f64, adv: f64, clip: f64) -> f64 {
    let ratio = (lp - old).exp();
    (ratio * adv).min(ratio.clamp(1.0 - clip, 1.0 + clip) * adv)
}

/// A one-decision rollout in f64.
struct Roll64 {
    z: Vec<Vec<f64>>,
    act: Vec<usize>,
    old: Vec<f64>,
    adv: Vec<f64>,
    ret: Vec<f64>,
}

/// PPO's loss of a categorical policy over the decisions `part`: −mean surrogate − `ent` ×
/// mean entropy + `vf` × mean squared value error, the policy's then the value net's
/// parameters in `th`.
#[allow(clippy::too_many_arguments)] // the parameters, two shapes, the data, three weights
fn categorical_loss(
    th: &[f64],
    pol: Shape,
    val: Shape,
    r: &Roll64,
    part: &[usize],
    clip: f64,
    ent: f64,
    vf: f64,
) -> f64 {
    let (pt, vt) = th.split_at(mlp_len(pol));
    let (mut pg, mut h, mut vl) = (0.0, 0.0, 0.0);
    for &i in part {
        let l = mlp64(pt, pol, &r.z[i]);
        let top = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = top + l.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
        let lp: Vec<f64> = l.iter().map(|v| v - lse).collect();
        pg += surrogate(lp[r.act[i]], r.old[i], r.adv[i], clip);
        h -= lp.iter().map(|v| v.exp() * v).sum::<f64>();
        vl += (mlp64(vt, val, &r.z[i])[0] - r.ret[i]).powi(2);
    }
    let b = part.len() as f64;
    -pg / b - ent * h / b + vf * vl / b
}

#[test]
fn ppo_categorical_steps_as_the_clipped_surrogate_in_f64() {
    // Five decisions whose ratios start at 1.5 (advantage ±1), 0.6 (∓), and 1.05, so that
    // each side of the clip range and both signs of the advantage come up; entropy weight
    // 0.3, value weight 0.7, clip 0.2; two epochs of minibatches of 3 and 2.
    let pol_host = Mlp {
        w1: vec![0.8, -0.5, 0.3, 0.9, -0.7, 0.4],
        b1: vec![0.1, 0.2, 0.3],
        w2: vec![0.5, -0.4, 0.3, -0.6, 0.7, 0.2, 0.1, 0.3, -0.8],
        b2: vec![0.05, -0.1, 0.0],
    };
    let val_host = Mlp {
        w1: vec![0.6, 0.2, -0.3, 0.8, 0.5, -0.5, 0.4, 0.4],
        b1: vec![0.2, 0.1, 0.3, -0.1],
        w2: vec![0.5, -0.3, 0.2, 0.4],
        b2: vec![0.1],
    };
    let (ps, vs) = ((2, 3, 3), (2, 4, 1));
    let z = [
        [1.0f32, 0.5],
        [0.3, 1.2],
        [1.5, -0.4],
        [0.7, 0.8],
        [1.1, 1.3],
    ];
    let act = [0usize, 2, 1, 0, 2];
    let ratio0 = [1.5f64, 1.5, 0.6, 0.6, 1.05];
    let adv = [1.0f32, -1.0, -0.5, 2.0, 0.7];
    let ret = [1.0f32, 0.0, -0.5, 2.0, 0.3];
    let zf: Vec<Vec<f64>> = z
        .iter()
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let pt = flat(&pol_host);
    let old: Vec<f32> = (0..5)
        .map(|i| {
            let l = mlp64(&pt, ps, &zf[i]);
            let lse = l.iter().map(|v| v.exp()).sum::<f64>().ln();
            (l[act[i]] - lse - ratio0[i].ln()) as f32
        })
        .collect();
    let r = Rollout1 {
        z: Tensor::from_slice(z.as_flattened(), (5, 2), &Device::Cpu).unwrap(),
        act: act.iter().map(|&a| a as u32).collect(),
        old_logp: old.clone(),
        adv: adv.to_vec(),
        ret: ret.to_vec(),
    };
    let opts = PpoOpts {
        ppo_epochs: 2,
        minibatch: 3,
        clip: 0.2,
        vf: 0.7,
        ent: 5.0, // not this: the weight passed (0.3) is the one that counts
        ..PpoOpts::default()
    };
    let (pol, val) = (
        MlpVars::from_host(&pol_host).unwrap(),
        MlpVars::from_host(&val_host).unwrap(),
    );
    let mut vars = pol.vars();
    vars.extend(val.vars());
    let mut adam = Adam::new(vars, 0.05).unwrap();
    let mut rng = Rng::new(4, 0);
    let mut twin = rng.clone();
    ppo_categorical((&pol, &val), &mut adam, &r, &opts, 0.3, &mut rng).unwrap();

    let r64 = Roll64 {
        z: zf,
        act: act.to_vec(),
        old: old.iter().map(|&v| f64::from(v)).collect(),
        adv: adv.iter().map(|&v| f64::from(v)).collect(),
        ret: ret.iter().map(|&v| f64::from(v)).collect(),
    };
    let mut th = pt;
    th.extend(flat(&val_host));
    let mut adam64 = Adam64::new(th.len(), 0.05);
    for _ in 0..2 {
        for part in twin.permutation(5).chunks(3) {
            let g = gradient(&th, |t| {
                categorical_loss(t, ps, vs, &r64, part, 0.2, 0.3, 0.7)
            });
            adam64.step(&mut th, &g);
        }
    }
    let mut got = flat(&pol.to_host().unwrap());
    got.extend(flat(&val.to_host().unwrap()));
    let d = max_diff(&got, &th);
    assert!(d < 1e-5, "largest difference {d}: {got:?} vs {th:?}");
}

/// Level-1 inputs of four images, three features each, for the level-1 PPO tests.
const FOUR_ROWS: [f32; 12] = [
    0.5, -1.0, 0.3, 1.2, 0.4, -0.6, -0.8, 0.9, 1.1, 0.2, -0.3, -1.4,
];

#[test]
fn level1_ppo_runs_ppo_on_one_decision_episodes_as_in_f64() {
    // Four inputs (rows of 3), three paths, the outcome tests' table's rights and costs
    // 0.2, 0.5, 1 of the full FLOPs: reward right − λ·cost. Three iterations of 16
    // episodes, two epochs of minibatches of 8, the entropy weight 0.3·(1 − 0.9·it/3).
    let o = table();
    let cost = [0.2f32, 0.5, 1.0];
    let rows = FOUR_ROWS;
    let opts = PpoOpts {
        iters: 3,
        episodes: 16,
        ppo_epochs: 2,
        minibatch: 8,
        clip: 0.2,
        ent: 0.3,
        vf: 0.7,
        lr: 1.0, // not this: the rate passed (0.05) is the one that counts
        ..PpoOpts::default()
    };
    let reward = |i: usize, lam: f32, k: usize| f32::from(u8::from(o.right(i, k))) - lam * cost[k];
    let mut rng = Rng::new(5, 0);
    let pol = MlpVars::new(4, 5, 3, &mut rng).unwrap();
    let before = pol.to_host().unwrap();
    let mut twin = rng.clone();
    level1_ppo(&pol, &rows, 4, 0.05, &opts, &mut rng, "test", reward).unwrap();

    let (ps, vs) = ((4, 5, 3), (4, 64, 1));
    let pl = mlp_len(ps);
    let mut th = flat(&before);
    th.extend(flat(
        &MlpVars::new(4, 64, 1, &mut twin)
            .unwrap()
            .to_host()
            .unwrap(),
    ));
    let mut adam = Adam64::new(th.len(), 0.05);
    for it in 0..3 {
        let ent = 0.3 * (1.0 - 0.9 * it as f64 / 3.0);
        let eps: Vec<(usize, f32)> = (0..16)
            .map(|_| (twin.below(4), sample_lambda(&mut twin)))
            .collect();
        let mut r = Roll64 {
            z: vec![],
            act: vec![],
            old: vec![],
            adv: vec![],
            ret: vec![],
        };
        for &(i, lam) in &eps {
            let mut z: Vec<f64> = rows[i * 3..(i + 1) * 3]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            z.push(f64::from(lam));
            let l = mlp64(&th[..pl], ps, &z);
            let lse = l.iter().map(|v| v.exp()).sum::<f64>().ln();
            let probs: Vec<f32> = l.iter().map(|v| (v - lse).exp() as f32).collect();
            let a = sample_categorical(&probs, &mut twin);
            let gain = f64::from(reward(i, lam, a));
            r.adv.push(gain - mlp64(&th[pl..], vs, &z)[0]);
            r.old.push(l[a] - lse);
            r.ret.push(gain);
            r.act.push(a);
            r.z.push(z);
        }
        normalize64(&mut r.adv, &[1.0; 16]);
        for _ in 0..2 {
            for part in twin.permutation(16).chunks(8) {
                let g = gradient(&th, |t| {
                    categorical_loss(t, ps, vs, &r, part, 0.2, ent, 0.7)
                });
                adam.step(&mut th, &g);
            }
        }
    }
    let got = flat(&pol.to_host().unwrap());
    let d = max_diff(&got, &th[..pl]);
    assert!(
        d < 1e-5,
        "largest difference {d}: {got:?} vs {:?}",
        &th[..pl]
    );
}

/// A level-2 rollout in f64: `t_max` decisions of `m` episodes, decision `t` of episode
/// `ep` at `t·m + ep`; `mask` 1 where one was taken.
struct Exit64 {
    e: Vec<[f64; EXIT_IN]>,
    mask: Vec<f64>,
    act: Vec<f64>,
    old: Vec<f64>,
    adv: Vec<f64>,
    ret: Vec<f64>,
    m: usize,
    t_max: usize,
}

/// PPO's loss of the exit RNN (go with probability σ(c)) over the episodes `part`: the
/// same three terms, each the mean over the decisions taken; the RNN's then the value
/// net's (5 → 32 → 1) parameters in `th`.
#[allow(clippy::too_many_arguments)] // the parameters, the width, the data, three weights
fn exit_loss(
    th: &[f64],
    hr: usize,
    r: &Exit64,
    part: &[usize],
    clip: f64,
    ent: f64,
    vf: f64,
) -> f64 {
    let (rt, vt) = th.split_at(hr * EXIT_IN + hr * hr + 2 * hr + 1);
    let (mut pg, mut h_sum, mut vl, mut cnt) = (0.0, 0.0, 0.0, 0.0);
    for &ep in part {
        let mut h = vec![0.0; hr];
        for t in 0..r.t_max {
            let s = t * r.m + ep;
            let c = rnn64(rt, hr, &r.e[s], &mut h);
            if r.mask[s] == 0.0 {
                continue;
            }
            let (go, stop) = (ln_sigmoid(c), ln_sigmoid(-c));
            let lp = r.act[s] * go + (1.0 - r.act[s]) * stop;
            pg += surrogate(lp, r.old[s], r.adv[s], clip);
            let pc = 1.0 / (1.0 + (-c).exp());
            h_sum -= pc * go + (1.0 - pc) * stop;
            vl += (mlp64(vt, (EXIT_IN, 32, 1), &r.e[s])[0] - r.ret[s]).powi(2);
            cnt += 1.0;
        }
    }
    (-pg - ent * h_sum + vf * vl) / f64::max(cnt, 1.0)
}

/// Trains the exit RNN on `o` (costs `cost`, steps `step`, level-1 start `start`) with
/// `episodes` a PPO iteration in minibatches of `minibatch`, and checks it against the f64
/// reference: no warm start, two iterations, two epochs, hidden width 3, clip 0.05 (ratios
/// leave the range by the second epoch), entropy weight 0.3·(1 − 0.9·it/2), value weight
/// 0.7, learning rate 0.05. An episode's return from a decision on is 1 if its final path
/// is right, less λ × the steps it still takes.
fn exit_rnn_against_f64(
    o: &Outcomes,
    (cost, step): (&[f32], &[f32]),
    start: &dyn Fn(&[f32], f32) -> usize,
    (episodes, minibatch): (usize, usize),
    seed: u64,
) {
    let opts = PpoOpts {
        hr: 3,
        warm_steps: 0,
        iters: 2,
        episodes,
        ppo_epochs: 2,
        minibatch,
        clip: 0.05,
        ent: 0.3,
        vf: 0.7,
        lr: 0.05,
        ..PpoOpts::default()
    };
    let mut rng = Rng::new(seed, 0);
    let mut twin = rng.clone();
    let got = train_exit_rnn(o, cost, step, start, &opts, &mut rng).unwrap();

    let (hr, n, p, f, m) = (3, o.n, o.p, o.f, episodes);
    let t_max = p - 1;
    let mut th = flat_rnn(&RnnVars::new(hr, &mut twin).unwrap().to_host().unwrap());
    let rl = th.len();
    th.extend(flat(
        &MlpVars::new(EXIT_IN, 32, 1, &mut twin)
            .unwrap()
            .to_host()
            .unwrap(),
    ));
    let mut adam = Adam64::new(th.len(), 0.05);
    let right = |i: usize, k: usize| f64::from(u8::from(o.right(i, k)));
    for it in 0..2 {
        let ent = 0.3 * (1.0 - 0.9 * it as f64 / 2.0);
        let zeros = vec![0.0; t_max * m];
        let mut r = Exit64 {
            e: vec![[0.0; EXIT_IN]; t_max * m],
            mask: zeros.clone(),
            act: zeros.clone(),
            old: zeros.clone(),
            adv: zeros.clone(),
            ret: zeros,
            m,
            t_max,
        };
        for ep in 0..m {
            let i = twin.below(n);
            let lam = sample_lambda_exit(&mut twin);
            let mut k = if twin.uniform() < 0.3 {
                start(&o.feats[i * f..(i + 1) * f], lam)
            } else {
                twin.below(p)
            };
            let mut h = vec![0.0; hr];
            // (step index, path, continued) of each decision.
            let mut taken = vec![];
            while k + 1 < p {
                let x = exit_input(o.stats[i * p + k], lam, k, p).map(f64::from);
                let pc = 1.0 / (1.0 + (-rnn64(&th[..rl], hr, &x, &mut h)).exp());
                let go = twin.uniform() < pc;
                let s = taken.len() * m + ep;
                r.e[s] = x;
                r.mask[s] = 1.0;
                r.act[s] = f64::from(u8::from(go));
                r.old[s] = if go { pc.ln() } else { (1.0 - pc).ln() };
                taken.push((s, k, go));
                if !go {
                    break;
                }
                k += 1;
            }
            for (j, &(s, _, _)) in taken.iter().enumerate() {
                let steps: f64 = taken[j..]
                    .iter()
                    .filter(|d| d.2)
                    .map(|d| f64::from(step[d.1]))
                    .sum();
                r.ret[s] = right(i, k) - f64::from(lam) * steps;
            }
        }
        for s in 0..t_max * m {
            r.adv[s] = r.ret[s] - mlp64(&th[rl..], (EXIT_IN, 32, 1), &r.e[s])[0];
        }
        normalize64(&mut r.adv, &r.mask.clone());
        for _ in 0..2 {
            for part in twin.permutation(m).chunks(minibatch) {
                let g = gradient(&th, |t| exit_loss(t, hr, &r, part, 0.05, ent, 0.7));
                adam.step(&mut th, &g);
            }
        }
    }
    let got = flat_rnn(&got);
    let d = max_diff(&got, &th[..rl]);
    assert!(
        d < 1e-5,
        "largest difference {d}: {got:?} vs {:?}",
        &th[..rl]
    );
}

#[test]
fn the_exit_rnn_runs_ppo_on_hierarchical_episodes_as_in_f64() {
    // The outcome tests' table (4 inputs, 3 paths: up to two decisions an episode), paths
    // 0.2, 0.5, 1 and steps 0.34, 0.56 of the full FLOPs, a level-1 start that depends on
    // feature 0 and λ (path 2 leaves nothing to decide); 12 episodes in minibatches of 6.
    let start = |phi: &[f32], lam: f32| {
        if lam > 0.6 {
            0
        } else if phi[0] > 0.85 {
            2
        } else {
            usize::from(phi[0] > 0.5)
        }
    };
    let costs: (&[f32], &[f32]) = (&[0.2, 0.5, 1.0], &[0.34, 0.56]);
    exit_rnn_against_f64(&table(), costs, &start, (12, 6), 9);
    // Four paths (three decisions) and fewer episodes than decisions: 2 in minibatches of
    // 1, so that one episode's third decision sits where the other's second would (with
    // sixteen seeds, some where the other took none). Input i is right from path i on;
    // p_max rises along the paths.
    let four = crate::control::outcomes::tests::four_path_table();
    let costs: (&[f32], &[f32]) = (&[0.2, 0.4, 0.7, 1.0], &[0.25, 0.35, 0.4]);
    for seed in 0..16 {
        exit_rnn_against_f64(&four, costs, &|_, _| 0, (2, 1), seed);
    }
}

#[test]
fn training_runs_the_stages_in_order_with_the_tables_costs() {
    // `train` is: the predictor on standardized features; the level-1 policy over
    // [φ̃, p, λ] rewarded right − λ·cost; the exit RNN, episodes starting where that policy
    // sends them; the graph policy; one generator (the seed's stream 7000) for all, in
    // that order. The costs are each path's and each step's FLOPs over the full path's
    // 500: 0.2, 0.5, 1 and 0.34, 0.56.
    let o = table();
    let opts = PpoOpts {
        hp: 4,
        hq: 4,
        hr: 2,
        pred_epochs: 2,
        iters: 1,
        episodes: 8,
        ppo_epochs: 1,
        minibatch: 8,
        warm_steps: 1,
        ..PpoOpts::default()
    };
    let got = train(&o, None, &opts).unwrap();
    let mut rng = Rng::new(opts.seed, 7_000);
    let (mean, std) = standardization(&o);
    let phi = standardize(&o.feats, 20, &mean, &std);
    let pred = train_predictor(&o, &phi, &opts, &mut rng)
        .unwrap()
        .to_host()
        .unwrap()
        .fold_standardization(&mean, &std);
    let rows = level1_inputs(&phi, &predictions(&pred, &o.feats, 20), 20, 3);
    let cost = [0.2f32, 0.5, 1.0];
    let pol = MlpVars::new(24, 4, 3, &mut rng).unwrap();
    let reward = |i: usize, lam: f32, k: usize| f32::from(u8::from(o.right(i, k))) - lam * cost[k];
    level1_ppo(&pol, &rows, 4, opts.lr, &opts, &mut rng, "", reward).unwrap();
    let policy = pol.to_host().unwrap().fold_standardization(&mean, &std);
    let start = |phi: &[f32], lam: f32| {
        tinv::control::argmax(&policy.forward(&level1_input(&pred, phi, lam)))
    };
    let rnn = train_exit_rnn(&o, &cost, &[0.34, 0.56], &start, &opts, &mut rng).unwrap();
    let graph = crate::control::graph_policy::train(&o, &rows, &o, &rows, &cost, &opts, &mut rng)
        .unwrap()
        .fold_standardization(&mean, &std);
    let want = Controller {
        p: 3,
        pred,
        policy,
        graph: Some(graph),
        rnn,
    };
    assert_eq!(got, want);
}

#[test]
fn training_without_samples_is_refused() {
    let err = train(&table().subset(0..0), None, &PpoOpts::default()).unwrap_err();
    // (candle appends a backtrace when RUST_BACKTRACE is set)
    assert!(err.starts_with("controller training: no samples"), "{err}");
}

#[test]
fn level1_ppo_learns_which_path_is_right_for_each_input() {
    // Input i is right on path i mod 3 only, and a path costs little (0.1·λ·cost): from a
    // near-uniform start, PPO must send each input to its path at every budget.
    let cost = [0.2f32, 0.5, 1.0];
    let rows = FOUR_ROWS;
    let opts = PpoOpts {
        iters: 15,
        episodes: 64,
        ppo_epochs: 4,
        minibatch: 32,
        ..PpoOpts::default()
    };
    let mut rng = Rng::new(11, 0);
    let pol = MlpVars::new(4, 16, 3, &mut rng).unwrap();
    let reward =
        |i: usize, lam: f32, k: usize| f32::from(u8::from(k == i % 3)) - 0.1 * lam * cost[k];
    level1_ppo(&pol, &rows, 4, 0.02, &opts, &mut rng, "test", reward).unwrap();
    let net = pol.to_host().unwrap();
    for i in 0..4 {
        for lam in [0.0f32, 0.5, 1.0] {
            let mut z = rows[i * 3..(i + 1) * 3].to_vec();
            z.push(lam);
            let probs = net.probabilities(&z);
            assert!(probs[i % 3] > 0.8, "input {i}, λ {lam}: {probs:?}");
        }
    }
}

#[test]
fn the_exit_rnn_learns_to_continue_only_where_deeper_pays() {
    // The outcome tests' table with every path wrong but the deepest: at λ = 0.05
    // continuing pays (1 − 0.05·(0.34 + 0.56) at the end), at λ = 1 it does not (stopping
    // at path 0 earns 0, reaching path 2 earns 1 − 0.9 = 0.1 ... less at path 1). With
    // every path right, stopping at once is best at any λ > 0.
    let mut deep = table();
    deep.correct = [false, false, true].repeat(4);
    let mut flat = table();
    flat.correct = vec![true; 12];
    let (cost, step) = ([0.2f32, 0.5, 1.0], [0.34f32, 0.56]);
    let opts = PpoOpts {
        hr: 8,
        warm_steps: 0,
        iters: 15,
        episodes: 256,
        minibatch: 128,
        lr: 0.01,
        ..PpoOpts::default()
    };
    let start = |_: &[f32], _: f32| 0;
    let rnn = train_exit_rnn(&deep, &cost, &step, &start, &opts, &mut Rng::new(12, 0)).unwrap();
    for i in 0..4 {
        let (k, _) = rnn.run_from(0, &deep.stats[i * 3..(i + 1) * 3], 0.05);
        assert_eq!(k, 2, "input {i} only right at path 2, λ 0.05");
    }
    let rnn = train_exit_rnn(&flat, &cost, &step, &start, &opts, &mut Rng::new(12, 0)).unwrap();
    for i in 0..4 {
        for lam in [0.05f32, 0.5] {
            let (k, _) = rnn.run_from(0, &flat.stats[i * 3..(i + 1) * 3], lam);
            assert_eq!(k, 0, "input {i} right everywhere, λ {lam}");
        }
    }
}
