//! AVX2+FMA micro-kernel: up to 6 rows × 16 columns (12 `ymm` accumulators), A broadcast from
//! its rows in place, B from a `kc × 16` panel; an 8-column variant for narrow last panels.

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
        unsafe { by_rows::<2>(mr, k, a, lda, b, ldb, c, ldc, bias, load_c) }
    }

    unsafe fn tile_half(
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
        // SAFETY: as for `tile`, for 8 columns.
        unsafe { by_rows::<1>(mr, k, a, lda, b, ldb, c, ldc, bias, load_c) }
    }
}

/// Picks the `MR`-row instance of [`tile_rows`] for `mr`.
///
/// # Safety
/// As for `Kernel::tile`, with `8 * NV` columns.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn by_rows<const NV: usize>(
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
    macro_rules! dispatch {
        ($($r:literal)*) => {
            match mr {
                // SAFETY: forwarded from the caller.
                $($r => unsafe { tile_rows::<$r, NV>(k, a, lda, b, ldb, c, ldc, bias, load_c) },)*
                _ => {}
            }
        };
    }
    dispatch!(1 2 3 4 5 6);
}

/// The `MR × 8·NV` tile, fully unrolled over rows and vectors so the accumulators live in
/// registers.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows<const MR: usize, const NV: usize>(
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
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    // SAFETY: per `Kernel::tile`, rows `0..MR` of A hold `k` readable floats at stride `lda`,
    // B rows `0..k` hold `8 * NV` floats at stride `ldb`, C rows `0..MR` hold `8 * NV` writable
    // floats at stride `ldc`, and bias (when non-null) `8 * NV` floats.
    unsafe {
        // One step of k: NV vectors of B, MR broadcasts of A, MR × NV multiply-adds.
        let step = |acc: &mut [[__m256; NV]; MR], ap: *const f32, bp: *const f32| {
            let mut bv = [_mm256_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(bp.add(8 * v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*ap.add(i * lda));
                for (x, &bq) in row.iter_mut().zip(bv.iter()) {
                    *x = _mm256_fmadd_ps(av, bq, *x);
                }
            }
        };
        // Four steps per iteration: a quarter of the loop's counter and pointer updates, which
        // took issue slots from the multiply-adds (a one-thread ViT-Tiny inference on the 2-vCPU
        // EPYC: 7–10 % less time than one step per iteration; eight per iteration was slower
        // than four). Each accumulator still sums over p in order, so the results are the same.
        let (mut ap, mut bp) = (a, b);
        for _ in 0..k / 4 {
            for q in 0..4 {
                step(&mut acc, ap.add(q), bp.add(q * ldb));
            }
            ap = ap.add(4);
            bp = bp.add(4 * ldb);
        }
        for q in 0..k % 4 {
            step(&mut acc, ap.add(q), bp.add(q * ldb));
        }
        let mut bias_v = [_mm256_setzero_ps(); NV];
        if !bias.is_null() {
            for (v, x) in bias_v.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(bias.add(8 * v));
            }
        }
        for (i, row) in acc.iter().enumerate() {
            let out = c.add(i * ldc);
            for (v, (&x, &bq)) in row.iter().zip(bias_v.iter()).enumerate() {
                let mut r = _mm256_add_ps(x, bq);
                if load_c {
                    r = _mm256_add_ps(r, _mm256_loadu_ps(out.add(8 * v)));
                }
                _mm256_storeu_ps(out.add(8 * v), r);
            }
        }
    }
}
