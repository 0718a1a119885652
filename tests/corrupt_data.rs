//! A real model's data section corrupted (tests/common/corrupt_model.rs): bit flips are caught by
//! `verify`, and only by `verify`; NaN/Inf weights follow the documented policy: accepted,
//! deterministic, never a crash or a wrong path.

#[path = "common/corrupt_model.rs"]
#[allow(dead_code)] // each corrupt_*.rs uses some of the model's helpers
mod corrupt_model;

use corrupt_model::{bits, model_bytes, model_config, Layout};
use std::sync::Arc;
use tinv::format::{self, DType, FormatError};
use tinv::{synth, Error, Mode, Model, OpenOptions, Session, SessionOptions, Stats};

#[test]
fn data_flips_are_caught_by_verify_and_only_by_verify() {
    for dtype in [DType::F32, DType::F16] {
        let good = model_bytes(dtype);
        let l = Layout::read(&good);
        let mut rng = synth::Rng::new(9);
        for r in &l.records {
            for _ in 0..3 {
                let at = l.data_offset + r.offset as usize + (rng.next_u64() % r.nbytes) as usize;
                let mut b = good.clone();
                b[at] ^= 1 << (rng.next_u64() % 8);
                let idx = format::parse(&b).expect("data flips keep the structure");
                assert!(Model::from_bytes(&b, &OpenOptions::default()).is_ok());
                assert!(
                    matches!(idx.verify(&b), Err(FormatError::ChecksumMismatch { tensor, .. }) if tensor == r.name)
                );
                assert!(matches!(
                    Model::from_bytes(&b, &OpenOptions::default().verify(true)),
                    Err(Error::Format { error: FormatError::ChecksumMismatch { tensor, .. }, .. }) if tensor == r.name
                ));
            }
        }
        // Padding between tensors is outside every checksum: a flip there changes nothing.
        let gap = l.padding().next().expect("page breaks leave padding");
        let mut b = good.clone();
        b[gap] = 0xAB;
        assert!(Model::from_bytes(&b, &OpenOptions::default().verify(true)).is_ok());
    }
}

#[test]
fn nan_and_inf_weights_are_accepted_and_run_deterministically() {
    // Policy (docs/RELIABILITY.md): the file stores weights verbatim and open does not scan
    // values; `--verify` checks checksums, which NaN bits satisfy. Inference on non-finite weights
    // either answers with finite logits or fails with `Error::Numeric` (the logits, or the
    // outputs of a controller net the mode consults, came out non-finite); the same outcome, to
    // the bit, every time.
    let cfg = model_config();
    let good = model_bytes(DType::F32);
    let l = Layout::read(&good);
    let x = synth::random_inputs(&cfg, 3, 21);
    for (tensor, value) in [
        ("blk.0.fc1.weight", f32::NAN),
        ("exit.2.head.bias", f32::INFINITY),
        ("stem.pos", f32::NEG_INFINITY),
        ("ctrl.policy.fc2.bias", f32::NAN),
        ("ctrl.graph.fc2.bias", f32::NAN),
        ("ctrl.exit.out.bias", f32::NAN),
    ] {
        let b = l.with_tensor_values(&good, tensor, value);
        let model = Arc::new(
            Model::from_bytes(&b, &OpenOptions::default().verify(true)).expect("accepted at open"),
        );
        let mut s = Session::new(model, SessionOptions::default().max_batch(3)).expect("session");
        let mut first = vec![0f32; 3 * cfg.classes];
        let mut again = vec![0f32; 3 * cfg.classes];
        for mode in [Mode::Adaptive, Mode::Graph, Mode::Threshold(0.6)] {
            s.set_mode(mode).expect("mode");
            // The controller net each mode consults: level 1 and the exit RNN in adaptive mode,
            // the graph policy in graph mode, none for the threshold rule.
            let consulted = match mode {
                Mode::Adaptive => ["ctrl.policy", "ctrl.exit"]
                    .iter()
                    .any(|n| tensor.starts_with(n)),
                Mode::Graph => tensor.starts_with("ctrl.graph"),
                Mode::Threshold(_) => false,
                other => unreachable!("{other:?} is not in the list above"),
            };
            let r1 = s.infer(&x, 3, &mut first).map(<[Stats]>::to_vec);
            let r2 = s.infer(&x, 3, &mut again).map(<[Stats]>::to_vec);
            let stats = match (r1, r2) {
                (Ok(stats), Ok(_)) => {
                    assert_eq!(bits(&first), bits(&again), "{tensor} {mode:?}");
                    assert!(first.iter().all(|v| v.is_finite()), "{tensor} {mode:?}");
                    // The exit RNN is consulted only at an exit below the deepest: an `Ok` with
                    // a NaN RNN means level 1 started every input on the deepest path.
                    let deepest = cfg.depths[cfg.depths.len() - 1];
                    assert!(
                        !consulted
                            || (tensor.starts_with("ctrl.exit")
                                && stats.iter().all(|st| st.start_depth == deepest)),
                        "{tensor} {mode:?}: a NaN controller routed {stats:?}"
                    );
                    stats
                }
                (Err(Error::Numeric(a)), Err(Error::Numeric(b))) => {
                    assert_eq!(a, b, "{tensor} {mode:?}");
                    assert!(s.last_stats().is_empty(), "a failed call leaves no stats");
                    // A NaN in the first block reaches every exit; the controller's NaNs fail
                    // only the modes that consult that net.
                    assert!(
                        !tensor.starts_with("ctrl.") || consulted,
                        "{tensor} {mode:?}: {a}"
                    );
                    continue;
                }
                other => panic!("{tensor} {mode:?}: {other:?}"),
            };
            assert_ne!(
                tensor, "blk.0.fc1.weight",
                "NaN in block 0 gave finite logits"
            );
            for st in &stats {
                assert!(
                    st.path < cfg.depths.len()
                        && st.depth == cfg.depths[st.path]
                        && st.class < cfg.classes
                );
            }
        }
    }
}
