//! Per-sample outcomes of a frozen backbone, cached once for controller training and for
//! reports: every path's logits → correctness and exit statistics (`tinv::control::exit_stats`),
//! and the level-1 features (`tinv::control::features_v1`) of the raw input — the very numbers the
//! runtime computes.

use crate::config::ModelConfig;
use crate::data::Dataset;
use crate::flops;
use crate::vit::Vit;

/// The cached outcome table of `n` samples over `p` paths.
#[derive(Clone, Debug)]
pub struct Outcomes {
    /// Samples.
    pub n: usize,
    /// Paths.
    pub p: usize,
    /// Classes.
    pub k: usize,
    /// `[n, p, k]` logits.
    pub logits: Vec<f32>,
    /// Labels.
    pub labels: Vec<u32>,
    /// `[n, p]`: whether path `j` classifies sample `i` right.
    pub correct: Vec<bool>,
    /// `[n, p]`: `(p_max, entropy / ln K, margin)` of each exit.
    pub stats: Vec<(f32, f32, f32)>,
    /// `[n, f]` level-1 features of the raw input.
    pub feats: Vec<f32>,
    /// Feature count F.
    pub f: usize,
    /// Backbone FLOPs of each path run from scratch.
    pub path_flops: Vec<u64>,
    /// FLOPs of continuing from path `j` to `j + 1` (length `p − 1`).
    pub step_flops: Vec<u64>,
}

impl Outcomes {
    /// Runs the backbone over `ds` (chunks of `chunk` images) and tabulates every path.
    pub fn collect(vit: &Vit, ds: &Dataset, chunk: usize) -> Result<Outcomes, String> {
        let c = &vit.cfg;
        let (p, k) = (c.paths(), c.classes);
        let f = tinv::control::feature_len(c.channels);
        let mut logits = vec![0f32; ds.len() * p * k];
        let mut feats = vec![0f32; ds.len() * f];
        let idx: Vec<usize> = (0..ds.len()).collect();
        // A progress line every tenth of a large set (55,000 training images take about a
        // minute and printed nothing).
        let tenth = ds.len().div_ceil(10).max(1);
        let start = std::time::Instant::now();
        let mut done = 0usize;
        for part in idx.chunks(chunk.max(1)) {
            let mut raw = Vec::with_capacity(part.len() * ds.image_len());
            for &i in part {
                let x = ds.image_f32(i);
                if !tinv::control::features_v1(
                    &x,
                    c.channels,
                    c.image_size[0],
                    c.image_size[1],
                    &mut feats[i * f..(i + 1) * f],
                ) {
                    return Err(format!("image {i}: size does not match the model"));
                }
                raw.extend_from_slice(&x);
            }
            let per_path = vit
                .logits_all_paths(&raw, part.len())
                .map_err(|e| e.to_string())?;
            for (j, lp) in per_path.iter().enumerate() {
                // NaN logits would count as a class (argmax) and give a table that looks fine.
                if let Some(at) = lp.iter().position(|v| !v.is_finite()) {
                    return Err(format!(
                        "image {}: exit at depth {} gives a non-finite logit ({}): the weights \
                         do not compute on this input",
                        part[at / k],
                        c.depths[j],
                        lp[at]
                    ));
                }
                for (r, &i) in part.iter().enumerate() {
                    let dst = (i * p + j) * k;
                    logits[dst..dst + k].copy_from_slice(&lp[r * k..(r + 1) * k]);
                }
            }
            let before = done;
            done += part.len();
            if ds.len() >= 10 * chunk.max(1) && before / tenth != done / tenth {
                crate::errln!(
                    "  outcomes: {done} of {} images ({:.0} s)",
                    ds.len(),
                    start.elapsed().as_secs_f64()
                );
            }
        }
        let labels = ds.labels.iter().map(|&l| u32::from(l)).collect();
        Ok(Outcomes::from_logits(c, logits, labels, feats))
    }

