//! Every kernel this CPU runs, against a naive triple loop accumulated in f64.

use super::Pool;
use super::{scratch_len_for, sgemm_bt_with, sgemm_with, Isa};

/// Deterministic values in [-1, 1) (xorshift), so failures reproduce.
fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// One problem: `C = A·B (+bias) (+C0)` with `B[p][j] = b_at(p, j)`.
struct Case {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldc: usize,
    a: Vec<f32>,
    c0: Vec<f32>,
    bias: Option<Vec<f32>>,
    accumulate: bool,
}

impl Case {
    fn new(
        m: usize,
        n: usize,
        k: usize,
        pad: usize,
        bias: bool,
        accumulate: bool,
        seed: u64,
    ) -> Case {
        let (lda, ldc) = (k + pad, n + 2 * pad);
        Case {
            m,
            n,
            k,
            lda,
            ldc,
            a: random(m * lda, seed),
            c0: random(m * ldc, seed + 1),
            bias: bias.then(|| random(n, seed + 2)),
            accumulate,
        }
    }

    /// Checks `got` against the f64 reference, element by element, with an error bound scaled by
    /// the magnitudes summed (`1e-5 × (Σ|a·b| + |bias| + |c0|)`); padding must be untouched.
    fn check(&self, got: &[f32], b_at: impl Fn(usize, usize) -> f32, what: &str) {
        for i in 0..self.m {
            for j in 0..self.ldc {
                let idx = i * self.ldc + j;
                if j >= self.n {
                    assert_eq!(
                        got[idx].to_bits(),
                        self.c0[idx].to_bits(),
                        "{what}: padding ({i},{j}) written"
                    );
                    continue;
                }
                let (mut want, mut mag) = (0f64, 0f64);
                for p in 0..self.k {
                    let x = self.a[i * self.lda + p] as f64 * b_at(p, j) as f64;
                    want += x;
                    mag += x.abs();
                }
                if let Some(bias) = &self.bias {
                    want += bias[j] as f64;
                    mag += (bias[j] as f64).abs();
                }
                if self.accumulate {
                    want += self.c0[idx] as f64;
                    mag += (self.c0[idx] as f64).abs();
                }
                let err = (got[idx] as f64 - want).abs();
                assert!(
                    err <= 1e-5 * mag + 1e-30,
                    "{what}: C[{i}][{j}] = {} want {want} (err {err:e}, scale {mag:e})",
                    got[idx]
                );
            }
        }
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 7, 3),
    (7, 1, 15),
    (2, 16, 16),
    (15, 17, 7),
    (16, 32, 1),
    (17, 33, 50),
    (13, 15, 0),
    (29, 64, 80),
    (50, 96, 32),
    (50, 19, 16),
    (64, 8, 300),
    (197, 40, 9),
    // More rows than one pass streams (`MC`): later passes reuse the panels the first packed.
    (300, 40, 260),
    (530, 33, 20),
    // One row block, three `kc` blocks: the panel prefetched after a block's last is the next
    // block's first; k = 530 leaves 2 steps after the kernel's groups of four, 50 columns a
    // 2-wide last panel (AVX2).
    (100, 50, 530),
    // Two row blocks, three `kc` blocks, a partial last panel: the second block reuses the
    // panels the first packed.
    (260, 70, 517),
    // Every remainder of k after the AVX2 kernel's groups of four.
    (40, 16, 4),
    (40, 16, 5),
    (40, 16, 6),
    (40, 16, 7),
];

