//! ONNX export: the protobuf encoder against hand-computed bytes, and every exported graph, in
//! every flavour, run by ONNX Runtime (PyPI) against an independent f64 reference forward and
//! the runtime's CPU backend.
//!
//! Needs a Python with onnxruntime + numpy: `$TINV_PYTHON`, else `.venv/bin/python` at the repo
//! root; without one the ORT tests print a SKIP line and pass.

#[path = "onnx/parity.rs"]
mod parity;
#[path = "onnx/reference.rs"]
mod reference;
#[path = "onnx/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use support::{read_f32, run_ort, write_f32, Job};
use tinv::model::Gelu;
use tinv::onnx::proto::{
    self, Attribute, Dim, ElemType, Graph, ModelProto, Node, Tensor, ValueInfo,
};
use tinv::onnx::{self, ExportOptions};
use tinv::{Model, OpenOptions};

/// A small two-path model without a controller (8×8 grey, patch 4, width 16, 2 blocks).
fn small_model_bytes(seed: u64) -> Vec<u8> {
    let cfg = support::config((8, 8, 1), 4, 16, 2, 2, &[1, 2], Gelu::Erf, false);
    support::random_model(&cfg, seed)
}

/// [`small_model_bytes`], opened.
fn small_model(seed: u64) -> Model {
    Model::from_bytes(&small_model_bytes(seed), &OpenOptions::default()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Encoder, byte for byte

#[test]
fn proto_fields_match_hand_computed_bytes() {
    let mut b = Vec::new();
    proto::put_int(&mut b, 1, 150); // key 0x08, varint 150 = 0x96 0x01 (protobuf guide example)
    assert_eq!(b, [0x08, 0x96, 0x01]);
    b.clear();
    proto::put_bytes(&mut b, 2, b"testing"); // key (2<<3)|2 = 0x12, length 7
    assert_eq!(b, [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']);
    b.clear();
    proto::put_float(&mut b, 2, 1.0); // key (2<<3)|5 = 0x15, 1.0f32 = 0x3f800000 LE
    assert_eq!(b, [0x15, 0x00, 0x00, 0x80, 0x3f]);
    b.clear();
    proto::put_int(&mut b, 20, 2); // field 20 needs a two-byte key: (20<<3)|0 = 160 = 0xa0 0x01
    assert_eq!(b, [0xa0, 0x01, 0x02]);
    b.clear();
    proto::put_int(&mut b, 1, -2); // -2 as u64 = 0xffff_ffff_ffff_fffe: ten varint bytes
    assert_eq!(
        b,
        [0x08, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
    );
}

#[test]
fn proto_messages_match_hand_computed_bytes() {
    // TensorProto{dims: [2], data_type: INT64 (7), name: "s", raw_data: 2 × i64}.
    let mut b = Vec::new();
    Tensor::i64("s", &[2], &[1, -1]).encode(&mut b);
    let mut want = vec![0x08, 0x02, 0x10, 0x07, 0x42, 0x01, b's', 0x4a, 0x10];
    want.extend_from_slice(&1i64.to_le_bytes());
    want.extend_from_slice(&(-1i64).to_le_bytes());
    assert_eq!(b, want);

    // ValueInfoProto{name "x", type {tensor_type {elem_type 1, shape {dim {dim_param "b"},
    // dim {dim_value 3}}}}}: nested lengths computed by hand from the inside out.
    b.clear();
    ValueInfo {
        name: "x".into(),
        elem: ElemType::Float,
        dims: vec![Dim::Param("b".into()), Dim::Value(3)],
    }
    .encode(&mut b);
    let dim_b = [0x0a, 0x03, 0x12, 0x01, b'b']; // shape.dim #1 (field 1, len 3)
    let dim_3 = [0x0a, 0x02, 0x08, 0x03]; // shape.dim #2 (field 1, len 2)
    let mut shape = vec![0x12, (dim_b.len() + dim_3.len()) as u8];
    shape.extend(dim_b);
    shape.extend(dim_3);
    let mut tensor_type = vec![0x08, 0x01];
    tensor_type.extend(&shape);
    let mut ty = vec![0x0a, tensor_type.len() as u8];
    ty.extend(&tensor_type);
    let mut want = vec![0x0a, 0x01, b'x', 0x12, ty.len() as u8];
    want.extend(&ty);
    assert_eq!(b, want);

    // AttributeProto{name "perm", ints [1, 0], type INTS (7)}: unpacked repeated field 8.
    b.clear();
    Attribute::ints("perm", &[1, 0]).encode(&mut b);
    assert_eq!(
        b,
        [0x0a, 0x04, b'p', b'e', b'r', b'm', 0x40, 0x01, 0x40, 0x00, 0xa0, 0x01, 0x07]
    );

    // ModelProto header: ir_version 8 then producer "t", version "0", an empty graph, opset 17.
    let m = ModelProto {
        ir_version: 8,
        opset: 17,
        producer_name: "t".into(),
        producer_version: "0".into(),
        doc: String::new(),
        metadata: vec![],
        graph: Graph::default(),
    };
    assert_eq!(
        m.to_bytes(),
        [
            0x08, 0x08, 0x12, 0x01, b't', 0x1a, 0x01, b'0', 0x3a, 0x02, 0x12, 0x00, 0x42, 0x04,
            0x0a, 0x00, 0x10, 0x11
        ]
    );
}

/// A hand-built model using every attribute kind the exporter writes, decoded and run by ORT:
/// `y = Softmax(LeakyRelu(Transpose(x, perm=[1,0]) + c, alpha=0.25), axis=0)`.
#[test]
fn tiny_model_is_decoded_by_onnx_runtime() {
    let Some(py) = support::python("tiny_model_is_decoded_by_onnx_runtime") else {
        return;
    };
    let dir = support::scratch("tiny");
    let node = |op: &str, ins: &[&str], out: &str, attrs: Vec<Attribute>| Node {
        op_type: op.into(),
        name: out.into(),
        inputs: ins.iter().map(|s| s.to_string()).collect(),
        outputs: vec![out.into()],
        attrs,
    };
    let graph = Graph {
        name: "tiny".into(),
        nodes: vec![
            node(
                "Transpose",
                &["x"],
                "t",
                vec![Attribute::ints("perm", &[1, 0])],
            ),
            node("Add", &["t", "c"], "a", vec![]),
            node(
                "LeakyRelu",
                &["a"],
                "l",
                vec![Attribute::float("alpha", 0.25)],
            ),
            node("Softmax", &["l"], "y", vec![Attribute::int("axis", 0)]),
        ],
        initializers: vec![Tensor::f32("c", &[3, 1], &[0.5, -1.0, 2.0])],
        inputs: vec![ValueInfo {
            name: "x".into(),
            elem: ElemType::Float,
            dims: vec![Dim::Param("batch".into()), Dim::Value(3)],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            elem: ElemType::Float,
            dims: vec![Dim::Value(3), Dim::Param("batch".into())],
        }],
    };
    let model = ModelProto {
        ir_version: onnx::IR_VERSION,
        opset: onnx::OPSET,
        producer_name: "test".into(),
        producer_version: "0".into(),
        doc: String::new(),
        metadata: vec![("k".into(), "v".into())],
        graph,
    };
    std::fs::write(dir.join("tiny.onnx"), model.to_bytes()).unwrap();
    let x = [0.1f32, -2.0, 0.3, 1.5, 0.0, -0.7]; // [2, 3]
    write_f32(&dir.join("x.npy"), &[2, 3], &x);
    run_ort(
        &py,
        &dir,
        &[Job {
            model: dir.join("tiny.onnx"),
            inputs: vec![("x".into(), dir.join("x.npy"))],
            outputs: vec![("y".into(), dir.join("y.npy"))],
            ..Job::default()
        }],
    );
    let (shape, y) = read_f32(&dir.join("y.npy"));
    assert_eq!(shape, [3, 2]);
    let c = [0.5, -1.0, 2.0];
    for col in 0..2 {
        let l: Vec<f64> = (0..3)
            .map(|r| {
                let a = f64::from(x[col * 3 + r]) + c[r];
                if a < 0.0 {
                    0.25 * a
                } else {
                    a
                }
            })
            .collect();
        let z: f64 = l.iter().map(|v| v.exp()).sum();
        for r in 0..3 {
            let want = l[r].exp() / z;
            assert!(
                (f64::from(y[r * 2 + col]) - want).abs() < 1e-6,
                "y[{r},{col}]"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------------------------
// Parity of exported graphs

#[test]
fn small_model_every_path_and_flavour_matches() {
    let cfg = support::config((16, 16, 3), 4, 32, 4, 2, &[2, 4], Gelu::Erf, true);
    let bytes = support::random_model(&cfg, 7);
    let images = support::random_images(&cfg, 3, 11);
    parity::check_model("small", &bytes, &images, 3);
}

#[test]
fn non_square_single_channel_tanh_model_matches() {
    let cfg = support::config((12, 8, 1), 4, 24, 3, 3, &[1, 2, 3], Gelu::Tanh, false);
    let bytes = support::random_model(&cfg, 99);
    let images = support::random_images(&cfg, 2, 5);
    parity::check_model("tanh", &bytes, &images, 2);
}

/// The shipped default model (8 blocks, width 96, controller) on its ten sample images, in every
/// flavour: the FP16 graphs' tolerance is checked at the depth and width a user runs, not only on
/// the small random models above.
#[test]
fn default_model_every_path_and_flavour_matches() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist");
    let bytes = std::fs::read(root.join("model.tinv")).unwrap();
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(root.join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    assert_eq!(pngs.len(), 10);
    let images: Vec<f32> = pngs.iter().flat_map(|p| parity::read_png_chw(p)).collect();
    parity::check_model("fmnist", &bytes, &images, pngs.len());
}

/// The timm fixture (tests/fixtures/timm-vit): `$TINV_TIMM_TINV`, else `model.tinv` there, else
/// folded here by the `tinv-fold` binary of this build (`cargo build -p tinv-fold` puts it beside
/// this test's deps folder): every flavour on its four sample images plus a random one, and
/// ONNX Runtime's full-depth logits against the logits timm itself computed.
#[test]
fn timm_fixture_matches() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/timm-vit");
    let Some((tinv_path, folded_here)) = timm_tinv(&dir) else {
        return;
    };
    let bytes = std::fs::read(&tinv_path).unwrap();
    let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    let expected = timm_expected(&dir.join("expected.json"));
    let mut images = Vec::new();
    for (png, _) in &expected {
        images.extend(parity::read_png_chw(&dir.join(png)));
    }
    images.extend(support::random_images(model.config(), 1, 3));
    let n = expected.len() + 1;
    let Some(ort) = parity::check_model("timm", &bytes, &images, n) else {
        return;
    };
    let k = model.config().classes;
    for (i, (png, want)) in expected.iter().enumerate() {
        let got = &ort[i * k..(i + 1) * k];
        let d = got
            .iter()
            .zip(want)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        eprintln!("  timm {png}: ORT (baked) vs timm's own logits {d:.2e}");
        assert!(d <= 1e-4, "{png}: ORT {got:?} vs timm {want:?}");
    }
    if let Some(scratch) = folded_here {
        std::fs::remove_dir_all(scratch).ok();
    }
}

/// A folded copy of the timm fixture and, when this test folded it, the scratch folder to
/// remove afterwards; `None` after printing why the test is skipped.
fn timm_tinv(dir: &Path) -> Option<(PathBuf, Option<PathBuf>)> {
    if let Some(p) = std::env::var_os("TINV_TIMM_TINV") {
        return Some((p.into(), None));
    }
    if dir.join("model.tinv").exists() {
        return Some((dir.join("model.tinv"), None));
    }
    // target/<profile>/deps/onnx_parity-… -> target/<profile>/tinv-fold
    let fold = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.join("tinv-fold")))
        .filter(|p| p.exists());
    let Some(fold) = fold else {
        eprintln!(
            "SKIP timm_fixture_matches: no folded fixture (set TINV_TIMM_TINV, or build tinv-fold: \
             cargo build --release -p tinv-fold)"
        );
        return None;
    };
    let scratch = support::scratch("timm-fold");
    let out = scratch.join("model.tinv");
    let status = std::process::Command::new(&fold)
        .args(["--heads", "3", "-q", "-o"])
        .arg(&out)
        .arg(dir.join("model.safetensors"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{} failed on the timm fixture",
        fold.display()
    );
    Some((out, Some(scratch)))
}

/// `(image file, logits)` of each case in the fixture's expected.json (a fixed, simple layout:
/// `"image": "…"` followed by `"logits": [ … ]`).
fn timm_expected(path: &Path) -> Vec<(String, Vec<f64>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\"image\"") {
        rest = &rest[i + 7..];
        let q1 = rest.find('"').unwrap() + 1;
        let q2 = q1 + rest[q1..].find('"').unwrap();
        let image = rest[q1..q2].to_string();
        let l = rest.find("\"logits\"").unwrap();
        let open = l + rest[l..].find('[').unwrap() + 1;
        let close = open + rest[open..].find(']').unwrap();
        let logits = rest[open..close]
            .split(',')
            .map(|v| v.trim().parse().unwrap())
            .collect();
        out.push((image, logits));
        rest = &rest[close..];
    }
    assert!(!out.is_empty(), "{}: no cases", path.display());
    out
}

#[test]
fn bad_depth_is_an_invalid_argument() {
    let model = small_model(1);
    let opts = ExportOptions::default();
    for r in [
        onnx::path_graph(&model, 3, &opts),
        onnx::segment_graph(&model, 0, &opts),
        onnx::exit_head_graph(&model, 5, &opts),
    ] {
        match r {
            Err(tinv::Error::InvalidArgument(m)) => assert!(m.contains("not a path"), "{m}"),
            other => panic!("expected InvalidArgument, got {:?}", other.map(|g| g.kind)),
        }
    }
    assert!(
        onnx::controller_graph(&model, &opts, false)
            .unwrap()
            .is_none(),
        "model has no controller"
    );
}

#[test]
fn weight_blob_is_aligned_complete_and_exact() {
    let cfg = support::config((16, 16, 3), 4, 32, 4, 2, &[2, 4], Gelu::Erf, true);
    let model =
        Model::from_bytes(&support::random_model(&cfg, 7), &OpenOptions::default()).unwrap();
    let blob = onnx::weight_blob(&model);
    assert_eq!(blob.bytes.len() % 256, 0);
    let mut end = 0;
    for b in &blob.bindings {
        assert_eq!(b.offset % 256, 0, "{}", b.name);
        assert!(b.offset >= end, "{} overlaps its predecessor", b.name);
        end = b.offset + b.nbytes;
        let t = model.index().tensor(&b.name).unwrap();
        assert_eq!(b.shape, t.shape, "{}", b.name);
        assert_eq!(b.nbytes, 2 * t.shape.iter().product::<usize>());
    }
    // Every tensor but the level-2 controller (run on the host) is in the blob, once.
    let mut names: Vec<&str> = blob.bindings.iter().map(|b| b.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), blob.bindings.len());
    let expected = model
        .index()
        .tensors
        .iter()
        .filter(|t| !t.name.starts_with("ctrl.exit.") && t.flags & tinv::format::FLAG_DEVICE == 0)
        .count();
    assert_eq!(names.len(), expected);
    // Values: f16 rounding of the model's f32 weights, bit for bit.
    let qkv = blob.binding("blk.1.qkv.weight").unwrap();
    let w = model.w(model.blocks()[1].qkv_w);
    for (i, v) in w.iter().enumerate() {
        let o = qkv.offset + 2 * i;
        let got = half::f16::from_le_bytes([blob.bytes[o], blob.bytes[o + 1]]);
        assert_eq!(got.to_bits(), half::f16::from_f32(*v).to_bits());
    }
    // bytes_of() is exactly the binding's slice.
    let pos = blob.binding("stem.pos").unwrap();
    assert_eq!(
        blob.bytes_of("stem.pos").unwrap(),
        &blob.bytes[pos.offset..pos.offset + pos.nbytes]
    );
    assert!(blob.bytes_of("ctrl.exit.wx").is_none());
    let table = blob.table_text();
    assert!(table.contains("blk.1.qkv.weight\tf16\t32x96\t"), "{table}");
}

/// TensorRT pins LayerNorm to FP32 by layer name (`BuildOptions::fp32_layer_substring`), so
/// every LayerNorm node, and no other, must carry `LAYER_NORM_SCOPE` in its name. The names
/// are read back by the `onnx` package from the written bytes.
#[test]
fn layer_norm_nodes_and_only_they_carry_the_fp32_scope() {
    let Some(py) = support::python("layer_norm_nodes_and_only_they_carry_the_fp32_scope") else {
        return;
    };
    let cfg = support::config((16, 16, 3), 4, 32, 2, 2, &[1, 2], Gelu::Erf, false);
    let model =
        Model::from_bytes(&support::random_model(&cfg, 3), &OpenOptions::default()).unwrap();
    let dir = support::scratch("ln-names");
    let script = "import onnx, sys\n\
                  for n in onnx.load(sys.argv[1]).graph.node: print(n.op_type, n.name)";
    for (ln, per_norm) in [
        (
            onnx::LnFlavour::Decomposed,
            &[
                "ReduceMean",
                "Sub",
                "Pow",
                "ReduceMean",
                "Add",
                "Sqrt",
                "Div",
            ][..],
        ),
        (onnx::LnFlavour::Native, &["LayerNormalization"][..]),
    ] {
        let opts = ExportOptions {
            ln,
            ..ExportOptions::default()
        };
        // Path of depth 2: two blocks of two LayerNorms, plus the exit's.
        let text = run_on_graph(&py, script, &dir, &model, &opts);
        let nodes: Vec<(&str, &str)> = text.lines().map(|l| l.split_once(' ').unwrap()).collect();
        let in_ln: Vec<&str> = nodes
            .iter()
            .filter(|(_, name)| name.contains(onnx::LAYER_NORM_SCOPE))
            .map(|(op, _)| *op)
            .collect();
        assert_eq!(in_ln, per_norm.repeat(5), "{ln:?}");
        for (op, name) in &nodes {
            if !name.contains(onnx::LAYER_NORM_SCOPE) {
                assert!(
                    !["ReduceMean", "Pow", "Sqrt", "LayerNormalization"].contains(op),
                    "{ln:?}: {op} node {name} is outside a LayerNorm scope"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes the depth-2 path graph of `model` under `opts` into `dir` and returns what the Python
/// `script` prints about it (the file is its first argument).
fn run_on_graph(
    py: &Path,
    script: &str,
    dir: &Path,
    model: &Model,
    opts: &ExportOptions,
) -> String {
    let g = onnx::path_graph(model, 2, opts).unwrap();
    let file = dir.join(format!("{:?}-{:?}.onnx", opts.ln, opts.weights));
    std::fs::write(&file, &g.bytes).unwrap();
    let out = std::process::Command::new(py)
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// In an FP16-input graph no Cast or Transpose sits on a weight input, so that every engine reads
/// the one shared device copy of the weights as it is. Every weight goes straight into MatMul/Add/Expand; the only Casts are the image's on the way in, the
/// logits' on the way out, and two around each LayerNorm, whose nodes compute in f32.
#[test]
fn fp16_graphs_feed_weights_directly_and_run_layer_norm_in_f32() {
    let Some(py) = support::python("fp16_graphs_feed_weights_directly_and_run_layer_norm_in_f32")
    else {
        return;
    };
    let cfg = support::config((16, 16, 3), 4, 32, 2, 2, &[1, 2], Gelu::Erf, false);
    let model =
        Model::from_bytes(&support::random_model(&cfg, 3), &OpenOptions::default()).unwrap();
    let dir = support::scratch("fp16-graph");
    // Per node: op type, name, then the element types of its inputs and outputs.
    let script = "import onnx, sys\n\
                  m = onnx.shape_inference.infer_shapes(onnx.load(sys.argv[1]), strict_mode=True)\n\
                  g = m.graph\n\
                  ty = {v.name: v.type.tensor_type.elem_type for v in list(g.input) + list(g.output) + list(g.value_info)}\n\
                  ty.update({t.name: t.data_type for t in g.initializer})\n\
                  w = {i.name for i in g.input if i.type.tensor_type.elem_type == 10}\n\
                  for n in g.node:\n\
                  \x20   print(n.op_type, n.name, 'weight' if set(n.input) & w else '-',\n\
                  \x20         ','.join(str(ty.get(x, 0)) for x in list(n.input) + list(n.output)))";
    for ln in [onnx::LnFlavour::Decomposed, onnx::LnFlavour::Native] {
        let opts = ExportOptions {
            ln,
            ..ExportOptions::default()
        };
        let text = run_on_graph(&py, script, &dir, &model, &opts);
        let mut casts = 0;
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (op, name, weight, types) = (f[0], f[1], f[2], f[3]);
            if weight == "weight" {
                assert!(
                    ["MatMul", "Add", "Expand"].contains(&op),
                    "{ln:?}: weight input into {op} {name}"
                );
            }
            if name.contains(onnx::LAYER_NORM_SCOPE) {
                // FLOAT (1) everywhere; INT64 (7) only for shape constants.
                assert!(
                    types.split(',').all(|t| t == "1" || t == "7"),
                    "{ln:?}: LayerNorm node {name} has types {types}"
                );
            } else if ["MatMul", "Softmax", "Erf"].contains(&op) {
                assert!(
                    types.split(',').all(|t| t == "10"),
                    "{ln:?}: {op} {name} {types}"
                );
            }
            casts += usize::from(op == "Cast");
        }
        // Five LayerNorms (two per block, one in the exit), the image and the logits.
        assert_eq!(casts, 2 * 5 + 2, "{ln:?}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model stored as f16: the FP16 blob holds the file's own f16 bits (no double rounding), and
/// every graph in every flavour still matches ONNX Runtime, the reference and the runtime.
#[test]
fn f16_model_exports_its_own_bits_and_matches() {
    let cfg = support::config((16, 16, 3), 4, 32, 2, 2, &[1, 2], Gelu::Erf, true);
    let bytes = support::random_model_as(&cfg, 21, tinv::format::DType::F16);
    let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    let blob = onnx::weight_blob(&model);
    for b in &blob.bindings {
        let t = model.index().tensor(&b.name).unwrap();
        assert_eq!(t.dtype, tinv::format::DType::F16, "{}", b.name);
        assert_eq!(
            blob.bytes_of(&b.name).unwrap(),
            &bytes[t.offset..t.offset + t.nbytes],
            "{}: blob bytes differ from the file's f16 bytes",
            b.name
        );
    }
    let images = support::random_images(&cfg, 2, 4);
    parity::check_model("f16", &bytes, &images, 2);
}

/// `write_export` into a place that cannot hold a directory is an `Io` error naming that path
/// (what `tinv-run export-onnx --out` prints), never a panic; a model without a controller gets
/// no controller graph, and a baked export no weight blob.
#[test]
fn write_export_reports_bad_output_dirs_and_writes_only_what_applies() {
    let model = small_model(5);
    let dir = support::scratch("write-export");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    for out in [file.clone(), file.join("sub")] {
        let err = onnx::write_export(&model, &ExportOptions::default(), &out).unwrap_err();
        let msg = err.to_string();
        match err {
            tinv::Error::Io { path, .. } => assert_eq!(path, out),
            other => panic!("{}: expected an Io error, got {other:?}", out.display()),
        }
        if out == file {
            assert!(msg.ends_with("exists and is not a directory"), "{msg}");
        }
    }
    let names = |opts: &ExportOptions, sub: &str| -> Vec<String> {
        let mut v: Vec<String> = onnx::write_export(&model, opts, &dir.join(sub))
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&ExportOptions::default(), "fp16"),
        [
            "path.1.onnx",
            "path.2.onnx",
            "weights.f16.bin",
            "weights.tsv"
        ]
    );
    let segments = ExportOptions {
        layout: onnx::Layout::Segments,
        ..ExportOptions::baked()
    };
    assert_eq!(
        names(&segments, "baked"),
        [
            "exit.1.onnx",
            "exit.2.onnx",
            "segment.0-1.onnx",
            "segment.1-2.onnx"
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Every file name in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// An export into a folder that holds another export's files (another layout, weight mode or
/// model: names this one does not write) is refused, naming them, and changes nothing there:
/// the graphs of two exports loaded together would be half of each. The same export again is
/// fine (it replaces its own files).
#[test]
fn an_export_over_another_is_refused_and_leaves_the_folder_as_it_was() {
    let model = small_model(5);
    let dir = support::scratch("export-over-another");
    let out = dir.join("onnx");
    onnx::write_export(&model, &ExportOptions::default(), &out).unwrap();
    let before: Vec<(String, Vec<u8>)> = listing(&out)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(out.join(&n)).unwrap()))
        .collect();
    let segments = ExportOptions {
        layout: onnx::Layout::Segments,
        ..ExportOptions::baked()
    };
    let msg = onnx::write_export(&model, &segments, &out)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("holds files of another export (path.1.onnx, path.2.onnx, weights.f16.bin, weights.tsv)"),
        "{msg}"
    );
    let after: Vec<(String, Vec<u8>)> = listing(&out)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(out.join(&n)).unwrap()))
        .collect();
    assert_eq!(after, before, "the refused export changed the folder");
    onnx::write_export(&model, &ExportOptions::default(), &out).unwrap();
    assert_eq!(listing(&out).len(), before.len());
    std::fs::remove_dir_all(&dir).ok();
}

/// FP16 graphs of a model with a weight beyond FP16's ±65504 would answer NaN to every input
/// (the weight rounds to infinity in the blob): refused, naming the tensor, and the folders the
/// call created are gone again, but not the empty one it found; the f32 (`--baked`) export of
/// the same model is fine.
#[test]
fn fp16_export_refuses_weights_beyond_fp16_range() {
    let clean = small_model_bytes(5);
    let m = Model::from_bytes(&clean, &OpenOptions::default()).unwrap();
    let t = m
        .index()
        .tensors
        .iter()
        .find(|t| t.name == "blk.0.fc1.bias")
        .unwrap();
    let mut bytes = clean.clone();
    bytes[t.offset..t.offset + 4].copy_from_slice(&70000f32.to_le_bytes());
    let model = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    let dir = support::scratch("export-fp16-range");
    let out = dir.join("new").join("fp16");
    let msg = onnx::write_export(&model, &ExportOptions::default(), &out)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("'blk.0.fc1.bias' holds 70000") && msg.contains("--baked"),
        "{msg}"
    );
    assert!(
        !dir.join("new").exists(),
        "a folder this call created is left"
    );
    assert!(dir.is_dir(), "the empty folder the call found is gone");
    onnx::write_export(&model, &ExportOptions::baked(), &dir.join("baked")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
