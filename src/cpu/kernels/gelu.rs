use super::math::{erf_impl, exp_impl};
use super::multiversion;

multiversion! {
    /// GELU, exact form `0.5·x·(1 + erf(x/√2))`, in place.
    pub fn gelu_erf(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = 0.5 * *v * (1.0 + erf_impl::<FMA>(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    /// GELU, tanh approximation `0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))`, in place.
    pub fn gelu_tanh(x: &mut [f32]) {
        for v in x.iter_mut() {
            let z = 0.797_884_6 * (*v + 0.044_715 * *v * *v * *v);
            // tanh z = 1 − 2/(e^{2z} + 1), exact at both tails.
            let t = 1.0 - 2.0 / (exp_impl::<FMA>(2.0 * z) + 1.0);
            *v = 0.5 * *v * (1.0 + t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::math::tests::erf64;
    use super::*;

    #[test]
    fn gelu_against_f64() {
        let xs: Vec<f32> = (0..2001).map(|i| -10.0 + i as f32 * 0.01).collect();
        let mut e = xs.clone();
        gelu_erf(&mut e);
        let mut t = xs.clone();
        gelu_tanh(&mut t);
        for (i, &x) in xs.iter().enumerate() {
            let x64 = x as f64;
            let ref_e = 0.5 * x64 * (1.0 + erf64(x64 / 2f64.sqrt()));
            let ref_t = 0.5
                * x64
                * (1.0 + (0.797_884_560_802_865_4 * (x64 + 0.044715 * x64.powi(3))).tanh());
            assert!(
                (e[i] as f64 - ref_e).abs() < 5e-6,
                "erf gelu at {x}: {} vs {ref_e}",
                e[i]
            );
            assert!(
                (t[i] as f64 - ref_t).abs() < 5e-6,
                "tanh gelu at {x}: {} vs {ref_t}",
                t[i]
            );
        }
        // Hand values: GELU(0) = 0, GELU(1) = 0.841344746...
        assert_eq!(e[1000], 0.0);
        assert!((e[1100] - 0.841_344_7).abs() < 1e-6);
    }
}
