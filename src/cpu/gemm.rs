//! Single-precision matrix multiply for the CPU backend: `C = A·B (+ bias) (+ C)`.
//!
//! Row-major operands with row strides, B either `[K, N]` as the `.tinv` file stores weights
//! ([`sgemm`]) or `[N, K]` ([`sgemm_bt`], for attention scores `Q·Kᵀ`). The SIMD micro-kernel is
//! picked at run time ([`kernel_name`]): AVX-512F, AVX2+FMA, NEON on aarch64, or plain Rust.
//!
//! Blocking (why it looks like this): the ViT shapes are small (M ≈ 200, K and N ≤ 768), so
//! the cost that matters is keeping the FMA ports busy. B is copied into `scratch` as `kc × NR`
//! column panels, each a contiguous L1-resident stream that then serves every row tile. A panel
//! is copied just before its first row tile, and while its row tiles run the rows of the next
//! panel are prefetched into L2: the weights (22 MB for ViT-Tiny) come from L3 or memory on
//! every call, and a panel's rows are a line each, 0.75–3 KiB apart, a stride the hardware
//! prefetcher does not follow. (Copying all panels of a `kc`-deep block first, in one sweep over
//! whole rows that the hardware prefetcher streams, left that copy waiting on memory for about
//! 7 % of a one-thread ViT-Tiny inference on the AVX2 host; the prefetch saves about a third of
//! it.) A is *not* packed: the kernel
//! broadcasts each A element straight from its row, which costs nothing extra and saves a
//! transposing copy that would eat 10–25 % of the time when N is small. Threads get disjoint
//! rectangles of C (column panels, or row ranges when that balances better). No call allocates:
//! packing space is `scratch`, sized by [`scratch_len`]: per thread one `kc × NR` panel when M
//! fits one pass over the rows (`MC` = 256 rows: ViT-Tiny's 197 tokens, or Fashion-MNIST at
//! batch 1), else one `kc`-deep block of all of B, where the panels stay for the next `MC` rows
//! of A. With at most four row tiles (M ≤ 24 with AVX2, 56 with AVX-512) the copy of B is not
//! repaid and full-width panels are read in place; `[N, K]` panels are
//! transposed with AVX-512 gathers where available.
//!
//! Measured with the AVX-512 kernel (a 2-vCPU AVX-512 Xeon, one thread, FMA peak 166–179
//! GFLOP/s, calls interleaved with numpy's OpenBLAS in one process so both see the same load):
//! the ViT-Tiny shapes (M = 197; K×N = 192×576, 192×768, 768×192, 192×192) run at 150–165
//! GFLOP/s, about 90–95 % of the FMA peak and 1.1× single-threaded OpenBLAS 0.3.31 on the same
//! shapes; M = 50 (an earlier Fashion-MNIST model; today's has M = 17, read in place) at about
//! 150 (1.4× OpenBLAS); attention `Q·Kᵀ` (197×197×64) at 130–137 and `P·V` at about 155. With
//! the AVX2 kernel (a 2-vCPU AMD EPYC without AVX-512, FMA peak 95–100 GFLOP/s, the host of
//! docs/RESULTS.md) the ViT-Tiny shapes ran at 0.86–1.03× OpenBLAS, depending on the minute,
//! until the kernel's loop took four steps of k at a time and the panels were packed one at a
//! time with the next one prefetched: that made the four ViT-Tiny GEMMs 9–13 % faster (B warm,
//! or cold as in an inference) and a one-thread ViT-Tiny inference about 10 % faster, measured
//! with the old and the new code alternated call by call in one process (this host's noise moves
//! separate runs by more than that). The block profile in docs/RESULTS.md gives this host's
//! numbers. The AVX-512 figures above predate the per-panel packing. With it, on a 2-vCPU AMD
//! EPYC with AVX-512 (Zen 4, which issues a 512-bit FMA as two 256-bit halves), the ViT-Tiny
//! shapes ran at 99–112 GFLOP/s against 81–99 for numpy's single-threaded OpenBLAS, runs
//! alternated (1.1–1.3×). Four steps of k per iteration, as in the AVX2 kernel, made the
//! AVX-512 kernel 30–45 % slower there (not analysed; 28 of the 32 registers hold
//! accumulators), so it takes one.
//!
//! Known weak spot: when `lda` is a multiple of 1024 floats, the 14 A rows of a tile share one L1
//! set and square 1024³ runs about 15 % below the ViT shapes; packing A for that case would fix
//! it at the cost of more scratch.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(test)]
mod contract_tests;
mod driver;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(test)]
mod tests;

