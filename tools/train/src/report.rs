//! Controller stage and reports: trains the controller on the validation outcomes of a backbone
//! checkpoint, picks the default budget, writes the final checkpoint, and prints accuracy-vs-FLOPs
//! tables (static exits, oracle, threshold baseline, `graph`, `adaptive`) for any split.

use crate::checkpoint::{self, CONFIG_KEY};
use crate::config::{ControllerJson, ModelConfig};
use crate::control::budget::{self, Point};
use crate::control::nets::Controller;
use crate::control::outcomes::Outcomes;
use crate::control::ppo::{self, PpoOpts};
use crate::control::threshold_curve;
use crate::data::Dataset;
use crate::tensors::HostTensor;
use crate::vit::Vit;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

/// A checkpoint's configuration, tensors and metadata.
pub struct Loaded {
    /// Model configuration from `tinv.config`.
    pub cfg: ModelConfig,
    /// Every tensor.
    pub tensors: Vec<HostTensor>,
    /// All metadata.
    pub meta: HashMap<String, String>,
    /// The file it was read from, for error messages.
    pub path: std::path::PathBuf,
}

/// Reads a checkpoint written by tinv-train.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let (tensors, meta) = checkpoint::load(path)?;
    let j = meta.get(CONFIG_KEY).ok_or_else(|| {
        format!(
            "{}: no '{CONFIG_KEY}' metadata (not a model checkpoint written by tinv-train{})",
            path.display(),
            if meta.contains_key(crate::snapshot::OPTIM_STEP_KEY) || checkpoint::is_optim_name(path)
            {
                "; this is the optimizer state beside one"
            } else {
                ""
            }
        )
    })?;
    let cfg: ModelConfig =
        serde_json::from_str(j).map_err(|e| format!("{}: '{CONFIG_KEY}': {e}", path.display()))?;
    cfg.to_runtime()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Loaded {
        cfg,
        tensors,
        meta,
        path: path.to_path_buf(),
    })
}

impl Loaded {
    /// The backbone (its configuration without the controller, and the model) checked against
    /// the images of `ds`; errors name the checkpoint.
    fn backbone(&self, ds: &Dataset) -> Result<(ModelConfig, Vit), String> {
        let mut cfg = self.cfg.clone();
        cfg.controller = None;
        let vit = Vit::from_host(&cfg, &self.tensors)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        // Every other tensor must be the controller's (checked where it is read): an exit head
        // for a depth that is not a path, or a LayerScale, was ignored here and copied on into
        // checkpoints that tinv-fold refuses.
        let own: std::collections::HashSet<String> = crate::tensors::backbone_specs(&cfg)
            .into_iter()
            .map(|t| t.name)
            .collect();
        if let Some(t) = self
            .tensors
            .iter()
            .find(|t| !own.contains(&t.name) && !t.name.starts_with("ctrl."))
        {
            return Err(format!(
                "{}: tensor '{}' is not part of this model (its configuration has no place for \
                 it; tinv-fold refuses it too)",
                self.path.display(),
                t.name
            ));
        }
        crate::data::check(ds, &cfg)
            .map_err(|e| format!("{e} (model of {})", self.path.display()))?;
        Ok((cfg, vit))
    }
}

/// The trainer's model from a checkpoint, for parity tests against the runtime: then
/// [`Vit::logits_all_paths`] gives every exit's logits for raw CHW images in [0, 1].
pub fn load_vit(path: &Path) -> Result<Vit, String> {
    let l = load(path)?;
    Vit::from_host(&l.cfg, &l.tensors).map_err(|e| format!("{}: {e}", path.display()))
}

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

fn mflops(v: f64) -> String {
    format!("{:.3}", v / 1e6)
}

