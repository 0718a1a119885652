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
mod tests {
    use super::{choose_from, Point};

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
}