use super::pool::Pool;
pub(crate) use driver::MIN_PARALLEL_MACS;
use driver::{run, BSrc};

/// A register-blocked micro-kernel: computes one `mr × NR` tile of C over `k`.
pub(crate) trait Kernel {
    /// Most rows per tile.
    const MR: usize;
    /// Columns per tile (the packed B panel width).
    const NR: usize;
    /// Name reported by [`kernel_name`].
    const NAME: &'static str;

    /// `C[i][j] = Σ_p A[i][p]·B[p][j] + bias[j] + (load_c ? C[i][j] : 0)` for `i < mr`,
    /// `j < NR`, with `A[i][p] = *a.add(i * lda + p)`, `B[p][j] = *b.add(p * ldb + j)`,
    /// `C[i][j] = *c.add(i * ldc + j)`; a null `bias` counts as zeros.
    ///
    /// # Safety
    /// `1 <= mr <= MR`; the pointers must be valid for exactly those reads and writes; the CPU
    /// must support the kernel's instructions; C must not be accessed by anyone else meanwhile.
    #[allow(clippy::too_many_arguments)]
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
    );

    /// [`Kernel::tile`] for `NR / 2` columns (a narrow last panel); the default runs the full
    /// width, so C and bias must then be valid for `NR` columns, as the stack tile guarantees.
    ///
    /// # Safety
    /// As for [`Kernel::tile`] with `NR / 2` columns (`NR` for the default).
    #[allow(clippy::too_many_arguments)]
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
        // SAFETY: forwarded (see the contract above).
        unsafe { Self::tile(mr, k, a, lda, b, ldb, c, ldc, bias, load_c) }
    }

    /// Packs rows `j0..j0+nv` (`nv <= NR`), columns `k0..k0+kc` of Bᵀ (`[N, K]`, stride `ld`)
    /// into `dst` as a `kc × NR` panel (`dst[p * NR + j] = Bᵀ[j0 + j][k0 + p]`), zero-padded.
    ///
    /// # Safety
    /// `ptr` must cover those rows and columns, `dst.len() >= kc * NR`, and the CPU must support
    /// the kernel's instructions.
    #[allow(clippy::too_many_arguments)]
    unsafe fn pack_cols(
        ptr: *const f32,
        ld: usize,
        k0: usize,
        kc: usize,
        j0: usize,
        nv: usize,
        dst: &mut [f32],
    ) {
        // SAFETY: forwarded.
        unsafe { driver::pack_cols_generic(ptr, ld, k0, kc, j0, nv, Self::NR, dst) }
    }
}

/// The kernels this build has, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// AVX-512F (x86_64).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX2 with FMA (x86_64).
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// NEON (aarch64 baseline).
    #[cfg(target_arch = "aarch64")]
    Neon,
    /// Plain Rust.
    Scalar,
}

impl Isa {
    /// The best kernel this CPU runs, detected at run time (the detection is cached by std).
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2Fma;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            return Isa::Neon;
        }
        #[allow(unreachable_code)]
        Isa::Scalar
    }

    /// Every kernel this CPU can run (used by the tests to cover each one).
    #[cfg(test)]
    fn available() -> Vec<Isa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2Fma);
            }
        }
        // On aarch64 NEON is baseline: both kernels always run.
        #[cfg(target_arch = "aarch64")]
        v.extend([Isa::Neon, Isa::Scalar]);
        #[cfg(not(target_arch = "aarch64"))]
        v.push(Isa::Scalar);
        v
    }

    fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512::Avx512::NAME,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => avx2::Avx2Fma::NAME,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::Neon::NAME,
            Isa::Scalar => scalar::Scalar::NAME,
        }
    }

    fn nr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512::Avx512::NR,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => avx2::Avx2Fma::NR,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::Neon::NR,
            Isa::Scalar => scalar::Scalar::NR,
        }
    }

    /// Most rows per tile of this kernel.
    fn mr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512::Avx512::MR,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => avx2::Avx2Fma::MR,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::Neon::MR,
            Isa::Scalar => scalar::Scalar::MR,
        }
    }
}

