//! `cpu::kernels::set_fused`: with fusion off, the multiversioned kernels give the unfused
//! rounding bit for bit on every host (tinv-train relies on it to reproduce its default model);
//! with it on, hosts with FMA give the fused one. In a process of its own: the setting is global,
//! and the library's other tests compare runs bit for bit.

use tinv::cpu::kernels::{erf, fused, gelu_erf, set_fused};

/// GELU through the scalar `erf` (never fused on x86_64; aarch64 always has FMA).
fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[test]
fn fusion_off_is_the_unfused_rounding_and_on_is_another() {
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
