//! The blocked loop nest around the micro-kernels: thread split, B panel packing, row tiles,
//! edges. See the parent module for why it is blocked this way.

use super::{fits, scratch_len_for, Isa, Kernel, Pool};

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

/// Below this many multiply-adds (~10 µs on one core) a second thread costs more than it saves.
/// Measured with `tinv-run bench --threads 1|2` on the Fashion-MNIST model at batch 1. On a
/// 2-vCPU Xeon, an earlier 64-wide model's GEMMs ran on the pool at 2^17, and a full-depth call
/// took 286 µs on two threads against 205 µs on one. At 2^19 both took ~200 µs. On a 2-vCPU AMD
/// EPYC (AVX2) with today's 96-wide model, 2^19 still put its 17×96×384 and 17×384×96 MLP GEMMs
/// on the pool: depth 8 took 820–1050 µs on two threads against 650–780 on one. At 2^20 the two
/// are equal. ViT-Tiny's smallest GEMM (197×192×192) is 7× this threshold.
pub(crate) const MIN_PARALLEL_MACS: usize = 1 << 20;

/// Whether a pass over `rows` rows reads full-width panels of `[K, N]` B in place (see
/// [`DIRECT_B_MAX_TILES`]).
fn b_in_place(mr: usize, rows: usize) -> bool {
    rows.div_ceil(rows.div_ceil(MC).max(1)).div_ceil(mr) <= DIRECT_B_MAX_TILES
}

/// Floats of one thread's packed-B slot, rounded to whole cache lines. A chunk with more than
/// `MC` rows streams them in several row blocks that reuse the panels the first one packed, so
/// its slot holds one `KC`-deep block of every column panel of B (a chunk may own all of them).
/// With at most `MC` rows (every chunk then has one row block, and ViT-Tiny's 197 tokens do) each
/// panel is packed just before its row tiles and dropped after them, so the slot holds one panel.
pub(super) fn slot_len(isa: Isa, m: usize, n: usize, k: usize) -> usize {
    let nr = isa.nr();
    let panels = if m <= MC || b_in_place(isa.mr(), m) {
        1
    } else {
        n.div_ceil(nr).max(1)
    };
    (k.clamp(1, KC) * nr * panels).div_ceil(16) * 16
}

/// Where B comes from.
#[derive(Clone, Copy)]
pub(super) enum BSrc {
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

// SAFETY: a `Job` is shared by the pool's threads for the duration of one
// `Pool::run_chunks`. The pointers it holds come from borrowed slices that outlive that call;
// each chunk writes only its own rectangle of C (disjoint by construction in `split`), each
// thread only its own scratch slot, and all read A, B and bias, which nobody writes.
unsafe impl Sync for Job {}

/// Checks A, C and scratch, then runs the job on the pool (or inline when it is small).
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
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
        slot: slot_len(isa, m, n, k),
    };
    let chunks = if threads == 1 || m.saturating_mul(n).saturating_mul(k) < MIN_PARALLEL_MACS {
        1
    } else {
        chunk_count(isa.nr(), m, n, threads)
    };
    // SAFETY: the slices behind `job` were checked above to cover every index the kernels
    // touch and they outlive this call; `split` gives each chunk a disjoint part of C, and the
    // pool gives each running thread its own slot (`slot < threads`, so its scratch slot exists).
    pool.run_chunks(chunks, |slot, c| unsafe {
        run_part(isa, &job, slot, c, chunks)
    });
}

/// Runs chunk `c` of `chunks` of `job` with the kernel for `isa`, in scratch slot `slot`.
///
/// # Safety
/// As for [`compute`].
unsafe fn run_part(isa: Isa, job: &Job, slot: usize, c: usize, chunks: usize) {
    let (rows, panels) = split(isa.nr(), job.m, job.n, c, chunks);
    // SAFETY: forwarded from the caller; the kernel matches the detected CPU features.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => compute::<super::avx512::Avx512>(job, slot, rows, panels),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => compute::<super::avx2::Avx2Fma>(job, slot, rows, panels),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => compute::<super::neon::Neon>(job, slot, rows, panels),
            Isa::Scalar => compute::<super::scalar::Scalar>(job, slot, rows, panels),
        }
    }
}

/// Chunks per thread a parallel GEMM is cut into: the pool hands them to whichever thread is
/// free, so a thread the OS delays costs one chunk's time, not a whole share.
const CHUNKS_PER_THREAD: usize = 3;