    /// Builds the table from logits `[n, p, k]`, labels and features `[n, f]`.
    pub fn from_logits(
        c: &ModelConfig,
        logits: Vec<f32>,
        labels: Vec<u32>,
        feats: Vec<f32>,
    ) -> Outcomes {
        let (p, k) = (c.paths(), c.classes);
        let n = labels.len();
        let mut correct = Vec::with_capacity(n * p);
        let mut stats = Vec::with_capacity(n * p);
        for (i, row) in logits.chunks_exact(k).enumerate() {
            correct.push(tinv::control::argmax(row) as u32 == labels[i / p]);
            stats.push(tinv::control::exit_stats(row));
        }
        Outcomes {
            n,
            p,
            k,
            logits,
            labels,
            correct,
            stats,
            f: feats.len() / n.max(1),
            feats,
            path_flops: (0..p).map(|j| flops::path(c, j)).collect(),
            step_flops: (0..p.saturating_sub(1))
                .map(|j| flops::step(c, j))
                .collect(),
        }
    }

    /// The samples `range` as their own table.
    pub fn subset(&self, range: std::ops::Range<usize>) -> Outcomes {
        let (p, k, f) = (self.p, self.k, self.f);
        Outcomes {
            n: range.len(),
            p,
            k,
            logits: self.logits[range.start * p * k..range.end * p * k].to_vec(),
            labels: self.labels[range.clone()].to_vec(),
            correct: self.correct[range.start * p..range.end * p].to_vec(),
            stats: self.stats[range.start * p..range.end * p].to_vec(),
            feats: self.feats[range.start * f..range.end * f].to_vec(),
            f,
            path_flops: self.path_flops.clone(),
            step_flops: self.step_flops.clone(),
        }
    }

    /// Every sample but those in `range`, as their own table (the training part of a fold).
    pub fn without(&self, range: std::ops::Range<usize>) -> Outcomes {
        let mut a = self.subset(0..range.start);
        let b = self.subset(range.end..self.n);
        a.n += b.n;
        a.logits.extend(b.logits);
        a.labels.extend(b.labels);
        a.correct.extend(b.correct);
        a.stats.extend(b.stats);
        a.feats.extend(b.feats);
        a
    }

    /// Whether path `j` is right on sample `i`.
    pub fn right(&self, i: usize, j: usize) -> bool {
        self.correct[i * self.p + j]
    }

    /// The oracle path of sample `i`: the shallowest right one, or the shallowest when none is.
    pub fn oracle(&self, i: usize) -> usize {
        (0..self.p).find(|&j| self.right(i, j)).unwrap_or(0)
    }

    /// FLOPs of the full-depth path.
    pub fn full_flops(&self) -> u64 {
        self.path_flops.last().copied().unwrap_or(1).max(1)
    }

    /// Accuracy of each static path.
    pub fn path_accuracy(&self) -> Vec<f64> {
        (0..self.p)
            .map(|j| {
                (0..self.n).filter(|&i| self.right(i, j)).count() as f64 / self.n.max(1) as f64
            })
            .collect()
    }

    /// `(accuracy, mean FLOPs)` of the oracle (no controller FLOPs).
    pub fn oracle_point(&self) -> (f64, f64) {
        let mut right = 0usize;
        let mut fl = 0f64;
        for i in 0..self.n {
            let j = self.oracle(i);
            right += usize::from(self.right(i, j));
            fl += self.path_flops[j] as f64;
        }
        (
            right as f64 / self.n.max(1) as f64,
            fl / self.n.max(1) as f64,
        )
    }

    /// Where the max-softmax threshold rule stops input `i` and the FLOPs it spends: the first
    /// exit whose `p_max ≥ tau` (the deepest otherwise), paying every exit head on the way.
    pub fn threshold_stop(&self, i: usize, tau: f32) -> (usize, u64) {
        let mut j = 0;
        let mut f = self.path_flops[0];
        while j + 1 < self.p && self.stats[i * self.p + j].0 < tau {
            f += self.step_flops[j];
            j += 1;
        }
        (j, f)
    }

