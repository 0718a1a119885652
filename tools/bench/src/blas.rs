//! Single-threaded OpenBLAS sgemm, dynamically loaded, as the yardstick for "what fraction of a
//! tuned GEMM does a whole forward pass reach". Uses the OpenBLAS that numpy's wheel ships
//! (64-bit-integer `scipy_` symbols) or a system `libopenblas.so.0` (32-bit integers).

use libloading::Library;
use std::path::{Path, PathBuf};
use std::time::Instant;

type Sgemm64 = unsafe extern "C" fn(
    i32,
    i32,
    i32,
    i64,
    i64,
    i64,
    f32,
    *const f32,
    i64,
    *const f32,
    i64,
    f32,
    *mut f32,
    i64,
);
type Sgemm32 = unsafe extern "C" fn(
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    f32,
    *const f32,
    i32,
    *const f32,
    i32,
    f32,
    *mut f32,
    i32,
);
type SetThreads = unsafe extern "C" fn(i32);

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;

/// A loaded OpenBLAS.
pub struct Blas {
    lib: Library,
    ilp64: bool,
    pub path: PathBuf,
}

/// Candidate library files: `--openblas`, numpy's bundled copy in the venv, the system's.
pub fn candidates(explicit: Option<&Path>, venv: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = explicit.map(Path::to_path_buf).into_iter().collect();
    if let Ok(rd) = std::fs::read_dir(venv.join("lib")) {
        for py in rd.flatten() {
            let libs = py.path().join("site-packages/numpy.libs");
            if let Ok(files) = std::fs::read_dir(libs) {
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().to_string();
                    if name.starts_with("libscipy_openblas") {
                        v.push(f.path());
                    }
                }
            }
        }
    }
    v.push("/usr/lib/x86_64-linux-gnu/libopenblas.so.0".into());
    v.push("/usr/lib/aarch64-linux-gnu/libopenblas.so.0".into());
    v
}

impl Blas {
    /// Loads the first candidate that exists, set to one thread.
    pub fn load(candidates: &[PathBuf]) -> Option<Blas> {
        for p in candidates.iter().filter(|p| p.exists()) {
            // SAFETY: loading OpenBLAS runs its initializers, which only set up its own state.
            let Ok(lib) = (unsafe { Library::new(p) }) else {
                continue;
            };
            // SAFETY: symbol types are OpenBLAS's documented C signatures.
            unsafe {
                let ilp64 = lib.get::<Sgemm64>(b"scipy_cblas_sgemm64_").is_ok();
                let threads = if ilp64 {
                    lib.get::<SetThreads>(b"scipy_openblas_set_num_threads64_")
                } else {
                    lib.get::<SetThreads>(b"openblas_set_num_threads")
                };
                if let Ok(f) = threads {
                    f(1);
                }
                if ilp64 || lib.get::<Sgemm32>(b"cblas_sgemm").is_ok() {
                    return Some(Blas {
                        lib,
                        ilp64,
                        path: p.clone(),
                    });
                }
            }
        }
        None
    }

    /// `C[m×n] = A[m×k]·B[k×n]`, row-major.
    fn sgemm(&self, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
        // SAFETY: the slices hold at least m·k, k·n and m·n floats (asserted above), with
        // leading dimensions k, n, n for row-major storage; the symbols were resolved at load.
        unsafe {
            if self.ilp64 {
                if let Ok(f) = self.lib.get::<Sgemm64>(b"scipy_cblas_sgemm64_") {
                    let (m, n, k) = (m as i64, n as i64, k as i64);
                    f(
                        ROW_MAJOR,
                        NO_TRANS,
                        NO_TRANS,
                        m,
                        n,
                        k,
                        1.0,
                        a.as_ptr(),
                        k,
                        b.as_ptr(),
                        n,
                        0.0,
                        c.as_mut_ptr(),
                        n,
                    );
                }
            } else if let Ok(f) = self.lib.get::<Sgemm32>(b"cblas_sgemm") {
                let (m, n, k) = (m as i32, n as i32, k as i32);
                f(
                    ROW_MAJOR,
                    NO_TRANS,
                    NO_TRANS,
                    m,
                    n,
                    k,
                    1.0,
                    a.as_ptr(),
                    k,
                    b.as_ptr(),
                    n,
                    0.0,
                    c.as_mut_ptr(),
                    n,
                );
            }
        }
    }

