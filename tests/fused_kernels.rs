//! `cpu::kernels::set_fused`: with fusion off, the multiversioned kernels give the unfused
//! rounding bit for bit on every host (tinv-train relies on it to reproduce its default model);
//! with it on, hosts with FMA give the fused one. In a process of its own: the setting is global,
//! and the library's other tests compare runs bit for bit.

use std::sync::{Mutex, PoisonError};
#[cfg(target_arch = "x86_64")]
use tinv::cpu::kernels::exp;
use tinv::cpu::kernels::{erf, fused, gelu_erf, set_fused, softmax_rows};

/// Held by each test while it turns fusion off and on: the tests of this binary run in
/// parallel, and the setting is process-wide.
static FUSION: Mutex<()> = Mutex::new(());

/// GELU through the scalar `erf` (never fused on x86_64; aarch64 always has FMA).
fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[test]
fn fusion_off_is_the_unfused_rounding_and_on_is_another() {
    let _fusion = FUSION.lock().unwrap_or_else(PoisonError::into_inner);
    let xs: Vec<f32> = (0..40_000).map(|i| -8.0 + i as f32 * 4e-4).collect();
    assert!(fused(), "fusion is on by default");
    let mut on = xs.clone();
    gelu_erf(&mut on);
    set_fused(false);
    let mut off = xs.clone();
    gelu_erf(&mut off);
    set_fused(true);
    let scalar: Vec<f32> = xs.iter().map(|&x| gelu_scalar(x)).collect();
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    #[cfg(target_arch = "x86_64")]
    {
        assert!(
            same(&off, &scalar),
            "fusion off: the scalar (unfused) rounding"
        );
        let fma = std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("avx2");
        assert_eq!(
            same(&on, &off),
            !fma,
            "fusion on differs exactly where FMA exists"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert!(same(&on, &scalar), "aarch64 fuses, as its scalar erf does");
        assert!(!same(&on, &off), "and fusion off rounds differently");
    }
    // Either way, both roundings are GELU to within a few ulps.
    for ((a, b), x) in on.iter().zip(&off).zip(&xs) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + x.abs()), "{x}: {a} vs {b}");
    }
}

/// Softmax rows of every length from 1 to 40 (the kernel works in chunks of 16 and pads the
/// rest), 197 and 257, with ±0 and −∞ among the values.
fn softmax_inputs() -> Vec<(usize, Vec<f32>)> {
    let mut s = 12345u64;
    let mut rnd = move || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((s >> 40) as f32 / 16_777_216.0 - 0.5) * 30.0
    };
    (1..=40)
        .chain([197, 257])
        .map(|n| {
            let mut x: Vec<f32> = (0..4 * n).map(|_| rnd()).collect();
            if n > 3 {
                (x[0], x[1], x[n]) = (-0.0, 0.0, f32::NEG_INFINITY);
            }
            (n, x)
        })
        .collect()
}

/// The unfused rounding that tinv-train's models were trained with: e^(x − max) by the scalar
/// (unfused on x86_64) `exp`, element j added to lane j mod 16, the 16 lanes summed in order,
/// then each element times the reciprocal of the sum.
#[cfg(target_arch = "x86_64")]
fn softmax_unfused_reference(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut lanes = [0f32; 16];
    for (j, v) in row.iter_mut().enumerate() {
        *v = exp(*v - m);
        lanes[j % 16] += *v;
    }
    let inv = 1.0 / lanes.iter().sum::<f32>();
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[test]
fn softmax_fusion_off_keeps_the_trained_rounding_and_both_are_softmax() {
    let _fusion = FUSION.lock().unwrap_or_else(PoisonError::into_inner);
    for (n, x) in softmax_inputs() {
        let mut on = x.clone();
        softmax_rows(&mut on, 4, n, n);
        set_fused(false);
        let mut off = x.clone();
        softmax_rows(&mut off, 4, n, n);
        set_fused(true);
        #[cfg(target_arch = "x86_64")]
        {
            let mut want = x.clone();
            want.chunks_mut(n).for_each(softmax_unfused_reference);
            for (j, (a, b)) in off.iter().zip(&want).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "n = {n}, element {j}: {a} vs {b}");
            }
        }
        for (r, row) in x.chunks(n).enumerate() {
            let m = row
                .iter()
                .map(|&v| f64::from(v))
                .fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|&v| (f64::from(v) - m).exp()).sum();
            for (j, &v) in row.iter().enumerate() {
                let want = (f64::from(v) - m).exp() / z;
                for got in [on[r * n + j], off[r * n + j]] {
                    let err = (f64::from(got) - want).abs();
                    // f32's rounding of x − max alone moves e^(x − max) by up to ~2e-6 of itself;
                    // `exp` gives ~1e-38, not 0, below −87 (−∞ here).
                    assert!(
                        err <= 1e-5 * want || got < 1e-37,
                        "n = {n}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
