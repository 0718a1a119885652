//! What a model file may hold beyond the tensors its configuration binds (nothing but valid
//! device-section copies), the metadata checksum, and the ONNX export's refusal of non-finite
//! weights. The files are rebuilt from a synthetic model with the library's writer, so each edit
//! is the only thing wrong with them.

use tinv::format::{self, DType, FormatError, MetaValue, TinvWriter, FLAG_DEVICE};
use tinv::{synth, Error, Model, OpenOptions};

/// 8×8 grey, patch 4, D 16, 3 blocks, 2 heads, 5 classes, exits after blocks 1 and 3 (not 2),
/// with a controller.
fn cfg() -> tinv::Config {
    synth::config(8, 1, 4, 16, 3, 2, 5, &[1, 3], true)
}

/// One tensor to append: name, dtype, flags, shape, bytes.
type Extra = (String, DType, u32, Vec<usize>, Vec<u8>);

/// The synthetic model (`dtype` matrices) rewritten with the same tensors and pages, less the
/// metadata keys `drop`, with `extra` tensors after all the others (on a fresh page).
fn rewrite(dtype: DType, drop: &[&str], extra: &[Extra]) -> Vec<u8> {
    placed(dtype, drop, extra, Place::AfterOnPage)
}

/// Where [`placed`] puts the extra tensors.
#[derive(Clone, Copy)]
enum Place {
    /// After every host tensor, the first on a fresh page (FORMAT.md's device section).
    AfterOnPage,
    /// After every host tensor, packed after the last one.
    AfterPacked,
    /// Before every host tensor.
    First,
}

/// [`rewrite`] with the extra tensors at `place`.
fn placed(dtype: DType, drop: &[&str], extra: &[Extra], place: Place) -> Vec<u8> {
    let good = synth::random_model(&cfg(), 5, dtype);
    let index = format::parse(&good).unwrap();
    let mut w = TinvWriter::new();
    for (k, v) in index.meta.entries() {
        if !drop.contains(&k.as_str()) {
            w.meta(k, v.clone());
        }
    }
    let add_extra = |w: &mut TinvWriter| {
        for (name, dt, flags, shape, bytes) in extra {
            w.raw_tensor(name, *dt, *flags, shape, bytes.clone());
        }
    };
    if let Place::First = place {
        add_extra(&mut w);
    }
    for t in &index.tensors {
        if (t.offset - index.data_offset).is_multiple_of(format::PAGE as usize) {
            w.page_break();
        }
        let data = good[t.offset..t.offset + t.nbytes].to_vec();
        w.raw_tensor(&t.name, t.dtype, t.flags, &t.shape, data);
    }
    match place {
        Place::AfterOnPage => {
            w.page_break();
            add_extra(&mut w);
        }
        Place::AfterPacked => add_extra(&mut w),
        Place::First => {}
    }
    w.to_bytes()
}

fn open(bytes: &[u8], verify: bool) -> tinv::Result<Model> {
    Model::from_bytes(bytes, &OpenOptions::default().verify(verify))
}

