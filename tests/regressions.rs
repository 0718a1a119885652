//! Every input that ever crashed a fuzz target or broke a reliability check, as a test. Each
//! names the fuzz target (or check) that found it and the code at fault. A test stays
//! `#[ignore]`d, with the reason, only while its fix is not in; `cargo test --test regressions --
//! --ignored` shows which are still open. docs/RELIABILITY.md lists them.

use tinv::format::{DType, MetaValue, Metadata, TinvWriter};
use tinv::{synth, Error, Model, OpenOptions};

/// A file holding `cfg`'s metadata with `key` replaced by `value`, and no tensors.
fn meta_only(cfg: &tinv::Config, key: &str, value: MetaValue) -> Vec<u8> {
    let mut meta = Metadata::new();
    cfg.to_meta(&mut meta);
    meta.set(key, value);
    let mut w = TinvWriter::new();
    for (k, v) in meta.entries() {
        w.meta(k, v.clone());
    }
    w.to_bytes()
}

/// Found by `tinv_parse` (fuzz/artifacts/tinv_parse/crash-0917…, a mutated f16 model with
/// `vit.image_size` [8198521646651277316, 1954687338268] and patch 2): `Config::validate` builds
/// its table of limits with `self.tokens()`, whose product `(h / p) * (w / p)`
/// (src/model/config.rs:72) overflows before the image-size limits are checked. With overflow
/// checks on (debug builds, tests, the fuzzer) that is a panic on a bad file. Fixed in 0d8e737
/// (the size limits are checked before the product).
#[test]
fn huge_image_size_is_refused_without_overflow() {
    let cfg = synth::config(8, 1, 2, 8, 1, 1, 2, &[1], false);
    for (h, w) in [
        (8198521646651277316, 1954687338268),
        (1 << 40, 1 << 40),
        (u64::MAX, 2),
    ] {
        let bytes = meta_only(&cfg, "vit.image_size", MetaValue::U64s(vec![h, w]));
        match Model::from_bytes(&bytes, &OpenOptions::default()) {
            Err(Error::Model { detail, .. }) => {
                assert!(detail.contains("exceeds the supported maximum"), "{detail}")
            }
            Err(e) => panic!("expected a model error, got {e}"),
            Ok(_) => panic!("a {h}x{w} image must be refused"),
        }
    }
}

