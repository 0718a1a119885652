//! Portable fallback micro-kernel (4 rows × 8 columns), for CPUs without a SIMD kernel here.

use super::Kernel;

/// The plain-Rust kernel; always available.
pub(super) struct Scalar;

/// Columns per tile; the accumulator block is `MR × NR` plain floats.
const NR: usize = 8;

impl Kernel for Scalar {
    const MR: usize = 4;
    const NR: usize = NR;
    const NAME: &'static str = "scalar";

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
        let mut acc = [[0f32; NR]; 4];
        // SAFETY: per `Kernel::tile`, rows `0..mr` (mr <= 4) of A hold `k` floats at stride
        // `lda`, B rows `0..k` hold NR floats at stride `ldb`, C rows `0..mr` hold NR floats at stride `ldc`, and bias
        // (when non-null) NR floats.
        unsafe {
            for p in 0..k {
                let brow = std::slice::from_raw_parts(b.add(p * ldb), NR);
                for (i, acc_row) in acc.iter_mut().enumerate().take(mr) {
                    let av = *a.add(i * lda + p);
                    for (x, &bv) in acc_row.iter_mut().zip(brow) {
                        *x += av * bv;
                    }
                }
            }
            for (i, acc_row) in acc.iter().enumerate().take(mr) {
                let row = std::slice::from_raw_parts_mut(c.add(i * ldc), NR);
                for (j, (out, &v)) in row.iter_mut().zip(acc_row).enumerate() {
                    let mut r = v;
                    if !bias.is_null() {
                        r += *bias.add(j);
                    }
                    if load_c {
                        r += *out;
                    }
                    *out = r;
                }
            }
        }
    }
}
