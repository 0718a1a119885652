//! Interim portable GEMM and single-thread pool with the API of `gemm.rs`/`pool.rs`; replaced by
//! the SIMD kernels when they land.
#![allow(clippy::too_many_arguments)]

use super::kernels::multiversion;

/// Single-threaded stand-in for the worker pool.
pub struct Pool;

impl Pool {
    /// A pool of `threads` threads (this stand-in always runs on the caller).
    pub fn new(_threads: usize) -> Pool {
        Pool
    }
    /// Number of threads.
    pub fn threads(&self) -> usize {
        1
    }
    /// Runs `f(0)`.
    pub fn run<F: Fn(usize) + Sync>(&self, f: F) {
        f(0)
    }
}

/// Scratch floats needed (none).
pub fn scratch_len(_m: usize, _n: usize, _k: usize, _threads: usize) -> usize {
    0
}

/// Kernel name.
pub fn kernel_name() -> &'static str {
    "simple"
}

/// C = A·B (+bias) (+C).
pub fn sgemm(m: usize, n: usize, k: usize, a: &[f32], lda: usize, b: &[f32], ldb: usize, c: &mut [f32], ldc: usize, bias: Option<&[f32]>, accumulate: bool, _scratch: &mut [f32], _pool: &Pool) {
    gemm_rows(m, n, k, a, lda, b, ldb, c, ldc, bias, accumulate);
}

multiversion! {
    fn gemm_rows(m: usize, n: usize, k: usize, a: &[f32], lda: usize, b: &[f32], ldb: usize, c: &mut [f32], ldc: usize, bias: Option<&[f32]>, accumulate: bool) {
        for i in 0..m {
            let cr = &mut c[i * ldc..i * ldc + n];
            if !accumulate {
                cr.iter_mut().for_each(|v| *v = 0.0);
            }
            if let Some(bias) = bias {
                cr.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
            for kk in 0..k {
                let av = a[i * lda + kk];
                let br = &b[kk * ldb..kk * ldb + n];
                for (cv, bv) in cr.iter_mut().zip(br) {
                    *cv += av * bv;
                }
            }
        }
    }
}

/// C = A·Btᵀ.
pub fn sgemm_bt(m: usize, n: usize, k: usize, a: &[f32], lda: usize, bt: &[f32], ldbt: usize, c: &mut [f32], ldc: usize, _scratch: &mut [f32], _pool: &Pool) {
    for i in 0..m {
        for j in 0..n {
            let ar = &a[i * lda..i * lda + k];
            let br = &bt[j * ldbt..j * ldbt + k];
            c[i * ldc + j] = ar.iter().zip(br).map(|(x, y)| x * y).sum();
        }
    }
}
