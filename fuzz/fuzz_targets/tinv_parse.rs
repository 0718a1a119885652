//! `.tinv` bytes (and the same with the metadata checksum recomputed) → `format::parse` →
//! `Index::verify` → `Model::from_bytes` → (for small models) a session on one or two threads
//! and a few inferences in every mode. Nothing on this path may panic, abort or hang; a file the
//! parser accepts must be consistent with its own index, and inference must be deterministic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use tinv::format::{self, FormatError};
use tinv::{Error, Mode, Model, OpenOptions, Session, SessionOptions};

/// Models larger than this are parsed and opened but not run (inference cost, not safety).
fn small_enough(m: &Model) -> bool {
    let c = m.config();
    let ctrl = m.ctrl().map_or(0, |w| w.hp.max(w.hq).max(w.hr));
    c.tokens() <= 65
        && c.dim <= 64
        && c.mlp_hidden <= 256
        && c.blocks <= 8
        && c.classes <= 64
        && c.input_len() <= 4096
        && ctrl <= 64
}

/// A call that succeeded, or failed only because the file's weights make the logits non-finite
/// (`Error::Numeric`); any other refusal of a valid call is a bug.
fn ran<T>(r: tinv::Result<T>) -> Option<T> {
    match r {
        Ok(t) => Some(t),
        Err(tinv::Error::Numeric(_)) => None,
        Err(e) => panic!("a valid call was refused: {e}"),
    }
}

/// Runs every mode on two random inputs, on one thread or two (the pool, the parallel GEMM
/// chunks and attention's per-thread buffers are the code with `unsafe` in it).
fn run(model: Arc<Model>, budget: f32, threads: usize) {
    let c = model.config().clone();
    let opts = SessionOptions::default().max_batch(2).threads(threads);
    let mut s = match Session::new(model, opts) {
        Ok(s) => s,
        // The model's default budget was validated at open; nothing else can fail here.
        Err(e) => panic!("session refused a model that opened: {e}"),
    };
    let x = tinv::synth::random_inputs(&c, 2, 7);
    let p = c.depths.len();
    let mut first = vec![0f32; 2 * c.classes];
    let mut again = vec![0f32; 2 * c.classes];
    s.set_budget(budget).expect("budget in [0, 1]");
    let once = ran(s.infer(&x, 2, &mut first)).is_some();
    let twice = ran(s.infer(&x, 2, &mut again)).is_some();
    // The same outcome on a repeat, and the same bits when it answered.
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(once, twice, "inference is not deterministic");
    if once {
        assert_eq!(bits(&first), bits(&again), "inference is not deterministic");
    }
    for st in ran(s.infer(&x[..c.input_len()], 1, &mut first)).unwrap_or_default() {
        assert!(st.path < p && st.depth == c.depths[st.path] && st.class < c.classes);
    }
    s.set_mode(Mode::Graph).expect("valid mode");
    ran(s.infer(&x, 2, &mut first));
    s.set_mode(Mode::Threshold(0.5)).expect("valid mode");
    ran(s.infer(&x, 2, &mut first));
    let mut all = vec![0f32; 2 * p * c.classes];
    ran(s.infer_all_exits(&x, 2, &mut all));
    for &d in &c.depths {
        ran(s.infer_depth(&x, 2, d, &mut first));
    }
}

/// `data` with its content hash and metadata checksum recomputed, when that is all that stops it
/// parsing: a mutated table or metadata value then reaches the later checks, as a file from a
/// writer that hashed its own damage would. (A key may appear elsewhere too; a wrong patch just
/// fails.)
fn resealed(data: &[u8]) -> Option<Vec<u8>> {
    let mut b = data.to_vec();
    // The content hash first: it is a metadata value, so the metadata checksum follows it.
    for _ in 0..2 {
        let (key, found) = match format::parse(&b) {
            Err(FormatError::ContentHashMismatch {
                expected: Some(_),
                found,
            }) => (format::CONTENT_HASH_KEY, found),
            Err(FormatError::MetaChecksumMismatch {
                expected: Some(_),
                found,
            }) => (format::META_HASH_KEY, found),
            _ => break,
        };
        // The entry: key length (u32), key, type (u32), value (u64).
        let key = key.as_bytes();
        let at = b.windows(key.len()).position(|w| w == key)? + key.len() + 4;
        b.get_mut(at..at + 8)?.copy_from_slice(&found.to_le_bytes());
    }
    (b != data).then_some(b)
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(b) = resealed(data) {
        check(&b);
    }
});

fn check(data: &[u8]) {
    let Ok(index) = format::parse(data) else {
        return;
    };
    // What the parser accepted is inside the file and sorted without overlap.
    let mut end = index.data_offset;
    for t in &index.tensors {
        assert!(
            t.offset >= end && t.offset + t.nbytes <= index.file_len,
            "{}",
            t.name
        );
        assert_eq!(index.tensor(&t.name).map(|u| u.offset), Some(t.offset));
        end = t.offset + t.nbytes;
    }
    let verified = match index.verify(data) {
        Ok(()) => true,
        Err(FormatError::ChecksumMismatch { .. }) => false,
        Err(e) => panic!("verify of a parsed index failed with {e:?}"),
    };
    let last = data.last().copied().unwrap_or(0);
    let budget = f32::from(last) / 255.0;
    match Model::from_bytes(data, &OpenOptions::default().verify(false)) {
        Ok(m) => {
            if !verified {
                let v = Model::from_bytes(data, &OpenOptions::default().verify(true));
                assert!(matches!(
                    v,
                    Err(Error::Format {
                        error: FormatError::ChecksumMismatch { .. },
                        ..
                    })
                ));
            }
            let m = Arc::new(m);
            for k in 0..m.config().depths.len() {
                for r in m.path_tensors(k) {
                    assert_eq!(m.w(r).len(), m.w_len(r));
                }
            }
            if small_enough(&m) {
                run(m, budget, 1 + usize::from(last & 1));
            }
        }
        Err(Error::Model { .. }) => {}
        Err(e) => panic!("a parsed file failed to open with {e:?}"),
    }
}