#[test]
fn sgemm_matches_naive_reference() {
    let mut seed = 1;
    for isa in Isa::available() {
        for threads in [1, 2] {
            let pool = Pool::new(threads);
            for &(m, n, k) in SHAPES {
                for (pad, bias, acc) in [
                    (0, false, false),
                    (3, true, false),
                    (1, false, true),
                    (5, true, true),
                ] {
                    seed += 10;
                    let case = Case::new(m, n, k, pad, bias, acc, seed);
                    let ldb = n + 2 * pad + 1;
                    let b = random(k * ldb, seed + 3);
                    let mut c = case.c0.clone();
                    let mut scratch = vec![f32::NAN; scratch_len_for(isa, m, n, k, threads)];
                    sgemm_with(
                        isa,
                        m,
                        n,
                        k,
                        &case.a,
                        case.lda,
                        &b,
                        ldb,
                        &mut c,
                        case.ldc,
                        case.bias.as_deref(),
                        acc,
                        &mut scratch,
                        &pool,
                    );
                    let what = format!("sgemm {isa:?} t={threads} m={m} n={n} k={k} pad={pad} bias={bias} acc={acc}");
                    case.check(&c, |p, j| b[p * ldb + j], &what);
                }
            }
        }
    }
}

#[test]
fn sgemm_bt_matches_naive_reference() {
    let mut seed = 7;
    for isa in Isa::available() {
        for threads in [1, 2] {
            let pool = Pool::new(threads);
            for &(m, n, k) in SHAPES {
                for pad in [0, 3] {
                    seed += 10;
                    let case = Case::new(m, n, k, pad, false, false, seed);
                    let ldbt = k + pad + 2;
                    let bt = random(n * ldbt, seed + 3);
                    let mut c = case.c0.clone();
                    let mut scratch = vec![f32::NAN; scratch_len_for(isa, m, n, k, threads)];
                    sgemm_bt_with(
                        isa,
                        m,
                        n,
                        k,
                        &case.a,
                        case.lda,
                        &bt,
                        ldbt,
                        &mut c,
                        case.ldc,
                        &mut scratch,
                        &pool,
                    );
                    let what = format!("sgemm_bt {isa:?} t={threads} m={m} n={n} k={k} pad={pad}");
                    case.check(&c, |p, j| bt[j * ldbt + p], &what);
                }
            }
        }
    }
}

/// Larger than `KC` and the parallel threshold, with the attention layouts (Q, K, V slices of
/// one `[tokens, 3·dim]` buffer), and a scratch slice that starts unaligned.
#[test]
fn attention_layouts_and_k_blocking() {
    for isa in Isa::available() {
        let pool = Pool::new(2);
        let (t, d, ld) = (37, 16, 3 * 16 * 2);
        let qkv = random(t * ld, 99);
        // scores = Q·Kᵀ: Q at column 0, K at column d, both with stride `ld`.
        let case = Case {
            m: t,
            n: t,
            k: d,
            lda: ld,
            ldc: t,
            a: qkv.clone(),
            c0: vec![0.0; t * t],
            bias: None,
            accumulate: false,
        };
        let mut scores = vec![0.0; t * t];
        let mut scratch = vec![0.0; scratch_len_for(isa, t, t, d, 2) + 1];
        sgemm_bt_with(
            isa,
            t,
            t,
            d,
            &qkv,
            ld,
            &qkv[d..],
            ld,
            &mut scores,
            t,
            &mut scratch[1..],
            &pool,
        );
        case.check(
            &scores,
            |p, j| qkv[j * ld + d + p],
            &format!("scores {isa:?}"),
        );
        // out = P·V with V at column 2d, stride `ld`; k = t tokens.
        let (m, n, k) = (t, d, t);
        let case = Case {
            m,
            n,
            k,
            lda: t,
            ldc: d,
            a: scores.clone(),
            c0: vec![0.0; m * d],
            bias: None,
            accumulate: false,
        };
        let mut out = vec![0.0; m * d];
        let mut scratch = vec![0.0; scratch_len_for(isa, m, n, k, 2)];
        sgemm_with(
            isa,
            m,
            n,
            k,
            &scores,
            t,
            &qkv[2 * d..],
            ld,
            &mut out,
            d,
            None,
            false,
            &mut scratch,
            &pool,
        );
        case.check(
            &out,
            |p, j| qkv[p * ld + 2 * d + j],
            &format!("P·V {isa:?}"),
        );
        // K far beyond one KC block, with bias and accumulate.
        let case = Case::new(33, 40, 700, 1, true, true, 5);
        let b = random(700 * 40, 6);
        let mut c = case.c0.clone();
        let mut scratch = vec![0.0; scratch_len_for(isa, 33, 40, 700, 2)];
        sgemm_with(
            isa,
            33,
            40,
            700,
            &case.a,
            case.lda,
            &b,
            40,
            &mut c,
            case.ldc,
            case.bias.as_deref(),
            true,
            &mut scratch,
            &pool,
        );
        case.check(&c, |p, j| b[p * 40 + j], &format!("k=700 {isa:?}"));
    }
}

