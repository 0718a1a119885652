//! Where the time of one encoder block goes, kernel by kernel, at each thread count: the "why"
//! behind RESULTS.md's ViT-Tiny numbers. The block runs through the runtime's own
//! `cpu::exec::block` on a session-shaped arena; its GEMMs, LayerNorms and GELU are then timed
//! alone with the same shapes, pool and kernels, and attention (QKᵀ, softmax, ·V over the heads)
//! is what remains of the block's time.

use std::time::Instant;
use tinv::cpu::{exec, gemm, kernels, plan, pool::Pool};
use tinv::Model;

/// One row of the profile.
pub struct Part {
    /// What runs.
    pub name: String,
    /// Median µs per block.
    pub us: f64,
    /// FLOPs per block (0 where not counted).
    pub flops: f64,
}

/// How many times each part is timed for `--runs runs`: at least 3, whatever `--runs` says.
fn timed_runs(runs: usize) -> usize {
    runs.max(3)
}

fn median_us(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    crate::median((0..timed_runs(runs)).map(|_| f()).collect()).unwrap_or(0.0)
}

fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e6
}

/// Profiles block 0 of `model` (batch 1) on `threads` threads, `runs` timed runs per part.
pub fn block(model: &Model, threads: usize, runs: usize) -> Result<Vec<Part>, String> {
    let c = model.config();
    let (n, d, h) = (c.tokens(), c.dim, c.mlp_hidden);
    let pool = Pool::new(threads);
    let serial = Pool::new(1);
    let buf = plan::buffers(model, 1, threads);
    let mut arena = vec![0f32; buf.layout.total];
    let ctx = exec::Ctx {
        model,
        buf: &buf,
        pool: &pool,
        serial: &serial,
    };
    let input = tinv::synth::random_inputs(c, 1, 1);
    exec::stem(&ctx, &mut arena, &input, &[0]).map_err(|e| e.to_string())?;
    let x0 = arena[buf.x..buf.x + n * d].to_vec();
    let w = model.blocks().first().ok_or("model has no blocks")?;
    let mut parts = Vec::new();
    let eps = c.ln_eps;
    let mut y = vec![0f32; n * d];
    let ln = median_us(runs, || {
        timed(|| {
            pool.rows_map(&x0, d, &mut y, d, |x, y| {
                kernels::layernorm_rows(x, y, d, eps)
            })
        })
    });
    parts.push(Part {
        name: "LayerNorm ×2".into(),
        us: 2.0 * ln,
        flops: 0.0,
    });
    let source: Vec<f32> = (0..n * h)
        .map(|i| ((i % 61) as f32 - 30.0) / 10.0)
        .collect();
    let mut hidden = source.clone();
    let gelu = median_us(runs, || {
        // In place: start from the same values every run (GELU applied again and again drives
        // them into denormals, which are slow).
        hidden.copy_from_slice(&source);
        timed(|| pool.rows_mut(&mut hidden, h, kernels::gelu_erf))
    });
    parts.push(Part {
        name: "GELU (erf)".into(),
        us: gelu,
        flops: 0.0,
    });
    let shapes = [
        ("GEMM qkv", n, 3 * d, d, w.qkv_w),
        ("GEMM proj", n, d, d, w.proj_w),
        ("GEMM fc1", n, h, d, w.fc1_w),
        ("GEMM fc2", n, d, h, w.fc2_w),
    ];
    for (name, m, nn, k, wref) in shapes {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
            .collect();
        let mut out = vec![0f32; m * nn];
        let mut scratch = vec![0f32; gemm::scratch_len(m, nn, k, threads)];
        let b = model.w(wref);
        let us = median_us(runs, || {
            timed(|| {
                gemm::sgemm(
                    m,
                    nn,
                    k,
                    &a,
                    k,
                    b,
                    nn,
                    &mut out,
                    nn,
                    None,
                    false,
                    &mut scratch,
                    &pool,
                )
            })
        });
        parts.push(Part {
            name: name.into(),
            us,
            flops: 2.0 * (m * nn * k) as f64,
        });
    }
    let whole = median_us(runs, || {
        // The block adds into the residual stream: start every run from the same state.
        arena[buf.x..buf.x + n * d].copy_from_slice(&x0);
        timed(|| {
            let _ = exec::block(&ctx, &mut arena, w, 1);
        })
    });

    // Attention through the runtime's own function, on the q/k/v the block's GEMM wrote.
    let att = median_us(runs, || {
        timed(|| {
            let _ = exec::attention(&ctx, &mut arena, 1);
        })
    });
    parts.push(Part {
        name: "attention (QKᵀ, softmax, ·V)".into(),
        us: att,
        flops: 4.0 * (n * n * d) as f64,
    });
    let flops = parts.iter().map(|p| p.flops).sum();
    let known: f64 = parts.iter().map(|p| p.us).sum();
    parts.push(Part {
        name: "rest (whole − parts: pool hand-offs, caches)".into(),
        us: whole - known,
        flops: 0.0,
    });
    parts.extend(attention_parts(model, runs));
    parts.push(Part {
        name: "whole block".into(),
        us: whole,
        flops,
    });
    Ok(parts)
}

