//! The max-softmax threshold baseline as a curve, and `adaptive` mode measured against it: issue
//! 3's target is that at the adaptive run's accuracy the threshold curve, interpolated between
//! its τ values, spends more FLOPs.

use super::budget::Point;
use super::outcomes::Outcomes;
use crate::rng::Rng;
use std::fmt::Write;

/// The τ values of the baseline in every report.
pub const TAUS: [f32; 7] = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99];

/// `(accuracy, mean FLOPs)` of the threshold rule at each of `taus` (ascending), on `o`.
pub fn points(o: &Outcomes, taus: &[f32]) -> Vec<(f64, f64)> {
    taus.iter().map(|&t| o.threshold_point(t)).collect()
}

/// The fewest FLOPs at which the curve through `pts` (in τ order) reaches `accuracy`: a point at
/// least as accurate, or the interpolation on a segment between neighbouring τ values that
/// crosses it (running a share of the inputs at each τ). `None` when no point reaches it.
pub fn flops_at(pts: &[(f64, f64)], accuracy: f64) -> Option<f64> {
    let reached = pts.iter().filter(|(a, _)| *a >= accuracy).map(|&(_, f)| f);
    let crossed = pts.windows(2).filter_map(|w| {
        let ((a0, f0), (a1, f1)) = (w[0], w[1]);
        let (lo, hi) = (a0.min(a1), a0.max(a1));
        (lo < accuracy && accuracy < hi).then(|| f0 + (accuracy - a0) / (a1 - a0) * (f1 - f0))
    });
    reached.chain(crossed).reduce(f64::min)
}

/// Each `adaptive` point of `pts` against the threshold `curve` ([`points`] at [`TAUS`]), one
/// line each, the default budget `default` marked: what the curve spends at that accuracy and by
/// how much the adaptive point is above (spends more) or below it.
pub fn versus(curve: &[(f64, f64)], pts: &[Point], default: f32) -> String {
    let mut s = String::from(
        "adaptive vs the threshold curve (its FLOPs at adaptive's accuracy, interpolated \
         between τ = 0.5 … 0.99):\n",
    );
    let least = curve.iter().map(|&(a, _)| a).fold(f64::INFINITY, f64::min);
    for p in pts {
        let mark = if p.lambda == default {
            " (default)"
        } else {
            ""
        };
        let at = format!(
            "- λ = {}{mark}: {:.2} % at {:.3} MFLOPs",
            p.lambda,
            100.0 * p.accuracy,
            p.mean_flops / 1e6
        );
        if p.accuracy < least {
            // τ below 0.5 would reach it cheaper than the curve's first point: no comparison.
            let _ = writeln!(
                s,
                "{at}; below the curve's least accurate point (τ = {}: {:.2} %)",
                TAUS[0],
                100.0 * least
            );
            continue;
        }
        let _ = match flops_at(curve, p.accuracy) {
            Some(f) => writeln!(
                s,
                "{at}; threshold {:.3}: adaptive {} ({:+.1} %)",
                f / 1e6,
                if p.mean_flops < f {
                    "below the curve"
                } else {
                    "above the curve"
                },
                100.0 * (p.mean_flops / f - 1.0)
            ),
            None => writeln!(s, "{at}; the threshold curve never reaches that accuracy"),
        };
    }
    s
}

/// How often one `adaptive` point beats the threshold curve when the inputs are redrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resampled {
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples in which adaptive spends fewer FLOPs than the curve at its accuracy, or is more
    /// accurate than every point of it.
    pub beats: usize,
    /// Resamples in which the curve spends no more than adaptive at its accuracy.
    pub loses: usize,
    /// Resamples in which adaptive is less accurate than the curve's least accurate point (no
    /// comparison: a smaller τ might reach it cheaper).
    pub under: usize,
}

