//! Merging the rounds of a run: each (case, runtime, threads) row measured in several rounds in
//! rotation becomes one row of medians, and tinv/ORT ratios are paired within each round.

use crate::report;

/// One row per (case, runtime, threads) measured in any round, in first-measured order, each
/// numeric value replaced by its median over the rounds that have that row (a row whose child
/// failed in one round keeps the others' numbers).
pub fn median_rows(rounds: Vec<Vec<Row>>) -> Vec<Row> {
    let all: Vec<Row> = rounds.into_iter().flatten().collect();
    let mut out: Vec<Row> = Vec::new();
    for row in &all {
        if out
            .iter()
            .any(|r| r.is(&row.case, &row.runtime, row.threads))
        {
            continue;
        }
        let same: Vec<&Row> = all
            .iter()
            .filter(|r| r.is(&row.case, &row.runtime, row.threads))
            .collect();
        let kv = row
            .kv
            .iter()
            .map(|(k, v)| {
                let m = v
                    .parse::<f64>()
                    .ok()
                    .and_then(|_| median(same.iter().filter_map(|r| r.get(k)).collect()));
                (k.clone(), m.map_or_else(|| v.clone(), |m| format!("{m}")))
            })
            .collect();
        out.push(Row {
            case: row.case.clone(),
            runtime: row.runtime.clone(),
            threads: row.threads,
            kv,
        });
    }
    out
}

/// The median of `v` (the mean of the two middle values of an even count, as
/// [`tinv::timing::median_sorted`] defines it), `None` when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    tinv::timing::median_sorted(&v)
}

/// The (case, runtime, threads) rows that no round measured: a report without them would read
/// as "not measured" where the harness actually failed, so none is written.
pub fn missing_rows(rows: &[Row], expected: &[(String, &str, usize)]) -> Vec<String> {
    expected
        .iter()
        .filter(|(c, rt, t)| report::find(rows, c, rt, *t).is_none())
        .map(|(c, rt, t)| format!("{c}/{rt}/{t} thread(s)"))
        .collect()
}

/// One RESULT line, parsed.
pub struct Row {
    pub case: String,
    pub runtime: String,
    pub threads: usize,
    pub kv: Vec<(String, String)>,
}

impl Row {
    /// Whether this is the row of (`case`, `runtime`, `threads`).
    pub fn is(&self, case: &str, runtime: &str, threads: usize) -> bool {
        self.case == case && self.runtime == runtime && self.threads == threads
    }
    pub fn get(&self, k: &str) -> Option<f64> {
        self.kv
            .iter()
            .find(|(a, _)| a == k)
            .and_then(|(_, v)| v.parse().ok())
    }
    pub fn text(&self, k: &str) -> Option<&str> {
        self.kv
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Per thread count, the tinv / ONNX Runtime ratio of every round on `case` that has its
/// interleaved row ([`crate::child::PAIR`]: both runtimes in one process, alternating blocks).
/// A round whose interleaved child failed gives none: the p50s of the separately measured rows
/// are seconds apart, another method, and would be mixed in unannounced.
pub fn paired_ratios(rounds: &[Vec<Row>], case: &str, threads: &[usize]) -> Vec<(usize, Vec<f64>)> {
    threads
        .iter()
        .map(|&t| {
            let ratios = rounds
                .iter()
                .filter_map(|rows| {
                    report::find(rows, case, crate::child::PAIR, t).and_then(|r| r.get("ratio"))
                })
                .collect();
            (t, ratios)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{median, median_rows, missing_rows, paired_ratios, Row};

    fn row(runtime: &str, threads: usize, p50: f64) -> Row {
        Row {
            case: "vit-tiny".into(),
            runtime: runtime.into(),
            threads,
            kv: vec![("p50_us".into(), p50.to_string())],
        }
    }

    #[test]
    fn the_ratios_are_the_interleaved_rows() {
        // Round 1 has the interleaved measurement at 1 thread: its ratio, not the p50s of the
        // processes measured apart (80 / 100); round 2's interleaved child failed: no ratio
        // from it, rather than one by the other method.
        let pair = |t: usize, ratio: &str| {
            let mut r = row(crate::child::PAIR, t, 0.0);
            r.kv = vec![("ratio".into(), ratio.into())];
            r
        };
        let rounds = vec![
            vec![
                row("tinv", 1, 80.0),
                row("ort", 1, 100.0),
                pair(1, "0.95"),
                pair(2, "1.1"),
            ],
            vec![row("tinv", 1, 110.0), row("ort", 1, 100.0), pair(2, "1.2")],
        ];
        let got = paired_ratios(&rounds, "vit-tiny", &[1, 2]);
        assert_eq!(got, vec![(1, vec![0.95]), (2, vec![1.1, 1.2])]);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![10.0, 1.0]), Some(5.5));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 100.0]), Some(3.5));
    }

    #[test]
    fn median_rows_keep_rows_missing_from_the_first_round() {
        // ORT at 2 threads failed in round 1 only; tinv at 1 thread has three rounds.
        let rounds = vec![
            vec![row("tinv", 1, 90.0)],
            vec![row("tinv", 1, 30.0), row("ort", 2, 40.0)],
            vec![row("tinv", 1, 60.0), row("ort", 2, 50.0)],
        ];
        let rows = median_rows(rounds);
        assert_eq!(rows.len(), 2);
        assert!(rows[0].is("vit-tiny", "tinv", 1));
        assert_eq!(rows[0].get("p50_us"), Some(60.0));
        assert!(rows[1].is("vit-tiny", "ort", 2));
        assert_eq!(rows[1].get("p50_us"), Some(45.0));
        let expected = [
            ("vit-tiny".to_string(), "tinv", 1),
            ("vit-tiny".to_string(), "ort", 1),
            ("vit-tiny".to_string(), "ort", 2),
        ];
        assert_eq!(missing_rows(&rows, &expected), ["vit-tiny/ort/1 thread(s)"]);
    }
}
