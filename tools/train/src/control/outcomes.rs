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