/// Name of the kernel chosen at run time ("avx512f", "avx2+fma", "neon" or "scalar").
pub fn kernel_name() -> &'static str {
    Isa::detect().name()
}

/// Floats of `scratch` that [`sgemm`] / [`sgemm_bt`] need for these sizes on a pool of
/// `threads` threads (reserve it once, in the session arena).
pub fn scratch_len(m: usize, n: usize, k: usize, threads: usize) -> usize {
    scratch_len_for(Isa::detect(), m, n, k, threads)
}

fn scratch_len_for(isa: Isa, m: usize, n: usize, k: usize, threads: usize) -> usize {
    threads.max(1) * driver::slot_len(isa, m, n, k) + 16
}
/// `C = A·B (+ bias broadcast over rows) (+ C if accumulate)`, all row-major with row strides:
/// `a` is `m×k` (stride `lda`), `b` is `k×n` (stride `ldb`, `[K, N]` exactly as the `.tinv` file
/// stores weights), `c` is `m×n` (stride `ldc`), `bias` has `n` entries. `scratch` must hold
/// [`scratch_len`]`(m, n, k, pool.threads())` floats. Does not allocate.
///
/// # Panics
/// If a slice is shorter than its dimensions and stride say, a stride is smaller than its row, or
/// `scratch` is too short: these are the caller's sizing bugs (the plan sizes everything at load),
/// caught here before any memory is touched.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
    scratch: &mut [f32],
    pool: &Pool,
) {
    sgemm_with(
        Isa::detect(),
        m,
        n,
        k,
        a,
        lda,
        b,
        ldb,
        c,
        ldc,
        bias,
        accumulate,
        scratch,
        pool,
    );
}

/// `C = A·Bᵀ` where `bt` is `n×k` row-major (stride `ldbt`): attention scores `Q·Kᵀ`. Same
/// conventions, scratch size and panics as [`sgemm`]; C is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_bt(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    bt: &[f32],
    ldbt: usize,
    c: &mut [f32],
    ldc: usize,
    scratch: &mut [f32],
    pool: &Pool,
) {
    sgemm_bt_with(
        Isa::detect(),
        m,
        n,
        k,
        a,
        lda,
        bt,
        ldbt,
        c,
        ldc,
        scratch,
        pool,
    );
}

/// True when a row-major `rows × cols` matrix with stride `ld` fits in `len` floats.
fn fits(len: usize, rows: usize, cols: usize, ld: usize) -> bool {
    rows == 0
        || cols == 0
        || (ld >= cols
            && (rows - 1)
                .checked_mul(ld)
                .and_then(|x| x.checked_add(cols))
                .is_some_and(|need| need <= len))
}

/// [`sgemm`] with kernel `isa` (the tests run every kernel the CPU has). `isa` must run on this
/// CPU: `Isa` is private to this module, and only `Isa::detect` / `Isa::available` make values.
#[allow(clippy::too_many_arguments)]
fn sgemm_with(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
    scratch: &mut [f32],
    pool: &Pool,
) {
    assert!(
        fits(b.len(), k, n, ldb),
        "sgemm: B ({} floats) too short for {k}×{n} with stride {ldb}",
        b.len()
    );
    assert!(
        bias.is_none_or(|v| v.len() >= n),
        "sgemm: bias shorter than n = {n}"
    );
    let bias = bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
    run(
        isa,
        m,
        n,
        k,
        a,
        lda,
        BSrc::Rows {
            ptr: b.as_ptr(),
            ld: ldb,
        },
        c,
        ldc,
        bias,
        accumulate,
        scratch,
        pool,
    );
}

/// [`sgemm_bt`] with kernel `isa` (same contract as [`sgemm_with`]).
#[allow(clippy::too_many_arguments)]
fn sgemm_bt_with(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    bt: &[f32],
    ldbt: usize,
    c: &mut [f32],
    ldc: usize,
    scratch: &mut [f32],
    pool: &Pool,
) {
    assert!(
        fits(bt.len(), n, k, ldbt),
        "sgemm_bt: Bᵀ ({} floats) too short for {n}×{k} with stride {ldbt}",
        bt.len()
    );
    let b = BSrc::Cols {
        ptr: bt.as_ptr(),
        ld: ldbt,
    };
    run(
        isa,
        m,
        n,
        k,
        a,
        lda,
        b,
        c,
        ldc,
        std::ptr::null(),
        false,
        scratch,
        pool,
    );
}
