//! Single-precision matrix multiply for the CPU backend: `C = A·B (+ bias) (+ C)`.
//!
//! Row-major operands with row strides, B either `[K, N]` as the `.tinv` file stores weights
//! ([`sgemm`]) or `[N, K]` ([`sgemm_bt`], for attention scores `Q·Kᵀ`). The SIMD micro-kernel is
//! picked at run time ([`kernel_name`]): AVX-512F, AVX2+FMA, NEON on aarch64, or plain Rust.
//!
//! Blocking (why it looks like this): the ViT shapes are small (M ≈ 200, K and N ≤ 768), so
//! everything fits in L2 and the cost that matters is keeping the FMA ports busy. B is copied,
//! one `kc × NR` column panel at a time, into `scratch` (a contiguous L1-resident stream, and a
//! cheap copy since B rows are contiguous); that panel then serves every row tile. A is *not*
//! packed: the kernel broadcasts each A element straight from its row, which costs nothing extra
//! and saves a transposing copy that would eat 10–25 % of the time when N is small. Threads get
//! disjoint rectangles of C (column panels, or row ranges when that balances better). No call
//! allocates: packing space is `scratch`, sized by [`scratch_len`].

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(test)]
mod tests;

use super::pool::Pool;

/// Depth of one packed B panel: `KC × NR` floats (32 KiB for AVX-512) stay in L1 while every row
/// tile of the thread streams through it.
const KC: usize = 256;

/// Most rows of A one pass over the column panels streams (`MC × KC` floats stay in L2).
const MC: usize = 256;

/// Row tiles per pass at or below which full-width panels of `[K, N]` B are read in place rather
/// than packed: with few tiles the copy is not repaid, and with many the strided panel (rows
/// `ldb` apart map to few L1 sets when `ldb` is a multiple of a large power of two) thrashes L1.
const DIRECT_B_MAX_TILES: usize = 4;

/// Largest `MR × NR` of any kernel, for the stack tile that takes partial column panels.
const EDGE_TILE: usize = 14 * 32;

/// Below this many multiply-adds a second thread costs more to wake than it saves.
const MIN_PARALLEL_MACS: usize = 1 << 16;

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
        unsafe { pack_cols_generic(ptr, ld, k0, kc, j0, nv, Self::NR, dst) }
    }
}

/// The kernels this build has, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
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
    pub(crate) fn detect() -> Isa {
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
    pub(crate) fn available() -> Vec<Isa> {
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
        #[cfg(target_arch = "aarch64")]
        v.push(Isa::Neon);
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
}

/// Name of the kernel chosen at run time ("avx512f", "avx2+fma", "neon" or "scalar").
pub fn kernel_name() -> &'static str {
    Isa::detect().name()
}

/// Floats of `scratch` that [`sgemm`] / [`sgemm_bt`] need for these sizes on a pool of
/// `threads` threads (reserve it once, in the session arena). `m` does not matter today; it is
/// in the signature so the blocking can change without changing callers.
pub fn scratch_len(m: usize, n: usize, k: usize, threads: usize) -> usize {
    scratch_len_for(Isa::detect(), m, n, k, threads)
}

fn scratch_len_for(isa: Isa, _m: usize, _n: usize, k: usize, threads: usize) -> usize {
    threads.max(1) * slot_len(isa.nr(), k) + 16
}

/// Floats of one thread's packed-B slot, rounded to whole cache lines.
fn slot_len(nr: usize, k: usize) -> usize {
    (k.clamp(1, KC) * nr).div_ceil(16) * 16
}

/// Where B comes from.
#[derive(Clone, Copy)]
enum BSrc {
    /// `B[p][j] = ptr[p * ld + j]` (`[K, N]` row-major).
    Rows { ptr: *const f32, ld: usize },
    /// `B[p][j] = ptr[j * ld + p]` (`[N, K]` row-major, i.e. Bᵀ).
    Cols { ptr: *const f32, ld: usize },
}

/// Everything one call needs, shared read-only by the threads.
#[derive(Clone, Copy)]
struct Job {
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: BSrc,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    accumulate: bool,
    /// 64-byte-aligned start of thread 0's slot in scratch.
    scratch: *mut f32,
    slot: usize,
}

