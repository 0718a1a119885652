//! Manifests shared by the tests of the TensorRT modules (compiled for tests only).

use super::manifest::{
    DType, Engine, Gpu, IoMode, IoTensor, Layout, Manifest, PathEngines, Precision, TrtVersion,
    WeightBinding,
};

fn io(name: &str, mode: IoMode, dtype: DType, shape: &[u64]) -> IoTensor {
    IoTensor {
        name: name.into(),
        mode,
        dtype,
        shape: shape.to_vec(),
    }
}

/// The bytes the test rigs give engine `name`'s plan file.
pub fn plan_bytes(name: &str) -> Vec<u8> {
    format!("plan:{name}.plan").into_bytes()
}

fn plan_hash(name: &str) -> u64 {
    crate::format::fnv1a64(&plan_bytes(name))
}

/// Two per-path engines sharing two FP16 weights (64×64 and 64), hand-laid at 0 and 8192.
pub fn sample() -> Manifest {
    let w = |name: &str, offset, shape: &[u64]| WeightBinding {
        name: name.into(),
        dtype: DType::F16,
        offset,
        bytes: shape.iter().product::<u64>() * 2,
        shape: shape.to_vec(),
    };
    let engine = |name: &str, depth_weights: &[&str], mem| Engine {
        name: name.into(),
        plan: format!("{name}.plan"),
        device_memory: mem,
        plan_hash: plan_hash(name),
        io: std::iter::once(io("image", IoMode::Input, DType::F32, &[1, 1, 28, 28]))
            .chain(depth_weights.iter().map(|n| {
                let shape: &[u64] = if n.ends_with("weight") {
                    &[64, 64]
                } else {
                    &[64]
                };
                io(n, IoMode::Input, DType::F16, shape)
            }))
            .chain(std::iter::once(io(
                "logits",
                IoMode::Output,
                DType::F32,
                &[1, 10],
            )))
            .collect(),
    };
    Manifest {
        model_hash: 0x0123_4567_89ab_cdef,
        export: crate::onnx::EXPORT_VERSION,
        tensorrt: TrtVersion {
            major: 8,
            minor: 5,
            patch: 2,
        },
        gpu: Gpu {
            name: "Xavier".into(),
            compute_capability: (7, 2),
            sms: 8,
        },
        precision: Precision::Fp16,
        layout: Layout::PerPath,
        weights_bytes: 8448,
        weights: vec![
            w("blk.0.fc.weight", 0, &[64, 64]),
            w("blk.0.fc.bias", 8192, &[64]),
        ],
        engines: vec![
            engine("path1", &["blk.0.fc.weight"], 1_000_000),
            engine("path2", &["blk.0.fc.weight", "blk.0.fc.bias"], 3_000_000),
        ],
        paths: vec![
            PathEngines {
                depth: 1,
                engines: vec!["path1".into()],
            },
            PathEngines {
                depth: 2,
                engines: vec!["path2".into()],
            },
        ],
    }
}

/// Segments layout: seg1 → head1 (depth 1), seg1 → seg2 → head2 (depth 2); no weight table.
pub fn segments() -> Manifest {
    let t = |name: &str, mode, shape: &[u64]| IoTensor {
        name: name.into(),
        mode,
        dtype: DType::F16,
        shape: shape.to_vec(),
    };
    let e = |name: &str, io: Vec<IoTensor>, mem| Engine {
        name: name.into(),
        plan: format!("{name}.plan"),
        device_memory: mem,
        plan_hash: plan_hash(name),
        io,
    };
    let mut m = sample();
    m.layout = Layout::Segments;
    m.weights.clear();
    m.weights_bytes = 0;
    m.engines = vec![
        e(
            "seg1",
            vec![
                io("image", IoMode::Input, DType::F32, &[1, 784]),
                t("h1", IoMode::Output, &[1, 50, 64]),
            ],
            500,
        ),
        e(
            "head1",
            vec![
                t("h1", IoMode::Input, &[1, 50, 64]),
                io("logits1", IoMode::Output, DType::F32, &[1, 10]),
            ],
            100,
        ),
        e(
            "seg2",
            vec![
                t("h1", IoMode::Input, &[1, 50, 64]),
                t("h2", IoMode::Output, &[1, 50, 64]),
            ],
            700,
        ),
        e(
            "head2",
            vec![
                t("h2", IoMode::Input, &[1, 50, 64]),
                io("logits2", IoMode::Output, DType::F32, &[1, 10]),
            ],
            100,
        ),
    ];
    m.paths = vec![
        PathEngines {
            depth: 1,
            engines: vec!["seg1".into(), "head1".into()],
        },
        PathEngines {
            depth: 2,
            engines: vec!["seg1".into(), "seg2".into(), "head2".into()],
        },
    ];
    m
}