/// Each element is summed in the same order whatever the thread split, so two threads (column
/// panel split and row split, every shape above the parallel threshold) must reproduce one thread
/// bit for bit.
#[test]
fn two_threads_match_one_thread_bitwise() {
    let (one, two) = (Pool::new(1), Pool::new(2));
    for isa in Isa::available() {
        for (m, n, k) in [(197, 96, 64), (40, 200, 140), (300, 40, 96)] {
            assert!(m * n * k >= super::driver::MIN_PARALLEL_MACS);
            let a = random(m * k, 1);
            let b = random(k * n, 2);
            let bias = random(n, 3);
            let mut c1 = vec![0.0; m * n];
            let mut c2 = vec![0.0; m * n];
            let mut s1 = vec![0.0; scratch_len_for(isa, m, n, k, 1)];
            let mut s2 = vec![0.0; scratch_len_for(isa, m, n, k, 2)];
            sgemm_with(
                isa,
                m,
                n,
                k,
                &a,
                k,
                &b,
                n,
                &mut c1,
                n,
                Some(&bias),
                false,
                &mut s1,
                &one,
            );
            sgemm_with(
                isa,
                m,
                n,
                k,
                &a,
                k,
                &b,
                n,
                &mut c2,
                n,
                Some(&bias),
                false,
                &mut s2,
                &two,
            );
            assert!(
                c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()),
                "sgemm {isa:?} {m}x{n}x{k}"
            );
            sgemm_bt_with(isa, m, n, k, &a, k, &b, k, &mut c1, n, &mut s1, &one);
            sgemm_bt_with(isa, m, n, k, &a, k, &b, k, &mut c2, n, &mut s2, &two);
            assert!(
                c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()),
                "sgemm_bt {isa:?} {m}x{n}x{k}"
            );
        }
    }
}

/// Every row count from 1 to 16, so every kernel runs a tile of each height it has (up to MR =
/// 14): with at most MR rows the one tile has them all. n = 67 is full panels and a 3-column last
/// one for every kernel (NR = 8, 16 or 32); k = 3 and 9 are odd, shorter and longer than the
/// AVX2 kernel's groups of four.
#[test]
fn every_tile_height() {
    let pool = Pool::new(1);
    let mut seed = 60;
    for isa in Isa::available() {
        for m in 1..=16 {
            for (k, pad, bias, acc) in [(3, 0, true, false), (9, 2, false, true)] {
                seed += 10;
                let n = 67;
                let case = Case::new(m, n, k, pad, bias, acc, seed);
                let b = random(k * n, seed + 3);
                let mut c = case.c0.clone();
                let mut scratch = vec![f32::NAN; scratch_len_for(isa, m, n, k, 1)];
                sgemm_with(
                    isa,
                    m,
                    n,
                    k,
                    &case.a,
                    case.lda,
                    &b,
                    n,
                    &mut c,
                    case.ldc,
                    case.bias.as_deref(),
                    acc,
                    &mut scratch,
                    &pool,
                );
                let what = format!("{isa:?} m={m} k={k}");
                case.check(&c, |p, j| b[p * n + j], &what);
            }
        }
    }
}