    /// `(accuracy, mean FLOPs)` of the max-softmax threshold rule ([`Outcomes::threshold_stop`]).
    pub fn threshold_point(&self, tau: f32) -> (f64, f64) {
        let mut right = 0usize;
        let mut fl = 0f64;
        for i in 0..self.n {
            let (j, f) = self.threshold_stop(i, tau);
            right += usize::from(self.right(i, j));
            fl += f as f64;
        }
        (
            right as f64 / self.n.max(1) as f64,
            fl / self.n.max(1) as f64,
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::Outcomes;
    use crate::config::ModelConfig;

    /// 8×8 grey images, patch 4 (4 patches, 5 tokens), D 8, H 16, 3 classes, `depths`.
    pub(crate) fn cfg(depths: &[usize]) -> ModelConfig {
        serde_json::from_value(serde_json::json!({
            "image_size": [8, 8], "channels": 1, "patch": 4, "dim": 8,
            "blocks": depths.last().copied().unwrap_or(1), "heads": 2, "mlp_hidden": 16,
            "classes": 3, "ln_eps": 1e-6, "gelu": "erf", "mean": [0.0], "std": [1.0],
            "depths": depths}))
        .unwrap()
    }

    /// A hand-made table of 4 inputs over 3 paths (2 classes, 20 features), every number
    /// chosen: which paths are right, each exit's p_max, the FLOPs. `logits[(i·3 + j)·2 + c]`
    /// = 100·i + 10·j + c and `feats[i·20 + t]` = 100·i + t tell rows apart, except feature 0,
    /// which is [`PHI0`]`[i]` (what the budget tests' controller reads).
    ///
    /// | input | right at paths 0, 1, 2 | p_max at 0, 1, 2 |
    /// |---|---|---|
    /// | 0 | yes, yes, yes | 0.9, 0.95, 0.99 |
    /// | 1 | no, yes, no | 0.6, 0.8, 0.9 |
    /// | 2 | no, no, yes | 0.5, 0.7, 0.6 |
    /// | 3 | no, no, no | 0.7, 0.7, 0.2 |
    ///
    /// Path FLOPs 100, 250, 500; steps 170 (0 → 1) and 280 (1 → 2), not the differences of
    /// the paths (a step pays an exit head), so that a wrong sum shows.
    pub(crate) fn table() -> Outcomes {
        let right = [
            [true, true, true],
            [false, true, false],
            [false, false, true],
            [false, false, false],
        ];
        let p_max = [
            [0.9, 0.95, 0.99],
            [0.6, 0.8, 0.9],
            [0.5, 0.7, 0.6],
            [0.7, 0.7, 0.2],
        ];
        let (n, p, k, f) = (4, 3, 2, 20);
        Outcomes {
            n,
            p,
            k,
            logits: (0..n * p * k)
                .map(|r| (100 * (r / (p * k)) + 10 * (r / k % p) + r % k) as f32)
                .collect(),
            labels: vec![0, 1, 0, 1],
            correct: right.concat(),
            stats: p_max.concat().iter().map(|&m| (m, 0.5, 0.1)).collect(),
            feats: (0..n * f)
                .map(|r| {
                    if r % f == 0 {
                        PHI0[r / f]
                    } else {
                        (100 * (r / f) + r % f) as f32
                    }
                })
                .collect(),
            f,
            path_flops: vec![100, 250, 500],
            step_flops: vec![170, 280],
        }
    }

    /// [`table`] over four paths, for three decisions an episode: input i is right from path i
    /// on, and p_max rises along the paths and with the input (0.3 + 0.15·path + 0.05·i).
    /// Its logits, path and step FLOPs are still [`table`]'s, for three paths.
    pub(crate) fn four_path_table() -> Outcomes {
        let mut four = table();
        four.p = 4;
        four.correct = (0..16).map(|s| s % 4 >= s / 4).collect();
        four.stats = (0..16)
            .map(|s| {
                (
                    0.3 + 0.15 * (s % 4) as f32 + 0.05 * (s / 4) as f32,
                    0.4,
                    0.2,
                )
            })
            .collect();
        four
    }

    /// Feature 0 of each input of [`table`].
    pub(crate) const PHI0: [f32; 4] = [0.2, 0.8, 0.3, 0.9];

    #[test]
    fn oracle_paths_and_accuracies_of_a_hand_made_table() {
        let o = table();
        // The shallowest right path; input 3 has none, so path 0.
        let oracle: Vec<usize> = (0..4).map(|i| o.oracle(i)).collect();
        assert_eq!(oracle, [0, 1, 2, 0]);
        assert!(o.right(1, 1) && !o.right(1, 2) && o.right(2, 2) && !o.right(3, 0));
        // Right at path 0: input 0 (1/4); at 1: inputs 0, 1; at 2: inputs 0, 2.
        assert_eq!(o.path_accuracy(), [0.25, 0.5, 0.5]);
        // Oracle: 3 of 4 right; FLOPs 100 + 250 + 500 + 100 (input 3 at path 0) = 950 → 237.5.
        assert_eq!(o.oracle_point(), (0.75, 237.5));
        assert_eq!(o.full_flops(), 500);
    }

    #[test]
    fn the_threshold_rule_stops_at_the_first_confident_exit_and_pays_each_step() {
        let o = table();
        // τ = 0.7: input 0 stops at once (0.9); input 1 goes on (0.6) and stops at 0.8; input
        // 2 goes on (0.5) and stops at exactly 0.7 (p_max ≥ τ stops); input 3 stops at once
        // (exactly 0.7). FLOPs: 100, 100 + 170 = 270, 270, 100.
        let stops: Vec<(usize, u64)> = (0..4).map(|i| o.threshold_stop(i, 0.7)).collect();
        assert_eq!(stops, [(0, 100), (1, 270), (1, 270), (0, 100)]);
        // Right: inputs 0 (path 0) and 1 (path 1), 2 of 4; FLOPs 740 / 4.
        assert_eq!(o.threshold_point(0.7), (0.5, 185.0));
        // τ = 0.95: input 0 stops at path 1 (0.95), the others run to the deepest, 100 + 170
        // + 280 = 550; right: inputs 0 and 2; FLOPs (270 + 3·550) / 4 = 480.
        let stops: Vec<(usize, u64)> = (0..4).map(|i| o.threshold_stop(i, 0.95)).collect();
        assert_eq!(stops, [(1, 270), (2, 550), (2, 550), (2, 550)]);
        assert_eq!(o.threshold_point(0.95), (0.5, 480.0));
        // τ = 0.5: every input stops at path 0 (input 2 at exactly 0.5); only input 0 right.
        assert_eq!(o.threshold_point(0.5), (0.25, 100.0));
        // The curve is those points in τ order.
        assert_eq!(
            crate::control::threshold_curve::points(&o, &[0.5, 0.7, 0.95]),
            [(0.25, 100.0), (0.5, 185.0), (0.5, 480.0)]
        );
    }

    #[test]
    fn subsets_keep_their_rows_of_every_table() {
        let o = table();
        // Rows of input i: logits 100·i + 10·j + c, features 100·i + t past feature 0.
        let logits = |i: usize| -> Vec<f32> {
            (0..3)
                .flat_map(|j| (0..2).map(move |c| (100 * i + 10 * j + c) as f32))
                .collect()
        };
        let s = o.subset(1..3);
        assert_eq!((s.n, s.p, s.k, s.f), (2, 3, 2, 20));
        assert_eq!(s.logits, [logits(1), logits(2)].concat());
        assert_eq!(s.labels, [1, 0]);
        assert_eq!(s.correct, [false, true, false, false, false, true]);
        let pm: Vec<f32> = s.stats.iter().map(|t| t.0).collect();
        assert_eq!(pm, [0.6, 0.8, 0.9, 0.5, 0.7, 0.6]);
        assert_eq!(s.feats.len(), 40);
        assert_eq!(
            (s.feats[0], s.feats[1], s.feats[20], s.feats[39]),
            (0.8, 101.0, 0.3, 219.0)
        );
        assert_eq!(
            (s.path_flops, s.step_flops),
            (vec![100, 250, 500], vec![170, 280])
        );
        // Without input 1: inputs 0, 2, 3.
        let w = o.without(1..2);
        assert_eq!((w.n, w.p, w.k, w.f), (3, 3, 2, 20));
        assert_eq!(w.logits, [logits(0), logits(2), logits(3)].concat());
        assert_eq!(w.labels, [0, 0, 1]);
        assert_eq!(w.oracle_point(), (2.0 / 3.0, 700.0 / 3.0));
        let pm: Vec<f32> = w.stats.iter().map(|t| t.0).collect();
        assert_eq!(pm, [0.9, 0.95, 0.99, 0.5, 0.7, 0.6, 0.7, 0.7, 0.2]);
        assert_eq!((w.feats[0], w.feats[20], w.feats[41]), (0.2, 0.3, 301.0));
    }

    #[test]
    fn from_logits_scores_each_row_against_its_inputs_label() {
        // Paths at depths 1 and 3 of this model. FLOPs by hand: stem 2·(4 patches · 16 pixels
        // · 8) = 1024; a block (5 tokens) 2·5·8·24 + 2·2·5·5·8 + 2·5·8·8 + 2·2·5·8·16 = 1920 +
        // 800 + 640 + 2560 = 5920; an exit head 2·8·3 = 48. Path 0: 1024 + 5920 + 48 = 6992;
        // path 1: 1024 + 3·5920 + 48 = 18832; the step: 2·5920 + 48 = 11888.
        let c = cfg(&[1, 3]);
        // [input][path] rows over 3 classes; labels 0, 1, 2.
        let logits = vec![
            2.0, 1.0, 0.0, /* path 1 */ 0.0, 0.0, 5.0, // input 0: argmax 0, 2
            0.0, 3.0, 1.0, /* path 1 */ 1.0, 0.0, 0.0, // input 1: argmax 1, 0
            1.0, 0.0, 0.0, /* path 1 */ 0.0, 0.0, 4.0, // input 2: argmax 0, 2
        ];
        let o = Outcomes::from_logits(&c, logits, vec![0, 1, 2], vec![0.5; 60]);
        assert_eq!((o.n, o.p, o.k, o.f), (3, 2, 3, 20));
        assert_eq!(o.correct, [true, false, true, false, false, true]);
        assert_eq!(o.path_flops, [6992, 18832]);
        assert_eq!(o.step_flops, [11888]);
        // p_max of [2, 1, 0]: 1 / (1 + e⁻¹ + e⁻²); its margin over the second: (1 − e⁻¹) times
        // that.
        let top = 1.0 / (1.0 + (-1f64).exp() + (-2f64).exp());
        let (pm, _, margin) = o.stats[0];
        assert!((f64::from(pm) - top).abs() < 1e-6, "{pm} vs {top}");
        assert!((f64::from(margin) - top * (1.0 - (-1f64).exp())).abs() < 1e-6);
        // p_max of input 1's path 1, [1, 0, 0]: e / (e + 2).
        let e = 1f64.exp();
        assert!((f64::from(o.stats[3].0) - e / (e + 2.0)).abs() < 1e-6);
    }

    #[test]
    fn collect_tabulates_every_image_and_exit_as_the_model_computes_them() {
        use crate::data::Dataset;
        use crate::rng::Rng;
        let c = cfg(&[1, 2]);
        let mut rng = Rng::new(5, 0);
        let vit =
            crate::vit::Vit::from_host(&c, &crate::tensors::init_backbone(&c, &mut rng)).unwrap();
        // 5 images in chunks of 2 (the last one alone).
        let n = 5;
        let ds = Dataset {
            c: 1,
            h: 8,
            w: 8,
            images: (0..n * 64).map(|_| rng.below(256) as u8).collect(),
            labels: vec![0, 1, 2, 1, 0],
        };
        let o = Outcomes::collect(&vit, &ds, 2).unwrap();
        assert_eq!((o.n, o.p, o.k, o.f), (5, 2, 3, 20));
        assert_eq!(o.labels, [0, 1, 2, 1, 0]);
        for i in 0..n {
            // Each image alone through the model, and the runtime's features of it.
            let x = ds.image_f32(i);
            let alone = vit.logits_all_paths(&x, 1).unwrap();
            assert_eq!(alone.len(), 2);
            for (j, path) in alone.iter().enumerate() {
                let row = &o.logits[(i * 2 + j) * 3..(i * 2 + j + 1) * 3];
                for (a, b) in row.iter().zip(path) {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "image {i} path {j}: {row:?} vs {path:?}"
                    );
                }
            }
            let mut phi = vec![0f32; 20];
            assert!(tinv::control::features_v1(&x, 1, 8, 8, &mut phi));
            assert_eq!(&o.feats[i * 20..(i + 1) * 20], &phi[..], "image {i}");
        }
    }
}
