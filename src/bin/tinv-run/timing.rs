//! Summaries of per-call timings, the same in every command (and in tools/bench's report).

/// The median of `v` (sorted in place): the mean of the middle two of an even count, not the
/// upper one (which reported the slower of two runs as their median). `v` must not be empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The 99th percentile of `v` (sorted in place): the value at rank `round((n − 1) · 0.99)`.
/// `v` must not be empty.
pub fn p99(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * 0.99).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        assert_eq!(median(&mut [3.0, 1.0]), 2.0);
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(p99(&mut [2.0, 1.0]), 2.0);
        let mut v: Vec<f64> = (1..=200).map(f64::from).collect();
        v.reverse();
        // round(199 · 0.99) = 197: the 198th smallest.
        assert_eq!(p99(&mut v), 198.0);
        assert_eq!(median(&mut v), 100.5);
    }
}