// SAFETY: a `Job` is shared by the pool's threads for the duration of one `Pool::run`. The
// pointers it holds come from borrowed slices that outlive that call; each thread writes only its
// own rectangle of C (disjoint by construction in `split`) and its own scratch slot, and reads A,
// B and bias, which nobody writes.
unsafe impl Sync for Job {}

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

#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_with(
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

#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_bt_with(
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

/// Checks A, C and scratch, then runs the job on the pool (or inline when it is small).
#[allow(clippy::too_many_arguments)]
fn run(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: BSrc,
    c: &mut [f32],
    ldc: usize,
    bias: *const f32,
    accumulate: bool,
    scratch: &mut [f32],
    pool: &Pool,
) {
    assert!(
        fits(a.len(), m, k, lda),
        "sgemm: A ({} floats) too short for {m}×{k} with stride {lda}",
        a.len()
    );
    assert!(
        fits(c.len(), m, n, ldc),
        "sgemm: C ({} floats) too short for {m}×{n} with stride {ldc}",
        c.len()
    );
    let threads = pool.threads();
    let need = scratch_len_for(isa, m, n, k, threads);
    assert!(
        scratch.len() >= need,
        "sgemm: scratch has {} floats, needs {need}",
        scratch.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    // `align_offset` on `*mut f32` counts floats; at most 15 for 64 bytes, covered by the `+ 16`
    // in `scratch_len_for`.
    let align = scratch.as_mut_ptr().align_offset(64).min(15);
    let job = Job {
        m,
        n,
        k,
        a: a.as_ptr(),
        lda,
        b,
        c: c.as_mut_ptr(),
        ldc,
        bias,
        accumulate,
        // SAFETY: `align <= 15 < scratch.len()` (checked above: `need >= 16 + slot`).
        scratch: unsafe { scratch.as_mut_ptr().add(align) },
        slot: slot_len(isa.nr(), k),
    };
    let useful = if m * n * k < MIN_PARALLEL_MACS {
        1
    } else {
        threads
    };
    let work = |t: usize| {
        if t < useful {
            // SAFETY: the slices behind `job` were checked above to cover every index the
            // kernels touch, they outlive this call, and `split` gives each thread disjoint
            // parts of C and its own scratch slot (`t < threads`).
            unsafe { run_part(isa, &job, t, useful) }
        }
    };
    if useful == 1 {
        work(0);
    } else {
        pool.run(work);
    }
}

/// Runs thread `t`'s share of `job` with the kernel for `isa`.
///
/// # Safety
/// As for [`compute`].
unsafe fn run_part(isa: Isa, job: &Job, t: usize, threads: usize) {
    let (rows, panels) = split(isa.nr(), job.m, job.n, t, threads);
    // SAFETY: forwarded from the caller; the kernel matches the detected CPU features.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => compute::<avx512::Avx512>(job, t, rows, panels),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => compute::<avx2::Avx2Fma>(job, t, rows, panels),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => compute::<neon::Neon>(job, t, rows, panels),
            Isa::Scalar => compute::<scalar::Scalar>(job, t, rows, panels),
        }
    }
}

/// Thread `t`'s rectangle of C: a row range and a column-panel range. Splits column panels when
/// that balances at least as well as splitting rows (each thread then owns whole cache lines of
/// every C row it writes), else rows.
fn split(
    nr: usize,
    m: usize,
    n: usize,
    t: usize,
    threads: usize,
) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let panels = n.div_ceil(nr);
    let part = |len: usize| len * t / threads..len * (t + 1) / threads;
    let by_panels = panels.div_ceil(threads) * m;
    let by_rows = m.div_ceil(threads) * panels;
    if by_panels <= by_rows {
        (0..m, part(panels))
    } else {
        (part(m), 0..panels)
    }
}

