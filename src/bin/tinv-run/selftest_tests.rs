//! Tests of `tinv-run selftest`'s parts: the layouts' folders, the logit comparison, the switch
//! cost, the report and verdict on hand values, the sample inputs, and the comparison-and-timing
//! loop over CPU sessions.

use super::*;

/// `time_sessions` with CPU sessions in TensorRT's place, those of another model than the
/// reference's: the worst error and the disagreements are the per-run comparisons of every
/// input on every path, every path is timed, and the adaptive mean depth is that of the
/// inputs in turn run alone.
#[test]
fn time_sessions_compares_every_input_on_every_path_and_times_each_mode() {
    let c = tinv::synth::config(8, 1, 4, 16, 3, 2, 4, &[1, 2, 3], true);
    let open = |seed| {
        let bytes = tinv::synth::random_model(&c, seed, tinv::format::DType::F32);
        Arc::new(Model::from_bytes(&bytes, &tinv::OpenOptions::default()).unwrap())
    };
    let (reference, other) = (open(1), open(4));
    let cpu = |m: &Arc<Model>| {
        Session::new(m.clone(), SessionOptions::default().backend(Backend::Cpu)).unwrap()
    };
    let inputs: Vec<Vec<f32>> = tinv::synth::random_inputs(&c, 5, 3)
        .chunks(c.input_len())
        .map(<[f32]>::to_vec)
        .collect();
    let (mut g, mut p, mut r) = (cpu(&other), cpu(&other), cpu(&reference));
    let t = time_sessions(&mut g, &mut p, &mut r, &inputs, 7).unwrap();
    let (mut a, mut b) = (cpu(&other), cpu(&reference));
    let (mut la, mut lb) = (vec![0f32; c.classes], vec![0f32; c.classes]);
    let (mut worst, mut disagree) = (0f64, 0);
    for x in &inputs {
        for &d in &c.depths {
            a.infer_depth(x, 1, d, &mut la).unwrap();
            b.infer_depth(x, 1, d, &mut lb).unwrap();
            let (e, differs) = logit_error(&la, &lb);
            worst = worst.max(e);
            disagree += usize::from(differs);
        }
    }
    assert!(
        disagree > 0,
        "the two models must disagree somewhere for this test"
    );
    assert_eq!((t.worst, t.disagree, t.runs), (worst, disagree, 15));
    let depths: Vec<usize> = t.paths.iter().map(|p| p.0).collect();
    assert_eq!(depths, c.depths);
    assert!(t
        .paths
        .iter()
        .all(|&(_, p50, p99, plain)| p50 > 0.0 && p50 <= p99 && plain > 0.0));
    assert!(t.switch_us.is_finite() && t.adaptive_us > 0.0, "{t:?}");
    let per: Vec<usize> = (0..7)
        .map(|i| a.infer(&inputs[i % 5], 1, &mut la).unwrap()[0].depth)
        .collect();
    // Seed 4's controller sends input 2 to depth 2 and the others to 3: which input runs
    // when shows in the mean.
    assert!(per.iter().any(|&d| d != per[0]), "{per:?}");
    let depth: usize = per.iter().sum();
    assert_eq!(t.adaptive_depth, depth as f64 / 7.0);
    // The same model on both sides agrees exactly.
    let (mut g, mut p, mut r) = (cpu(&other), cpu(&other), cpu(&other));
    let t = time_sessions(&mut g, &mut p, &mut r, &inputs, 2).unwrap();
    assert_eq!((t.worst, t.disagree, t.runs), (0.0, 0, 15));
}

#[test]
fn a_layouts_engines_are_in_the_folder_built_for_it_or_beside_it() {
    let base = Path::new("/pkg/plans");
    let (pp, seg) = (Layout::PerPath, Layout::Segments);
    assert_eq!(layout_dir(base, Some(seg), seg), base);
    assert_eq!(
        layout_dir(base, Some(seg), pp),
        Path::new("/pkg/plans.per-path")
    );
    assert_eq!(
        layout_dir(base, Some(pp), seg),
        Path::new("/pkg/plans.segments")
    );
    // No engines in `base` yet: the default layout, per-path, is built there.
    assert_eq!(layout_dir(base, None, pp), base);
    assert_eq!(
        layout_dir(base, None, seg),
        Path::new("/pkg/plans.segments")
    );
}

