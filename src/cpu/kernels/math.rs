//! Branch-free `exp` and `erf` that LLVM vectorizes inside the multiversioned kernels.
//! Both are checked against f64 references in the tests below.
//!
//! Each comes in two roundings, picked by the const parameter `FMA`: the multiversioned
//! kernels' AVX2/AVX-512 copies, which have FMA, fuse every multiply-add of the polynomials (one
//! instruction each; on AVX2, ViT-Tiny's GELU 106 → 72 µs and softmax 133 → 105 µs per block);
//! the plain x86_64 copy does not, since there `f32::mul_add` is a libm call per element.
//! aarch64 always has FMA. [`exp`] and [`erf`] are the plain copies.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in a part exact in f32 and a remainder (Cody–Waite), as in Cephes' expf.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
// 1.5 · 2²³: adding and subtracting it rounds to the nearest integer without a libm call.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Clamps `x` to `[lo, hi]` with plain comparisons, which map to one `max`/`min` instruction
/// each, where `f32::clamp` adds a NaN check and blend per vector (ViT-Tiny's softmax, 3×197
/// rows of 197, AVX2: 141 → 133 µs). A NaN `x` stays NaN (both comparisons are false).
#[inline(always)]
pub(super) fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// Whether the plain (not multiversioned) copies fuse: FMA is baseline on aarch64 only.
pub(super) const PLAIN_FMA: bool = cfg!(target_arch = "aarch64");

/// `a·b + c`, fused (one rounding) when `FMA`.
#[inline(always)]
fn mad<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// eˣ with ≤ 2 ulp error on [−87, 88]; inputs below return ~1e-38 rather than 0, NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_impl::<PLAIN_FMA>(x)
}

/// [`exp`], its multiply-adds fused when `FMA`.
#[inline(always)]
pub(super) fn exp_impl<const FMA: bool>(x: f32) -> f32 {
    let x = clamp(x, -87.0, 88.0);
    let t = mad::<FMA>(x, LOG2E, ROUND_MAGIC);
    let n = t - ROUND_MAGIC;
    // The low mantissa bits of `t` hold n as an integer: no float→int conversion, which keeps
    // the loop vectorizable.
    let ni = t.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    let r = mad::<FMA>(-n, LN2_LO, mad::<FMA>(-n, LN2_HI, x));
    // Cephes expf minimax polynomial for e^r − 1 − r on [−ln2/2, ln2/2].
    let mut p = 1.987_569_1e-4f32;
    p = mad::<FMA>(p, r, 1.398_199_9e-3);
    p = mad::<FMA>(p, r, 8.333_452e-3);
    p = mad::<FMA>(p, r, 4.166_579_6e-2);
    p = mad::<FMA>(p, r, 0.166_666_65);
    p = mad::<FMA>(p, r, 0.5);
    let y = mad::<FMA>(p * r, r, r) + 1.0;
    // n ∈ [−126, 127] after the clamp, so the biased exponent is a normal one. A NaN input
    // gives a NaN y, so NaN propagates whatever the scale.
    let scale = f32::from_bits(((ni + 127) << 23) as u32);
    y * scale
}

/// erf(x): the rational minimax approximation used by Eigen and XLA (odd degree-13 numerator,
/// even degree-8 denominator on x clamped to [−4, 4]); absolute error below 1e-6.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_impl::<PLAIN_FMA>(x)
}

/// [`erf`], its multiply-adds fused when `FMA`.
#[inline(always)]
pub(super) fn erf_impl<const FMA: bool>(x: f32) -> f32 {
    let x = clamp(x, -4.0, 4.0);
    let x2 = x * x;
    let mut p = mad::<FMA>(x2, -2.726_142_3e-10, 2.770_681_4e-8);
    p = mad::<FMA>(p, x2, -2.101_024e-6);
    p = mad::<FMA>(p, x2, -5.692_506_4e-5);
    p = mad::<FMA>(p, x2, -7.349_906_3e-4);
    p = mad::<FMA>(p, x2, -2.954_6e-3);
    p = mad::<FMA>(p, x2, -1.609_603_3e-2);
    p *= x;
    let mut q = mad::<FMA>(x2, -1.456_607_2e-5, -2.133_740_6e-4);
    q = mad::<FMA>(q, x2, -1.682_827e-3);
    q = mad::<FMA>(q, x2, -7.373_329e-3);
    q = mad::<FMA>(q, x2, -1.426_473_9e-2);
    p / q
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    mod erf64_reference {
        // The integration tests' f64 erf (one reference for both).
        include!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/common/erf64.rs"
        ));
    }
    pub(crate) use erf64_reference::erf as erf64;

    #[test]
    fn exp_matches_f64() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            for e in [exp_impl::<false>(x), exp_impl::<true>(x)] {
                let rel = ((e as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
                worst = worst.max(rel);
            }
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1000.0) < 1e-37);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erf_matches_series() {
        // The reference itself, against published values of erf(1) and erf(3.5).
        assert!((erf64(1.0) - 0.842_700_792_949_714_9).abs() < 1e-15);
        assert!((erf64(3.5) - 0.999_999_256_901_627_7).abs() < 1e-14);
        let mut worst = 0f64;
        let mut x = -6.0f32;
        while x < 6.0 {
            for e in [erf_impl::<false>(x), erf_impl::<true>(x)] {
                worst = worst.max((e as f64 - erf64(x as f64)).abs());
            }
            x += 0.001;
        }
        assert!(worst < 1e-6, "worst absolute error {worst}");
        assert!(erf(f32::NAN).is_nan());
        // Far outside the clamp, the value at ±4 (erf(4) = 1 − 1.5e-8).
        assert!((erf(-1e30) + 1.0).abs() < 1e-6 && (erf(1e30) - 1.0).abs() < 1e-6);
    }
}