/// Attention's pieces over all heads, each on one thread (as every (head, row block) job runs):
/// what the attention row above is made of.
fn attention_parts(model: &Model, runs: usize) -> Vec<Part> {
    let c = model.config();
    let (n, d, hd, heads) = (c.tokens(), c.dim, c.head_dim(), c.heads);
    let serial = Pool::new(1);
    let qkv: Vec<f32> = (0..n * 3 * d)
        .map(|i| ((i % 89) as f32 - 44.0) / 89.0)
        .collect();
    let mut scores = vec![0f32; n * n];
    let mut out = vec![0f32; n * hd];
    let mut scratch =
        vec![0f32; gemm::scratch_len(n, n, hd, 1).max(gemm::scratch_len(n, hd, n, 1))];
    let qk = median_us(runs, || {
        timed(|| {
            for h in 0..heads {
                let (q, k) = (&qkv[h * hd..], &qkv[d + h * hd..]);
                gemm::sgemm_bt(
                    n,
                    n,
                    hd,
                    q,
                    3 * d,
                    k,
                    3 * d,
                    &mut scores,
                    n,
                    &mut scratch,
                    &serial,
                );
            }
        })
    });
    let sm = median_us(runs, || {
        timed(|| {
            for _ in 0..heads {
                kernels::softmax_rows(&mut scores, n, n, n);
            }
        })
    });
    let av = median_us(runs, || {
        timed(|| {
            for h in 0..heads {
                let v = &qkv[2 * d + h * hd..];
                gemm::sgemm(
                    n,
                    hd,
                    n,
                    &scores,
                    n,
                    v,
                    3 * d,
                    &mut out,
                    hd,
                    None,
                    false,
                    &mut scratch,
                    &serial,
                );
            }
        })
    });
    let mm = 2.0 * (n * n * d) as f64;
    vec![
        Part {
            name: "· of which QKᵀ, all heads, 1 thread".into(),
            us: qk,
            flops: mm,
        },
        Part {
            name: "· of which softmax, all heads, 1 thread".into(),
            us: sm,
            flops: 0.0,
        },
        Part {
            name: "· of which scores·V, all heads, 1 thread".into(),
            us: av,
            flops: mm,
        },
    ]
}

/// The report section: one block of model `name` per thread count, side by side.
pub struct Section {
    name: String,
    runs: usize,
    profiles: Vec<(usize, Vec<Part>)>,
}

