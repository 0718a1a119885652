//! `tinv-run sweep`: the accuracy-vs-FLOPs curve of a model on the user's own data — every
//! static exit, the oracle, `adaptive` and `graph` at several budgets, the threshold baseline at
//! several τ — and, with `--flops-target`, the budget to deploy for a mean FLOPs limit.

use crate::args::Args;
use crate::eval::{DataArgs, ExitTable};
use crate::json::Json;
use std::io::IsTerminal;

pub const HELP: &str = "\
tinv-run sweep — accuracy vs FLOPs at many budgets on an IDX dataset; pick a budget

USAGE:
    tinv-run sweep [--model M] --images IDX --labels IDX [--budgets L,…] [--thresholds T,…]
                   [--flops-target MFLOPS] [--skip N] [--limit N] [--threads N]
                   [--backend B] [--engines DIR] [--verify] [--json]

OPTIONS:
    --model M            .tinv file or package directory (default: $TINV_MODEL, else the
                         engines/fmnist package; see tinv-run --help)
    --images IDX         image file ([n, H, W] or [n, H, W, C] unsigned bytes; gzip or plain)
    --labels IDX         label file ([n] unsigned bytes)
    --budgets L,…        budgets λ in [0, 1] to run `adaptive` and `graph` mode at (default
                         0,0.01,0.02,0.03,0.05,0.075,0.1,0.15,0.2,0.3; larger is cheaper)
    --thresholds T,…     τ in [0, 1] for the confidence-threshold baseline (default
                         0.5,0.6,0.7,0.8,0.9,0.95,0.99)
    --flops-target F     also name the budget to deploy for at most F million FLOPs per input
                         on average: of the `adaptive` points that spend no more, the most
                         accurate (the cheaper on a tie, then the first listed). An error
                         when none does
    --skip N             leave out the first N samples (e.g. --skip 55000 on Fashion-MNIST's
                         training files: the last 5,000, the validation split its models
                         chose their budgets on)
    --limit N            at most N samples (after --skip)
    --threads N          worker threads, 1 to 256 (default 1)
    --backend B          auto (default) | cpu | tensorrt (see tinv-run --help)
    --engines DIR        TensorRT engines folder (default: plans/ beside the model file)
    --verify             check every tensor checksum and device copy when opening the model
    --json               one JSON object: samples, backend, full_flops, points[{kind (depth |
                         oracle | adaptive | graph | threshold), depth | budget | tau,
                         accuracy, mean_flops}], flops_target (null without the option),
                         budget_for_target (null without the option)

FLOPs are per input and count everything that runs (controller, escalations, every exit head
reached), as `tinv-run eval` counts them; each point runs the whole data set in batches of 64
(a batch gives every input the answer it gets alone). The exits and the oracle (per input the
shallowest exit that is right, or the shallowest exit when none is: the fewest FLOPs that reach
the oracle's accuracy, a lower bound for any policy at that accuracy; a policy that answers
wrong more often can spend less) come from one full-depth pass. Choose a budget on data held out from your test set; a model without a controller has
only its exits, the oracle and the threshold points.
";

const DEFAULT_BUDGETS: &str = "0,0.01,0.02,0.03,0.05,0.075,0.1,0.15,0.2,0.3";
const DEFAULT_THRESHOLDS: &str = "0.5,0.6,0.7,0.8,0.9,0.95,0.99";
/// Inputs per call: the answers do not depend on it, the time does.
const BATCH: usize = ExitTable::CHUNK;

/// One point of the curve.
#[derive(Debug)]
struct Point {
    mode: tinv::Mode,
    /// `adaptive` and `graph` points: the budget λ.
    budget: Option<f32>,
    accuracy: f64,
    mean_flops: f64,
}

impl Point {
    fn label(&self) -> String {
        match (self.mode, self.budget) {
            (tinv::Mode::Threshold(t), _) => format!("threshold τ = {t}"),
            (m, Some(b)) => format!("{m} λ = {b}"),
            (m, None) => m.to_string(),
        }
    }
}

/// A comma-separated list of values in [0, 1] for `--name`.
fn unit_list(a: &Args, name: &str, default: &str) -> Result<Vec<f32>, String> {
    let text = a.get(name).unwrap_or(default);
    text.split(',')
        .map(|v| match v.trim().parse::<f32>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(format!(
                "--{name} {text}: expected numbers in [0, 1] separated by commas, found {v:?}"
            )),
        })
        .collect()
}