/// Computes rows `rows` × column panels `panels` of C with kernel `K`, using scratch slot `t`.
///
/// # Safety
/// `job`'s pointers must cover its dimensions and strides; no other thread may touch this part
/// of C or slot `t`; the CPU must support `K`.
unsafe fn compute<K: Kernel>(
    job: &Job,
    t: usize,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
) {
    const { assert!(K::MR * K::NR <= EDGE_TILE) };
    if rows.is_empty() || panels.is_empty() {
        return;
    }
    if job.k == 0 {
        for panel in panels {
            let j0 = panel * K::NR;
            // SAFETY: forwarded; rows and columns are inside C.
            unsafe { fill_without_product(job, rows.clone(), j0, K::NR.min(job.n - j0)) };
        }
        return;
    }
    // SAFETY: slot `t` lies inside scratch (`scratch_len_for` reserves `threads` slots) and is
    // used by this thread only.
    let pack = unsafe { std::slice::from_raw_parts_mut(job.scratch.add(t * job.slot), job.slot) };
    let blocks = rows.len().div_ceil(MC);
    let mut k0 = 0;
    while k0 < job.k {
        let kc = KC.min(job.k - k0);
        let first = k0 == 0;
        let load_c = !first || job.accumulate;
        for blk in 0..blocks {
            let r0 = rows.start + rows.len() * blk / blocks;
            let r1 = rows.start + rows.len() * (blk + 1) / blocks;
            let tiles = (r1 - r0).div_ceil(K::MR);
            for panel in panels.clone() {
                let j0 = panel * K::NR;
                let nv = K::NR.min(job.n - j0);
                let (b, ldb) = match job.b {
                    // SAFETY: row `k0 < k`, column `j0 < n` is inside B.
                    BSrc::Rows { ptr, ld } if nv == K::NR && tiles <= DIRECT_B_MAX_TILES => {
                        (unsafe { ptr.add(k0 * ld + j0) }, ld)
                    }
                    _ => {
                        // SAFETY: forwarded; `pack` holds `kc * NR` floats (`slot_len`).
                        unsafe { pack_b::<K>(job.b, k0, kc, j0, nv, K::NR, pack) };
                        (pack.as_ptr(), K::NR)
                    }
                };
                let bias = if first && !job.bias.is_null() {
                    // SAFETY: bias holds n floats and j0 < n.
                    unsafe { job.bias.add(j0) }
                } else {
                    std::ptr::null()
                };
                for ti in 0..tiles {
                    let i0 = r0 + (r1 - r0) * ti / tiles;
                    let i1 = r0 + (r1 - r0) * (ti + 1) / tiles;
                    // SAFETY: `i0 < m`, `k0 < k`, `j0 < n`: inside A and C.
                    let (a, c) =
                        unsafe { (job.a.add(i0 * job.lda + k0), job.c.add(i0 * job.ldc + j0)) };
                    // SAFETY: forwarded; `i1 - i0 <= MR` since `tiles = ceil(len / MR)`.
                    unsafe {
                        tile::<K>(
                            i1 - i0,
                            kc,
                            a,
                            job.lda,
                            b,
                            ldb,
                            c,
                            job.ldc,
                            nv,
                            bias,
                            load_c,
                        )
                    };
                }
            }
        }
        k0 += kc;
    }
}

/// One tile; a partial column panel (`nv < NR`) goes through a stack tile so the kernel never
/// reads or writes outside C.
///
/// # Safety
/// As for [`Kernel::tile`], with C and bias valid for `nv` columns only.
#[allow(clippy::too_many_arguments)]
unsafe fn tile<K: Kernel>(
    mr: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    nv: usize,
    bias: *const f32,
    load_c: bool,
) {
    if nv == K::NR {
        // SAFETY: forwarded.
        unsafe { K::tile(mr, kc, a, lda, b, ldb, c, ldc, bias, load_c) };
        return;
    }
    let mut tmp = [0f32; EDGE_TILE];
    let mut tmp_bias = [0f32; 32];
    // SAFETY: C rows `0..mr` hold `nv` floats at stride `ldc`, bias `nv` floats.
    unsafe {
        if load_c {
            for i in 0..mr {
                std::ptr::copy_nonoverlapping(c.add(i * ldc), tmp.as_mut_ptr().add(i * K::NR), nv);
            }
        }
        let bias_ptr = if bias.is_null() {
            std::ptr::null()
        } else {
            std::ptr::copy_nonoverlapping(bias, tmp_bias.as_mut_ptr(), nv);
            tmp_bias.as_ptr()
        };
        if nv <= K::NR / 2 {
            K::tile_half(
                mr,
                kc,
                a,
                lda,
                b,
                ldb,
                tmp.as_mut_ptr(),
                K::NR,
                bias_ptr,
                load_c,
            );
        } else {
            K::tile(
                mr,
                kc,
                a,
                lda,
                b,
                ldb,
                tmp.as_mut_ptr(),
                K::NR,
                bias_ptr,
                load_c,
            );
        }
        for i in 0..mr {
            std::ptr::copy_nonoverlapping(tmp.as_ptr().add(i * K::NR), c.add(i * ldc), nv);
        }
    }
}

