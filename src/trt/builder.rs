//! Building the engines of a model (what `tinv-run build` drives once the ONNX files exist):
//! each ONNX → plan through the shim's builder, each plan deserialized once to record its real
//! I/O and device-memory size, and the manifest written last, so a folder with a manifest is
//! always complete.

use super::device::Device;
use super::manifest::{
    self, Engine, Gpu, Layout, Manifest, PathEngines, Precision, TrtVersion, WeightBinding,
};
use super::TrtError;
use std::path::{Path, PathBuf};
use tinv_sys::{BuildOptions, ShimApi};

/// File name of the manifest inside an engines folder.
pub const MANIFEST_FILE: &str = "manifest";

/// One engine to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSource {
    /// Engine name (also the plan's file stem).
    pub name: String,
    /// The exported ONNX file.
    pub onnx: PathBuf,
}

/// Everything a build needs besides the shim and the device.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRequest {
    /// [`crate::Model::model_hash`] of the model (tensors and configuration).
    pub model_hash: u64,
    /// Layout of the exported ONNX graphs.
    pub layout: Layout,
    /// Precision recorded in the manifest (and asked of the builder).
    pub precision: Precision,
    /// Engines, in the order they are listed.
    pub engines: Vec<EngineSource>,
    /// Weight table and buffer size (`per-path`; empty for `segments`).
    pub weights: (Vec<WeightBinding>, u64),
    /// Depth → engine names.
    pub paths: Vec<PathEngines>,
    /// Builder options (precision is taken from `precision`).
    pub options: BuildOptions,
}

fn io_of(t: &tinv_sys::IoTensor, engine: &str) -> Result<manifest::IoTensor, TrtError> {
    let dtype = match t.dtype {
        tinv_sys::DType::F32 => manifest::DType::F32,
        tinv_sys::DType::F16 => manifest::DType::F16,
        tinv_sys::DType::I32 => manifest::DType::I32,
        tinv_sys::DType::I64 => manifest::DType::I64,
        tinv_sys::DType::I8 => manifest::DType::I8,
        other => {
            return Err(TrtError::Plan(format!(
                "engine {engine}: tensor {} has unsupported type {other:?}",
                t.name
            )))
        }
    };
    let shape = t
        .shape
        .iter()
        .map(|&d| u64::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| {
            TrtError::Plan(format!(
                "engine {engine}: tensor {} has a dynamic shape {:?}",
                t.name, t.shape
            ))
        })?;
    let mode = match t.mode {
        tinv_sys::IoMode::Input => manifest::IoMode::Input,
        tinv_sys::IoMode::Output => manifest::IoMode::Output,
    };
    Ok(manifest::IoTensor {
        name: t.name.clone(),
        mode,
        dtype,
        shape,
    })
}

fn io_err(path: &Path, e: std::io::Error) -> TrtError {
    TrtError::Plan(format!("{}: {e}", path.display()))
}

/// Builds every engine into `out_dir` (`<name>.plan`), then writes `out_dir/manifest`.
/// `progress(engine, phase, step, steps)` sees the builder's progress; return `false` to cancel.
pub fn build_engines(
    shim: &dyn ShimApi,
    device: &dyn Device,
    req: &BuildRequest,
    out_dir: &Path,
    progress: &mut (dyn FnMut(&str, &str, i32, i32) -> bool + Send),
) -> Result<Manifest, TrtError> {
    std::fs::create_dir_all(out_dir).map_err(|e| io_err(out_dir, e))?;
    let manifest_path = out_dir.join(MANIFEST_FILE);
    // A stale manifest must not describe a half-rebuilt folder.
    if manifest_path.exists() {
        std::fs::remove_file(&manifest_path).map_err(|e| io_err(&manifest_path, e))?;
    }
    let options = BuildOptions {
        precision: match req.precision {
            Precision::Fp16 => tinv_sys::Precision::Fp16,
            Precision::Fp32 => tinv_sys::Precision::Fp32,
        },
        ..req.options.clone()
    };
    let mut engines = Vec::with_capacity(req.engines.len());
    for src in &req.engines {
        let mut report =
            |phase: &str, step: i32, steps: i32| progress(&src.name, phase, step, steps);
        let plan = shim.build_from_onnx_file(&src.onnx, &options, Some(&mut report))?;
        let file = format!("{}.plan", src.name);
        let plan_path = out_dir.join(&file);
        replace_file(&plan_path, &plan)?;
        // Record what TensorRT actually built: I/O and device memory come from the engine.
        let handle = shim.deserialize(&plan)?;
        let described = shim
            .engine_io(handle)
            .and_then(|io| shim.engine_device_memory_size(handle).map(|mem| (io, mem)));
        shim.engine_free(handle);
        let (io, device_memory) = described?;
        let io = io
            .iter()
            .map(|t| io_of(t, &src.name))
            .collect::<Result<Vec<_>, _>>()?;
        engines.push(Engine {
            name: src.name.clone(),
            plan: file,
            device_memory,
            plan_hash: crate::format::fnv1a64(&plan),
            io,
        });
    }
    let v = shim.version();
    let part = |x: i32| u32::try_from(x).unwrap_or(0);
    let gpu = device.info()?;
    let m = Manifest {
        model_hash: req.model_hash,
        export: crate::onnx::EXPORT_VERSION,
        tensorrt: TrtVersion {
            major: part(v.major),
            minor: part(v.minor),
            patch: part(v.patch),
        },
        gpu: Gpu {
            name: gpu.name,
            compute_capability: gpu.compute_capability,
            sms: gpu.sms,
        },
        precision: req.precision,
        layout: req.layout,
        weights_bytes: req.weights.1,
        weights: req.weights.0.clone(),
        engines,
        paths: req.paths.clone(),
    };
    m.validate()?;
    replace_file(&manifest_path, m.to_text()?.as_bytes())?;
    Ok(m)
}