    /// GFLOP/s of one `m×k · k×n` product (median of repeated timings over ≥ 0.2 s).
    pub fn gflops(&self, m: usize, n: usize, k: usize) -> f64 {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0.0; m * n];
        for _ in 0..3 {
            self.sgemm(m, n, k, &a, &b, &mut c);
        }
        let mut times = Vec::new();
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < 0.2 || times.len() < 5 {
            let t = Instant::now();
            self.sgemm(m, n, k, &a, &b, &mut c);
            times.push(t.elapsed().as_secs_f64());
        }
        let (med, _) = crate::child::percentiles(&mut times);
        gflops_in(m, n, k, med)
    }
}

/// GFLOP/s of an `m×k · k×n` product that took `secs` seconds: 2·m·n·k FLOPs (a multiply and
/// an add per term).
fn gflops_in(m: usize, n: usize, k: usize, secs: f64) -> f64 {
    2.0 * (m * n * k) as f64 / secs / 1e9
}

#[cfg(test)]
mod tests {
    use super::{candidates, gflops_in, Blas};
    use std::path::{Path, PathBuf};

    #[test]
    fn gflops_count_two_flops_a_term() {
        // 197×192 · 192×576 in 1 ms: 2 · 197 · 576 · 192 = 43 573 248 FLOPs, 43.573248 GFLOP/s.
        assert!((gflops_in(197, 576, 192, 1e-3) - 43.573248).abs() < 1e-9);
        // 1024³ in 0.5 s: 2 · 2³⁰ / 0.5 = 4.294967296 GFLOP/s.
        assert!((gflops_in(1024, 1024, 1024, 0.5) - 4.294967296).abs() < 1e-12);
    }

    /// `--openblas` first, then numpy's copy in the venv, then the system's; a candidate that
    /// does not exist or is no OpenBLAS is passed over.
    #[test]
    fn candidates_in_order_and_only_libraries_load() {
        let dir = crate::test_support::test_dir("bench-blas");
        let libs = dir.join("venv/lib/python3.12/site-packages/numpy.libs");
        std::fs::create_dir_all(&libs).unwrap();
        for f in ["libscipy_openblas64_-abc.so", "libgfortran-x.so"] {
            std::fs::write(libs.join(f), b"not a library").unwrap();
        }
        let c = candidates(Some(Path::new("/my/openblas.so")), &dir.join("venv"));
        let want: Vec<PathBuf> = vec![
            "/my/openblas.so".into(),
            libs.join("libscipy_openblas64_-abc.so"),
            "/usr/lib/x86_64-linux-gnu/libopenblas.so.0".into(),
            "/usr/lib/aarch64-linux-gnu/libopenblas.so.0".into(),
        ];
        assert_eq!(c, want);
        assert_eq!(candidates(None, &dir.join("none")), want[2..]);
        assert!(Blas::load(&c[..2]).is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The product itself, with numpy's OpenBLAS from the venv (`$TINV_VENV`, else `.venv` at
    /// the repository root) or the system's, whichever is there first (skipped without either).
    #[test]
    fn sgemm_multiplies_row_major() {
        let c = candidates(None, &crate::test_support::venv());
        if !c.iter().any(|p| p.exists()) {
            eprintln!("SKIP sgemm_multiplies_row_major: no OpenBLAS");
            return;
        }
        let b = Blas::load(&c).expect("an OpenBLAS that is there loads");
        // [1 2 3; 4 5 6] · [1 0; 0 1; 2 −1] = [7 −1; 16 −1].
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bm = [1.0, 0.0, 0.0, 1.0, 2.0, -1.0];
        let mut c = [9.0; 4];
        b.sgemm(2, 2, 3, &a, &bm, &mut c);
        assert_eq!(c, [7.0, -1.0, 16.0, -1.0]);
        assert!(b.gflops(8, 8, 8) > 0.0);
    }
}
