//! AVX-512F micro-kernel: up to 14 rows × 32 columns (28 `zmm` accumulators), A broadcast from
//! its rows in place, B from a `kc × 32` panel; a 16-column variant for narrow last panels.

use super::Kernel;
use std::arch::x86_64::{
    __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_i32gather_ps,
    _mm512_mullo_epi32, _mm512_set1_epi32, _mm512_set1_ps, _mm512_setr_epi32, _mm512_setzero_ps,
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
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        bias: *const f32,
        load_c: bool,
    ) {
        // SAFETY: the dispatcher selects this kernel only when AVX-512F is detected, and the
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
        // SAFETY: as for `tile`, for 16 columns.
        unsafe { by_rows::<1>(mr, k, a, lda, b, ldb, c, ldc, bias, load_c) }
    }

    unsafe fn pack_cols(
        ptr: *const f32,
        ld: usize,
        k0: usize,
        kc: usize,
        j0: usize,
        nv: usize,
        dst: &mut [f32],
    ) {
        // Gather offsets are i32 element indices up to `15 * ld`.
        let fits_i32 = ld.checked_mul(15).is_some_and(|x| x <= i32::MAX as usize);
        // SAFETY: forwarded; AVX-512F is detected (dispatcher); `dst` holds `kc * 32` floats.
        unsafe {
            if fits_i32 && dst.len() >= kc * 32 {
                gather_cols(ptr, ld, k0, kc, j0, nv, dst.as_mut_ptr());
            } else {
                super::driver::pack_cols_generic(ptr, ld, k0, kc, j0, nv, 32, dst);
            }
        }
    }
}

/// [`Kernel::pack_cols`] with masked gathers: output row `p` of each 16-column half is one
/// gather of column `k0 + p` from 16 rows of Bᵀ.
///
/// # Safety
/// As for `Kernel::pack_cols`, plus `15 * ld <= i32::MAX` and `dst` valid for `kc * 32` floats.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn gather_cols(
    ptr: *const f32,
    ld: usize,
    k0: usize,
    kc: usize,
    j0: usize,
    nv: usize,
    dst: *mut f32,
) {
    // `ld as i32` is exact: the caller checked `15 * ld <= i32::MAX`.
    let offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(ld as i32),
    );
    for half in 0..2 {
        let rows = nv.saturating_sub(16 * half).min(16);
        // SAFETY: `dst` holds `kc * 32` floats; when `rows > 0`, Bᵀ rows `j0 + 16 * half ..
        // j0 + 16 * half + rows` and columns `k0..k0 + kc` are inside Bᵀ, and the mask keeps the
        // gather to those rows (masked-off lanes are not read).
        unsafe {
            let out = dst.add(16 * half);
            if rows == 0 {
                for p in 0..kc {
                    _mm512_storeu_ps(out.add(p * 32), _mm512_setzero_ps());
                }
                continue;
            }
            let mask: __mmask16 = ((1u32 << rows) - 1) as __mmask16;
            let base = ptr.add((j0 + 16 * half) * ld + k0);
            for p in 0..kc {
                let v =
                    _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, offsets, base.add(p));
                _mm512_storeu_ps(out.add(p * 32), v);
            }
        }
    }
}

/// Picks the `MR`-row instance of [`tile_rows`] for `mr`.
///
/// # Safety
/// As for `Kernel::tile`, with `16 * NV` columns.
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
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14);
}

/// The `MR × 16·NV` tile, fully unrolled over rows and vectors so the accumulators live in
/// registers.
#[target_feature(enable = "avx512f")]
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
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    // SAFETY: per `Kernel::tile`, rows `0..MR` of A hold `k` readable floats at stride `lda`,
    // B rows `0..k` hold `16 * NV` floats at stride `ldb`, C rows `0..MR` hold `16 * NV` writable
    // floats at stride `ldc`, and bias (when non-null) `16 * NV` floats.
    unsafe {
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(bp.add(16 * v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i * lda));
                for (x, &bq) in row.iter_mut().zip(bv.iter()) {
                    *x = _mm512_fmadd_ps(av, bq, *x);
                }
            }
            ap = ap.add(1);
            bp = bp.add(ldb);
        }
        let mut bias_v = [_mm512_setzero_ps(); NV];
        if !bias.is_null() {
            for (v, x) in bias_v.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(bias.add(16 * v));
            }
        }
        for (i, row) in acc.iter().enumerate() {
            let out = c.add(i * ldc);
            for (v, (&x, &bq)) in row.iter().zip(bias_v.iter()).enumerate() {
                let mut r = _mm512_add_ps(x, bq);
                if load_c {
                    r = _mm512_add_ps(r, _mm512_loadu_ps(out.add(16 * v)));
                }
                _mm512_storeu_ps(out.add(16 * v), r);
            }
        }
    }
}
