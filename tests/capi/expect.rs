//! Writes a model and the expectation file the C/C++ tests compare with: the Rust API's own
//! results on random inputs (layout documented in tests/c/expect.h).

use std::sync::Arc;
use tinv::{Model, OpenOptions, Session, SessionOptions};

/// A model file, its expectation file, and the Rust API's adaptive (class, depth) per input.
pub struct Case {
    pub model: String,
    pub expect: String,
    /// The first input alone, raw little-endian f32 (CHW).
    pub input0: String,
    pub predictions: Vec<(usize, usize)>,
    /// The Rust API's adaptive stats per input.
    pub adaptive: Vec<tinv::Stats>,
}

fn u32le(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u32::try_from(v).unwrap().to_le_bytes());
}

/// Writes `bytes` as scratch/`dir`/model.tinv and expect.bin for `n` inputs from `seed`.
pub fn write_case(dir: &str, bytes: &[u8], n: usize, seed: u64) -> Case {
    let d = super::toolchain::scratch(dir);
    let model_path = d.join("model.tinv");
    std::fs::write(&model_path, bytes).unwrap();
    let model = Arc::new(Model::open(&model_path, &OpenOptions::default()).unwrap());
    let c = model.config().clone();
    let input = tinv::synth::random_inputs(&c, n, seed);
    let opts = SessionOptions::default().max_batch(n);
    let mut s = Session::new(Arc::clone(&model), opts).unwrap();
    let mut out = b"TINVEXP1".to_vec();
    for v in [n, c.input_len(), c.classes, c.depths.len()] {
        u32le(&mut out, v);
    }
    for pc in model.costs() {
        u32le(&mut out, pc.depth);
    }
    for pc in model.costs() {
        out.extend_from_slice(&pc.backbone_flops.to_le_bytes());
    }
    input
        .iter()
        .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    let mut logits = vec![0f32; n * c.classes];
    for &depth in &c.depths {
        let stats = s
            .infer_depth(&input, n, depth, &mut logits)
            .unwrap()
            .to_vec();
        logits
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        stats
            .iter()
            .for_each(|st| out.extend_from_slice(&st.flops.to_le_bytes()));
    }
    let stats = s.infer(&input, n, &mut logits).unwrap().to_vec();
    logits
        .iter()
        .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    for st in &stats {
        for v in [
            st.depth,
            st.path,
            st.start_depth,
            st.escalations as usize,
            st.class,
        ] {
            u32le(&mut out, v);
        }
        let pred = st.predicted_path.map_or(-1, |k| i32::try_from(k).unwrap());
        out.extend_from_slice(&pred.to_le_bytes());
        out.extend_from_slice(&st.flops.to_le_bytes());
        out.extend_from_slice(&st.weight_bytes.to_le_bytes());
        out.extend_from_slice(&st.confidence.to_le_bytes());
    }
    let input0 = d.join("input0.f32");
    let first: Vec<u8> = input[..c.input_len()]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&input0, first).unwrap();
    let exp_path = d.join("expect.bin");
    std::fs::write(&exp_path, out).unwrap();
    Case {
        model: model_path.to_string_lossy().into_owned(),
        expect: exp_path.to_string_lossy().into_owned(),
        input0: input0.to_string_lossy().into_owned(),
        predictions: stats.iter().map(|st| (st.class, st.depth)).collect(),
        adaptive: stats,
    }
}