/// A Markdown accuracy-vs-FLOPs table of the outcome table `o`, with the controller's `graph`
/// and `adaptive` sweeps ([`sweeps`]) if given.
pub fn table(cfg: &ModelConfig, o: &Outcomes, sweeps: Option<&[Vec<Point>; 2]>) -> String {
    let full = o.full_flops() as f64;
    let mut s = String::new();
    let _ = writeln!(s, "| method | setting | accuracy % | mean MFLOPs | % of full FLOPs | paths (share per depth) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let row = |s: &mut String, m: &str, set: &str, acc: f64, fl: f64, hist: &str| {
        let _ = writeln!(
            s,
            "| {m} | {set} | {} | {} | {:.1} | {hist} |",
            pct(acc),
            mflops(fl),
            100.0 * fl / full
        );
    };
    for (j, acc) in o.path_accuracy().iter().enumerate() {
        row(
            &mut s,
            "static exit",
            &format!("depth {}", cfg.depths[j]),
            *acc,
            o.path_flops[j] as f64,
            "",
        );
    }
    let (oa, of) = o.oracle_point();
    row(&mut s, "oracle", "shallowest right path", oa, of, "");
    let taus = threshold_curve::TAUS;
    for (tau, (a, f)) in taus.iter().zip(threshold_curve::points(o, &taus)) {
        row(&mut s, "threshold", &format!("τ = {tau}"), a, f, "");
    }
    if let Some(sweeps) = sweeps {
        for (name, pts) in ["graph", "adaptive"].iter().zip(sweeps) {
            for p in pts {
                row(
                    &mut s,
                    name,
                    &format!("λ = {}", p.lambda),
                    p.accuracy,
                    p.mean_flops,
                    &p.shares(),
                );
            }
        }
    }
    s
}

/// Folds of the cross-validation that chooses the default budget: the validation split needs at
/// least this many images.
pub const FOLDS: usize = 5;

/// Trains the controller on `val` for the backbone in `loaded` (the `graph` policy's routing on
/// `route` when given), sets the default budget (the largest λ up to which every budget's
/// cross-validated adaptive accuracy is within `tol` of full depth on `val`) and writes the
/// final checkpoint to `out`. Returns the report.
pub fn controller_stage(
    loaded: &Loaded,
    val: &Dataset,
    route: Option<&Dataset>,
    opts: &PpoOpts,
    tol: f64,
    out: &Path,
) -> Result<String, String> {
    let (mut cfg, vit) = loaded.backbone(val)?;
    let t0 = std::time::Instant::now();
    let all = Outcomes::collect(&vit, val, 500)?;
    let route = match route {
        Some(ds) => {
            crate::errln!(
                "caching the outcomes of {} training images for the graph policy",
                ds.len()
            );
            Some(Outcomes::collect(&vit, ds, 500)?)
        }
        None => None,
    };
    let collect_s = t0.elapsed().as_secs_f64();
    // The default budget is chosen out of sample, by 5-fold cross-validation on the validation
    // split: each fold is scored by a controller trained on the other four, and the pooled
    // accuracy of every λ is compared with full depth (a controller scored on its own training
    // samples looks better than it is, and a single 20% hold-out was too noisy to choose from).
    // The controller that ships is then trained on the whole split.
    let (mut parts, mut sizes) = (Vec::new(), Vec::new());
    for f in 0..FOLDS {
        let fold = all.n * f / FOLDS..all.n * (f + 1) / FOLDS;
        // Probes choose the budget of `adaptive` mode; they need no graph policy.
        let probe_opts = PpoOpts {
            graph: false,
            ..opts.clone()
        };
        let probe = ppo::train(&all.without(fold.clone()), None, &probe_opts)?;
        let held = all.subset(fold);
        parts.push(budget::sweep(
            &probe,
            &held,
            2,
            budget::ctrl_flops(&cfg, &probe, 2),
        ));
        sizes.push(held.n);
    }
    let pooled = budget::pool(&parts, &sizes);
    let full = all.path_accuracy().last().copied().unwrap_or(0.0);
    let (lam, within) = budget::choose_from(&pooled, full, tol);
    let ctrl = ppo::train(&all, route.as_ref(), opts)?;
    let o = &all;
    cfg.controller = Some(ControllerJson {
        features: tinv::control::FEATURES_V1.into(),
        default_budget: decimal(lam),
    });
    let mut tensors: Vec<HostTensor> = loaded
        .tensors
        .iter()
        .filter(|t| !t.name.starts_with("ctrl."))
        .cloned()
        .collect();
    tensors.extend(ctrl.to_tensors());
    let mut meta = loaded.meta.clone();
    meta.insert(
        CONFIG_KEY.into(),
        serde_json::to_string(&cfg).map_err(|e| e.to_string())?,
    );
    checkpoint::save(out, &tensors, &meta)?;
    let rule = format!(
        "{FOLDS}-fold cross-validated adaptive accuracy on the validation split is within {:.1} \
         points of full depth ({:.2} %)",
        100.0 * tol,
        100.0 * full
    );
    let why = if within {
        format!("the largest λ up to which every budget's {rule}")
    } else {
        format!("no budget's {rule}, so the most accurate budget (the largest λ among equals)")
    };
    let mut s = format!(
        "controller trained on {} validation images{} in {:.0} s (outcomes {:.0} s); default budget λ = {lam}: \
         {why}\n\n| λ | cross-validated accuracy % | % of full FLOPs | paths |\n|---|---|---|---|\n",
        o.n,
        route.as_ref().map_or(String::new(), |r| format!(
            " (graph policy: routing from the outcomes of {} training images)",
            r.n
        )),
        t0.elapsed().as_secs_f64(),
        collect_s,
    );
    let ff = o.full_flops() as f64;
    for pt in &pooled {
        s.push_str(&format!(
            "| {} | {:.2} | {:.1} | {} |\n",
            pt.lambda,
            100.0 * pt.accuracy,
            100.0 * pt.mean_flops / ff,
            pt.shares()
        ));
    }
    Ok(s)
}

