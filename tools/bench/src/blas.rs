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
        2.0 * (m * n * k) as f64 / med / 1e9
    }
}