/// How many chunks a parallel GEMM on `threads` threads is cut into (at most one per column
/// panel or row, whichever way [`split`] cuts).
fn chunk_count(nr: usize, m: usize, n: usize, threads: usize) -> usize {
    let want = threads * CHUNKS_PER_THREAD;
    let units = if cut_panels(nr, m, n, want) {
        n.div_ceil(nr)
    } else {
        m
    };
    want.min(units).max(1)
}

/// Whether cutting C into `parts` column-panel ranges balances at least as well as cutting it
/// into row ranges (each part then owns whole cache lines of every C row it writes).
fn cut_panels(nr: usize, m: usize, n: usize, parts: usize) -> bool {
    let panels = n.div_ceil(nr);
    panels.div_ceil(parts) * m <= m.div_ceil(parts) * panels
}

/// Chunk `c` of `chunks`: a row range and a column-panel range of C (see [`cut_panels`]).
fn split(
    nr: usize,
    m: usize,
    n: usize,
    c: usize,
    chunks: usize,
) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let panels = n.div_ceil(nr);
    let part = |len: usize| len * c / chunks..len * (c + 1) / chunks;
    if cut_panels(nr, m, n, chunks) {
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
    const { assert!(K::MR * K::NR <= EDGE_TILE && K::NR <= 32) };
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
    // `[K, N]` B is either read in place (full panels, few row tiles) or packed one panel at a
    // time, just before the first row block uses it, while the rows of the panel after it are
    // prefetched (see [`prefetch_rows`]); `[N, K]` B is packed one panel at a time. With one row
    // block every panel goes to the start of the slot, which stays in L1; with more, panel `i` of
    // a `kc` block keeps its own place, so later row blocks reuse it. A chunk has at most `m` rows,
    // so one that packs a panel per place (more than `MC` rows) belongs to a call with `m > MC`,
    // whose slot `slot_len` sized for every panel (slicing `pack` would panic otherwise).
    let in_place = b_in_place(K::MR, rows.len());
    let packs_rows = matches!(job.b, BSrc::Rows { .. }) && !in_place;
    let panel_len = |kc: usize| kc * K::NR;
    let mut k0 = 0;
    while k0 < job.k {
        let kc = KC.min(job.k - k0);
        let first = k0 == 0;
        let load_c = !first || job.accumulate;
        for blk in 0..blocks {
            let r0 = rows.start + rows.len() * blk / blocks;
            let r1 = rows.start + rows.len() * (blk + 1) / blocks;
            let tiles = (r1 - r0).div_ceil(K::MR);
            for (i, panel) in panels.clone().enumerate() {
                let j0 = panel * K::NR;
                let nv = K::NR.min(job.n - j0);
                // The panel packed next while this one's tiles run (the next of this `kc` block,
                // else the first of the next block), as (first row, rows, first column).
                let mut next = None;
                let (b, ldb) = match job.b {
                    // SAFETY: row `k0 < k`, column `j0 < n` is inside B.
                    BSrc::Rows { ptr, ld } if in_place && nv == K::NR => {
                        (unsafe { ptr.add(k0 * ld + j0) }, ld)
                    }
                    BSrc::Rows { ptr, ld } if packs_rows => {
                        let at = if blocks == 1 { 0 } else { i };
                        let dst = &mut pack[at * panel_len(kc)..(at + 1) * panel_len(kc)];
                        if blk == 0 {
                            // SAFETY: forwarded; `dst` holds `kc * NR` floats.
                            unsafe { pack_rows::<K>(ptr, ld, k0, kc, j0, nv, dst) };
                            if panel + 1 < panels.end {
                                next = Some((k0, kc, j0 + K::NR));
                            } else if k0 + kc < job.k {
                                next =
                                    Some((k0 + kc, KC.min(job.k - k0 - kc), panels.start * K::NR));
                            }
                        }
                        (dst.as_ptr(), K::NR)
                    }
                    _ => {
                        let dst = &mut pack[..panel_len(kc)];
                        // SAFETY: forwarded; `dst` holds `kc * NR` floats.
                        unsafe { pack_b::<K>(job.b, k0, kc, j0, nv, K::NR, dst) };
                        (dst.as_ptr(), K::NR)
                    }
                };
                let bias = if first && !job.bias.is_null() {
                    // SAFETY: bias holds n floats and j0 < n.
                    unsafe { job.bias.add(j0) }
                } else {
                    std::ptr::null()
                };
                for ti in 0..tiles {
                    if let (Some((pk0, pkc, pj0)), BSrc::Rows { ptr, ld }) = (next, job.b) {
                        // Its share of the next panel's rows, spread over this panel's tiles.
                        let rows = pk0 + pkc * ti / tiles..pk0 + pkc * (ti + 1) / tiles;
                        // SAFETY: those rows (`< k`) and columns `pj0..min(pj0 + NR, n)` are
                        // inside B.
                        unsafe { prefetch_rows(ptr, ld, rows, pj0, K::NR.min(job.n - pj0)) };
                    }
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

/// Asks for the cache lines of rows `rows`, columns `j0..j0+nv` of `[K, N]` B (stride `ld`) to
/// be brought into L2: a panel's rows are a line or two each, 0.75–3 KiB apart, a stride the
/// hardware prefetcher does not follow, and ViT-Tiny's weights (22 MB) come from L3 or memory on
/// every call; prefetched one panel ahead, [`pack_rows`] finds them in L2. L2 rather than L1:
/// rows 3 KiB apart share 4 of L1's 64 sets.
///
/// # Safety
/// Those rows and columns must be inside B (`nv >= 1`).
#[inline(always)]
unsafe fn prefetch_rows(
    ptr: *const f32,
    ld: usize,
    rows: std::ops::Range<usize>,
    j0: usize,
    nv: usize,
) {
    for p in rows {
        // SAFETY: row `p`, columns `j0..j0 + nv` are inside B (the caller's contract).
        let row = unsafe { ptr.add(p * ld + j0) };
        // Every 16th float and the last: each 64-byte line of the row's span, whatever its
        // alignment. A plain loop: an iterator chain here cost 1.6 % of an inference.
        let mut q = 0;
        while q < nv {
            // SAFETY: `row + q` is inside B.
            unsafe { prefetch_l2(row.add(q)) };
            q += 16;
        }
        // SAFETY: as above, for the row's last float.
        unsafe { prefetch_l2(row.add(nv - 1)) };
    }
}

/// Asks for the cache line holding `*p` to be brought into L2 (x86_64 and aarch64; elsewhere
/// nothing).
///
/// # Safety
/// `p` must point inside an allocation (a prefetch reads nothing architecturally and never
/// faults, but the address must be a valid pointer computation).
#[inline(always)]
unsafe fn prefetch_l2(p: *const f32) {
    // SAFETY: PREFETCHT1 (SSE, baseline on x86_64) only hints the cache.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p.cast())
    };
    // SAFETY: PRFM (baseline AArch64) only hints the cache; it touches no register but its
    // address operand, no flags, no stack.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!(
            "prfm pldl2keep, [{0}]",
            in(reg) p,
            options(nostack, readonly, preserves_flags)
        )
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

/// Copies rows `k0..k0+kc`, columns `j0..j0+nv` of `[K, N]` B (stride `ld`) into `dst` as a
/// `kc × NR` panel, zero-padded. A full panel's rows are `NR` floats each, a length known at
/// compile time: a few vector moves, not a `memcpy` call per row (`memcpy` took 9 % of a
/// one-thread ViT-Tiny inference).
///
/// # Safety
/// `ptr` must cover those rows and columns; `dst.len() >= kc * NR`.
#[allow(clippy::too_many_arguments)]
unsafe fn pack_rows<K: Kernel>(
    ptr: *const f32,
    ld: usize,
    k0: usize,
    kc: usize,
    j0: usize,
    nv: usize,
    dst: &mut [f32],
) {
    if nv < K::NR {
        // SAFETY: forwarded.
        unsafe { pack_b::<K>(BSrc::Rows { ptr, ld }, k0, kc, j0, nv, K::NR, dst) };
        return;
    }
    for (p, out) in dst[..kc * K::NR].chunks_exact_mut(K::NR).enumerate() {
        // SAFETY: row `k0 + p < k`, columns `j0..j0 + NR <= n` are inside B; `out` holds NR
        // floats.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr.add((k0 + p) * ld + j0), out.as_mut_ptr(), K::NR)
        };
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
/// to `nr` columns (any panel of `[N, K]` B, a partial one of `[K, N]` B).
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
pub(super) unsafe fn pack_cols_generic(
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