/// Paired bootstrap of the comparison [`versus`] makes: `resamples` times, draw as many inputs
/// as there are, with replacement, and place adaptive's point on them against the threshold
/// curve on the same inputs. `adaptive[i]` and `taus[t][i]` are input i's `(right, FLOPs)` under
/// adaptive and under the threshold rule at the t-th τ (ascending). It tells whether a place
/// above or below the curve on one test set is more than the luck of which images it holds.
pub fn bootstrap(
    adaptive: &[(bool, u64)],
    taus: &[Vec<(bool, u64)>],
    resamples: usize,
    seed: u64,
) -> Resampled {
    let n = adaptive.len();
    let mut out = Resampled {
        resamples: 0,
        beats: 0,
        loses: 0,
        under: 0,
    };
    if n == 0 || taus.iter().any(|t| t.len() != n) {
        return out;
    }
    out.resamples = resamples;
    let mut rng = Rng::new(seed, 0xB007);
    // Per resample: right counts and FLOPs sums of adaptive (slot 0) and every τ.
    let mut right = vec![0usize; taus.len() + 1];
    let mut flops = vec![0f64; taus.len() + 1];
    for _ in 0..resamples {
        right.fill(0);
        flops.fill(0.0);
        for _ in 0..n {
            let i = rng.below(n);
            let rows = std::iter::once(adaptive[i]).chain(taus.iter().map(|t| t[i]));
            for (s, (ok, f)) in rows.enumerate() {
                right[s] += usize::from(ok);
                flops[s] += f as f64;
            }
        }
        let point = |s: usize| (right[s] as f64 / n as f64, flops[s] / n as f64);
        let curve: Vec<(f64, f64)> = (1..=taus.len()).map(point).collect();
        let (acc, fl) = point(0);
        let least = curve.iter().map(|&(a, _)| a).fold(f64::INFINITY, f64::min);
        if acc < least {
            out.under += 1;
        } else if flops_at(&curve, acc).is_none_or(|f| fl < f) {
            out.beats += 1;
        } else {
            out.loses += 1;
        }
    }
    out
}

/// [`bootstrap`] of `adaptive` at `lambda` against the curve at [`TAUS`] on `o`, as one line.
pub fn bootstrap_line(
    o: &Outcomes,
    mut adaptive: impl FnMut(usize) -> (usize, u64),
    lambda: f32,
    resamples: usize,
) -> String {
    let per: Vec<(bool, u64)> = (0..o.n)
        .map(|i| {
            let (k, f) = adaptive(i);
            (o.right(i, k), f)
        })
        .collect();
    let taus: Vec<Vec<(bool, u64)>> = TAUS
        .iter()
        .map(|&t| {
            (0..o.n)
                .map(|i| {
                    let (j, f) = o.threshold_stop(i, t);
                    (o.right(i, j), f)
                })
                .collect()
        })
        .collect();
    let r = bootstrap(&per, &taus, resamples, 1);
    if r.resamples == 0 {
        return "resampled: no inputs to draw from\n".into();
    }
    let pct = |c: usize| 100.0 * c as f64 / r.resamples as f64;
    format!(
        "resampled (paired bootstrap: {} draws of the {} images with replacement, adaptive at \
         λ = {lambda} and the curve on the same draw): adaptive beats the curve in {:.1} % of \
         the draws, the curve spends no more in {:.1} %, adaptive is under its least accurate \
         point in {:.1} %\n",
        r.resamples,
        o.n,
        pct(r.beats),
        pct(r.loses),
        pct(r.under)
    )
}

#[cfg(test)]
mod tests {
    use super::{bootstrap, bootstrap_line, flops_at, versus, Point, Resampled};
    use crate::control::outcomes::tests::table;