/// Runs test `name` again in a child process with `TINV_REGRESSION_CHILD` set (where the test
/// body does its work), so that an abort fails the test instead of killing the test binary.
fn passes_in_child(name: &str) {
    let Some(out) = run_child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                name,
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TINV_REGRESSION_CHILD", "1"),
    ) else {
        return;
    };
    assert!(
        out.status.success(),
        "child failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd`, retrying while it dies with status 127 and no output at all. In this project's
/// loaded CI runs, processes spawned from this test binary were seen to exit that way before
/// reaching `main` (never reproduced when run alone); a real regression prints its error and
/// exits 1 or 101, so it still fails. After three such starts the check is reported as skipped.
fn run_child(cmd: &mut std::process::Command) -> Option<std::process::Output> {
    for _ in 0..3 {
        let out = cmd.output().unwrap();
        if !(out.status.code() == Some(127) && out.stderr.is_empty() && out.stdout.is_empty()) {
            return Some(out);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    eprintln!("SKIP: the child process could not start (exit 127, no output) three times");
    None
}

fn in_child() -> bool {
    std::env::var_os("TINV_REGRESSION_CHILD").is_some()
}

/// A 300 KB model that declares 65 281 tokens of width 1: inside every configuration limit, but
/// its per-thread attention scores alone are tokens² floats (src/cpu/plan.rs:122), ~17 GB.
fn huge_attention_model() -> std::sync::Arc<Model> {
    let mut cfg = synth::config(16384, 1, 64, 1, 1, 1, 1, &[1], false);
    cfg.image_w = 16320; // 256 × 255 patches: 65 281 tokens, the limit is 65 536
    cfg.mlp_hidden = 1;
    let bytes = synth::random_model(&cfg, 1, DType::F32);
    assert!(bytes.len() < 400_000, "{} bytes", bytes.len());
    std::sync::Arc::new(Model::from_bytes(&bytes, &OpenOptions::default()).unwrap())
}

/// Found while sizing absurd-but-valid shapes for tests/corrupt_sizes.rs: `Session::new` on
/// [`huge_attention_model`] allocated its ~17 GB arena with `vec![0f32; total]`
/// (src/session.rs:155), which aborts the process when the allocation fails. Fixed in 0d8e737
/// (`try_reserve_exact`, an error naming the size). Checked with an allocator that refuses every
/// request over 2 GiB, in a child process.
#[test]
fn session_on_a_small_file_with_huge_attention_fails_cleanly() {
    if !in_child() {
        return passes_in_child("session_on_a_small_file_with_huge_attention_fails_cleanly");
    }
    cap::limit(2 << 30);
    let r = tinv::Session::new(huge_attention_model(), tinv::SessionOptions::default());
    let err = r.expect_err("a 17 GB arena must be refused with an error");
    assert!(err.to_string().contains("arena"), "{err}");
    // Above the 2 GiB cap: refused before allocating. With the cap raised, the allocator's
    // refusal comes back as OutOfMemory (TINV_ERR_OUT_OF_MEMORY in C), not an abort.
    let opts = tinv::SessionOptions::default().max_arena_bytes(usize::MAX);
    let err = tinv::Session::new(huge_attention_model(), opts)
        .expect_err("the capped allocator refuses 17 GB");
    assert!(matches!(err, Error::OutOfMemory(_)), "{err:?}");
}

/// The fix above makes a failed allocation an error, but where the OS grants the 17 GB
/// (overcommit: any Linux box with more RAM than that, or `vm.overcommit_memory=1`),
/// `arena.resize(total, 0.0)` (src/session.rs:164) then writes every page of it: a 300 KB file
/// makes the process take 17 GB of RAM, or get OOM-killed. A session's arena request should
/// be bounded (a cap in `SessionOptions`, or tighter token limits), so that no huge allocation
/// is even attempted for a tiny file.
#[test]
fn session_never_asks_for_a_huge_arena() {
    if !in_child() {
        return passes_in_child("session_never_asks_for_a_huge_arena");
    }
    cap::limit(2 << 30);
    let _ = tinv::Session::new(huge_attention_model(), tinv::SessionOptions::default());
    let largest = cap::largest_request();
    assert!(
        largest <= 4 << 30,
        "Session::new asked for {largest} bytes at once for a 300 KB file"
    );
}

/// Found measuring the parser on the largest legal table: the duplicate-name check compares each
/// new tensor with every earlier one (src/format/parse.rs:329), so a 20 MB file of 65 536 tiny
/// tensors (the format's limit) takes ~30 s to parse (2·10⁹ name comparisons; 8 192 tensors take
/// 0.2 s). Fixed in 0d8e737 (a hash set).
#[test]
fn largest_legal_table_parses_in_linear_time() {
    let mut w = TinvWriter::new();
    for i in 0..65536 {
        w.tensor(&format!("t{i:06}"), &[1], &[0.0], DType::F32);
    }
    let bytes = w.to_bytes();
    let t = std::time::Instant::now();
    let idx = tinv::format::parse(&bytes).expect("valid file");
    assert_eq!(idx.tensors.len(), 65536);
    // Linear parsing of these 20 MB takes well under 0.5 s even unoptimized; 5 s is the bound.
    let secs = t.elapsed().as_secs_f64();
    assert!(secs < 5.0, "parse took {secs:.1} s");
}

/// A global allocator that can refuse large requests (returns null, as a real allocator does
/// when memory runs out). Off (no cap) unless a test calls [`cap::limit`].
mod cap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
    static LARGEST: AtomicUsize = AtomicUsize::new(0);

    /// The largest single request seen so far, granted or refused.
    pub fn largest_request() -> usize {
        LARGEST.load(Ordering::SeqCst)
    }

    fn refuse(size: usize) -> bool {
        LARGEST.fetch_max(size, Ordering::Relaxed);
        size > CAP.load(Ordering::Relaxed)
    }

    /// Refuse every later single allocation above `bytes`.
    pub fn limit(bytes: usize) {
        CAP.store(bytes, Ordering::SeqCst);
    }

    pub struct Capped;

    // SAFETY: forwards to `System` unchanged, or returns null (an allowed allocator answer).
    unsafe impl GlobalAlloc for Capped {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            if refuse(l.size()) {
                return std::ptr::null_mut();
            }
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc(l) }
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            if refuse(l.size()) {
                return std::ptr::null_mut();
            }
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc_zeroed(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: same contract as the caller's.
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            if refuse(n) {
                return std::ptr::null_mut();
            }
            // SAFETY: same contract as the caller's.
            unsafe { System.realloc(p, l, n) }
        }
    }
}

#[global_allocator]
static GLOBAL: cap::Capped = cap::Capped;

/// A fresh temporary folder holding a tiny 2×2 one-channel model `m.tinv`: (folder, model).
#[cfg(feature = "cli")]
fn tiny_model_dir(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tinv-regress-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("m.tinv");
    let cfg = synth::config(2, 1, 2, 4, 1, 1, 2, &[1], false);
    std::fs::write(&model, synth::random_model(&cfg, 1, DType::F32)).unwrap();
    (dir, model)
}

/// `tinv-run classify --model MODEL IMAGE` in a child process (see [`run_child`]).
#[cfg(feature = "cli")]
fn classify(model: &std::path::Path, image: &std::path::Path) -> Option<std::process::Output> {
    run_child(
        std::process::Command::new(env!("CARGO_BIN_EXE_tinv-run"))
            .args(["classify", "--model"])
            .arg(model)
            .arg(image),
    )
}

/// PGM samples above maxval (and, in plain P2, negative, NaN or infinite ones) are accepted by
/// the CLI's decoder (src/bin/tinv-run/images.rs:119 and :128) and reach the model as values
/// outside [0, 1]. Found reading the `image` fuzz target's decoder; a PGM sample is at most maxval.
/// Fixed in 0d8e737.
#[cfg(feature = "cli")]
#[test]
fn pgm_samples_above_maxval_are_refused() {
    let (dir, model) = tiny_model_dir("pgm");
    let images: [(&str, &[u8]); 4] = [
        ("p5.pgm", b"P5 2 2 100\n\x00\x10\x20\xff"),
        ("p2_high.pgm", b"P2 2 2 255\n0 1 2 300\n"),
        ("p2_negative.pgm", b"P2 2 2 255\n0 1 2 -5\n"),
        ("p2_nan.pgm", b"P2 2 2 255\n0 1 2 nan\n"),
    ];
    for (name, bytes) in images {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let Some(out) = classify(&model, &path) else {
            continue;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("PGM"),
            "{name}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PNG chunk: length, type, data, CRC-32 of type and data.
#[cfg(feature = "cli")]
fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// Found by `image` (fuzz/artifacts/image/crash-26af…, minimized to 76 bytes): a palette PNG
/// whose PLTE chunk is not a multiple of 3 bytes (PNG requires it) panics inside the png crate
/// 0.17.16 when it expands the palette (png-0.17.16/src/decoder/transform/palette.rs:74), so
/// `tinv-run classify` dies with a panic instead of a one-line error. The CLI can refuse such a
/// palette after `read_info` (src/bin/tinv-run/images.rs, `decode_png`).
#[cfg(feature = "cli")]
#[test]
fn png_palette_of_a_partial_entry_is_refused() {
    use std::io::Write;
    let (dir, model) = tiny_model_dir("png");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    // 2×2, 8-bit palette indices, deflate, no filter, no interlace.
    png_chunk(&mut png, b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 2, 8, 3, 0, 0, 0]);
    png_chunk(&mut png, b"PLTE", &[255, 0, 0, 7]); // one entry and one stray byte
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&[0, 0, 1, 0, 1, 0]).unwrap(); // two rows: filter 0, indices
    png_chunk(&mut png, b"IDAT", &z.finish().unwrap());
    png_chunk(&mut png, b"IEND", &[]);
    let path = dir.join("palette.png");
    std::fs::write(&path, &png).unwrap();
    let Some(out) = classify(&model, &path) else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    // A one-line error and exit status 1; a panic exits 101 with a multi-line message.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The engine manifest (feature `tensorrt`): every manifest `Manifest::parse` accepts prints
/// with `to_text` and reads back equal. Needs `pub mod trt` in src/lib.rs behind the feature.
#[cfg(feature = "tensorrt")]
mod manifest {
    use tinv::trt::manifest::Manifest;

    const GOOD: &str =
        "tinv-trt-manifest 3\nmodel_hash 0xff\nexport 2\ntensorrt 10.3.0\ngpu 8.7 16 Orin\n\
precision fp16\nlayout per-path\nweights_bytes 1024\nweight blk.0.qkv.weight f16 0 96 4,12\n\
engine path1 path1.plan 4194304 0x5b82ceccd4c987ad\nio path1 input f32 1,1,28,28 image\n\
io path1 input f16 4,12 blk.0.qkv.weight\nio path1 output f32 1,10 logits\npath 1 path1\n";

    /// Refused, or accepted and round-tripping.
    fn refused_or_round_trips(text: &str) {
        assert!(Manifest::parse(GOOD).is_ok(), "the base manifest is valid");
        if let Ok(m) = Manifest::parse(text) {
            let again = m.to_text().expect("an accepted manifest prints");
            assert_eq!(Manifest::parse(&again).expect("printed text parses"), m);
        }
    }

    /// Found by `manifest` (fuzz/artifacts/manifest/minimized-from-d3be…): names are split on
    /// spaces only (src/trt/manifest.rs `word`), so a tab or other whitespace inside a weight,
    /// engine or tensor name is accepted, and `to_text` then refuses the name it was given.
    #[test]
    fn names_with_tabs_are_refused() {
        refused_or_round_trips(
            &GOOD.replace("weight blk.0.qkv.weight", "weight blk.0\t.qkv.weight"),
        );
        refused_or_round_trips(
            &GOOD.replace("engine path1 path1.plan", "engine path1 path\u{a0}1.plan"),
        );
    }

    /// Found by `manifest` (fuzz/artifacts/manifest/crash-2e46…): a GPU name ending in '\r' is
    /// kept by the parser, printed as "…\r\n" by `to_text`, and read back without it.
    #[test]
    fn gpu_name_with_carriage_return_round_trips() {
        refused_or_round_trips(&GOOD.replace("gpu 8.7 16 Orin\n", "gpu 8.7 16 Orin\r\r\n"));
    }

    /// The writer's side (bugs 9 and 10): `to_text` printed what `parse` refuses or reads back
    /// differently — a name with a control character, a GPU name ending in '\r' (found by the
    /// audit), an engine listing one tensor twice after a rename (found by `manifest` once it
    /// fuzzed the writer, fuzz/artifacts/manifest/crash-b1df66e1…). Whatever it prints must
    /// read back equal, so it refuses these.
    #[test]
    fn to_text_refuses_what_parse_refuses() {
        let good = Manifest::parse(GOOD).unwrap();
        let refused = |m: Manifest, why: &str| {
            let e = m.to_text().expect_err("must be refused").to_string();
            assert!(e.contains(why), "{e}");
        };
        let mut m = good.clone();
        m.engines[0].io[0].name = "x\u{1}".into();
        refused(m, "control characters");
        for name in ["Orin\r", "Orin\nX", ""] {
            let mut m = good.clone();
            m.gpu.name = name.into();
            refused(m, "GPU name");
        }
        let mut m = good.clone();
        m.engines[0].io[1].name = m.engines[0].io[0].name.clone();
        refused(m, "twice");
    }
}

/// Found by the header bit-flip suite (tests/corrupt_header.rs), long listed as a known blind
/// spot: `format::parse` read `meta_count` entries and ignored what was left before the tensor
/// table (src/format/parse.rs), so a count one smaller dropped the last entry,
/// `tinv.content_hash`, and the file still opened and verified. Fixed: the entries must end
/// exactly at `table_offset` (`BadSections`).
#[test]
fn a_smaller_metadata_count_is_refused() {
    let cfg = synth::config(8, 1, 4, 16, 3, 2, 5, &[1, 2, 3], false);
    let good = synth::random_model(&cfg, 3, DType::F32);
    let count = u32::from_le_bytes(good[24..28].try_into().unwrap());
    let mut b = good.clone();
    b[24..28].copy_from_slice(&(count - 1).to_le_bytes());
    let Err(err) = Model::from_bytes(&b, &OpenOptions::default()) else {
        panic!("a file with one metadata entry left unread was accepted");
    };
    assert!(err.to_string().contains("metadata entries end at"), "{err}");
    Model::from_bytes(&good, &OpenOptions::default()).expect("the unchanged file opens");
}
