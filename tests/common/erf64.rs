// erf in f64, the independent reference for the runtime's f32 erf and GELU: shared by the
// integration tests (tests/common/reference.rs) and the kernels' unit tests (by `include!`), so
// it depends on nothing.

/// erf by its Maclaurin series (series below 3, continued fraction above).
pub fn erf(x: f64) -> f64 {
    if x.abs() >= 3.0 {
        // erfc by its continued fraction (the series cancels badly out here).
        let a = x.abs();
        let mut t = a;
        for n in (1..=200).rev() {
            t = a + (n as f64 / 2.0) / t;
        }
        let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / t;
        return x.signum() * (1.0 - erfc);
    }
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        let t = term / (2 * n + 1) as f64;
        sum += t;
        if t.abs() < 1e-18 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}