impl Section {
    /// Profiles one block of `model` at each of `threads`.
    pub fn measure(
        name: &str,
        model: &Model,
        threads: &[usize],
        runs: usize,
    ) -> Result<Section, String> {
        let profiles = threads
            .iter()
            .map(|&t| block(model, t, runs).map(|p| (t, p)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Section {
            name: name.into(),
            // What `median_us` took the median of (the header said "median of 1" for --runs 1).
            runs: timed_runs(runs),
            profiles,
        })
    }

    /// The Markdown (GFLOP/s of the parts whose FLOPs are counted; the report's main tables
    /// hold the comparison with OpenBLAS).
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut md = String::new();
        let profiles = &self.profiles;
        let Some((_, first)) = profiles.first() else {
            return md;
        };
        let _ = writeln!(
            md,
            "## Where the time goes: one {} block, batch 1\n\nThe block through the runtime's own \
             `cpu::exec::block`; its GEMMs, LayerNorms and GELU timed alone with the same shapes, \
             pool and kernels (median of {}, in a process of its own); the rest is the whole \
             block's time less its parts (negative when the parts, timed alone, find colder \
             caches than inside the block); attention's pieces are then timed alone on one \
             thread.\n",
            self.name, self.runs
        );
        let mut head = "| part |".to_string();
        let mut rule = "|---|".to_string();
        for (t, _) in profiles {
            let _ = write!(head, " {t} thr µs | {t} thr GFLOP/s |");
            rule.push_str("---|---|");
        }
        if profiles.len() > 1 {
            head.push_str(" speed-up |");
            rule.push_str("---|");
        }
        let _ = writeln!(md, "{head}\n{rule}");
        for (i, part) in first.iter().enumerate() {
            let mut row = format!("| {} |", part.name);
            for (_, p) in profiles {
                let q = &p[i];
                let gfs = if q.flops > 0.0 && q.us > 0.0 {
                    format!("{:.1}", q.flops / q.us / 1e3)
                } else {
                    "–".into()
                };
                let _ = write!(row, " {:.1} | {gfs} |", q.us);
            }
            if let Some((_, last)) = profiles.last().filter(|_| profiles.len() > 1) {
                // "rest" (whole − parts) can come out ≤ 0 in noise: no ratio then.
                let _ = match (part.us, last[i].us) {
                    (a, b) if a > 0.0 && b > 0.0 => write!(row, " {:.2}× |", a / b),
                    _ => write!(row, " – |"),
                };
            }
            let _ = writeln!(md, "{row}");
        }
        let _ = writeln!(md);
        md
    }
}

#[cfg(test)]
mod tests {
    use super::{median_us, timed, Part, Section};

    #[test]
    fn a_parts_time_is_the_median_of_at_least_three_runs() {
        // Runs that take 1, 2, 3, … µs: at least 3 of them (median 2), or 4 (median 2.5).
        for (runs, median) in [(0, 2.0), (1, 2.0), (3, 2.0), (4, 2.5)] {
            let mut n = 0;
            let got = median_us(runs, || {
                n += 1;
                f64::from(n)
            });
            assert_eq!((got, n), (median, runs.max(3) as i32), "runs {runs}");
        }
        // In µs: a 2 ms sleep takes at least 2000.
        let us = timed(|| std::thread::sleep(std::time::Duration::from_millis(2)));
        assert!(us >= 2000.0, "{us}");
    }

    /// GFLOP/s = FLOPs ÷ µs ÷ 1000 where both are positive, "–" where either is not; the
    /// speed-up (first thread count's µs over the last's) where both are positive, and only
    /// with more than one thread count.
    #[test]
    fn gflops_and_speed_ups_only_from_positive_numbers() {
        let part = |name: &str, us: f64, flops: f64| Part {
            name: name.into(),
            us,
            flops,
        };
        let one = |us: [f64; 4]| {
            vec![
                part("gemm", us[0], 2e5),
                part("free", us[1], 0.0),
                part("instant", us[2], 5e4),
                part("rest", us[3], 0.0),
            ]
        };
        let s = Section {
            name: "t".into(),
            runs: 1,
            profiles: vec![(1, one([100.0, 10.0, 0.0, 0.0]))],
        };
        let md = s.markdown();
        // 2e5 FLOPs in 100 µs: 2 GFLOP/s; one thread count: no speed-up column.
        assert!(
            md.contains("| part | 1 thr µs | 1 thr GFLOP/s |\n|---|---|---|\n"),
            "{md}"
        );
        for row in [
            "| gemm | 100.0 | 2.0 |\n",
            "| free | 10.0 | – |\n",
            "| instant | 0.0 | – |\n",
            "| rest | 0.0 | – |\n",
        ] {
            assert!(md.contains(row), "{row} in {md}");
        }
        let s = Section {
            name: "t".into(),
            runs: 1,
            profiles: vec![
                (1, one([100.0, 0.0, 30.0, 5.0])),
                (4, one([40.0, 50.0, 0.0, -2.0])),
            ],
        };
        let md = s.markdown();
        assert!(
            md.contains(
                "| part | 1 thr µs | 1 thr GFLOP/s | 4 thr µs | 4 thr GFLOP/s | speed-up |"
            ),
            "{md}"
        );
        // 100 / 40 = 2.5×; 0 µs on either side or a negative rest: no ratio.
        for row in [
            "| gemm | 100.0 | 2.0 | 40.0 | 5.0 | 2.50× |",
            "| free | 0.0 | – | 50.0 | – | – |",
            "| instant | 30.0 | 1.7 | 0.0 | – | – |",
            "| rest | 5.0 | – | -2.0 | – | – |",
        ] {
            assert!(md.contains(row), "{row} in {md}");
        }
    }

