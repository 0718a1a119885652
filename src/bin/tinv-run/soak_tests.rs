//! Tests of `tinv-run soak`: windows and path counts against the library, mismatches and rates
//! from fakes, RSS growth and the verdict on hand values, VmRSS parsing and reading.

use super::*;

#[test]
fn drift_is_judged_from_1000_inferences_on() {
    assert!(drifted(1.01, 1000) && drifted(5.0, 1_000_000));
    assert!(!drifted(1.0, 1000) && !drifted(0.5, 1_000_000));
    // A short run grows by the pages its first reports touch, not by drift.
    assert!(!drifted(1.9, 4) && !drifted(50.0, 999));
}

#[test]
fn vmrss_is_read_from_proc_status_text() {
    let status = "Name:\ttinv-run\nVmPeak:\t  20000 kB\nVmRSS:\t    5124 kB\nThreads:\t1\n";
    assert_eq!(parse_vmrss(status), Some(5124));
    assert_eq!(parse_vmrss("Name:\tx\n"), None);
    if cfg!(target_os = "linux") {
        assert!(rss_kib().is_some_and(|r| r > 0));
    }
}

#[test]
fn soak_counts_windows_paths_and_finds_no_mismatch() {
    let cfg = tinv::synth::config(8, 1, 4, 16, 3, 2, 4, &[1, 2, 3], true);
    let bytes = tinv::synth::random_model(&cfg, 5, tinv::format::DType::F32);
    let model = tinv::Model::from_bytes(&bytes, &tinv::OpenOptions::default()).unwrap();
    let mut s = tinv::Session::new(Arc::new(model), tinv::SessionOptions::default()).unwrap();
    let inputs = tinv::synth::random_inputs(&cfg, 5, 1);
    let mut windows = Vec::new();
    let shape = Shape {
        inputs: 5,
        classes: cfg.classes,
        paths: cfg.depths.len(),
    };
    let sum = soak(shape, session_infer(&mut s, &inputs), 103, 25, |w| {
        windows.push((w.done, w.paths.iter().sum::<u64>()))
    })
    .unwrap();
    // Windows end at 25, 50, 75, 100 and the last (partial) one at 103.
    assert_eq!(
        windows,
        vec![(25, 25), (50, 25), (75, 25), (100, 25), (103, 3)]
    );
    assert_eq!(sum.paths.iter().sum::<u64>(), 103);
    assert_eq!((sum.mismatches, sum.first_mismatch), (0, None));
    // The path counts agree with running each input once more: input i ran 21 or 20 times.
    let mut expect = vec![0u64; cfg.depths.len()];
    let mut logits = vec![0f32; cfg.classes];
    for n in 0..103usize {
        let i = n % 5;
        let st = s
            .infer(&inputs[i * 64..(i + 1) * 64], 1, &mut logits)
            .unwrap()[0];
        expect[st.path] += 1;
    }
    assert_eq!(sum.paths, expect);
}

/// A fake inference: input `i` gives logits (i, 1) on path `i % 2`, except on the calls
/// `odd` (counted from 0, the warm-up pass included), where the second logit is 2.
fn fake(
    odd: &[usize],
    sleep_ms: u64,
) -> impl FnMut(usize, &mut [f32]) -> Result<usize, String> + '_ {
    let mut call = 0;
    move |i, logits| {
        std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
        logits.copy_from_slice(&[i as f32, if odd.contains(&call) { 2.0 } else { 1.0 }]);
        call += 1;
        Ok(i % 2)
    }
}

const SHAPE: Shape = Shape {
    inputs: 3,
    classes: 2,
    paths: 2,
};

#[test]
fn soak_counts_the_outputs_that_differ_from_the_first_run() {
    // Calls 0–2 are the warm-up; call 3 + n is inference n.
    let sum = soak(SHAPE, fake(&[8, 11], 0), 10, 5, |_| {}).unwrap();
    assert_eq!((sum.mismatches, sum.first_mismatch), (2, Some(5)));
    // Inputs 0, 1, 2, 0, … : 4 + 3 on path 0 (inputs 0 and 2), 3 on path 1.
    assert_eq!(sum.paths, [7, 3]);
    assert_eq!(
        verdict(&sum),
        Err("2 outputs differed from the first run of their input (first at inference 5)".into())
    );
    // A difference in the warm-up pass (call 1, input 1) is that input's reference: its
    // later runs, inferences 1, 4 and 7, all differ from it.
    let sum = soak(SHAPE, fake(&[1], 0), 10, 5, |_| {}).unwrap();
    assert_eq!((sum.mismatches, sum.first_mismatch), (3, Some(1)));
    let sum = soak(SHAPE, fake(&[], 0), 10, 5, |_| {}).unwrap();
    assert_eq!((sum.mismatches, sum.first_mismatch), (0, None));
}

#[test]
fn a_windows_rate_is_its_inferences_over_its_time() {
    // 10 inferences of at least 2 ms each: at most 500 a second.
    let mut rates = Vec::new();
    soak(SHAPE, fake(&[], 2), 20, 10, |w| rates.push(w.per_sec)).unwrap();
    assert_eq!(rates.len(), 2);
    assert!(rates.iter().all(|&r| r > 5.0 && r <= 500.0), "{rates:?}");
}

#[test]
fn rss_growth_and_drift_fail_the_run_from_1000_inferences_on() {
    let sum = |count, start, end| Summary {
        count,
        secs: 1.0,
        start_rss_kib: start,
        end_rss_kib: end,
        mismatches: 0,
        first_mismatch: None,
        paths: vec![count],
    };
    assert_eq!(
        sum(1000, Some(2000), Some(2030)).rss_growth_pct(),
        Some(1.5)
    );
    assert_eq!(
        sum(1000, Some(2000), Some(1990)).rss_growth_pct(),
        Some(-0.5)
    );
    assert_eq!(sum(1000, None, Some(1990)).rss_growth_pct(), None);
    assert_eq!(sum(1000, Some(2000), None).rss_growth_pct(), None);
    assert_eq!(
        verdict(&sum(1000, Some(2000), Some(2030))),
        Err("RSS grew by 1.50% (more than 1%)".into())
    );
    assert_eq!(verdict(&sum(1000, Some(2000), Some(2020))), Ok(()));
    assert_eq!(verdict(&sum(999, Some(2000), Some(2030))), Ok(()));
    assert_eq!(verdict(&sum(1000, None, None)), Ok(()));
}

#[test]
fn inputs_are_limited_to_65536() {
    assert_eq!(check_inputs(65536), Ok(65536));
    assert!(check_inputs(65537).unwrap_err().contains("at most 65536"));
}

#[test]
fn rss_grows_by_the_pages_touched() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let before = rss_kib().unwrap();
    // 64 MiB, every page written.
    let v = vec![1u8; 64 << 20];
    let after = rss_kib().unwrap();
    assert!(after >= before + 60_000, "{before} KiB -> {after} KiB");
    drop(std::hint::black_box(v));
}
