//! Every kernel this CPU runs, against a naive triple loop accumulated in f64.

use super::Pool;
use super::{scratch_len_for, sgemm_bt_with, sgemm_with, Isa};

/// Deterministic values in [-1, 1) (xorshift), so failures reproduce.
pub(super) fn random(len: usize, seed: u64) -> Vec<f32> {
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
pub(super) struct Case {
    pub(super) m: usize,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) lda: usize,
    pub(super) ldc: usize,
    pub(super) a: Vec<f32>,
    pub(super) c0: Vec<f32>,
    pub(super) bias: Option<Vec<f32>>,
    pub(super) accumulate: bool,
}

impl Case {
    pub(super) fn new(
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

    /// `C0` with `A·B` (+bias) written over it by [`sgemm_with`] on `pool`: B is `[k, ldb]`.
    pub(super) fn sgemm(&self, isa: Isa, b: &[f32], ldb: usize, pool: &Pool) -> Vec<f32> {
        self.run(isa, pool, |c, scratch| {
            sgemm_with(
                isa,
                self.m,
                self.n,
                self.k,
                &self.a,
                self.lda,
                b,
                ldb,
                c,
                self.ldc,
                self.bias.as_deref(),
                self.accumulate,
                scratch,
                pool,
            )
        })
    }

    /// As [`Case::sgemm`] with Bᵀ `[n, ldbt]` through [`sgemm_bt_with`] (no bias, no accumulate).
    pub(super) fn sgemm_bt(&self, isa: Isa, bt: &[f32], ldbt: usize, pool: &Pool) -> Vec<f32> {
        self.run(isa, pool, |c, scratch| {
            sgemm_bt_with(
                isa, self.m, self.n, self.k, &self.a, self.lda, bt, ldbt, c, self.ldc, scratch,
                pool,
            )
        })
    }

    /// `C0` after `product(C, scratch)`. The scratch is exactly [`scratch_len_for`] long for the
    /// pool's threads and starts as NaN, so a read before a write shows in C.
    fn run(&self, isa: Isa, pool: &Pool, product: impl FnOnce(&mut [f32], &mut [f32])) -> Vec<f32> {
        let mut c = self.c0.clone();
        let len = scratch_len_for(isa, self.m, self.n, self.k, pool.threads());
        product(&mut c, &mut vec![f32::NAN; len]);
        c
    }

    /// Checks `got` against the f64 reference, element by element, with an error bound scaled by
    /// the magnitudes summed (`1e-5 × (Σ|a·b| + |bias| + |c0|)`); padding must be untouched.
    pub(super) fn check(&self, got: &[f32], b_at: impl Fn(usize, usize) -> f32, what: &str) {
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
                    let c = case.sgemm(isa, &b, ldb, &pool);
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
                    let c = case.sgemm_bt(isa, &bt, ldbt, &pool);
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
        let c = case.sgemm(isa, &b, 40, &pool);
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
                let c = case.sgemm(isa, &b, n, &pool);
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
