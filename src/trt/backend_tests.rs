//! End-to-end tests of the backend's orchestration with the recording doubles of the TensorRT
//! shim (tinv_sys::double) and of the device (device_double): the invariants the design rests
//! on, checked on the recorded calls.

use super::backend::{OpenOptions, Sources, TrtModel};
use super::device::{Graph, Pinned};
use super::device_double::{DevCall, RecordingDevice};
use super::fixtures::{sample, segments};
use super::manifest::{self, IoMode, Manifest};
use super::session::TrtSession;
use super::TrtError;
use std::collections::HashMap;
use std::sync::Arc;
use tinv_sys::double::{Call, EngineSpec, RecordingShim};
use tinv_sys::{ContextHandle, ShimApi, TrtVersion};

pub(super) struct Files {
    pub(super) plans: HashMap<String, Vec<u8>>,
    pub(super) weights: HashMap<String, Vec<u8>>,
}

impl Sources for Files {
    fn plan(&self, file: &str) -> Result<Vec<u8>, (std::io::ErrorKind, String)> {
        self.plans.get(file).cloned().ok_or_else(|| {
            (
                std::io::ErrorKind::NotFound,
                format!("{file}: no such file"),
            )
        })
    }
    fn weight(&self, name: &str) -> Option<&[u8]> {
        self.weights.get(name).map(Vec::as_slice)
    }
}

