//! Round trip and error tests of the manifest text format.
use super::super::fixtures::{sample, segments};
use super::*;

#[test]
fn text_round_trips_exactly() {
    let m = sample();
    let text = m.to_text().unwrap();
    assert_eq!(Manifest::parse(&text).unwrap(), m);
    // Hand-written lines pin the format (an independent expectation, not just a round trip).
    assert!(text.starts_with(
        "tinv-trt-manifest 3\nmodel_hash 0x0123456789abcdef\nexport 2\ntensorrt 8.5.2\ngpu 7.2 8 Xavier\n"
    ));
    // The plan hash: FNV-1a 64 of the fixture's plan bytes "plan:path1.plan", computed by
    // Python: h = 0xcbf29ce484222325; for b in data: h = ((h ^ b) * 0x100000001b3) % 2**64.
    assert!(
        text.contains("\nengine path1 path1.plan 1000000 0x747de7764b83d24f\n"),
        "{text}"
    );
    assert!(text.contains("\nweight blk.0.fc.bias f16 8192 128 64\n"));
    assert!(text.contains("\nio path2 output f32 1,10 logits\n"));
    assert!(text.contains("\npath 2 path2\n"));
}

#[test]
fn gpu_names_with_spaces_comments_and_blank_lines_parse() {
    let mut m = sample();
    m.gpu.name = "NVIDIA GeForce RTX 4090".into();
    let text = format!("# built by tinv-run build\n\n{}", m.to_text().unwrap());
    assert_eq!(
        Manifest::parse(&text).unwrap().gpu.name,
        "NVIDIA GeForce RTX 4090"
    );
}

#[test]
fn malformed_text_is_rejected_with_the_line() {
    let good = sample().to_text().unwrap();
    let err = |text: &str| Manifest::parse(text).unwrap_err().to_string();
    assert!(err("hello\n").contains("not an engine manifest"));
    assert!(matches!(
        Manifest::parse(&good.replace("tinv-trt-manifest 3", "tinv-trt-manifest 2")),
        Err(TrtError::Mismatch {
            field: "schema",
            ..
        })
    ));
    assert!(err(&good.replace("precision fp16", "precision int4"))
        .contains("line 6: unknown precision"));
    assert!(err(&good.replace("export 2\n", "")).contains("missing `export`"));
    for old_style in ["gpu 7.2 Xavier", "gpu 7.2 8"] {
        let e = err(&good.replace("gpu 7.2 8 Xavier", old_style));
        assert!(e.contains("gpu needs `M.m SMS NAME`"), "{e}");
    }
    assert!(err(&good.replace("gpu 7.2 8 Xavier", "gpu 7.2 x8 Xavier")).contains("SM count"));
    assert!(err(&good.replace("tensorrt 8.5.2", "tensorrt 8.5")).contains("not M.m.p"));
    assert!(err(&good.replace("layout per-path\n", "")).contains("missing `layout`"));
    assert!(err(&format!("{good}precision fp32\n")).contains("duplicate `precision`"));
    assert!(err(&format!("{good}frobnicate 1\n")).contains("unknown record `frobnicate`"));
    assert!(err(&good.replace("path 2 path2", "path 2 path2 extra")).contains("trailing fields"));
    assert!(err(&good.replace("f16 8192 128 64", "f16 8192 128 6x4")).contains("not a number"));
    // An `io` line must follow its engine.
    let moved =
        good.replace("io path1 output f32 1,10 logits\n", "") + "io path1 output f32 1,10 logits\n";
    assert!(err(&moved).contains("does not follow its `engine` line"));
}

#[test]
fn plan_files_outside_the_manifest_folder_are_refused() {
    let m = sample();
    let good = m.to_text().unwrap();
    let plan = &m.engines[0].plan;
    for bad in ["/etc/passwd", "../x.plan", "..", "sub/x.plan", "a\\b.plan"] {
        let text = good.replace(&format!(" {plan} "), &format!(" {bad} "));
        assert_ne!(text, good);
        let e = Manifest::parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("must be a file name in the manifest's folder"),
            "{bad}: {e}"
        );
        let mut w = m.clone();
        w.engines[0].plan = bad.into();
        assert!(w.to_text().is_err(), "{bad} written");
    }
}

#[test]
fn names_the_format_cannot_hold_are_refused_on_write() {
    let mut m = sample();
    m.engines[0].io[0].name = "an image".into();
    assert!(m
        .to_text()
        .unwrap_err()
        .to_string()
        .contains("without whitespace"));
}

/// Records `to_text` wrote and `parse` refused: an engine name with a comma (the separator of a
/// path's engine list) and a path without engines. Both are refused on the way out now.
#[test]
fn what_parse_cannot_read_back_is_not_written() {
    let mut m = sample();
    let old = m.engines[1].name.clone();
    m.engines[1].name = "path,2".into();
    for e in m.paths.iter_mut().flat_map(|p| p.engines.iter_mut()) {
        if *e == old {
            *e = "path,2".into();
        }
    }
    let e = m.to_text().unwrap_err().to_string();
    assert!(e.contains("\"path,2\" holds a comma"), "{e}");
    // A tensor name may hold one (the parser takes it as one word), and must round-trip.
    let mut m = sample();
    m.engines[0].io[0].name = "in,0".into();
    let text = m.to_text().unwrap();
    assert_eq!(Manifest::parse(&text).unwrap(), m);
    let mut m = sample();
    m.paths[1].engines.clear();
    let e = m.to_text().unwrap_err().to_string();
    assert!(e.contains("runs no engine"), "{e}");
}

/// A name is one word (manifest.rs, the format's header): neither side takes one with
/// whitespace of any kind (a no-break space), a control character that is not whitespace, or a
/// leading `#`.
#[test]
fn names_with_other_whitespace_control_characters_or_a_leading_hash_are_refused() {
    let good = sample().to_text().unwrap();
    for bad in ["blk\u{a0}w", "blk\u{1}w", "#blk.w"] {
        let e = Manifest::parse(&good.replace("blk.0.fc.weight", bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 9: weight name"), "{bad:?}: {e}");
        let mut m = sample();
        m.weights[0].name = bad.into();
        let e = m.to_text().unwrap_err().to_string();
        assert!(e.contains("weight name"), "{bad:?}: {e}");
    }
}

/// The `segments` layout has no weight table: `layout segments`, `weights_bytes 0`, no `weight`
/// line, and it reads back equal.
#[test]
fn a_segments_manifest_round_trips() {
    let m = segments();
    let text = m.to_text().unwrap();
    assert!(
        text.contains("\nlayout segments\nweights_bytes 0\nengine seg1 ")
            && !text.contains("\nweight "),
        "{text}"
    );
    assert_eq!(Manifest::parse(&text).unwrap(), m);
}

/// A GPU name is the rest of its line, spaces allowed, but not empty and without control
/// characters: neither side takes one.
#[test]
fn an_empty_gpu_name_or_one_with_a_control_character_is_refused() {
    let good = sample().to_text().unwrap();
    for bad in ["", "Xa\u{1}vier"] {
        let e = Manifest::parse(&good.replace("gpu 7.2 8 Xavier", &format!("gpu 7.2 8 {bad}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5: gpu name"), "{bad:?}: {e}");
        let mut m = sample();
        m.gpu.name = bad.into();
        let e = m.to_text().unwrap_err().to_string();
        assert!(e.contains("GPU name"), "{bad:?}: {e}");
    }
}