    #[test]
    fn each_budget_is_placed_against_the_curve() {
        let curve = [(0.80, 10e6), (0.90, 20e6)];
        let pt = |lambda, accuracy, mean_flops| Point {
            lambda,
            accuracy,
            mean_flops,
            histogram: vec![],
        };
        let s = versus(
            &curve,
            &[
                pt(0.0, 0.85, 16e6),
                pt(0.1, 0.85, 14e6),
                pt(0.2, 0.95, 30e6),
                pt(0.3, 0.70, 5e6),
            ],
            0.1,
        );
        let lines: Vec<&str> = s.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "- λ = 0: 85.00 % at 16.000 MFLOPs; threshold 15.000: adaptive above the curve (+6.7 %)",
                "- λ = 0.1 (default): 85.00 % at 14.000 MFLOPs; threshold 15.000: adaptive below the curve (-6.7 %)",
                "- λ = 0.2: 95.00 % at 30.000 MFLOPs; the threshold curve never reaches that accuracy",
                "- λ = 0.3: 70.00 % at 5.000 MFLOPs; below the curve's least accurate point (τ = 0.5: 80.00 %)",
            ]
        );
    }

    #[test]
    fn interpolates_between_neighbouring_taus_and_takes_the_cheapest() {
        // (accuracy, FLOPs) in τ order; a dip at the third τ, a flat stretch after it.
        let c = [
            (0.80, 10.0),
            (0.90, 20.0),
            (0.88, 30.0),
            (0.90, 40.0),
            (0.95, 50.0),
        ];
        // On the first segment: 10 + (0.85 − 0.80)/(0.90 − 0.80)·10.
        assert!((flops_at(&c, 0.85).unwrap() - 15.0).abs() < 1e-9);
        // 0.89 is crossed by segments 1–2 (15 + …) and 2–3 and 3–4; 1–2 is the cheapest.
        assert!((flops_at(&c, 0.89).unwrap() - 19.0).abs() < 1e-9);
        // Exactly a point's accuracy: that point (the second, not the fourth).
        assert_eq!(flops_at(&c, 0.90), Some(20.0));
        // Above the flat stretch: only the last segment.
        assert!((flops_at(&c, 0.92).unwrap() - 44.0).abs() < 1e-9);
        // Below every point: the cheapest point is at least as accurate.
        assert_eq!(flops_at(&c, 0.5), Some(10.0));
        assert_eq!(flops_at(&c, 0.96), None);
    }

    #[test]
    fn a_point_exactly_at_the_accuracy_costs_its_own_flops() {
        // Not a segment's end interpolated: 0.2 + 1·(0.9 − 0.2) rounds to 0.8999999999999999
        // and 0.4 + 1·(0.1 − 0.4) to 0.09999999999999998, one step below the point itself.
        assert_eq!(flops_at(&[(0.8, 0.2), (0.9, 0.9)], 0.9), Some(0.9));
        // A dip: the cheaper, less accurate point second, asked for exactly its accuracy.
        assert_eq!(flops_at(&[(0.9, 0.4), (0.8, 0.1)], 0.8), Some(0.1));
    }

    /// Two threshold rules over `n` inputs: τ₀ right on the even inputs at 10 FLOPs each, τ₁
    /// wrong on every third at 20 (more accurate, dearer).
    fn two_taus(n: usize) -> Vec<Vec<(bool, u64)>> {
        vec![
            (0..n).map(|i| (i % 2 == 0, 10)).collect(),
            (0..n).map(|i| (i % 3 != 0, 20)).collect(),
        ]
    }

    #[test]
    fn bootstrap_counts_clear_wins_losses_and_misses_on_every_draw() {
        let n = 30;
        let taus = two_taus(n);
        let count = |adaptive: &[(bool, u64)]| bootstrap(adaptive, &taus, 200, 7);
        let all = |beats, loses, under| Resampled {
            resamples: 200,
            beats,
            loses,
            under,
        };
        // As accurate as τ₁ on every draw for 1 FLOP: below the curve every time.
        let win: Vec<_> = taus[1].iter().map(|&(ok, _)| (ok, 1)).collect();
        assert_eq!(count(&win), all(200, 0, 0));
        // τ₀'s answers for one FLOP more: the curve (τ₀ itself) is cheaper every time.
        let lose: Vec<_> = taus[0].iter().map(|&(ok, f)| (ok, f + 1)).collect();
        assert_eq!(count(&lose), all(0, 200, 0));
        // Never right: under τ₀, the least accurate point, whenever τ₀ gets one right.
        let miss = vec![(false, 1); n];
        let r = count(&miss);
        assert_eq!((r.beats, r.loses, r.under), (0, 0, 200));
        // Right more often than every τ (unless a draw misses every third input, p = 5e-6):
        // the curve never reaches it.
        let best = vec![(true, 1000); n];
        assert_eq!(count(&best), all(200, 0, 0));
        // No inputs, or tables of different lengths: nothing drawn.
        let none = Resampled {
            resamples: 0,
            beats: 0,
            loses: 0,
            under: 0,
        };
        assert_eq!(bootstrap(&[], &taus, 200, 7), none);
        assert_eq!(bootstrap(&win[1..], &taus, 200, 7), none);
    }

    #[test]
    fn bootstrap_is_paired() {
        // Adaptive answers exactly as τ₀ and spends one FLOP less on input 0 only. Drawn with
        // the curve (paired), it beats the curve exactly when input 0 is in the draw:
        // 1 − (1 − 1/n)ⁿ of draws (64.2 % for n = 20), and ties (the curve spends no more)
        // otherwise. An unpaired bootstrap would scatter it on both sides at random.
        let n = 20;
        let taus = two_taus(n);
        let mut adaptive = taus[0].clone();
        adaptive[0].1 -= 1;
        let r = bootstrap(&adaptive, &taus, 4000, 3);
        let expected = 1.0 - (1.0 - 1.0 / n as f64).powi(n as i32);
        let share = r.beats as f64 / r.resamples as f64;
        // Binomial standard deviation over 4000 draws: 0.76 points; 4 of them.
        assert!((share - expected).abs() < 0.03, "{share} vs {expected}");
        assert_eq!((r.beats + r.loses, r.under), (4000, 0));
    }

    #[test]
    fn a_budget_exactly_as_accurate_as_the_least_accurate_point_is_compared() {
        // 80 % is the curve's first point itself, reached at 10 MFLOPs: 9 is 10 % below it.
        let curve = [(0.80, 10e6), (0.90, 20e6)];
        let p = Point {
            lambda: 0.5,
            accuracy: 0.80,
            mean_flops: 9e6,
            histogram: vec![],
        };
        assert_eq!(
            versus(&curve, &[p], 0.1).lines().nth(1),
            Some("- λ = 0.5: 80.00 % at 9.000 MFLOPs; threshold 10.000: adaptive below the curve (-10.0 %)")
        );
    }

    #[test]
    fn bootstrap_line_reports_the_shares_of_draws() {
        let o = table();
        // Adaptive takes each input's shallowest right path (path 0 for input 3, which no
        // path gets right) for 1 FLOP: on every draw it is at least as accurate as every τ,
        // whose rules stop somewhere on the same inputs, and cheaper than any of them (≥ 100
        // FLOPs an input): it beats the curve in every draw.
        let oracle = [0, 1, 2, 0];
        let s = bootstrap_line(&o, |i| (oracle[i], 1), 0.25, 40);
        assert_eq!(
            s,
            "resampled (paired bootstrap: 40 draws of the 4 images with replacement, adaptive at \
             λ = 0.25 and the curve on the same draw): adaptive beats the curve in 100.0 % of \
             the draws, the curve spends no more in 0.0 %, adaptive is under its least accurate \
             point in 0.0 %\n"
        );
        // Path 0 everywhere for 1000 FLOPs: right on input 0 alone, as the τ = 0.5 rule, which
        // stops every input at path 0 (p_max ≥ 0.5 everywhere) for 100, so it is the least
        // accurate point (no rule is wrong on input 0, which is right at every path) and
        // spends less: the curve wins every draw.
        let s = bootstrap_line(&o, |_| (0, 1000), 0.25, 40);
        assert!(
            s.ends_with(
                "adaptive beats the curve in 0.0 % of the draws, the curve spends no more in \
                 100.0 %, adaptive is under its least accurate point in 0.0 %\n"
            ),
            "{s}"
        );
        assert_eq!(
            bootstrap_line(&o.subset(0..0), |_| (0, 1), 0.25, 40),
            "resampled: no inputs to draw from\n"
        );
    }
}
