//! A path never reads a deeper block's tensors: the tensors each compiled plan reads are exactly
//! those of its own blocks and exit, and they lie on pages before the first page of any deeper
//! block (so the pages of deeper blocks are never touched).

use std::collections::HashSet;
use std::sync::Arc;
use tinv::format::{DType, PAGE};
use tinv::{synth, Model, OpenOptions, Session, SessionOptions};

#[test]
fn plans_read_only_their_prefix() {
    let cfg = synth::config(16, 1, 4, 32, 6, 2, 5, &[2, 4, 6], true);
    let model = Arc::new(
        Model::from_bytes(
            &synth::random_model(&cfg, 1, DType::F32),
            &OpenOptions::default(),
        )
        .unwrap(),
    );
    let s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    for plan in s.plans() {
        let names: HashSet<String> = plan
            .tensors(&model)
            .iter()
            .map(|r| model.w_name(*r).to_string())
            .collect();
        for i in 0..cfg.blocks {
            let reads = names.contains(&format!("blk.{i}.qkv.weight"));
            assert_eq!(reads, i < plan.depth, "path {} and block {i}", plan.depth);
        }
        for &d in &cfg.depths {
            assert_eq!(
                names.contains(&format!("exit.{d}.head.weight")),
                d == plan.depth
            );
        }
        // Pages: the last byte this path reads is on a page before blk.{depth}'s first page.
        let last = plan
            .tensors(&model)
            .iter()
            .map(|r| model.w_file_range(*r).end)
            .max()
            .unwrap();
        if plan.depth < cfg.blocks {
            let deeper = model
                .index()
                .tensor(&format!("blk.{}.qkv.weight", plan.depth))
                .unwrap()
                .offset;
            assert_eq!(deeper % PAGE as usize, 0, "blocks start on a page");
            assert!(
                (last - 1) / PAGE as usize * (PAGE as usize) < deeper,
                "path {} reaches into deeper pages",
                plan.depth
            );
        }
        // The plan reads exactly the model's declared tensors of the path.
        let declared: HashSet<String> = model
            .path_tensors(plan.path)
            .iter()
            .map(|r| model.w_name(*r).to_string())
            .collect();
        assert_eq!(names, declared);
    }
    // Past the last path there is nothing to read (an empty list, not a panic).
    assert!(model.path_tensors(cfg.depths.len()).is_empty());
    // The controller: adaptive reads predictor, level-1 policy and exit RNN; graph reads the
    // predictor and its own policy, never the RNN.
    let w = model.ctrl().unwrap();
    let names = |graph: bool| -> Vec<String> {
        w.tensors(graph)
            .iter()
            .map(|r| model.w_name(*r).to_string())
            .collect()
    };
    let (adaptive, graph) = (names(false), names(true));
    assert_eq!(adaptive.len(), 13);
    assert!(adaptive.iter().any(|n| n == "ctrl.policy.fc1.weight"));
    assert!(adaptive.iter().any(|n| n == "ctrl.exit.wx"));
    assert_eq!(graph.len(), 8);
    assert!(graph.iter().any(|n| n == "ctrl.graph.fc1.weight"));
    assert!(!graph
        .iter()
        .any(|n| n.starts_with("ctrl.exit.") || n.starts_with("ctrl.policy.")));
}

#[test]
fn arena_is_within_liveness_bound_and_shared_by_paths() {
    let cfg = synth::vit_tiny();
    let model = Arc::new(
        Model::from_bytes(
            &synth::random_model(&cfg, 1, DType::F32),
            &OpenOptions::default(),
        )
        .unwrap(),
    );
    let s = Session::new(model, SessionOptions::default()).unwrap();
    // One arena for all paths, never below the bound, and at most 1.5× it for this layout.
    assert!(s.arena_bytes() >= s.arena_lower_bound_bytes());
    assert!((s.arena_bytes() as f64) <= 1.5 * s.arena_lower_bound_bytes() as f64);
    // Hand count for ViT-Tiny at batch 1 (197 tokens, D 192, MLP 768): x + y + the larger of
    // qkv/mlp (197·768) must all be live during fc1 — the bound includes at least these.
    let floats = 197 * 192 * 2 + 197 * 768;
    assert!(s.arena_lower_bound_bytes() >= floats * 4);
}

