//! aarch64 NEON micro-kernel: up to 6 rows × 16 columns (24 `q` accumulators), A broadcast from
//! its rows in place, B from a packed `kc × 16` panel. NEON is part of the aarch64 baseline, so
//! this kernel needs no run-time check.

use super::Kernel;
use std::arch::aarch64::{float32x4_t, vaddq_f32, vdupq_n_f32, vfmaq_n_f32, vld1q_f32, vst1q_f32};

/// The NEON kernel (every aarch64 CPU).
pub(super) struct Neon;

impl Kernel for Neon {
    const MR: usize = 6;
    const NR: usize = 16;
    const NAME: &'static str = "neon";

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
        // SAFETY: NEON is baseline on aarch64; the pointer contract is the caller's (see
        // `Kernel::tile`).
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
#[allow(clippy::too_many_arguments)]
#[inline]
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
    // SAFETY: per `Kernel::tile`, rows `0..MR` of A hold `k` readable floats at stride `lda`,
    // B rows `0..k` hold 16 floats at stride `ldb`, C rows `0..MR` hold 16 writable floats at stride `ldc`, and bias
    // (when non-null) 16 floats.
    unsafe {
        let zero = vdupq_n_f32(0.0);
        let mut acc: [[float32x4_t; 4]; MR] = [[zero; 4]; MR];
        let mut ap = a;
        let mut bp = b;
        for _ in 0..k {
            let bv = [
                vld1q_f32(bp),
                vld1q_f32(bp.add(4)),
                vld1q_f32(bp.add(8)),
                vld1q_f32(bp.add(12)),
            ];
            for (i, acc_row) in acc.iter_mut().enumerate() {
                let av = *ap.add(i * lda);
                for (x, &bq) in acc_row.iter_mut().zip(bv.iter()) {
                    *x = vfmaq_n_f32(*x, bq, av);
                }
            }
            ap = ap.add(1);
            bp = bp.add(ldb);
        }
        let bias_v = if bias.is_null() {
            [zero; 4]
        } else {
            [
                vld1q_f32(bias),
                vld1q_f32(bias.add(4)),
                vld1q_f32(bias.add(8)),
                vld1q_f32(bias.add(12)),
            ]
        };
        for (i, acc_row) in acc.iter().enumerate() {
            let row = c.add(i * ldc);
            for (q, (&x, &bq)) in acc_row.iter().zip(bias_v.iter()).enumerate() {
                let mut r = vaddq_f32(x, bq);
                if load_c {
                    r = vaddq_f32(r, vld1q_f32(row.add(4 * q)));
                }
                vst1q_f32(row.add(4 * q), r);
            }
        }
    }
}
