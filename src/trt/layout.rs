//! Choosing between the two ways of keeping the weights on the device once (`per-path` and
//! `segments`, docs/JETSON.md) from what `tinv-run selftest` measured on this device.

use super::manifest::Layout;

/// One layout's measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayoutScore {
    /// The layout.
    pub layout: Layout,
    /// Mean latency of adaptive mode at the model's default budget, escalations included
    /// (what a deployment runs), µs.
    pub adaptive_us: f64,
    /// Device memory: weights once + one arena, bytes.
    pub device_bytes: u64,
}

/// Latencies within this fraction of each other count as a tie.
pub const LATENCY_TIE: f64 = 0.05;

/// The layout to deploy and why: the faster in adaptive mode unless the two are within
/// [`LATENCY_TIE`]; then the one that needs less device memory; then `per-path` (one engine
/// per path is the simpler thing to run). `None` for no scores.
pub fn recommend_layout(scores: &[LayoutScore]) -> Option<(Layout, String)> {
    let fastest = scores
        .iter()
        .min_by(|a, b| a.adaptive_us.total_cmp(&b.adaptive_us))?;
    let rivals: Vec<&LayoutScore> = scores
        .iter()
        .filter(|s| s.layout != fastest.layout)
        .collect();
    let Some(slowest) = rivals
        .iter()
        .max_by(|a, b| a.adaptive_us.total_cmp(&b.adaptive_us))
    else {
        return Some((fastest.layout, "the only layout measured".into()));
    };
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    let compare = |a: &LayoutScore, b: &LayoutScore| {
        format!(
            "adaptive {:.1} µs vs {:.1} µs ({}), device memory {:.2} MiB vs {:.2} MiB",
            a.adaptive_us,
            b.adaptive_us,
            b.layout.name(),
            mb(a.device_bytes),
            mb(b.device_bytes)
        )
    };
    if fastest.adaptive_us < slowest.adaptive_us * (1.0 - LATENCY_TIE) {
        return Some((
            fastest.layout,
            format!("faster: {}", compare(fastest, slowest)),
        ));
    }
    let mut tied: Vec<&LayoutScore> = scores
        .iter()
        .filter(|s| s.adaptive_us <= fastest.adaptive_us / (1.0 - LATENCY_TIE))
        .collect();
    tied.sort_by_key(|s| (s.device_bytes, s.layout != Layout::PerPath));
    let best = tied.first()?;
    let other = tied
        .iter()
        .find(|s| s.layout != best.layout)
        .unwrap_or(slowest);
    let why = if best.device_bytes < other.device_bytes {
        "as fast (within 5%) and smaller"
    } else {
        "as fast (within 5%) and as small; one engine per path is the simpler one to run"
    };
    Some((best.layout, format!("{why}: {}", compare(best, other))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(layout: Layout, adaptive_us: f64, device_bytes: u64) -> LayoutScore {
        LayoutScore {
            layout,
            adaptive_us,
            device_bytes,
        }
    }

    #[test]
    fn the_clearly_faster_layout_wins_even_when_larger() {
        let (l, why) = recommend_layout(&[
            s(Layout::PerPath, 100.0, 1000),
            s(Layout::Segments, 80.0, 5000),
        ])
        .unwrap();
        assert_eq!(l, Layout::Segments);
        assert!(
            why.starts_with("faster: adaptive 80.0 µs vs 100.0 µs (per-path)"),
            "{why}"
        );
    }

    #[test]
    fn within_five_percent_the_smaller_wins() {
        let (l, why) = recommend_layout(&[
            s(Layout::PerPath, 100.0, 6 << 20),
            s(Layout::Segments, 97.0, 4 << 20),
        ])
        .unwrap();
        assert_eq!(l, Layout::Segments);
        assert!(
            why.contains("smaller") && why.contains("4.00 MiB vs 6.00 MiB"),
            "{why}"
        );
        let (l, _) = recommend_layout(&[
            s(Layout::PerPath, 97.0, 4 << 20),
            s(Layout::Segments, 100.0, 6 << 20),
        ])
        .unwrap();
        assert_eq!(l, Layout::PerPath);
    }

    #[test]
    fn exactly_five_percent_faster_is_still_a_tie() {
        // 95 µs is 100 µs × (1 − 0.05) exactly (in f64 too): within the tie, so the smaller
        // per-path wins although segments is 5% faster.
        let (l, why) = recommend_layout(&[
            s(Layout::PerPath, 100.0, 4 << 20),
            s(Layout::Segments, 95.0, 6 << 20),
        ])
        .unwrap();
        assert_eq!(l, Layout::PerPath, "{why}");
        assert!(why.starts_with("as fast (within 5%) and smaller"), "{why}");
    }

    #[test]
    fn a_full_tie_goes_to_per_path_and_one_score_to_itself() {
        let (l, why) = recommend_layout(&[
            s(Layout::Segments, 100.0, 1000),
            s(Layout::PerPath, 101.0, 1000),
        ])
        .unwrap();
        assert_eq!(l, Layout::PerPath);
        assert!(why.contains("simpler"), "{why}");
        assert_eq!(
            recommend_layout(&[s(Layout::Segments, 1.0, 1)]).unwrap().0,
            Layout::Segments
        );
        assert!(recommend_layout(&[]).is_none());
    }
}