pub fn run(raw: &[std::ffi::OsString]) -> Result<(), String> {
    let a = Args::parse(
        raw,
        &[
            "model",
            "images",
            "labels",
            "budgets",
            "thresholds",
            "flops-target",
            "skip",
            "limit",
            "threads",
            "backend",
            "engines",
        ],
        &["json", "verify"],
    )?
    .max_positional(0)?;
    let data = DataArgs::parse(&a, "sweep")?;
    let budgets = unit_list(&a, "budgets", DEFAULT_BUDGETS)?;
    let taus = unit_list(&a, "thresholds", DEFAULT_THRESHOLDS)?;
    let target = match a.parse_opt::<f64>("flops-target", "million FLOPs per input")? {
        Some(t) if !(t.is_finite() && t > 0.0) => {
            return Err(format!(
                "--flops-target {t}: expected a positive number of million FLOPs"
            ))
        }
        t => t,
    };
    let threads = a.threads()?;
    let model = crate::model_path::open(a.path("model"), a.has("verify"))?;
    let cfg = model.config().clone();
    let controlled = cfg.controller.is_some();
    if !controlled && (a.get("budgets").is_some() || target.is_some()) {
        return Err(crate::no_controller(
            "--budgets or --flops-target",
            "sweep still reports its exits, the oracle and --thresholds",
        ));
    }
    let mut session = tinv::Session::new(
        std::sync::Arc::new(model),
        crate::backend_options(&a)?
            .max_batch(BATCH)
            .threads(threads),
    )
    .map_err(|e| e.to_string())?;
    let (x, y) = data.load(&cfg)?;
    let n = y.len();
    let progress = std::io::stderr().is_terminal() || n >= 2000;
    // Its own session serves the all-exits pass too: it takes batches of 64 already.
    let exits = ExitTable::compute(&mut session, &x, &y, progress.then_some("sweep"))?;

    let mut runs: Vec<(tinv::Mode, Option<f32>)> = Vec::new();
    if controlled {
        for mode in [tinv::Mode::Adaptive, tinv::Mode::Graph] {
            runs.extend(budgets.iter().map(|&b| (mode, Some(b))));
        }
    }
    runs.extend(taus.iter().map(|&t| (tinv::Mode::Threshold(t), None)));
    let (len, k) = (cfg.input_len(), cfg.classes);
    let mut out = vec![0f32; BATCH * k];
    let mut points = Vec::with_capacity(runs.len());
    for (i, &(mode, budget)) in runs.iter().enumerate() {
        session.set_mode(mode).map_err(|e| e.to_string())?;
        if let Some(b) = budget {
            session.set_budget(b).map_err(|e| e.to_string())?;
        }
        let (mut correct, mut flops) = (0usize, 0f64);
        for start in (0..n).step_by(BATCH) {
            let b = BATCH.min(n - start);
            let stats = session
                .infer(&x[start * len..(start + b) * len], b, &mut out[..b * k])
                .map_err(|e| e.to_string())?;
            for (j, st) in stats.iter().enumerate() {
                correct += usize::from(st.class == y[start + j]);
                flops += st.flops as f64;
            }
        }
        let p = Point {
            mode,
            budget,
            accuracy: correct as f64 / n as f64,
            mean_flops: flops / n as f64,
        };
        if progress {
            errln!("sweep: {} ({}/{})", p.label(), i + 1, runs.len());
        }
        points.push(p);
    }

    let costs = session.model().costs();
    let full = costs[costs.len() - 1].backbone_flops as f64;
    let pick = target.map(|t| pick_budget(&points, t * 1e6));
    if a.has("json") {
        let mut pts: Vec<Json> = cfg
            .depths
            .iter()
            .zip(costs)
            .zip(&exits.accuracy)
            .map(|((d, c), acc)| {
                Json::obj()
                    .set("kind", Json::Str("depth".into()))
                    .set("depth", Json::Int(*d as u64))
                    .set("accuracy", Json::Num(*acc))
                    .set("mean_flops", Json::Num(c.backbone_flops as f64))
            })
            .collect();
        pts.push(
            Json::obj()
                .set("kind", Json::Str("oracle".into()))
                .set("accuracy", Json::Num(exits.oracle_accuracy))
                .set("mean_flops", Json::Num(exits.oracle_flops)),
        );
        for p in &points {
            let j = match (p.mode, p.budget) {
                (tinv::Mode::Threshold(t), _) => Json::obj()
                    .set("kind", Json::Str("threshold".into()))
                    .set("tau", Json::f32(t)),
                (m, b) => Json::obj()
                    .set("kind", Json::Str(m.to_string()))
                    .set("budget", b.map_or(Json::Null, Json::f32)),
            };
            pts.push(
                j.set("accuracy", Json::Num(p.accuracy))
                    .set("mean_flops", Json::Num(p.mean_flops)),
            );
        }
        let chosen = match &pick {
            Some(Ok(p)) => p.budget.map_or(Json::Null, Json::f32),
            _ => Json::Null,
        };
        let j = Json::obj()
            .set("samples", Json::Int(n as u64))
            .set("backend", Json::Str(session.backend().to_string()))
            .set("full_flops", Json::Num(full))
            .set("points", Json::Arr(pts))
            .set(
                "flops_target",
                target.map_or(Json::Null, |t| Json::Num(t * 1e6)),
            )
            .set("budget_for_target", chosen);
        outln!("{}", j.render());
    } else {
        outln!(
            "samples {n}, backend {}, full depth {:.3} MFLOPs per input",
            session.backend(),
            full / 1e6
        );
        outln!(
            "{:<24} {:>9} {:>8} {:>9}",
            "point",
            "MFLOPs",
            "of full",
            "accuracy"
        );
        let row = |label: &str, flops: f64, acc: f64| {
            outln!(
                "{label:<24} {:>9.3} {:>7.1}% {:>8.2}%",
                flops / 1e6,
                flops / full * 100.0,
                acc * 100.0
            );
        };
        for ((d, c), acc) in cfg.depths.iter().zip(costs).zip(&exits.accuracy) {
            row(&format!("exit at depth {d}"), c.backbone_flops as f64, *acc);
        }
        row("oracle", exits.oracle_flops, exits.oracle_accuracy);
        for p in &points {
            row(&p.label(), p.mean_flops, p.accuracy);
        }
        if let (Some(Ok(p)), Some(t)) = (&pick, target) {
            outln!(
                "for at most {t} MFLOPs per input: --budget {} ({:.2}% at {:.3} MFLOPs on these \
                 samples)",
                p.budget.unwrap_or_default(),
                p.accuracy * 100.0,
                p.mean_flops / 1e6
            );
        }
    }
    match pick {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Of the `adaptive` points that spend at most `limit` FLOPs per input, the most accurate (the
/// cheaper on a tie, the first listed on a tie of both: `min_by` keeps the first); an error
/// naming the cheapest point when none is within the limit.
fn pick_budget(points: &[Point], limit: f64) -> Result<&Point, String> {
    let adaptive = || points.iter().filter(|p| p.mode == tinv::Mode::Adaptive);
    adaptive()
        .filter(|p| p.mean_flops <= limit)
        .min_by(|a, b| {
            b.accuracy
                .total_cmp(&a.accuracy)
                .then(a.mean_flops.total_cmp(&b.mean_flops))
        })
        .ok_or_else(
            || match adaptive().min_by(|a, b| a.mean_flops.total_cmp(&b.mean_flops)) {
                Some(c) => format!(
                "no budget of --budgets spends at most {} MFLOPs per input on these samples: the \
                 cheapest, λ = {}, spends {:.3} (add larger budgets)",
                limit / 1e6,
                c.budget.unwrap_or_default(),
                c.mean_flops / 1e6
            ),
                None => "--budgets is empty".into(),
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(budget: f32, accuracy: f64, mean_flops: f64) -> Point {
        Point {
            mode: tinv::Mode::Adaptive,
            budget: Some(budget),
            accuracy,
            mean_flops,
        }
    }

    #[test]
    fn the_budget_for_a_target_is_the_most_accurate_within_it_then_the_cheapest() {
        let pts = [
            point(0.0, 0.90, 12e6),
            point(0.1, 0.89, 9e6),
            point(0.2, 0.89, 8e6),
            point(0.3, 0.85, 7e6),
            Point {
                mode: tinv::Mode::Graph,
                budget: Some(0.5),
                accuracy: 0.99,
                mean_flops: 1e6,
            },
        ];
        // 9.5 M: 0.1 and 0.2 tie on accuracy, 0.2 is cheaper; graph points are never picked.
        assert_eq!(pick_budget(&pts, 9.5e6).unwrap().budget, Some(0.2));
        assert_eq!(pick_budget(&pts, 12e6).unwrap().budget, Some(0.0));
        assert_eq!(pick_budget(&pts, 7e6).unwrap().budget, Some(0.3));
        let e = pick_budget(&pts, 6.5e6).unwrap_err();
        assert!(
            e.contains("at most 6.5 MFLOPs") && e.contains("λ = 0.3, spends 7.000"),
            "{e}"
        );
    }
}