#[test]
fn hand_computed_2x2() {
    let pool = Pool::new(1);
    let a = [1.0, 2.0, 3.0, 4.0];
    let b = [5.0, 6.0, 7.0, 8.0];
    let mut c = [100.0, 200.0, 300.0, 400.0];
    for isa in Isa::available() {
        let mut out = c;
        let mut scratch = vec![0.0; scratch_len_for(isa, 2, 2, 2, 1)];
        sgemm_with(
            isa,
            2,
            2,
            2,
            &a,
            2,
            &b,
            2,
            &mut out,
            2,
            Some(&[0.5, -0.5]),
            true,
            &mut scratch,
            &pool,
        );
        assert_eq!(out, [119.5, 221.5, 343.5, 449.5], "{isa:?}");
    }
    let mut scratch = vec![0.0; scratch_len_for(Isa::detect(), 2, 2, 2, 1)];
    sgemm_bt_with(
        Isa::detect(),
        2,
        2,
        2,
        &a,
        2,
        &b,
        2,
        &mut c,
        2,
        &mut scratch,
        &pool,
    );
    assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
}

#[test]
#[should_panic(expected = "scratch has")]
fn short_scratch_is_refused() {
    let pool = Pool::new(1);
    let mut c = [0.0; 4];
    super::sgemm(
        2,
        2,
        2,
        &[0.0; 4],
        2,
        &[0.0; 4],
        2,
        &mut c,
        2,
        None,
        false,
        &mut [],
        &pool,
    );
}

/// The name of every kernel is the one `kernel_name`'s docs list, and `kernel_name` reports
/// the best kernel this CPU runs (the first of `Isa::available`, which checks the CPU features
/// on its own).
#[test]
fn kernel_names_are_the_documented_ones() {
    let available = Isa::available();
    for &isa in &available {
        assert_eq!(isa.name(), documented(isa).0);
    }
    assert_eq!(super::kernel_name(), documented(available[0]).0);
}

/// Each kernel's documented name and panel width `NR`, written here again.
fn documented(isa: Isa) -> (&'static str, usize) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => ("avx512f", 32),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => ("avx2+fma", 16),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => ("neon", 16),
        Isa::Scalar => ("scalar", 8),
    }
}

/// `scratch_len` against the packing space the module docs describe: per thread one `kc × NR`
/// panel (`kc` = min(k, 256)) when the rows fit one pass (M ≤ 256), else one `kc`-deep block of
/// every column panel of B; plus 16 floats to align the start to 64 bytes.
#[test]
fn scratch_len_is_the_documented_packing_space() {
    for isa in Isa::available() {
        let nr = documented(isa).1;
        // ViT-Tiny's qkv GEMM: one pass, one 192-deep panel per thread.
        assert_eq!(
            scratch_len_for(isa, 197, 576, 192, 1),
            192 * nr + 16,
            "{isa:?}"
        );
        // fc2 (k = 768) on two threads: one 256-deep panel each.
        assert_eq!(
            scratch_len_for(isa, 197, 192, 768, 2),
            2 * 256 * nr + 16,
            "{isa:?}"
        );
        // 300 rows: two passes, so a 256-deep block of all ⌈40 / NR⌉ panels per thread.
        assert_eq!(
            scratch_len_for(isa, 300, 40, 260, 2),
            2 * 256 * nr * 40usize.div_ceil(nr) + 16,
            "{isa:?}"
        );
    }
}

