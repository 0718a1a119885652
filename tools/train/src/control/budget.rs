//! Evaluates a trained controller on an outcome table the way the runtime runs it — `adaptive`
//! (level 1, then level 2 at every exit reached) and `graph` (level 1 only) — counting every FLOP
//! spent (controller included), and picks the default budget λ.

use super::nets::Controller;
use super::outcomes::Outcomes;

/// One operating point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Budget λ (or threshold τ for the baseline).
    pub lambda: f32,
    /// Accuracy in [0, 1].
    pub accuracy: f64,
    /// Mean FLOPs per input.
    pub mean_flops: f64,
    /// Share of inputs finishing at each path.
    pub histogram: Vec<f64>,
}

impl Point {
    /// The histogram as whole percentages per path, `a/b/c/d`.
    pub fn shares(&self) -> String {
        let h: Vec<String> = self
            .histogram
            .iter()
            .map(|v| format!("{:.0}", 100.0 * v))
            .collect();
        h.join("/")
    }
}

/// The budgets reported and searched for the default.
pub const GRID: [f32; 18] = [
    0.0, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0,
];

/// FLOPs of the controller in `adaptive` (`levels = 2`) or `graph` (`levels = 1`) mode:
/// `(up_front, per level-2 decision)`. Each mode runs its own up-front policy.
pub fn ctrl_flops(c: &crate::config::ModelConfig, ctrl: &Controller, levels: u8) -> (u64, u64) {
    let up = ctrl.up_front(levels == 1);
    (
        crate::flops::ctrl_up_front(c, ctrl.pred.b1.len(), up.b1.len()),
        crate::flops::ctrl_exit(c, ctrl.rnn.hidden()),
    )
}

/// Where input `i` of `o` finishes in `adaptive` (`levels = 2`) or `graph` (`levels = 1`) mode
/// at budget `lambda`, and the FLOPs it spends there: `(path, FLOPs)`.
pub fn run_one(
    ctrl: &Controller,
    o: &Outcomes,
    i: usize,
    lambda: f32,
    levels: u8,
    flops: (u64, u64),
) -> (usize, u64) {
    let phi = &o.feats[i * o.f..(i + 1) * o.f];
    let (k0, k, decisions) = if levels >= 2 {
        let k0 = ctrl.decide_start(phi, lambda);
        let (k, d) = ctrl.run(phi, &o.stats[i * o.p..(i + 1) * o.p], lambda);
        (k0, k, d)
    } else {
        let k = ctrl.decide_graph(phi, lambda);
        (k, k, 0)
    };
    let mut fl = flops.0 + o.path_flops[k0] + decisions as u64 * flops.1;
    for j in k0..k {
        fl += o.step_flops[j];
    }
    (k, fl)
}

/// `adaptive` (`levels = 2`) or `graph` (`levels = 1`) at budget `lambda`.
pub fn evaluate(
    ctrl: &Controller,
    o: &Outcomes,
    lambda: f32,
    levels: u8,
    flops: (u64, u64),
) -> Point {
    let (mut right, mut total) = (0usize, 0f64);
    let mut hist = vec![0f64; o.p];
    for i in 0..o.n {
        let (k, fl) = run_one(ctrl, o, i, lambda, levels, flops);
        total += fl as f64;
        right += usize::from(o.right(i, k));
        hist[k] += 1.0;
    }
    let n = o.n.max(1) as f64;
    Point {
        lambda,
        accuracy: right as f64 / n,
        mean_flops: total / n,
        histogram: hist.iter().map(|h| h / n).collect(),
    }
}

/// `adaptive` (`levels = 2`) or `graph` (`levels = 1`) at every budget of [`GRID`].
pub fn sweep(ctrl: &Controller, o: &Outcomes, levels: u8, flops: (u64, u64)) -> Vec<Point> {
    GRID.iter()
        .map(|&l| evaluate(ctrl, o, l, levels, flops))
        .collect()
}

/// Pools operating points measured on disjoint parts (`parts[f][g]` = part f at `GRID[g]`,
/// weighted by the part sizes `sizes`): cross-validated points over the whole set.
pub fn pool(parts: &[Vec<Point>], sizes: &[usize]) -> Vec<Point> {
    let total = sizes.iter().sum::<usize>().max(1) as f64;
    let Some(first) = parts.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|g| {
            let mut pt = Point {
                lambda: first[g].lambda,
                accuracy: 0.0,
                mean_flops: 0.0,
                histogram: vec![0.0; first[g].histogram.len()],
            };
            for (part, &n) in parts.iter().zip(sizes) {
                let w = n as f64 / total;
                pt.accuracy += w * part[g].accuracy;
                pt.mean_flops += w * part[g].mean_flops;
                for (h, v) in pt.histogram.iter_mut().zip(&part[g].histogram) {
                    *h += w * v;
                }
            }
            pt
        })
        .collect()
}

