//! The GEMM entry points' contracts: the scratch they need and refuse, the kernels' names, the
//! documented panics on slices shorter than their shapes, and reads that stay inside A and B
//! (a partial last panel, a Bᵀ stride past 32-bit offsets).

use super::tests::{random, Case};
use super::Pool;
use super::{scratch_len_for, Isa};

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
        let c = case.sgemm(isa, b, n, &pool);
        case.check(&c, |p, j| b[p * n + j], &format!("guarded B {isa:?}"));
        let case = Case::new(m, n, k, 0, false, false, 43);
        let c = case.sgemm_bt(isa, b, k, &pool);
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
        let c = case.sgemm_bt(isa, bt, ld, &pool);
        case.check(&c, |p, j| rows[j * k + p], &format!("wide Bᵀ {isa:?}"));
    }
}