    /// The FLOPs of each part from the block's shape (5 tokens of width 16, MLP 64; 2 FLOPs a
    /// multiply-add): qkv 2·5·48·16 = 7680, proj 2·5·16·16 = 2560, fc1 and fc2 2·5·64·16 =
    /// 10240 each, attention 2 · 2·5·5·16 = 1600 (QKᵀ and scores·V 800 each), the whole block
    /// their sum, 32320; "rest" is the whole block's time less the parts above it.
    #[test]
    fn the_profile_counts_each_parts_flops_from_the_shapes() {
        let cfg = tinv::synth::config(8, 1, 4, 16, 2, 2, 4, &[1, 2], false);
        let bytes = tinv::synth::random_model(&cfg, 1, tinv::format::DType::F32);
        let model = tinv::Model::from_bytes(&bytes, &tinv::OpenOptions::default()).unwrap();
        let s = Section::measure("tiny", &model, &[1, 2], 3).unwrap();
        assert_eq!(s.profiles.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2]);
        for (_, parts) in &s.profiles {
            let got: Vec<(&str, f64)> = parts.iter().map(|p| (p.name.as_str(), p.flops)).collect();
            assert_eq!(
                got,
                [
                    ("LayerNorm ×2", 0.0),
                    ("GELU (erf)", 0.0),
                    ("GEMM qkv", 7680.0),
                    ("GEMM proj", 2560.0),
                    ("GEMM fc1", 10240.0),
                    ("GEMM fc2", 10240.0),
                    ("attention (QKᵀ, softmax, ·V)", 1600.0),
                    ("rest (whole − parts: pool hand-offs, caches)", 0.0),
                    ("· of which QKᵀ, all heads, 1 thread", 800.0),
                    ("· of which softmax, all heads, 1 thread", 0.0),
                    ("· of which scores·V, all heads, 1 thread", 800.0),
                    ("whole block", 32320.0),
                ]
            );
            let above: f64 = parts[..7].iter().map(|p| p.us).sum();
            assert_eq!(parts[7].us, parts[11].us - above);
        }
        assert!(s.markdown().contains("one tiny block, batch 1"));
        assert!(s.markdown().contains("(median of 3, in a process"));
        // --runs 1 still times each part 3 times, and says so.
        let s = Section::measure("tiny", &model, &[1], 1).unwrap();
        assert!(s.markdown().contains("(median of 3, in a process"));
    }

    #[test]
    fn speed_up_is_a_ratio_of_positive_times_only() {
        let part = |name: &str, us: f64| Part {
            name: name.into(),
            us,
            flops: 0.0,
        };
        let s = Section {
            name: "t".into(),
            runs: 1,
            profiles: vec![
                (1, vec![part("gemm", 300.0), part("rest", 722.1)]),
                (2, vec![part("gemm", 150.0), part("rest", -122.1)]),
            ],
        };
        let md = s.markdown();
        assert!(
            md.contains("| gemm | 300.0 | – | 150.0 | – | 2.00× |"),
            "{md}"
        );
        assert!(md.contains("| rest | 722.1 | – | -122.1 | – | – |"), "{md}");
    }
}
