//! AVX-512F micro-kernel: up to 14 rows × 32 columns (28 `zmm` accumulators), A broadcast from
//! its rows in place, B from a packed `kc × 32` panel.

use super::Kernel;
use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

/// The AVX-512F kernel. Only selected when `is_x86_feature_detected!("avx512f")`.
pub(super) struct Avx512;

impl Kernel for Avx512 {
    const MR: usize = 14;
    const NR: usize = 32;
    const NAME: &'static str = "avx512f";

    unsafe fn tile(
        mr: usize,
        k: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        bias: *const f32,
        load_c: bool,
    ) {
        // SAFETY: the dispatcher selects this kernel only when AVX-512F is detected, and the
        // pointer contract is the caller's (see `Kernel::tile`).
        unsafe {
            macro_rules! dispatch {
                ($($r:literal)*) => {
                    match mr {
                        $($r => tile_rows::<$r>(k, a, lda, b, c, ldc, bias, load_c),)*
                        _ => {}
                    }
                };
            }
            dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14);
        }
    }
}

/// The `MR × 32` tile, fully unrolled over rows so the accumulators live in registers.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows<const MR: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    load_c: bool,
) {
    let mut acc0: [__m512; MR] = [_mm512_setzero_ps(); MR];
    let mut acc1: [__m512; MR] = [_mm512_setzero_ps(); MR];
    // SAFETY: per `Kernel::tile`, rows `0..MR` of A hold `k` readable floats at stride `lda`,
    // B holds `k * 32` floats, C rows `0..MR` hold 32 writable floats at stride `ldc`, and bias
    // (when non-null) 32 floats.
    unsafe {
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for i in 0..MR {
                let av = _mm512_set1_ps(*ap.add(i * lda));
                acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);
                acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);
            }
            ap = ap.add(1);
            bp = bp.add(32);
        }
        let (bias0, bias1) = if bias.is_null() {
            (_mm512_setzero_ps(), _mm512_setzero_ps())
        } else {
            (_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16)))
        };
        for i in 0..MR {
            let row = c.add(i * ldc);
            let mut r0 = _mm512_add_ps(acc0[i], bias0);
            let mut r1 = _mm512_add_ps(acc1[i], bias1);
            if load_c {
                r0 = _mm512_add_ps(r0, _mm512_loadu_ps(row));
                r1 = _mm512_add_ps(r1, _mm512_loadu_ps(row.add(16)));
            }
            _mm512_storeu_ps(row, r0);
            _mm512_storeu_ps(row.add(16), r1);
        }
    }
}
