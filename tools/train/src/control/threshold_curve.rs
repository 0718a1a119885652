//! The max-softmax threshold baseline as a curve, and `adaptive` mode measured against it: issue
//! 3's target is that at the adaptive run's accuracy the threshold curve, interpolated between
//! its τ values, spends more FLOPs.

use super::budget::Point;
use super::outcomes::Outcomes;
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

#[cfg(test)]
mod tests {
    use super::{flops_at, versus, Point};

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
}