/// Draws of the paired bootstrap under `eval`'s threshold comparison.
const BOOTSTRAP_DRAWS: usize = 1000;

/// Evaluates a final checkpoint on `ds` (e.g. the test split) and returns the report.
pub fn eval(loaded: &Loaded, ds: &Dataset) -> Result<String, String> {
    let (cfg, vit) = loaded.backbone(ds)?;
    let ctrl_cfg = loaded.cfg.controller.clone();
    let ctrl = match ctrl_cfg {
        Some(_) => Some(
            Controller::from_tensors(&loaded.tensors, cfg.paths())
                .map_err(|e| format!("{}: {e}", loaded.path.display()))?,
        ),
        None => None,
    };
    // Controller tensors the controller does not read (or any without a controller).
    let read: Vec<String> = ctrl
        .as_ref()
        .map(|c| c.to_tensors().into_iter().map(|t| t.name).collect())
        .unwrap_or_default();
    if let Some(t) = loaded
        .tensors
        .iter()
        .find(|t| t.name.starts_with("ctrl.") && !read.contains(&t.name))
    {
        return Err(format!(
            "{}: tensor '{}' is not part of {} (tinv-fold refuses it too)",
            loaded.path.display(),
            t.name,
            if ctrl.is_some() {
                "its controller"
            } else {
                "this model: its configuration has no controller"
            }
        ));
    }
    let t = std::time::Instant::now();
    crate::errln!(
        "running {} images through every exit of {}",
        ds.len(),
        loaded.path.display()
    );
    let o = Outcomes::collect(&vit, ds, 500)?;
    crate::errln!(
        "done in {:.0} s{}",
        t.elapsed().as_secs_f64(),
        if ctrl_cfg.is_some() {
            "; evaluating the controller"
        } else {
            ""
        }
    );
    let mut s = format!("{} images\n\n", o.n);
    if let Some(c) = &ctrl_cfg {
        // As the runtime reads it (f32); older checkpoints stored the f32 widened to f64.
        let _ = writeln!(s, "default budget λ = {}\n", c.default_budget as f32);
    }
    let sweeps = ctrl.as_ref().map(|c| sweeps(&cfg, &o, c));
    s.push_str(&table(&cfg, &o, sweeps.as_ref()));
    if let Some([graph, adaptive]) = &sweeps {
        s.push('\n');
        s.push_str(&graph_vs_static(&cfg, &o, graph));
        let default = ctrl_cfg
            .as_ref()
            .map_or(f32::NAN, |c| c.default_budget as f32);
        s.push('\n');
        let curve = threshold_curve::points(&o, &threshold_curve::TAUS);
        s.push_str(&threshold_curve::versus(&curve, adaptive, default));
        if let Some(c) = &ctrl {
            let flops = budget::ctrl_flops(&cfg, c, 2);
            s.push_str(&threshold_curve::bootstrap_line(
                &o,
                |i| budget::run_one(c, &o, i, default, 2, flops),
                default,
                BOOTSTRAP_DRAWS,
            ));
        }
    }
    Ok(s)
}

/// The controller's `graph` and `adaptive` points at every budget of [`budget::GRID`].
pub fn sweeps(cfg: &ModelConfig, o: &Outcomes, c: &Controller) -> [Vec<Point>; 2] {
    [1u8, 2].map(|levels| budget::sweep(c, o, levels, budget::ctrl_flops(cfg, c, levels)))
}