/// Writes `bytes` to `path` in this build's own folder atomically
/// ([`crate::files::replace_atomically`]): what held the name (a stale plan, a FIFO that blocked
/// the write forever, a symbolic link that was written through to a file outside the folder) is
/// replaced, and a failure part-way leaves no half-written plan or manifest under it.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), TrtError> {
    crate::files::replace_atomically(path, bytes).map_err(|e| io_err(path, e))
}

/// Reads `dir/manifest`; a missing file says to run `tinv-run build`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, TrtError> {
    // A manifest is a few KB of text: a regular file under 16 MiB (a FIFO would block, a link to
    // /dev/zero would grow without end).
    let path = dir.join(MANIFEST_FILE);
    let text = crate::files::read_regular_text(&path, 16 << 20).map_err(|e| {
        TrtError::Manifest(format!(
            "{}: {e}; run `tinv-run build` to build the engines",
            path.display()
        ))
    })?;
    // A damaged manifest gets the same fix as a stale one: rebuild.
    Manifest::parse(&text).map_err(|e| match e {
        TrtError::Manifest(m) => TrtError::Manifest(format!(
            "{}: {m}; run `tinv-run build` to rebuild the engines",
            path.display()
        )),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::super::device_double::RecordingDevice;
    use super::super::fixtures::sample;
    use super::*;
    use tinv_sys::double::{Call, CallKind, EngineSpec, RecordingShim};

    fn spec(e: &Engine) -> EngineSpec {
        let io =
            e.io.iter()
                .map(|t| tinv_sys::IoTensor {
                    name: t.name.clone(),
                    mode: if t.mode == manifest::IoMode::Input {
                        tinv_sys::IoMode::Input
                    } else {
                        tinv_sys::IoMode::Output
                    },
                    dtype: if t.dtype == manifest::DType::F16 {
                        tinv_sys::DType::F16
                    } else {
                        tinv_sys::DType::F32
                    },
                    shape: t.shape.iter().map(|&d| d as i64).collect(),
                })
                .collect();
        EngineSpec {
            io,
            device_memory: e.device_memory,
        }
    }

    fn setup(dir: &Path) -> (RecordingShim, BuildRequest, Manifest) {
        let mut want = sample();
        let shim = RecordingShim::new(tinv_sys::TrtVersion {
            major: 8,
            minor: 5,
            patch: 2,
            raw: 8502,
        });
        let mut engines = Vec::new();
        for e in &mut want.engines {
            let onnx = dir.join(format!("{}.onnx", e.name));
            let plan = format!("plan bytes of {}", e.name).into_bytes();
            // FNV-1a 64 of the plan the build writes (the manifest records it).
            e.plan_hash = crate::format::fnv1a64(&plan);
            shim.register_build(&onnx, &plan);
            shim.register_plan(&plan, spec(e));
            engines.push(EngineSource {
                name: e.name.clone(),
                onnx,
            });
        }
        let req = BuildRequest {
            model_hash: want.model_hash,
            layout: want.layout,
            precision: want.precision,
            engines,
            weights: (want.weights.clone(), want.weights_bytes),
            paths: want.paths.clone(),
            options: BuildOptions::default(),
        };
        (shim, req, want)
    }

    fn tmp(name: &str) -> PathBuf {
        let d = crate::files::test_dir(&format!("trt-build-{name}"));
        d
    }

    #[test]
    fn builds_write_plans_and_a_manifest_that_reads_back() {
        let dir = tmp("ok");
        let (shim, req, want) = setup(&dir);
        let device = RecordingDevice::new(|| 0);
        let mut phases = Vec::new();
        let m = build_engines(&shim, device.as_ref(), &req, &dir, &mut |e, p, _, _| {
            phases.push(format!("{e}:{p}"));
            true
        })
        .unwrap();
        // The device double reports Xavier 7.2 and the shim 8.5.2, which is what `sample` holds.
        assert_eq!(m, want);
        assert_eq!(read_manifest(&dir).unwrap(), want);
        assert_eq!(
            std::fs::read(dir.join("path2.plan")).unwrap(),
            b"plan bytes of path2"
        );
        assert!(
            phases.contains(&"path1:parse".to_string())
                && phases.contains(&"path2:build".to_string())
        );
        assert_eq!(
            shim.live_engines(),
            0,
            "engines opened to describe them are freed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_build_leaves_no_manifest() {
        let dir = tmp("fail");
        let (shim, req, _) = setup(&dir);
        let device = RecordingDevice::new(|| 0);
        build_engines(&shim, device.as_ref(), &req, &dir, &mut |_, _, _, _| true).unwrap();
        shim.fail_nth(CallKind::Build, 1);
        let e =
            build_engines(&shim, device.as_ref(), &req, &dir, &mut |_, _, _, _| true).unwrap_err();
        assert!(
            e.to_string().contains("tinv_trt_build_from_onnx_file"),
            "{e}"
        );
        let missing = read_manifest(&dir).unwrap_err().to_string();
        assert!(missing.contains("`tinv-run build`"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A damaged manifest names its file and the fix, as a stale one does; a manifest that is
    /// not a regular file is refused without reading it (a FIFO blocked the open forever).
    #[test]
    fn a_damaged_or_irregular_manifest_names_the_fix() {
        let dir = tmp("damaged");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), "hello\n").unwrap();
        let e = read_manifest(&dir).unwrap_err().to_string();
        assert!(
            e.contains(MANIFEST_FILE)
                && e.contains("not an engine manifest")
                && e.ends_with("run `tinv-run build` to rebuild the engines"),
            "{e}"
        );
        std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join(MANIFEST_FILE)).unwrap();
        let e = read_manifest(&dir).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A dimension of -1 (dynamic) or 0 (nothing a static engine runs) is refused as the plan's
    /// fault, naming the engine and the tensor.
    #[test]
    fn dynamic_shapes_are_refused() {
        let dir = tmp("dyn");
        for dim in [-1, 0] {
            let (shim, mut req, want) = setup(&dir);
            let onnx = dir.join("dyn.onnx");
            let mut e = spec(&want.engines[0]);
            e.io[0].shape[0] = dim;
            shim.register_build(&onnx, b"dyn plan");
            shim.register_plan(b"dyn plan", e);
            req.engines = vec![EngineSource {
                name: "path1".into(),
                onnx,
            }];
            let device = RecordingDevice::new(|| 0);
            let err = build_engines(&shim, device.as_ref(), &req, &dir, &mut |_, _, _, _| true)
                .unwrap_err();
            assert!(
                matches!(&err, TrtError::Plan(m)
                    if m.starts_with("engine path1: tensor image has a dynamic shape")),
                "{dim}: {err}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The builder gets the request's precision (`BuildRequest::options`: "precision is taken
    /// from `precision`") and every other option as given; the manifest records it.
    #[test]
    fn the_builder_gets_the_requested_precision() {
        let dir = tmp("precision");
        let (shim, mut req, _) = setup(&dir);
        req.precision = Precision::Fp32;
        req.options = BuildOptions {
            workspace_bytes: 12345,
            fp32_layer_substring: Some("LayerNorm".into()),
            ..BuildOptions::default() // precision FP16
        };
        let device = RecordingDevice::new(|| 0);
        let m = build_engines(&shim, device.as_ref(), &req, &dir, &mut |_, _, _, _| true).unwrap();
        assert_eq!(m.precision, Precision::Fp32);
        let want = BuildOptions {
            precision: tinv_sys::Precision::Fp32,
            ..req.options.clone()
        };
        let builds: Vec<_> = shim
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Build(_, o) => Some(o),
                _ => None,
            })
            .collect();
        assert_eq!(builds, [want.clone(), want]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A plan's name in the folder held a symbolic link (the plan was written through it, over a
    /// file outside the folder) or a FIFO (the write blocked forever): both are replaced.
    #[test]
    fn plans_replace_a_link_or_fifo_under_their_name() {
        let dir = tmp("replace");
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.with_extension("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("path1.plan")).unwrap();
        let (shim, req, want) = setup(&dir);
        let fifo = dir.join(format!(
            "{}.plan",
            want.engines[want.engines.len() - 1].name
        ));
        let have_fifo = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let d2 = dir.clone();
        std::thread::spawn(move || {
            let device = RecordingDevice::new(|| 0);
            let r = build_engines(&shim, device.as_ref(), &req, &d2, &mut |_, _, _, _| true);
            let _ = tx.send(r.map(|_| ()).map_err(|e| e.to_string()));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(20));
        if got.is_err() && have_fifo {
            let _ = std::fs::File::open(&fifo); // let the blocked writer finish
        }
        assert_eq!(got.expect("build blocked on a FIFO"), Ok(()));
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let kind = std::fs::symlink_metadata(dir.join("path1.plan"))
            .unwrap()
            .file_type();
        assert!(kind.is_file(), "{kind:?}");
        if have_fifo {
            assert!(std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_file());
        }
        assert!(read_manifest(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&victim);
    }
}