/// The message of the panic `f` raises, or `None` if it returns.
fn panic_message(f: impl FnOnce()) -> Option<String> {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

/// `sgemm`'s documented panics: a slice one float shorter than its rows and stride need, a
/// stride smaller than its row, a short bias; and slices that end exactly where their last row
/// does are accepted and give the product (3×5 · 5×4, strides 6, against a naive loop).
#[test]
fn slices_shorter_than_their_shape_are_refused() {
    let pool = Pool::new(1);
    let (m, n, k) = (3, 4, 5);
    let ld = 6;
    let a = random((m - 1) * ld + k, 11);
    let b = random((k - 1) * ld + n, 12);
    let bt = random((n - 1) * ld + k, 13);
    let bias = random(n, 14);
    let mut scratch = vec![0.0; super::scratch_len(m, n, k, 1)];
    let c_len = (m - 1) * ld + n;
    let gemm = |a: &[f32], lda, b: &[f32], ldb, c_len, bias: &[f32]| {
        let mut c = vec![0.0; c_len];
        let mut scratch = vec![0.0; super::scratch_len(m, n, k, 1)];
        panic_message(|| {
            super::sgemm(
                m,
                n,
                k,
                a,
                lda,
                b,
                ldb,
                &mut c,
                ld,
                Some(bias),
                false,
                &mut scratch,
                &pool,
            )
        })
    };
    let refused = |got: Option<String>, what: &str| {
        let msg = got.unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(msg.contains(what), "{what}: panicked with {msg:?}");
    };
    refused(gemm(&a[1..], ld, &b, ld, c_len, &bias), "A (");
    refused(gemm(&a, ld, &b[1..], ld, c_len, &bias), "B (");
    refused(gemm(&a, ld, &b, ld, c_len - 1, &bias), "C (");
    refused(gemm(&a, ld, &b, ld, c_len, &bias[1..]), "bias shorter");
    // Long enough for k rows of stride 3, but a row has n = 4 floats.
    refused(gemm(&a, ld, &b, n - 1, c_len, &bias), "B (");
    refused(gemm(&a, k - 1, &b, ld, c_len, &bias), "A (");
    let mut c = vec![0.0; c_len];
    refused(
        panic_message(|| {
            super::sgemm_bt(
                m,
                n,
                k,
                &a,
                ld,
                &bt[1..],
                ld,
                &mut c,
                ld,
                &mut scratch,
                &pool,
            )
        }),
        "Bᵀ (",
    );
    assert_eq!(gemm(&a, ld, &b, ld, c_len, &bias), None);

    // Exact lengths: the products are right.
    super::sgemm(
        m,
        n,
        k,
        &a,
        ld,
        &b,
        ld,
        &mut c,
        ld,
        Some(&bias),
        false,
        &mut scratch,
        &pool,
    );
    let mut ct = vec![0.0; c_len];
    super::sgemm_bt(m, n, k, &a, ld, &bt, ld, &mut ct, ld, &mut scratch, &pool);
    for i in 0..m {
        for j in 0..n {
            let (mut want, mut want_t) = (bias[j] as f64, 0f64);
            for p in 0..k {
                want += a[i * ld + p] as f64 * b[p * ld + j] as f64;
                want_t += a[i * ld + p] as f64 * bt[j * ld + p] as f64;
            }
            assert!((c[i * ld + j] as f64 - want).abs() < 1e-5, "C[{i}][{j}]");
            assert!(
                (ct[i * ld + j] as f64 - want_t).abs() < 1e-5,
                "Cᵀ[{i}][{j}]"
            );
        }
    }
}

/// `[K, N]` B whose last float is the last before a page the process may not read: with few row
/// tiles full column panels are read in place, but the partial last panel must be packed (its
/// `nv` columns read), not read `NR` wide, which would run past B's last row. n = 35 leaves a
/// 3-column last panel for every kernel (NR = 8, 16 or 32); m = 4 is at most 4 tiles of any.
/// The same floats then as Bᵀ (`[N, K]`, stride k): packing its last panel must read its 3 rows
/// only (the AVX-512 packer's gather masks off the other 13 lanes of the half panel, whose rows
/// would lie past Bᵀ's end).
#[cfg(target_os = "linux")]
#[test]
fn partial_last_panel_reads_nothing_past_b() {
    extern "C" {
        fn sysconf(name: i32) -> i64;
        fn mprotect(addr: *mut std::ffi::c_void, len: usize, prot: i32) -> i32;
    }
    // `_SC_PAGESIZE` on Linux, x86_64 and aarch64.
    const SC_PAGESIZE: i32 = 30;
    // SAFETY: a libc call with no pointer argument.
    let page = usize::try_from(unsafe { sysconf(SC_PAGESIZE) }).unwrap();
    let (m, n, k) = (4, 35, 5);
    let mut map = memmap2::MmapMut::map_anon(2 * page).unwrap();
    // SAFETY: `page` is inside the two-page mapping.
    let guard = unsafe { map.as_mut_ptr().add(page) };
    // SAFETY: the second page belongs to `map`; nothing but a faulty read past B touches it.
    assert_eq!(unsafe { mprotect(guard.cast(), page, 0) }, 0, "mprotect");
    let floats: &mut [f32] = bytemuck::cast_slice_mut(&mut map[..page]);
    let b = &mut floats[page / 4 - k * n..];
    b.copy_from_slice(&random(k * n, 41));
    let b: &[f32] = b;
    for isa in Isa::available() {
        let pool = Pool::new(1);
        let case = Case::new(m, n, k, 0, true, false, 42);
        let mut c = case.c0.clone();
        let mut scratch = vec![f32::NAN; scratch_len_for(isa, m, n, k, 1)];
        sgemm_with(
            isa,
            m,
            n,
            k,
            &case.a,
            case.lda,
            b,
            n,
            &mut c,
            case.ldc,
            case.bias.as_deref(),
            false,
            &mut scratch,
            &pool,
        );
        case.check(&c, |p, j| b[p * n + j], &format!("guarded B {isa:?}"));
        let case = Case::new(m, n, k, 0, false, false, 43);
        let mut c = case.c0.clone();
        sgemm_bt_with(
            isa,
            m,
            n,
            k,
            &case.a,
            case.lda,
            b,
            k,
            &mut c,
            case.ldc,
            &mut scratch,
            &pool,
        );
        case.check(&c, |p, j| b[j * k + p], &format!("guarded Bᵀ {isa:?}"));
    }
    // SAFETY: as above; the page is readable and writable again before `map` is unmapped.
    assert_eq!(unsafe { mprotect(guard.cast(), page, 3) }, 0, "mprotect");
}

/// Bᵀ (`[N, K]`) whose row stride puts its sixteenth row more than `i32::MAX` floats past its
/// first: the AVX-512 packer's gather takes 32-bit element offsets (`15 · ld` for the 16th row of
/// a half panel), so at this stride it must hand the panel to the generic packer. ld = ⌊i32::MAX /
/// 15⌋ + 1 is the least such stride; 17 rows make one full half panel and one 1-row half. The
/// 9.2 GB span is reserved, not committed: only the 17 rows' pages are touched. Where the
/// reservation is refused (an address-space limit, strict overcommit) the test has nothing to run.
#[cfg(target_os = "linux")]
#[test]
fn bt_with_a_stride_past_i32_offsets() {
    let (m, n, k) = (2, 17, 3);
    let ld = i32::MAX as usize / 15 + 1;
    assert!(15 * ld > i32::MAX as usize && 15 * (ld - 1) <= i32::MAX as usize);
    let len = (n - 1) * ld + k;
    let mut map = match memmap2::MmapOptions::new()
        .len(len * 4)
        .no_reserve_swap()
        .map_anon()
    {
        Ok(map) => map,
        // An address-space limit (`ulimit -v`) or strict overcommit: nothing to test here.
        Err(e) => return eprintln!("no 9.2 GB reservation: {e}"),
    };
    let bt: &mut [f32] = bytemuck::cast_slice_mut(&mut map[..]);
    let rows = random(n * k, 51);
    for j in 0..n {
        bt[j * ld..j * ld + k].copy_from_slice(&rows[j * k..(j + 1) * k]);
    }
    let bt: &[f32] = bt;
    for isa in Isa::available() {
        let pool = Pool::new(1);
        let case = Case::new(m, n, k, 0, false, false, 52);
        let mut c = case.c0.clone();
        let mut scratch = vec![f32::NAN; scratch_len_for(isa, m, n, k, 1)];
        sgemm_bt_with(
            isa,
            m,
            n,
            k,
            &case.a,
            case.lda,
            bt,
            ld,
            &mut c,
            case.ldc,
            &mut scratch,
            &pool,
        );
        case.check(&c, |p, j| rows[j * k + p], &format!("wide Bᵀ {isa:?}"));
    }
}
