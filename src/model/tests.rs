//! The model's own tests: handles, f16 widening, the two hashes.

use super::*;
use crate::{format::DType, synth};

#[test]
fn a_handle_resolves_only_in_its_own_model() {
    let cfg = synth::tiny(3, false);
    let open = |seed| {
        Model::from_bytes(
            &synth::random_model(&cfg, seed, DType::F32),
            &OpenOptions::default(),
        )
        .unwrap()
    };
    let (a, b) = (open(1), open(2));
    let r = a.stem().patch_w;
    assert_eq!(a.w(r).len(), 16 * 16);
    assert_eq!(a.w_len(r), 16 * 16);
    assert_eq!(a.w_name(r), "stem.patch.weight");
    // The same slot in `b` exists and is the same kind of tensor, but `r` is `a`'s.
    assert_eq!(b.w(b.stem().patch_w).len(), 16 * 16);
    assert!(b.w(r).is_empty());
    assert_eq!((b.w_name(r), b.w_len(r), b.w_file_range(r)), ("", 0, 0..0));
}

/// An f16 model holds no f32 copies until something reads the backbone on the host: a
/// tensor read through `w` is widened alone, `widen_host` widens every one (what a CPU
/// session calls), and the values are the f16 values.
#[test]
fn f16_weights_are_widened_when_the_host_needs_them_not_at_open() {
    let cfg = synth::tiny(3, true);
    let m = Model::from_bytes(
        &synth::random_model(&cfg, 7, DType::F16),
        &OpenOptions::default(),
    )
    .unwrap();
    // The controller runs on the host whatever the backend: its f16 tensors are widened
    // at open, and only they.
    let f16_bytes = |ctrl: bool| -> usize {
        m.index()
            .tensors
            .iter()
            .filter(|t| t.dtype == DType::F16 && t.name.starts_with("ctrl.") == ctrl)
            .map(|t| t.nbytes)
            .sum()
    };
    let ctrl = 2 * f16_bytes(true);
    assert!(ctrl > 0);
    assert_eq!(m.host_copy_bytes(), ctrl);
    let r = m.blocks()[0].fc1_w;
    let raw = &m.bytes[m.w_file_range(r)];
    let want: Vec<f32> = raw
        .chunks_exact(2)
        .map(|h| half::f16::from_bits(u16::from_le_bytes([h[0], h[1]])).to_f32())
        .collect();
    assert_eq!(m.w(r), &want[..]);
    assert_eq!(m.host_copy_bytes(), ctrl + 4 * want.len());
    let first = m.w(r).as_ptr();
    m.widen_host().unwrap();
    assert!(f16_bytes(false) > raw.len());
    assert_eq!(m.host_copy_bytes(), ctrl + 2 * f16_bytes(false));
    // Widened once: the copy read before is the one kept.
    assert_eq!(m.w(r).as_ptr(), first);
}

/// The same tensors under another normalization, GELU or ε: the content hash cannot tell
/// them apart, the model hash (what engines are matched on) must.
#[test]
fn the_model_hash_covers_the_configuration_the_content_hash_does_not() {
    let base = synth::tiny(3, true);
    let open = |cfg: &Config| {
        Model::from_bytes(
            &synth::random_model(cfg, 5, DType::F32),
            &OpenOptions::default(),
        )
        .unwrap()
    };
    let a = open(&base);
    assert_eq!(a.model_hash(), open(&base).model_hash());
    let mut variants = Vec::new();
    let mut c = base.clone();
    c.std = vec![0.5];
    variants.push(c);
    let mut c = base.clone();
    c.gelu = Gelu::Tanh;
    variants.push(c);
    let mut c = base.clone();
    c.ln_eps = 1e-5;
    variants.push(c);
    for c in &variants {
        let b = open(c);
        assert_eq!(b.content_hash(), a.content_hash(), "{c:?}");
        assert_ne!(b.model_hash(), a.model_hash(), "{c:?}");
    }
}