/// The shortest decimal that reads back as the same f32 (0.03, not 0.029999999329447746): the
/// runtime keeps λ as f32, and people read the checkpoint's JSON.
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// `graph` mode against every static exit, from its λ sweep `pts`: at each exit's FLOPs, the
/// most accurate graph point spending no more (the sweep's envelope); and the fewest FLOPs at
/// which graph reaches the accuracy of the cheapest exit within 0.3 points of full depth.
pub fn graph_vs_static(cfg: &ModelConfig, o: &Outcomes, pts: &[Point]) -> String {
    let acc = o.path_accuracy();
    let full = acc.last().copied().unwrap_or(0.0);
    let mut s = String::from("graph vs static exits (best graph point at no more FLOPs):\n");
    for (j, &a) in acc.iter().enumerate() {
        let fl = o.path_flops[j] as f64;
        let best = pts
            .iter()
            .filter(|p| p.mean_flops <= fl)
            .max_by(|x, y| x.accuracy.total_cmp(&y.accuracy));
        let _ = match best {
            Some(b) => writeln!(
                s,
                "- depth {}: {} % at {} MFLOPs; graph {} % at {} (λ = {}): {}",
                cfg.depths[j],
                pct(a),
                mflops(fl),
                pct(b.accuracy),
                mflops(b.mean_flops),
                b.lambda,
                if b.accuracy >= a {
                    "at least as accurate"
                } else {
                    "LESS accurate"
                }
            ),
            None => {
                let c = pts
                    .iter()
                    .min_by(|x, y| x.mean_flops.total_cmp(&y.mean_flops));
                writeln!(
                    s,
                    "- depth {}: {} % at {} MFLOPs; no graph point spends that little (its \
                     controller comes on top of the cheapest path){}",
                    cfg.depths[j],
                    pct(a),
                    mflops(fl),
                    c.map_or(String::new(), |c| format!(
                        ": its cheapest is {} % at {} (λ = {}), {} MFLOPs more",
                        pct(c.accuracy),
                        mflops(c.mean_flops),
                        c.lambda,
                        mflops(c.mean_flops - fl)
                    ))
                )
            }
        };
    }
    if let Some(j) = acc.iter().position(|&a| a >= full - 0.003) {
        let fl = o.path_flops[j] as f64;
        let cheapest = pts
            .iter()
            .filter(|p| p.accuracy >= acc[j])
            .min_by(|x, y| x.mean_flops.total_cmp(&y.mean_flops));
        let _ = match cheapest {
            Some(c) => writeln!(
                s,
                "- at depth {}'s accuracy ({} %, the cheapest exit within 0.3 points of full \
                 depth): graph spends {} MFLOPs (λ = {}), {:.1} % fewer than depth {}",
                cfg.depths[j],
                pct(acc[j]),
                mflops(c.mean_flops),
                c.lambda,
                100.0 * (1.0 - c.mean_flops / fl),
                cfg.depths[j]
            ),
            None => writeln!(
                s,
                "- graph never reaches depth {}'s accuracy ({} %)",
                cfg.depths[j],
                pct(acc[j])
            ),
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_stored_as_the_decimal_people_typed() {
        assert_eq!(decimal(0.03), 0.03);
        assert_ne!(f64::from(0.03f32), 0.03);
        for x in [0.0f32, 1e-7, 0.1, 0.3, 1.0 / 3.0, 0.999_999_9] {
            assert_eq!(decimal(x) as f32, x, "{x}");
        }
    }

    /// The hand-made outcome table of the controller tests, its FLOPs scaled to millions.
    fn scaled() -> (ModelConfig, Outcomes) {
        let mut o = crate::control::outcomes::tests::table();
        o.path_flops = vec![1_000_000, 2_500_000, 5_000_000];
        o.step_flops = vec![1_700_000, 2_800_000];
        (crate::control::outcomes::tests::cfg(&[1, 2, 3]), o)
    }

    fn pt(lambda: f32, accuracy: f64, mean_flops: f64) -> Point {
        Point {
            lambda,
            accuracy,
            mean_flops,
            histogram: vec![0.25, 0.5, 0.25],
        }
    }

    #[test]
    fn the_table_has_a_row_per_exit_the_oracle_each_tau_and_each_budget() {
        let (cfg, o) = scaled();
        let sweeps = [vec![pt(0.1, 0.5, 5e6)], vec![pt(0.2, 0.625, 2e6)]];
        let t = table(&cfg, &o, Some(&sweeps));
        let lines: Vec<&str> = t.lines().collect();
        // Header, rule, 3 exits, the oracle, 7 τ, 1 graph and 1 adaptive budget.
        assert_eq!(lines.len(), 2 + 3 + 1 + 7 + 2);
        // Depth 1: 1 of 4 right, 1 MFLOPs, 20 % of the 5 of full depth.
        assert_eq!(
            lines[2],
            "| static exit | depth 1 | 25.00 | 1.000 | 20.0 |  |"
        );
        assert_eq!(
            lines[4],
            "| static exit | depth 3 | 50.00 | 5.000 | 100.0 |  |"
        );
        // The oracle: 3 of 4 right at (1 + 2.5 + 5 + 1) / 4 = 2.375 MFLOPs.
        assert_eq!(
            lines[5],
            "| oracle | shallowest right path | 75.00 | 2.375 | 47.5 |  |"
        );
        // τ = 0.5 stops everything at path 0; τ = 0.7 as in the outcome tests, × 10⁴.
        assert_eq!(
            lines[6],
            "| threshold | τ = 0.5 | 25.00 | 1.000 | 20.0 |  |"
        );
        assert_eq!(
            lines[8],
            "| threshold | τ = 0.7 | 50.00 | 1.850 | 37.0 |  |"
        );
        assert_eq!(
            lines[13],
            "| graph | λ = 0.1 | 50.00 | 5.000 | 100.0 | 25/50/25 |"
        );
        assert_eq!(
            lines[14],
            "| adaptive | λ = 0.2 | 62.50 | 2.000 | 40.0 | 25/50/25 |"
        );
    }

    #[test]
    fn graph_is_set_against_each_exit_and_the_cheapest_exit_near_full_depth() {
        let (cfg, o) = scaled();
        // Exits: 25 % at 1 MFLOPs, 50 % at 2.5, 50 % at 5 (full depth).
        let pts = [pt(0.5, 0.3, 1.2e6), pt(0.1, 0.5, 5e6), pt(0.0, 0.52, 6e6)];
        let s = graph_vs_static(&cfg, &o, &pts);
        let lines: Vec<&str> = s.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                // No point at 1 MFLOPs or less: the cheapest, 0.2 MFLOPs more.
                "- depth 1: 25.00 % at 1.000 MFLOPs; no graph point spends that little (its \
                 controller comes on top of the cheapest path): its cheapest is 30.00 % at 1.200 \
                 (λ = 0.5), 0.200 MFLOPs more",
                // At 2.5 MFLOPs only the 30 % point.
                "- depth 2: 50.00 % at 2.500 MFLOPs; graph 30.00 % at 1.200 (λ = 0.5): LESS accurate",
                // At 5 MFLOPs the point at exactly 5 counts (no more FLOPs).
                "- depth 3: 50.00 % at 5.000 MFLOPs; graph 50.00 % at 5.000 (λ = 0.1): at least as \
                 accurate",
                // Depth 2 is within 0.3 points of full depth (50 % both); the cheapest point at
                // least that accurate is at 5 MFLOPs, twice depth 2's.
                "- at depth 2's accuracy (50.00 %, the cheapest exit within 0.3 points of full \
                 depth): graph spends 5.000 MFLOPs (λ = 0.1), -100.0 % fewer than depth 2",
            ]
        );
    }

    #[test]
    fn sweeps_are_graph_then_adaptive_over_the_grid_with_the_controllers_flops() {
        let (cfg, o) = (
            crate::control::outcomes::tests::cfg(&[1, 2, 3]),
            crate::control::outcomes::tests::table(),
        );
        let ctrl = crate::control::budget::tests::controller();
        let [g, a] = sweeps(&cfg, &o, &ctrl);
        assert_eq!((g.len(), a.len()), (18, 18));
        // λ = 0, graph: paths 0, 2, 0, 2, input 0 right; the graph policy's 592 FLOPs up front
        // (budget's controller_flops_of_each_mode) + (100 + 500 + 100 + 500) / 4.
        assert_eq!((g[0].accuracy, g[0].mean_flops), (0.25, 892.0));
        // adaptive: 538 up front and 26 a decision: 664, 814, 538 + 100 + 52 + 170 + 280 =
        // 1140, 538 + 250 + 26 + 280 = 1094; 3712 / 4.
        assert_eq!((a[0].accuracy, a[0].mean_flops), (0.75, 928.0));
    }
}