#[test]
fn device_section_pages_are_released_and_refill_from_the_file() {
    use tinv::format::{TinvWriter, FLAG_DEVICE};
    let cfg = synth::config(16, 1, 4, 32, 2, 2, 5, &[1, 2], false);
    let host = synth::random_model(&cfg, 3, DType::F32);
    let idx = tinv::format::parse(&host).unwrap();
    // f16 copies of the two fc1 weights (32×128 each, 8 KiB): four pages.
    let copies: Vec<(&str, Vec<u8>)> = ["blk.0.fc1.weight", "blk.1.fc1.weight"]
        .into_iter()
        .map(|name| {
            let t = idx.tensor(name).unwrap();
            let copy = host[t.offset..t.offset + t.nbytes]
                .chunks_exact(4)
                .flat_map(|c| {
                    half::f16::from_f32(f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes()
                })
                .collect();
            (name, copy)
        })
        .collect();
    let dev: Vec<u8> = copies.iter().flat_map(|c| c.1.clone()).collect();
    assert_eq!(dev.len(), 4 * PAGE as usize);
    // The same model plus the device section, on a fresh page as `tinv-fold --device` lays it
    // out, or (`fresh` false) right after the last host tensor.
    let write = |fresh: bool| {
        let mut w = TinvWriter::new();
        for (k, v) in idx.meta.entries() {
            w.meta(k, v.clone());
        }
        for t in &idx.tensors {
            let block_or_exit = t.name.ends_with("qkv.weight") || t.name.ends_with("head.weight");
            if block_or_exit || t.name == "stem.patch.weight" {
                w.page_break();
            }
            let raw = host[t.offset..t.offset + t.nbytes].to_vec();
            w.raw_tensor(&t.name, t.dtype, t.flags, &t.shape, raw);
        }
        if fresh {
            w.page_break();
        }
        for (name, copy) in &copies {
            let shape = &idx.tensor(name).unwrap().shape;
            w.raw_tensor(
                &format!("dev.{name}"),
                DType::F16,
                FLAG_DEVICE,
                shape,
                copy.clone(),
            );
        }
        w.to_bytes()
    };
    let bytes = write(true);
    let path = std::env::temp_dir().join(format!("tinv-devsec-{}.tinv", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();

    let mapped = Model::open(&path, &OpenOptions::default().verify(true)).unwrap();
    let both = |m: &Model| {
        let a = m.raw_tensor("dev.blk.0.fc1.weight").unwrap();
        [a, m.raw_tensor("dev.blk.1.fc1.weight").unwrap()].concat()
    };
    assert_eq!(both(&mapped), dev);
    assert_eq!(mapped.release_device_section(), dev.len());
    // Read again after the release: the kernel refills the pages from the file.
    assert_eq!(both(&mapped), dev);
    // A model read from bytes holds a private copy that could not be refilled: left alone.
    let copied = Model::from_bytes(&bytes, &OpenOptions::default()).unwrap();
    assert_eq!(copied.release_device_section(), 0);
    assert_eq!(both(&copied), dev);
    // No device section: nothing to release.
    let plain = Model::from_bytes(&host, &OpenOptions::default()).unwrap();
    assert_eq!(plain.release_device_section(), 0);
    // A section that shares its first page with host tensors is refused at open (FORMAT.md):
    // madvise works on whole pages, so releasing it would drop host pages too.
    std::fs::write(&path, write(false)).unwrap();
    let e = Model::open(&path, &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the device section does not start on a fresh 4096-byte page"),
        "{e}"
    );
    let _ = std::fs::remove_file(&path);
}
