//! Opening a built engines folder on the real TensorRT and GPU: read the manifest, load the
//! shim for the installed TensorRT (once per process), open GPU 0, then [`TrtModel::open`]. Each
//! step fails with a one-line error that says what is missing (no manifest → `tinv-run build`;
//! no shim, no libnvinfer, no driver → what to install); the caller decides whether to fall back
//! to the CPU.

use super::backend::{OpenOptions, Sources, TrtModel};
use super::builder::read_manifest;
use super::cuda::CudaDevice;
use super::TrtError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tinv_sys::{Shim, ShimApi};

/// Plans read from an engines folder; weights from a caller-supplied lookup (the `.tinv`
/// device section: manifest weight `name` is tensor `dev.<name>`).
pub struct DirSources<'a> {
    dir: PathBuf,
    weights: &'a dyn Fn(&str) -> Option<&'a [u8]>,
}

impl<'a> DirSources<'a> {
    /// Plans from `dir`, weights from `weights`.
    pub fn new(dir: &Path, weights: &'a dyn Fn(&str) -> Option<&'a [u8]>) -> DirSources<'a> {
        DirSources {
            dir: dir.to_path_buf(),
            weights,
        }
    }
}

impl Sources for DirSources<'_> {
    fn plan(&self, file: &str) -> Result<Vec<u8>, (std::io::ErrorKind, String)> {
        let path = self.dir.join(file);
        // A regular file only (a FIFO named in a manifest would block the open forever).
        crate::files::read_regular(&path)
            .map_err(|e| (e.kind(), format!("{}: {e}", path.display())))
    }

    fn weight(&self, name: &str) -> Option<&[u8]> {
        (self.weights)(name)
    }
}

/// Opens the engines in `dir` for the model described by `opts`, on GPU 0.
pub fn open_engines<'a>(
    dir: &Path,
    opts: &OpenOptions,
    weights: &'a dyn Fn(&str) -> Option<&'a [u8]>,
) -> Result<Arc<TrtModel>, TrtError> {
    let manifest = read_manifest(dir)?;
    let shim: Arc<dyn ShimApi> = Shim::shared()?;
    let device = Arc::new(CudaDevice::open(0)?);
    TrtModel::open(shim, device, manifest, opts, &DirSources::new(dir, weights)).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::super::builder::MANIFEST_FILE;
    use super::super::fixtures::sample;
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = crate::files::test_dir(&format!("trt-open-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn opts() -> OpenOptions {
        let m = sample();
        OpenOptions {
            model_hash: m.model_hash,
            depths: vec![1, 2],
            layout: None,
            precision: None,
            input_len: 784,
            classes: 10,
        }
    }

    #[test]
    fn plans_come_from_the_folder_and_weights_from_the_lookup() {
        let dir = tmp("src");
        std::fs::write(dir.join("path1.plan"), b"PLAN").unwrap();
        let bias = vec![5u8; 128];
        let lookup = |name: &str| (name == "blk.0.fc.bias").then_some(bias.as_slice());
        let s = DirSources::new(&dir, &lookup);
        assert_eq!(s.plan("path1.plan").unwrap(), b"PLAN");
        let (kind, why) = s.plan("path9.plan").unwrap_err();
        assert!(kind == std::io::ErrorKind::NotFound && why.contains("path9.plan"));
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.plan")).unwrap();
        // Not a regular file: not "missing" (a rebuild would not replace a device).
        let (kind, why) = s.plan("zero.plan").unwrap_err();
        assert!(kind != std::io::ErrorKind::NotFound && why.contains("not a regular file"));
        assert_eq!(s.weight("blk.0.fc.bias"), Some(&bias[..]));
        assert_eq!(s.weight("nope"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_folder_without_manifest_asks_for_a_build() {
        let dir = tmp("empty");
        let none = |_: &str| None;
        let e = open_engines(&dir, &opts(), &none)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(MANIFEST_FILE) && e.contains("`tinv-run build`"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_tensorrt_the_error_says_what_is_missing() {
        let dir = tmp("notrt");
        std::fs::write(dir.join(MANIFEST_FILE), sample().to_text().unwrap()).unwrap();
        let none = |_: &str| None;
        let e = open_engines(&dir, &opts(), &none).err().unwrap();
        // Built without headers: "shim not built"; built with them but no libnvinfer: the load
        // attempts; TensorRT but no driver: the CUDA init error.
        match &e {
            TrtError::Shim(tinv_sys::ShimError::NotBuilt) => {
                assert!(e.to_string().contains("TensorRT shim not built"))
            }
            TrtError::Shim(tinv_sys::ShimError::Load(m)) => {
                assert!(m.contains("libnvinfer.so."), "{m}")
            }
            TrtError::Device(d) => assert_eq!(d.op, "init"),
            // A machine with TensorRT and a GPU gets as far as the (absent) plan files.
            TrtError::StalePlan(m) => assert!(m.contains("path1.plan"), "{m}"),
            other => panic!("unexpected error {other}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