/// The default budget from cross-validated points `pts` (in ascending λ): the largest λ up to
/// which every budget's accuracy is within `tol` of `full`. Accuracy falls with λ only on
/// average; taking any λ within tolerance would pick a noise bump far out on a flat curve (a
/// controller whose validation curve wobbled between 89.90 and 90.06 % got λ = 0.3 from that
/// rule, 0.53 points below full depth on the test set). When even the smallest λ is out of
/// tolerance: the most accurate budget, the largest among equals. The flag says whether the
/// tolerance rule chose (`false`: the fallback did, and the report must say so).
pub fn choose_from(pts: &[Point], full: f64, tol: f64) -> (f32, bool) {
    let within = pts
        .iter()
        .take_while(|pt| pt.accuracy >= full - tol)
        .map(|pt| pt.lambda)
        .last();
    match within {
        Some(l) => (l, true),
        None => {
            let top = pts.iter().map(|pt| pt.accuracy).fold(f64::MIN, f64::max);
            let l = pts
                .iter()
                .filter(|pt| pt.accuracy >= top)
                .map(|pt| pt.lambda)
                .fold(0.0f32, f32::max);
            (l, false)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{choose_from, ctrl_flops, evaluate, pool, run_one, sweep, Point, GRID};
    use crate::control::nets::{Controller, ExitRnn, Mlp};
    use crate::control::outcomes::tests::{cfg, table, PHI0};

    fn pts(acc: &[(f32, f64)]) -> Vec<Point> {
        acc.iter()
            .map(|&(lambda, accuracy)| Point {
                lambda,
                accuracy,
                mean_flops: 0.0,
                histogram: vec![],
            })
            .collect()
    }

    #[test]
    fn default_budget_stops_at_the_first_budget_out_of_tolerance() {
        // Full depth 0.9032, tolerance 0.002: within means ≥ 0.9012.
        let (full, tol) = (0.9032, 0.002);
        // In tolerance up to 0.03, out at 0.05, back in at 0.3 (a bump): 0.03.
        let p = pts(&[
            (0.0, 0.9024),
            (0.01, 0.9034),
            (0.03, 0.9014),
            (0.05, 0.9010),
            (0.3, 0.9020),
            (1.0, 0.8990),
        ]);
        assert_eq!(choose_from(&p, full, tol), (0.03, true));
        // Every budget within: the largest.
        let p = pts(&[(0.0, 0.91), (0.5, 0.905), (1.0, 0.9012)]);
        assert_eq!(choose_from(&p, full, tol), (1.0, true));
        // The smallest already out: the most accurate, the largest λ among equals.
        let p = pts(&[(0.0, 0.89), (0.1, 0.895), (0.2, 0.895), (0.3, 0.88)]);
        assert_eq!(choose_from(&p, full, tol), (0.2, false));
    }

    /// A controller for [`table`] (3 paths, 20 features) whose every decision is known:
    /// `adaptive` starts at path 0 when feature 0 is below 0.5 and at path 1 above it (policy
    /// scores 0.5 − φ₀, φ₀ − 0.5, −1 through a hidden unit relu(φ₀)); the exit RNN (one unit,
    /// `tanh(0.75 − p_max − λ)`, output weight 1) continues while p_max < 0.75 − λ; `graph` runs
    /// path 0 below 0.5 and path 2 above it. Hidden widths: predictor 1, policy 2, graph 3.
    pub(crate) fn controller() -> Controller {
        let z = 20 + 3 + 1;
        let mut policy_w1 = vec![0.0; 2 * z];
        policy_w1[0] = 1.0; // unit 0 reads φ₀; unit 1 stays 0
        let mut graph_w1 = vec![0.0; 3 * z];
        graph_w1[0] = 1.0;
        Controller {
            p: 3,
            pred: Mlp {
                w1: vec![0.0; 20],
                b1: vec![0.0],
                w2: vec![0.0; 3],
                b2: vec![0.0; 3],
            },
            policy: Mlp {
                w1: policy_w1,
                b1: vec![0.0; 2],
                w2: vec![-1.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                b2: vec![0.5, -0.5, -1.0],
            },
            graph: Some(Mlp {
                w1: graph_w1,
                b1: vec![0.0; 3],
                w2: vec![-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
                b2: vec![0.5, -1.0, -0.5],
            }),
            rnn: ExitRnn {
                wx: vec![-1.0, 0.0, 0.0, -1.0, 0.0],
                wh: vec![0.0],
                b: vec![0.75],
                wo: vec![1.0],
                bo: 0.0,
            },
        }
    }

    /// Controller FLOPs in these tests: 1000 up front, 10 per level-2 decision.
    const CTRL: (u64, u64) = (1000, 10);

    #[test]
    fn controller_flops_of_each_mode() {
        // 8×8 grey: features 6·64 = 384 FLOPs, F = 20; P = 3, K = 3. Predictor 20 → 1 → 3:
        // 2·(20 + 3) = 46. Policy (adaptive) 24 → 2 → 3: 2·(24·2 + 2·3) = 108; graph 24 → 3 →
        // 3: 2·(24·3 + 3·3) = 162. Exit: 4·K = 12 for the statistics, 2·(5·1 + 1 + 1) = 14.
        let (c, ctrl) = (cfg(&[1, 2, 3]), controller());
        assert_eq!(ctrl_flops(&c, &ctrl, 2), (384 + 46 + 108, 26));
        assert_eq!(ctrl_flops(&c, &ctrl, 1), (384 + 46 + 162, 26));
    }

    #[test]
    fn each_input_finishes_where_its_decisions_send_it_and_pays_every_flop() {
        let (o, ctrl) = (table(), controller());
        assert_eq!(PHI0, [0.2, 0.8, 0.3, 0.9]);
        // adaptive, λ = 0: continue while p_max < 0.75.
        // Input 0 starts at 0, p_max 0.9 stops: 1000 + 100 + 1 decision.
        // Input 1 starts at 1, 0.8 stops: 1000 + 250 + 10.
        // Input 2 starts at 0, 0.5 and 0.7 continue, then no deeper path: 1000 + 100 + 2·10 +
        // 170 + 280 = 1570. Input 3 starts at 1, 0.7 continues: 1000 + 250 + 10 + 280 = 1540.
        let at = |lam, levels| -> Vec<(usize, u64)> {
            (0..4)
                .map(|i| run_one(&ctrl, &o, i, lam, levels, CTRL))
                .collect()
        };
        assert_eq!(at(0.0, 2), [(0, 1110), (1, 1260), (2, 1570), (2, 1540)]);
        // λ = 0.2: continue while p_max < 0.55; input 2 stops at 0.7 (path 1), input 3 at once.
        assert_eq!(at(0.2, 2), [(0, 1110), (1, 1260), (1, 1290), (1, 1260)]);
        // graph: paths 0, 2, 0, 2 and their FLOPs, no decision after.
        assert_eq!(at(0.0, 1), [(0, 1100), (2, 1500), (0, 1100), (2, 1500)]);
        // Right: λ = 0: inputs 0, 1, 2 of 4, FLOPs 5480 / 4; paths 0, 1, 2, 2.
        let want = |lambda, accuracy, mean_flops, histogram: [f64; 3]| Point {
            lambda,
            accuracy,
            mean_flops,
            histogram: histogram.to_vec(),
        };
        let p0 = want(0.0, 0.75, 1370.0, [0.25, 0.25, 0.5]);
        assert_eq!(evaluate(&ctrl, &o, 0.0, 2, CTRL), p0);
        // λ = 0.2: inputs 0 and 1 right; (1110 + 1260 + 1290 + 1260) / 4 = 1230.
        let p2 = want(0.2, 0.5, 1230.0, [0.25, 0.75, 0.0]);
        assert_eq!(evaluate(&ctrl, &o, 0.2, 2, CTRL), p2);
        // graph: input 0 right; 5200 / 4.
        let g = want(0.0, 0.25, 1300.0, [0.5, 0.0, 0.5]);
        assert_eq!(evaluate(&ctrl, &o, 0.0, 1, CTRL), g);
        // The sweep: one point per budget of the grid, in its order.
        let s = sweep(&ctrl, &o, 2, CTRL);
        let lambdas: Vec<f32> = s.iter().map(|p| p.lambda).collect();
        assert_eq!(lambdas, GRID);
        assert_eq!((&s[0], &s[12]), (&p0, &p2));
        assert_eq!(GRID[12], 0.2);
    }

    #[test]
    fn pooled_points_weigh_each_part_by_its_size() {
        let pt = |lambda, accuracy, mean_flops, histogram: &[f64]| Point {
            lambda,
            accuracy,
            mean_flops,
            histogram: histogram.to_vec(),
        };
        let parts = [
            vec![
                pt(0.0, 0.5, 100.0, &[1.0, 0.0]),
                pt(0.1, 1.0, 200.0, &[0.0, 1.0]),
            ],
            vec![
                pt(0.0, 0.9, 300.0, &[0.5, 0.5]),
                pt(0.1, 0.1, 500.0, &[0.25, 0.75]),
            ],
        ];
        // Weights 1/4 and 3/4. λ = 0: 0.125 + 0.675, 25 + 225, [0.25 + 0.375, 0.375].
        // λ = 0.1: 0.25 + 0.075, 50 + 375, [0.1875, 0.25 + 0.5625].
        let want = [
            (0.0, 0.8, 250.0, [0.625, 0.375]),
            (0.1, 0.325, 425.0, [0.1875, 0.8125]),
        ];
        let got = pool(&parts, &[1, 3]);
        assert_eq!(got.len(), 2);
        for (g, (l, a, f, h)) in got.iter().zip(want) {
            assert_eq!(g.lambda, l);
            assert!((g.accuracy - a).abs() < 1e-12, "{g:?}");
            assert!((g.mean_flops - f).abs() < 1e-9, "{g:?}");
            assert!((g.histogram[0] - h[0]).abs() < 1e-12, "{g:?}");
            assert!((g.histogram[1] - h[1]).abs() < 1e-12, "{g:?}");
        }
        assert!(pool(&[], &[]).is_empty());
    }

    #[test]
    fn shares_are_whole_percentages_per_path() {
        let p = Point {
            lambda: 0.0,
            accuracy: 0.0,
            mean_flops: 0.0,
            histogram: vec![0.333, 0.667, 0.0],
        };
        assert_eq!(p.shares(), "33/67/0");
    }
}