/// Copies rows `k0..k0+kc`, columns `j0..j0+nv` of B into `dst` as a `kc × nr` panel, zero-padded
/// to `nr` columns.
///
/// # Safety
/// `b` must cover those rows and columns; `dst.len() >= kc * nr`.
unsafe fn pack_b<K: Kernel>(
    b: BSrc,
    k0: usize,
    kc: usize,
    j0: usize,
    nv: usize,
    nr: usize,
    dst: &mut [f32],
) {
    let dst = &mut dst[..kc * nr];
    match b {
        BSrc::Rows { ptr, ld } => {
            for (p, out) in dst.chunks_exact_mut(nr).enumerate() {
                // SAFETY: row `k0 + p < k`, columns `j0..j0 + nv <= n` are inside B.
                let src = unsafe { std::slice::from_raw_parts(ptr.add((k0 + p) * ld + j0), nv) };
                out[..nv].copy_from_slice(src);
                out[nv..].fill(0.0);
            }
        }
        // SAFETY: forwarded.
        BSrc::Cols { ptr, ld } => unsafe { K::pack_cols(ptr, ld, k0, kc, j0, nv, dst) },
    }
}

/// Copies rows `j0..j0+nv`, columns `k0..k0+kc` of Bᵀ (`[N, K]`, stride `ld`) transposed into
/// `dst` as a `kc × nr` panel, zero-padded to `nr` columns.
///
/// # Safety
/// `ptr` must cover those rows and columns; `dst.len() >= kc * nr`.
#[allow(clippy::too_many_arguments)]
unsafe fn pack_cols_generic(
    ptr: *const f32,
    ld: usize,
    k0: usize,
    kc: usize,
    j0: usize,
    nv: usize,
    nr: usize,
    dst: &mut [f32],
) {
    let dst = &mut dst[..kc * nr];
    if nv < nr {
        dst.fill(0.0);
    }
    for jj in 0..nv {
        // SAFETY: Bᵀ row `j0 + jj < n`, columns `k0..k0 + kc <= k` are inside it.
        let src = unsafe { std::slice::from_raw_parts(ptr.add((j0 + jj) * ld + k0), kc) };
        for (out, &v) in dst.chunks_exact_mut(nr).zip(src) {
            out[jj] = v;
        }
    }
}

/// The `k == 0` case: `C = bias (+ C)` on rows `rows`, columns `j0..j0+nv`.
///
/// # Safety
/// Those rows and columns must be inside C (and bias, when non-null).
unsafe fn fill_without_product(job: &Job, rows: std::ops::Range<usize>, j0: usize, nv: usize) {
    for i in rows {
        // SAFETY: row `i < m`, columns `j0..j0 + nv <= n`.
        let row = unsafe { std::slice::from_raw_parts_mut(job.c.add(i * job.ldc + j0), nv) };
        for (j, x) in row.iter_mut().enumerate() {
            let base = if job.accumulate { *x } else { 0.0 };
            // SAFETY: bias holds n floats.
            let add = if job.bias.is_null() {
                0.0
            } else {
                unsafe { *job.bias.add(j0 + j) }
            };
            *x = base + add;
        }
    }
}