fn model_err(bytes: &[u8], verify: bool) -> String {
    match open(bytes, verify) {
        Err(e @ Error::Model { .. }) => e.to_string(),
        Err(e) => panic!("expected a model error, got {e}"),
        Ok(_) => panic!("must be refused"),
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
        .collect()
}

/// The host values of tensor `name` of the synthetic model, as f32.
fn host(dtype: DType, name: &str) -> (Vec<usize>, Vec<f32>) {
    let good = synth::random_model(&cfg(), 5, dtype);
    let m = open(&good, false).unwrap();
    let t = m.index().tensor(name).unwrap();
    let raw = &good[t.offset..t.offset + t.nbytes];
    let v = match t.dtype {
        DType::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        DType::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => panic!("{other:?}"),
    };
    (t.shape.clone(), v)
}

/// The device copy of `name` as `tinv-fold --device` writes it.
fn dev_copy(dtype: DType, name: &str) -> Extra {
    let (shape, v) = host(dtype, name);
    (
        format!("dev.{name}"),
        DType::F16,
        FLAG_DEVICE,
        shape,
        f16_bytes(&v),
    )
}

#[test]
fn tensors_the_configuration_does_not_bind_are_refused_by_name() {
    // The rewrite itself changes nothing.
    assert!(open(&rewrite(DType::F32, &[], &[]), true).is_ok());
    let d = cfg().dim;
    // A plain (unflagged) 1-D f32 tensor.
    let plain = |name: &str, v: &[f32]| -> Extra {
        (name.into(), DType::F32, 0, vec![v.len()], f32_bytes(v))
    };
    // A timm LayerScale: ignoring it would compute another model.
    let ls = plain("blk.0.ls1.gamma", &vec![0.5; d]);
    let e = model_err(&rewrite(DType::F32, &[], &[ls]), false);
    assert!(
        e.contains("tensor 'blk.0.ls1.gamma' is not part of this model's configuration"),
        "{e}"
    );
    // An exit head for depth 2, which is not a path ([1, 3]).
    let head = plain("exit.2.head.bias", &[0.0; 5]);
    let e = model_err(&rewrite(DType::F32, &[], &[head]), false);
    assert!(e.contains("tensor 'exit.2.head.bias' is not part"), "{e}");
    // A device copy without the device flag.
    let mut unflagged = dev_copy(DType::F32, "blk.0.fc1.weight");
    unflagged.2 = 0;
    let e = model_err(&rewrite(DType::F32, &[], &[unflagged]), false);
    assert!(
        e.contains("tensor 'dev.blk.0.fc1.weight' is not part"),
        "{e}"
    );
    // A flagged tensor under another name.
    let mut renamed = dev_copy(DType::F32, "blk.0.fc1.weight");
    renamed.0 = "copy.blk.0.fc1.weight".into();
    let e = model_err(&rewrite(DType::F32, &[], &[renamed]), false);
    assert!(
        e.contains("tensor 'copy.blk.0.fc1.weight' is not part"),
        "{e}"
    );
    // An unknown `ctrl.` tensor in a model that has its controller key: unknown, not a
    // controller without its key.
    let extra = plain("ctrl.exit.extra", &[0.0; 2]);
    let e = model_err(&rewrite(DType::F32, &[], &[extra]), false);
    assert!(
        e.contains("tensor 'ctrl.exit.extra' is not part of this model's configuration"),
        "{e}"
    );
}

#[test]
fn controller_tensors_without_the_controller_key_are_refused() {
    // Dropping the keys used to open the model without its controller: every input at full depth.
    let bytes = rewrite(DType::F32, &["ctrl.features", "ctrl.default_budget"], &[]);
    let e = model_err(&bytes, false);
    assert!(
        e.contains("belongs to a controller, but the metadata has no 'ctrl.features'"),
        "{e}"
    );
}

#[test]
fn device_copies_are_checked_against_their_host_tensors() {
    for dtype in [DType::F32, DType::F16] {
        let names = [
            "stem.patch.weight",
            "blk.0.qkv.weight",
            "exit.3.head.weight",
        ];
        let good: Vec<Extra> = names.iter().map(|n| dev_copy(dtype, n)).collect();
        let m = open(&rewrite(dtype, &[], &good), true).unwrap();
        assert_eq!(m.raw_tensor("dev.blk.0.qkv.weight"), Some(&good[1].4[..]));
        // Relabelled f32 with half the columns: the same byte count, another tensor.
        let mut relabelled = good.clone();
        relabelled[1].1 = DType::F32;
        relabelled[1].3 = vec![16, 24];
        let e = model_err(&rewrite(dtype, &[], &relabelled), false);
        assert!(
            e.contains("'dev.blk.0.qkv.weight' is f32 [16, 24], not an f16 copy of the host's shape [16, 48]"),
            "{e}"
        );
        // f16 with the host's elements in another shape; f32 in the host's shape.
        let mut transposed = good.clone();
        transposed[1].3 = vec![48, 16];
        let e = model_err(&rewrite(dtype, &[], &transposed), false);
        assert!(e.contains("is f16 [48, 16], not an f16 copy"), "{e}");
        let (shape, v) = host(dtype, "blk.0.qkv.weight");
        let wide = vec![(
            "dev.blk.0.qkv.weight".into(),
            DType::F32,
            FLAG_DEVICE,
            shape,
            f32_bytes(&v),
        )];
        let e = model_err(&rewrite(dtype, &[], &wide), false);
        assert!(e.contains("is f32 [16, 48], not an f16 copy"), "{e}");
        // The right dtype and shape, other values: only verify reads them.
        let mut shuffled = good.clone();
        shuffled[1].4.reverse();
        let bytes = rewrite(dtype, &[], &shuffled);
        assert!(open(&bytes, false).is_ok());
        let e = model_err(&bytes, true);
        assert!(
            e.contains("'dev.blk.0.qkv.weight' is not the f16 rounding of 'blk.0.qkv.weight'"),
            "{e}"
        );
        // A copy of a tensor the model does not have.
        let mut orphan = good.clone();
        orphan[2].0 = "dev.exit.2.head.weight".into();
        let e = model_err(&rewrite(dtype, &[], &orphan), false);
        assert!(
            e.contains("device tensor 'dev.exit.2.head.weight' has no host tensor"),
            "{e}"
        );
        // A copy of a controller tensor: the controller runs on the host, nothing reads it.
        let ctrl = dev_copy(dtype, "ctrl.exit.wh");
        let e = model_err(&rewrite(dtype, &[], &[ctrl]), false);
        assert!(e.contains("copies a controller tensor"), "{e}");
    }
}

/// The device section comes after every host tensor and starts on a page (FORMAT.md): releasing
/// its pages after the upload drops everything from its first page on.
#[test]
fn the_device_section_is_placed_after_the_host_tensors_on_a_fresh_page() {
    let copies = [dev_copy(DType::F32, "blk.0.qkv.weight")];
    assert!(open(&placed(DType::F32, &[], &copies, Place::AfterOnPage), true).is_ok());
    let e = model_err(&placed(DType::F32, &[], &copies, Place::AfterPacked), false);
    assert!(
        e.contains("the device section does not start on a fresh 4096-byte page (its first tensor 'dev.blk.0.qkv.weight')"),
        "{e}"
    );
    let e = model_err(&placed(DType::F32, &[], &copies, Place::First), false);
    let first_host = &format::parse(&synth::random_model(&cfg(), 5, DType::F32))
        .unwrap()
        .tensors[0]
        .name;
    assert!(
        e.contains(&format!(
            "host tensor '{first_host}' lies after the device section's first tensor 'dev.blk.0.qkv.weight'"
        )),
        "{e}"
    );
}

#[test]
fn a_changed_metadata_value_is_refused_at_parse() {
    let good = synth::random_model(&cfg(), 5, DType::F32);
    let index = format::parse(&good).unwrap();
    let Some(MetaValue::U64(stored)) = index.meta.get(format::META_HASH_KEY) else {
        panic!("the writer stores tinv.meta_hash");
    };
    assert_eq!(*stored, format::meta_hash(&index.meta));
    // The writer's two hashes come last, the checksum after the content hash, also when a
    // caller copied another file's entries (old hashes included) into it.
    let copied = format::parse(&rewrite(DType::F32, &[], &[])).unwrap();
    for m in [&index.meta, &copied.meta] {
        let keys: Vec<&str> = m.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys[keys.len() - 2..],
            ["tinv.content_hash", format::META_HASH_KEY]
        );
    }
    // vit.ln_eps's value, one bit lower: every check of the configuration would pass.
    let key = b"vit.ln_eps";
    let at = good.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
    let mut b = good.clone();
    b[at] ^= 1;
    match format::parse(&b) {
        Err(FormatError::MetaChecksumMismatch {
            expected: Some(e),
            found,
        }) => assert!(e == *stored && found != e),
        other => panic!("{other:?}"),
    }
    // The key renamed (same length): a file without the checksum, as older writers made them,
    // opens; the key's type changed to f64: refused.
    let key = format::META_HASH_KEY.as_bytes();
    let at = good.windows(key.len()).position(|w| w == key).unwrap();
    let mut b = good.clone();
    b[at + key.len() - 1] = b'x';
    assert!(open(&b, true).is_ok());
    let mut b = good.clone();
    b[at + key.len()..at + key.len() + 4].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        format::parse(&b),
        Err(FormatError::MetaChecksumMismatch { expected: None, .. })
    ));
}

#[test]
fn export_refuses_weights_that_are_not_finite() {
    let good = synth::random_model(&cfg(), 5, DType::F32);
    let index = format::parse(&good).unwrap();
    let t = index.tensor("blk.1.qkv.bias").unwrap();
    let mut b = good.clone();
    b[t.offset + 8..t.offset + 12].copy_from_slice(&f32::NAN.to_le_bytes());
    let m = open(&b, false).unwrap();
    let e = tinv::onnx::export_graphs(&m, &Default::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("tensor 'blk.1.qkv.bias' holds NaN at element 2"),
        "{e}"
    );
    let m = open(&good, false).unwrap();
    assert!(tinv::onnx::export_graphs(&m, &Default::default()).is_ok());
    // The exit RNN is in no exported graph: its NaN does not stop the export.
    let t = index.tensor("ctrl.exit.wh").unwrap();
    let mut b = good.clone();
    b[t.offset..t.offset + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let m = open(&b, false).unwrap();
    assert!(tinv::onnx::export_graphs(&m, &Default::default()).is_ok());
}