fn spec(e: &manifest::Engine) -> EngineSpec {
    let io =
        e.io.iter()
            .map(|t| tinv_sys::IoTensor {
                name: t.name.clone(),
                mode: if t.mode == IoMode::Input {
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

pub(crate) struct Rig {
    pub(super) shim: Arc<RecordingShim>,
    pub(crate) device: Arc<RecordingDevice>,
    pub(super) files: Files,
    pub(super) manifest: Manifest,
}

/// Doubles that know every plan of `m` (bytes: `fixtures::plan_bytes`) and its weights' bytes.
pub(crate) fn rig(m: Manifest) -> Rig {
    let shim = Arc::new(RecordingShim::new(TrtVersion {
        major: 8,
        minor: 5,
        patch: 2,
        raw: 8502,
    }));
    let counter = shim.clone();
    let device = RecordingDevice::new(move || counter.calls().len());
    let mut plans = HashMap::new();
    for e in &m.engines {
        let bytes = super::fixtures::plan_bytes(&e.name);
        shim.register_plan(&bytes, spec(e));
        plans.insert(e.plan.clone(), bytes);
    }
    let weights = m
        .weights
        .iter()
        .map(|w| {
            (
                w.name.clone(),
                (0..w.bytes).map(|i| (i % 253) as u8).collect(),
            )
        })
        .collect();
    Rig {
        shim,
        device,
        files: Files { plans, weights },
        manifest: m,
    }
}

pub(super) fn opts(m: &Manifest) -> OpenOptions {
    OpenOptions {
        model_hash: m.model_hash,
        depths: m.paths.iter().map(|p| p.depth).collect(),
        layout: None,
        precision: None,
        input_len: 784,
        classes: 10,
    }
}

impl Rig {
    pub(crate) fn open(&self) -> Result<Arc<TrtModel>, TrtError> {
        let shim: Arc<dyn ShimApi> = self.shim.clone();
        TrtModel::open(
            shim,
            self.device.clone(),
            self.manifest.clone(),
            &opts(&self.manifest),
            &self.files,
        )
        .map(Arc::new)
    }
    /// Every device buffer, stream, graph, context and engine has been freed.
    pub(super) fn assert_all_released(&self) {
        assert_eq!(
            (
                self.device.live(),
                self.shim.live_contexts(),
                self.shim.live_engines()
            ),
            ((0, 0, 0), 0, 0)
        );
    }
    pub(super) fn allocs(&self) -> Vec<(u64, u64)> {
        self.device
            .calls()
            .iter()
            .filter_map(|c| {
                if let DevCall::Alloc(n, p) = c {
                    Some((*n, *p))
                } else {
                    None
                }
            })
            .collect()
    }
    pub(crate) fn contexts(&self) -> Vec<ContextHandle> {
        self.shim
            .calls()
            .iter()
            .filter_map(|c| {
                if let Call::ContextCreate(_, Some(h)) = c {
                    Some(*h)
                } else {
                    None
                }
            })
            .collect()
    }
    pub(crate) fn address(&self, ctx: ContextHandle, name: &str) -> Option<u64> {
        self.shim.calls().iter().rev().find_map(|c| match c {
            Call::SetTensorAddress(h, n, a) if *h == ctx && n == name => Some(*a),
            _ => None,
        })
    }
    /// The session's staging buffers (input, output), in allocation order.
    fn staging(&self) -> (Pinned, Pinned) {
        let p: Vec<Pinned> = self
            .device
            .calls()
            .iter()
            .filter_map(|c| {
                if let DevCall::PinnedAlloc(_, p) = c {
                    Some(*p)
                } else {
                    None
                }
            })
            .collect();
        (p[0], p[1])
    }

    /// The copies recorded inside each capture, in order.
    fn captured_copies(&self) -> Vec<Vec<DevCall>> {
        let mut out = Vec::new();
        let mut cur: Option<Vec<DevCall>> = None;
        for c in self.device.calls() {
            match c {
                DevCall::BeginCapture { .. } => cur = Some(Vec::new()),
                DevCall::EndCapture { .. } => out.extend(cur.take()),
                DevCall::ToDevice(..) | DevCall::ToHost(..) => {
                    if let Some(v) = cur.as_mut() {
                        v.push(c);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Contexts enqueued inside each capture, from the shim-call marks the device recorded.
    fn captures(&self) -> Vec<(Graph, Vec<ContextHandle>)> {
        let shim_calls = self.shim.calls();
        let mut out = Vec::new();
        let mut begin = None;
        for c in self.device.calls() {
            match c {
                DevCall::BeginCapture { at } => begin = Some(at),
                DevCall::EndCapture { graph, at } => {
                    let from = begin.take().expect("end follows begin");
                    let ctxs = shim_calls[from..at]
                        .iter()
                        .filter_map(|c| {
                            if let Call::Enqueue(h, _) = c {
                                Some(*h)
                            } else {
                                None
                            }
                        })
                        .collect();
                    out.push((graph, ctxs));
                }
                _ => {}
            }
        }
        out
    }
}

/// A small synthetic model (8×8 grey, paths 1 and 2) for the engine-cache tests.
fn small_model() -> crate::Model {
    let cfg = crate::synth::tiny(3, false);
    let bytes = crate::synth::random_model(&cfg, 1, crate::format::DType::F32);
    crate::Model::from_bytes(&bytes, &crate::OpenOptions::default()).unwrap()
}

/// A model's engines are opened once whether the folder comes relative (the C ABI's backend
/// choice, from the model's path) or absolute (its sessions): opened again, the weights were
/// uploaded a second time.
#[test]
fn engines_are_cached_by_the_absolute_folder() {
    let r = rig(sample());
    let model = small_model();
    let rel = std::path::Path::new("some/plans");
    let first = model
        .trt_model(rel, || r.open().map_err(Into::into))
        .unwrap();
    let abs = std::path::absolute(rel).unwrap();
    let again = model
        .trt_model(&abs, || panic!("the engines were opened again"))
        .unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(r.allocs().len(), 1, "one weight upload");
}

/// `auto` runs on engines the model can open: with the engines opened (the doubles, cached
/// under the folder) and a manifest in the folder, the backend choice is TensorRT; without a
/// manifest it is the CPU, as for a folder where nothing was built.
#[test]
fn auto_chooses_tensorrt_where_the_engines_open() {
    use crate::backend::{resolve, Backend};
    let r = rig(sample());
    let model = small_model();
    let dir = crate::files::test_dir("auto-trt");
    std::fs::create_dir_all(&dir).unwrap();
    model
        .trt_model(&dir, || r.open().map_err(Into::into))
        .unwrap();
    let auto = || resolve(&model, Backend::Auto, Some(&dir)).unwrap();
    assert_eq!(auto(), Backend::Cpu);
    std::fs::write(dir.join("manifest"), "").unwrap();
    assert_eq!(auto(), Backend::TensorRt);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn per_path_weights_once_one_arena_one_graph_per_path() {
    let r = rig(sample());
    let model = r.open().unwrap();
    // What `inspect` reports: the weight buffer (8192 + 128 B rounded to 256), the arena (the
    // largest engine's 3_000_000 B rounded to 256) and the I/O block (image 3136 B at 0,
    // logits 40 B at 3328, rounded to 256).
    assert_eq!(
        (model.weight_bytes(), model.arena_bytes(), model.io_bytes()),
        (8448, 3_000_064, 3584)
    );
    // One weight buffer (8448 B), each weight copied once to its manifest offset.
    let weights_ptr = match r.allocs().as_slice() {
        [(8448, p)] => *p,
        other => panic!("expected one weight allocation, got {other:?}"),
    };
    let copies: Vec<_> = r
        .device
        .calls()
        .into_iter()
        .filter(|c| matches!(c, DevCall::Htod(..)))
        .collect();
    assert_eq!(
        copies,
        [
            DevCall::Htod(weights_ptr, 8192),
            DevCall::Htod(weights_ptr + 8192, 128)
        ]
    );
    assert_eq!(
        r.device.written(weights_ptr + 8192).unwrap(),
        r.files.weights["blk.0.fc.bias"]
    );

    let mut s = TrtSession::new(model.clone()).unwrap();
    let allocs = r.allocs();
    assert_eq!(
        allocs.len(),
        3,
        "weights + one arena + one I/O block: {allocs:?}"
    );
    let (arena_bytes, arena) = allocs[1];
    assert_eq!(arena_bytes, 3_000_064); // max over engines (3_000_000) rounded to 256
    let ctxs = r.contexts();
    assert_eq!(ctxs.len(), 2);
    for &c in &ctxs {
        assert!(
            r.shim
                .calls()
                .contains(&Call::SetDeviceMemory(c, arena, arena_bytes)),
            "every context gets the one arena"
        );
        assert_eq!(
            r.address(c, "blk.0.fc.weight"),
            Some(weights_ptr),
            "same weight, same address in every engine"
        );
    }
    assert_eq!(
        r.address(ctxs[1], "blk.0.fc.bias"),
        Some(weights_ptr + 8192)
    );
    assert_eq!(r.address(ctxs[0], "image"), r.address(ctxs[1], "image"));

    // Warm-up: every context enqueued once before the first capture; then one graph per path,
    // each holding exactly its path's engine. per-path escalation reuses the deeper path's graph.
    let first_capture = r
        .device
        .calls()
        .iter()
        .find_map(|c| {
            if let DevCall::BeginCapture { at } = c {
                Some(*at)
            } else {
                None
            }
        })
        .unwrap();
    let warm: Vec<_> = r.shim.calls()[..first_capture]
        .iter()
        .filter_map(|c| {
            if let Call::Enqueue(h, _) = c {
                Some(*h)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(warm, ctxs);
    let caps = r.captures();
    assert_eq!(
        caps.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
        [vec![ctxs[0]], vec![ctxs[1]]]
    );

    // Each path graph also holds the staging copies: image in, that path's logits out.
    let (stage_in, stage_out) = r.staging();
    let image_ptr = r.address(ctxs[0], "image").unwrap();
    let logits_ptr = r.address(ctxs[1], "logits").unwrap();
    assert_eq!(
        r.captured_copies()[1],
        [
            DevCall::ToDevice(image_ptr, stage_in, 3136),
            DevCall::ToHost(stage_out, logits_ptr, 40)
        ]
    );

    // Inference: input into pinned memory, the chosen path's graph, wait, logits out of pinned
    // memory; nothing allocated or captured. The double replays the graph's copies, so the
    // image reaches the engines' input buffer and the "engine output" reaches the caller.
    let before = r.device.calls().len();
    r.device.put(logits_ptr, &[7u8; 40]);
    let image = vec![1u8; 3136];
    let mut out = vec![0u8; s.output_len(1).unwrap()];
    let launched = s.run(1, &image, &mut out).unwrap();
    assert_eq!(out, [7u8; 40]);
    assert_eq!(
        (launched.engines.to_vec(), launched.rerun),
        (vec![1], false)
    );
    assert_eq!(
        r.device.calls()[before..],
        [
            DevCall::PinnedWrite(stage_in, 3136),
            DevCall::Launch(caps[1].0),
            DevCall::Sync,
            DevCall::PinnedRead(stage_out, 40)
        ]
    );
    assert_eq!(r.device.written(image_ptr).unwrap(), image);

    s.run(0, &image, &mut out).unwrap();
    let esc = s.escalate(0, &mut out).unwrap();
    assert_eq!(
        (esc.engines.to_vec(), esc.rerun),
        (vec![1], true),
        "per-path reruns the deeper engine and says so"
    );
    assert_eq!(
        r.device
            .calls()
            .iter()
            .filter(|c| matches!(c, DevCall::Launch(g) if *g == caps[1].0))
            .count(),
        2
    );
    assert_eq!(r.allocs().len(), 3);
    assert_eq!(r.captures().len(), 2);

    drop(s);
    drop(model);
    assert_eq!(r.device.live(), (0, 0, 0));
    assert_eq!((r.shim.live_engines(), r.shim.live_contexts()), (0, 0));
    // The context was made current before the shim freed contexts (session drop) and engines
    // (model drop): the thread dropping them may never have touched CUDA.
    let shim_calls = r.shim.calls();
    let first = |f: &dyn Fn(&Call) -> bool| shim_calls.iter().position(f).unwrap();
    let ctx_free = first(&|c| matches!(c, Call::ContextFree(_)));
    let engine_free = first(&|c| matches!(c, Call::EngineFree(_)));
    let current: Vec<usize> = r
        .device
        .calls()
        .iter()
        .filter_map(|c| match c {
            DevCall::MakeCurrent(mark) => Some(*mark),
            _ => None,
        })
        .collect();
    assert!(
        current.iter().any(|&m| m <= ctx_free),
        "{current:?} {ctx_free}"
    );
    assert!(
        current.iter().any(|&m| ctx_free < m && m <= engine_free),
        "{current:?} {ctx_free} {engine_free}"
    );
}

#[test]
fn segments_escalation_resumes_from_the_saved_hidden_state() {
    let r = rig(segments());
    let model = r.open().unwrap();
    assert_eq!(model.weight_bytes(), 0);
    let mut s = TrtSession::new(model.clone()).unwrap();
    let ctxs = r.contexts(); // seg1, head1, seg2, head2

    // seg1's output and seg2's input are one buffer: that is the resume point.
    assert_eq!(r.address(ctxs[0], "h1"), r.address(ctxs[2], "h1"));
    let caps = r.captures();
    let enq: Vec<_> = caps.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        enq,
        [
            vec![ctxs[0], ctxs[1]],
            vec![ctxs[0], ctxs[2], ctxs[3]],
            vec![ctxs[2], ctxs[3]]
        ]
    );
    let mut out = vec![0u8; 40];
    let e = s.escalate(0, &mut out).unwrap_err().to_string();
    assert!(
        e.contains("needs a completed run"),
        "nothing to resume from yet: {e}"
    );
    s.run(0, &[0u8; 3136], &mut out).unwrap();
    let esc = s.escalate(0, &mut out).unwrap();
    assert_eq!((esc.engines.to_vec(), esc.rerun), (vec![2, 3], false));
    let (_, stage_out) = r.staging();
    assert!(r.device.calls().ends_with(&[
        DevCall::Launch(caps[2].0),
        DevCall::Sync,
        DevCall::PinnedRead(stage_out, 40)
    ]));
    // The step graph copies no input (it resumes from h1) and delivers head2's logits.
    let logits2 = r.address(ctxs[3], "logits2").unwrap();
    assert_eq!(
        r.captured_copies()[2],
        [DevCall::ToHost(stage_out, logits2, 40)]
    );
    // After the step the buffers hold path 2's output: escalating from path 1 passes the
    // precondition and fails only for want of a deeper path; from path 0 it is refused.
    let e = s.escalate(1, &mut out).unwrap_err().to_string();
    assert!(e.contains("no deeper path after 1"), "{e}");
    s.run(0, &[0u8; 3136], &mut out).unwrap();
    s.escalate(0, &mut out).unwrap();
    let e = s.escalate(0, &mut out).unwrap_err().to_string();
    assert!(e.contains("needs a completed run"), "{e}");
    // An output buffer of the wrong length names the path the step delivers (path 1).
    s.run(0, &[0u8; 3136], &mut out).unwrap();
    let e = s.escalate(0, &mut out[..39]).unwrap_err().to_string();
    assert!(e.contains("output is 39 bytes, path 1 produces 40"), "{e}");
    assert!(s.uses_graphs(), "every path and step was captured");
}

#[test]
fn without_cuda_graphs_each_run_enqueues_its_copies_and_engines() {
    let r = rig(segments());
    let model = r.open().unwrap();
    let mut s = TrtSession::with_graphs(model.clone(), false).unwrap();
    assert!(r.captures().is_empty(), "nothing is captured");
    let ctxs = r.contexts(); // seg1, head1, seg2, head2
    let (stage_in, stage_out) = r.staging();
    let image = r.address(ctxs[0], "image").unwrap();
    let (logits1, logits2) = (
        r.address(ctxs[1], "logits1").unwrap(),
        r.address(ctxs[3], "logits2").unwrap(),
    );
    let enqueued_since = |n: usize| -> Vec<ContextHandle> {
        r.shim.calls()[n..]
            .iter()
            .filter_map(|c| match c {
                Call::Enqueue(h, _) => Some(*h),
                _ => None,
            })
            .collect()
    };

    let (dev0, shim0) = (r.device.calls().len(), r.shim.calls().len());
    r.device.put(logits1, &[3u8; 40]);
    let mut out = vec![0u8; 40];
    let launched = s.run(0, &[5u8; 3136], &mut out).unwrap();
    assert_eq!(
        (launched.engines.to_vec(), launched.rerun),
        (vec![0, 1], false)
    );
    assert_eq!(out, [3u8; 40], "the output went through the staging buffer");
    assert_eq!(
        r.device.calls()[dev0..],
        [
            DevCall::PinnedWrite(stage_in, 3136),
            DevCall::ToDevice(image, stage_in, 3136),
            DevCall::ToHost(stage_out, logits1, 40),
            DevCall::Sync,
            DevCall::PinnedRead(stage_out, 40)
        ]
    );
    assert_eq!(enqueued_since(shim0), [ctxs[0], ctxs[1]]);
    assert_eq!(r.device.written(image).unwrap(), [5u8; 3136]);

    // Escalation resumes from h1: no input copy, only the deeper segment and its head.
    let (dev1, shim1) = (r.device.calls().len(), r.shim.calls().len());
    let esc = s.escalate(0, &mut out).unwrap();
    assert_eq!((esc.engines.to_vec(), esc.rerun), (vec![2, 3], false));
    assert_eq!(
        r.device.calls()[dev1..],
        [
            DevCall::ToHost(stage_out, logits2, 40),
            DevCall::Sync,
            DevCall::PinnedRead(stage_out, 40)
        ]
    );
    assert_eq!(enqueued_since(shim1), [ctxs[2], ctxs[3]]);
    assert!(r.captures().is_empty());
    drop(s);
    drop(model);
    assert_eq!(r.device.live(), (0, 0, 0));
}

/// The `segments` fixture with the tensor names the ONNX exporter writes (taken from the
/// exported graphs, not typed here): the engines open, the hidden state after depth 1 is one
/// buffer from segment 1's output to segment 2's and exit head 1's input, and an escalation
/// resumes from it. (A review found the exporter writing `hidden_out` → `hidden_in`, which left
/// two external inputs: every `segments` build failed to open.)
#[test]
fn segments_with_the_exported_tensor_names_open_and_resume() {
    use crate::onnx::{self, ExportOptions, GraphKind};
    let cfg = crate::synth::tiny(3, false);
    let model = crate::Model::from_bytes(
        &crate::synth::random_model(&cfg, 3, crate::format::DType::F32),
        &crate::OpenOptions::default(),
    )
    .unwrap();
    let opts = ExportOptions {
        layout: onnx::Layout::Segments,
        ..ExportOptions::default()
    };
    let graphs = onnx::export_graphs(&model, &opts).unwrap();
    let graph = |kind: GraphKind| graphs.iter().find(|g| g.kind == kind).unwrap();
    let mut m = segments();
    let kinds = [
        GraphKind::Segment { start: 0, end: 1 },
        GraphKind::ExitHead { depth: 1 },
        GraphKind::Segment { start: 1, end: 2 },
        GraphKind::ExitHead { depth: 2 },
    ];
    for (e, kind) in m.engines.iter_mut().zip(kinds) {
        let g = graph(kind);
        let names: Vec<&String> = g.inputs.iter().chain(&g.outputs).map(|t| &t.name).collect();
        assert_eq!(names.len(), e.io.len(), "{kind:?}");
        for (t, name) in e.io.iter_mut().zip(names) {
            t.name = name.clone();
        }
    }
    let r = rig(m);
    let model = r.open().unwrap();
    let mut s = TrtSession::new(model).unwrap();
    let ctxs = r.contexts(); // seg1, head1, seg2, head2
    let h1 = r.address(ctxs[0], "hidden.1").unwrap();
    assert_eq!(r.address(ctxs[1], "hidden.1"), Some(h1));
    assert_eq!(r.address(ctxs[2], "hidden.1"), Some(h1));
    assert_ne!(r.address(ctxs[2], "hidden.2"), Some(h1));
    let mut out = vec![0u8; 40];
    s.run(0, &[0u8; 3136], &mut out).unwrap();
    let esc = s.escalate(0, &mut out).unwrap();
    assert_eq!((esc.engines.to_vec(), esc.rerun), (vec![2, 3], false));
}
