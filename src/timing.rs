//! Summaries of per-call timings, one definition for tinv-run's `bench`, `eval` and `selftest`
//! and for tools/bench's report: the median is the mean of the middle two of an even count (the
//! upper one reported the slower of two runs as their median), the 99th percentile the value at
//! rank `round((n − 1) · 0.99)`.

/// The median of `v`, sorted ascending; `None` when empty.
pub fn median_sorted(v: &[f64]) -> Option<f64> {
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The 99th percentile of `v`, sorted ascending; `None` when empty.
pub fn p99_sorted(v: &[f64]) -> Option<f64> {
    let last = v.len().checked_sub(1)?;
    v.get((last as f64 * 0.99).round() as usize).copied()
}

/// `(median, p99)` of `v`, sorted in place; `(0, 0)` when empty.
pub fn summary(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (
        median_sorted(v).unwrap_or(0.0),
        p99_sorted(v).unwrap_or(0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        assert_eq!(summary(&mut [3.0, 1.0]), (2.0, 3.0));
        assert_eq!(summary(&mut [5.0, 1.0, 3.0]), (3.0, 5.0));
        assert_eq!(summary(&mut [7.0]), (7.0, 7.0));
        // Five values: the middle one (a test of three alone passes `n / 2 == 1` for odd `n`).
        assert_eq!(summary(&mut [9.0, 2.0, 7.0, 1.0, 4.0]), (4.0, 9.0));
        assert_eq!(summary(&mut [4.0, 1.0, 3.0, 2.0]).0, 2.5);
        assert_eq!(summary(&mut []), (0.0, 0.0));
        let mut v: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        // round(199 · 0.99) = 197: the 198th smallest.
        assert_eq!(summary(&mut v), (100.5, 198.0));
    }
}
