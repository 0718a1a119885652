//! Engine-manifest text → `tinv::trt::manifest::Manifest::parse` (which validates; feature
//! `tensorrt`, no GPU needed), and back: an accepted manifest must print to text that parses to
//! the same manifest. The input is `TEXT [\0 NAME]`: NAME, when present, replaces the GPU name
//! and the first tensor name of the parsed manifest, so the writer's side is fuzzed too — any
//! name `to_text` accepts must read back unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tinv::trt::manifest::Manifest;

fn round_trips(m: &Manifest) {
    if let Ok(text) = m.to_text() {
        assert_eq!(&Manifest::parse(&text).expect("printed text parses"), m);
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, name) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(m) = Manifest::parse(text) else {
        return;
    };
    // Everything the parser accepts, the writer prints.
    let again = m.to_text().expect("a parsed manifest prints");
    assert_eq!(Manifest::parse(&again).expect("printed text parses"), m);
    let Some(name) = name.and_then(|n| std::str::from_utf8(n).ok()) else {
        return;
    };
    let mut gpu = m.clone();
    gpu.gpu.name = name.to_string();
    round_trips(&gpu);
    let mut tensor = m;
    if let Some(t) = tensor.engines.first_mut().and_then(|e| e.io.first_mut()) {
        t.name = name.to_string();
        round_trips(&tensor);
    }
});
