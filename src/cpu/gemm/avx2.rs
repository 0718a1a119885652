//! AVX2+FMA micro-kernel: up to 6 rows × 16 columns (12 `ymm` accumulators), A broadcast from
//! its rows in place, B from a packed `kc × 16` panel.

use super::Kernel;
use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_storeu_ps,
};

/// The AVX2+FMA kernel. Only selected when both `avx2` and `fma` are detected.
pub(super) struct Avx2Fma;

impl Kernel for Avx2Fma {
    const MR: usize = 6;
    const NR: usize = 16;
    const NAME: &'static str = "avx2+fma";

    unsafe fn tile(
        mr: usize,
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        bias: *const f32,
        load_c: bool,
    ) {
        // SAFETY: the dispatcher selects this kernel only when AVX2 and FMA are detected, and the
        // pointer contract is the caller's (see `Kernel::tile`).
        unsafe {
            macro_rules! dispatch {
                ($($r:literal)*) => {
                    match mr {
                        $($r => tile_rows::<$r>(k, a, lda, b, ldb, c, ldc, bias, load_c),)*
                        _ => {}
                    }
                };
            }
            dispatch!(1 2 3 4 5 6);
        }
    }
}

/// The `MR × 16` tile, fully unrolled over rows so the accumulators live in registers.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows<const MR: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    load_c: bool,
) {
    let mut acc0: [__m256; MR] = [_mm256_setzero_ps(); MR];
    let mut acc1: [__m256; MR] = [_mm256_setzero_ps(); MR];
    // SAFETY: per `Kernel::tile`, rows `0..MR` of A hold `k` readable floats at stride `lda`,
    // B rows `0..k` hold 16 floats at stride `ldb`, C rows `0..MR` hold 16 writable floats at stride `ldc`, and bias
    // (when non-null) 16 floats.
    unsafe {
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for i in 0..MR {
                let av = _mm256_set1_ps(*ap.add(i * lda));
                acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);
                acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);
            }
            ap = ap.add(1);
            bp = bp.add(ldb);
        }
        let (bias0, bias1) = if bias.is_null() {
            (_mm256_setzero_ps(), _mm256_setzero_ps())
        } else {
            (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8)))
        };
        for i in 0..MR {
            let row = c.add(i * ldc);
            let mut r0 = _mm256_add_ps(acc0[i], bias0);
            let mut r1 = _mm256_add_ps(acc1[i], bias1);
            if load_c {
                r0 = _mm256_add_ps(r0, _mm256_loadu_ps(row));
                r1 = _mm256_add_ps(r1, _mm256_loadu_ps(row.add(8)));
            }
            _mm256_storeu_ps(row, r0);
            _mm256_storeu_ps(row.add(8), r1);
        }
    }
}