#[test]
fn logit_error_is_relative_to_the_largest_cpu_logit() {
    // |2.5 − 2| / 4, the same class (1).
    assert_eq!(
        logit_error(&[1.0, 2.5, -4.0], &[1.0, 2.0, -4.0]),
        (0.125, false)
    );
    // |3 − 1| / 2, class 0 against class 1.
    assert_eq!(logit_error(&[3.0, 2.0, 0.0], &[1.0, 2.0, 0.0]), (1.0, true));
    // All-zero CPU logits: the scale is 1e-6, not 0.
    let (e, differs) = logit_error(&[1e-7, 0.0], &[0.0, 0.0]);
    assert!((e - 0.1).abs() < 1e-6 && !differs, "{e}");
    assert_eq!(
        (tolerance(Precision::Fp16), tolerance(Precision::Fp32)),
        (2e-2, 1e-3)
    );
}

#[test]
fn switch_cost_is_the_mean_extra_time_of_the_two_paths() {
    // Shallow: 12 µs alternated, 10 alone; deep: 30 and 26.
    assert_eq!(switch_cost((12.0, 10.0), (30.0, 26.0)), 3.0);
    assert_eq!(switch_cost((10.0, 12.0), (26.0, 26.0)), -1.0);
}

fn measured(layout: Layout, worst: f64, tol: f64) -> Measured {
    Measured {
        layout,
        dir: PathBuf::from("/pkg/plans"),
        tol,
        device_bytes: 1000,
        naive_bytes: 4000,
        t: Timings {
            worst,
            disagree: 1,
            runs: 20,
            paths: vec![(2, 100.0, 140.0, 130.5), (8, 300.0, 350.25, 320.0)],
            switch_us: -1.25,
            adaptive_us: 180.04,
            adaptive_depth: 3.456,
        },
    }
}

#[test]
fn the_report_prints_what_was_measured() {
    let want = "\
layout per-path (/pkg/plans):
  logits: worst |TensorRT − CPU| / max|logit| = 2.50e-4 (tolerance 1e-3); 1 differing predictions over 20 runs
  depth   graph p50   graph p99   no-graph p50   graph saves
      2     100.0 µs     140.0 µs        130.5 µs        30.5 µs
      8     300.0 µs     350.2 µs        320.0 µs        20.0 µs
  path switch (depth 2 ↔ 8): -1.2 µs per run
  adaptive (default budget, escalations included): mean 180.0 µs, mean depth 3.46
  device memory: 1000 bytes (weights once + one arena); naive 4000 bytes (every engine with its own weights and context memory)
";
    assert_eq!(report(&measured(Layout::PerPath, 2.5e-4, 1e-3)), want);
}

#[test]
fn selftest_fails_on_the_first_layout_out_of_tolerance() {
    let ok = measured(Layout::PerPath, 1e-3, 1e-3);
    assert_eq!(verdict(&[ok]), Ok(()));
    let all = [
        measured(Layout::PerPath, 1e-4, 1e-3),
        measured(Layout::Segments, 3e-2, 2e-2),
    ];
    assert_eq!(
        verdict(&all),
        Err(
            "segments engines: TensorRT logits differ from the CPU by 3.00e-2 of the largest \
             logit (> 2e-2)"
                .into()
        )
    );
}

#[test]
fn inputs_are_the_packages_sample_images_else_random_ones() {
    let dir = std::env::temp_dir().join(format!("tinv-selftest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("samples")).unwrap();
    let c = tinv::synth::tiny(3, true);
    let model = dir.join("model.tinv");
    std::fs::write(
        &model,
        tinv::synth::random_model(&c, 1, tinv::format::DType::F32),
    )
    .unwrap();
    // Without readable images: 8 random inputs.
    std::fs::write(dir.join("samples/notes.txt"), "not an image").unwrap();
    let random = tinv::synth::random_inputs(&c, 8, 1);
    let want: Vec<Vec<f32>> = random.chunks(c.input_len()).map(<[f32]>::to_vec).collect();
    assert_eq!(sample_inputs(Some(&model), &c), want);
    // An 8×8 grey PGM: its pixels / 255 (the model normalizes).
    let px: Vec<u8> = (0..64).map(|i| (i * 4) as u8).collect();
    let mut pgm = b"P5\n8 8\n255\n".to_vec();
    pgm.extend_from_slice(&px);
    std::fs::write(dir.join("samples/a.pgm"), pgm).unwrap();
    let got = sample_inputs(Some(&dir), &c);
    let want: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{got:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
