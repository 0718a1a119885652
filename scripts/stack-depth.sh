#!/usr/bin/env bash
# Measures the stack the deepest library path uses, and checks the sources for recursion.
#
#   scripts/stack-depth.sh
#
# 1. Stack: a probe program (built in $TMPDIR/tinv-stack-depth against this checkout, release
#    profile, as deployed) runs in one thread: Model::open with verify, Session::new, then every
#    inference entry point (adaptive, graph, threshold, all exits, every fixed depth; batch 1 and
#    2; one worker thread, so every kernel runs on that stack). Before, it fills 1 MiB below its
#    stack pointer with a pattern; after, the lowest overwritten byte gives the deepest use
#    ("stack painting"). Then it reruns the same work in a thread whose stack is that depth plus
#    16 KiB (the platform minimum is about that much) to confirm it fits. Two shapes: the
#    Fashion-MNIST default (28², 8 blocks, controller) and ViT-Tiny (224², 12 blocks, 1000 classes,
#    controller); equal depths show stack use does not grow with the model's sizes.
# 2. Recursion: every `fn` under src/ whose body calls its own name (direct recursion; the
#    library has no function pointers or trait objects that could close a cycle indirectly
#    except the thread pool's job, which runs kernels, never the pool).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${TMPDIR:-/tmp}/tinv-stack-depth
mkdir -p "$work/src"
cat >"$work/Cargo.toml" <<EOF
[package]
name = "tinv-stack-probe"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
tinv = { path = "$root", default-features = false }
[workspace]
[profile.release]
panic = "unwind"
codegen-units = 4
EOF
cat >"$work/src/main.rs" <<'EOF'
//! tinv-stack-probe SHAPE FILE [measure]: without `measure` writes the model FILE; with it,
//! prints the deepest stack use of every library entry point on FILE and confirms it fits.
use std::sync::Arc;
use tinv::{synth, Mode, Model, OpenOptions, Session, SessionOptions};

const PAINT: usize = 1 << 20;
const MAGIC: u8 = 0xA5;

fn shape(name: &str) -> tinv::Config {
    match name {
        "fmnist" => synth::config(28, 1, 4, 96, 8, 3, 10, &[2, 4, 6, 8], true),
        "vit-tiny" => synth::config(224, 3, 16, 192, 12, 3, 1000, &[3, 6, 9, 12], true),
        other => panic!("unknown shape {other}"),
    }
}

#[inline(never)]
fn work(path: &str, cfg: &tinv::Config, x: &[f32]) {
    let m = Arc::new(Model::open(path, &OpenOptions { verify: true }).expect("open"));
    let opts = SessionOptions { max_batch: 2, threads: 1, ..SessionOptions::default() };
    let mut s = Session::new(m, opts).expect("session");
    let mut out = vec![0f32; 2 * cfg.depths.len() * cfg.classes];
    for b in [1, 2] {
        let xb = &x[..b * cfg.input_len()];
        for mode in [Mode::Adaptive, Mode::Graph, Mode::Threshold(0.9)] {
            s.set_mode(mode).expect("mode");
            s.infer(xb, b, &mut out).expect("infer");
        }
        s.infer_all_exits(xb, b, &mut out).expect("all exits");
        for &d in &cfg.depths {
            s.infer_depth(xb, b, d, &mut out).expect("depth");
        }
    }
}

/// Paints PAINT bytes below the current frame, runs `f`, returns the deepest byte `f` touched,
/// as a distance from the painted region's top.
#[inline(never)]
fn measure(f: impl FnOnce()) -> usize {
    let marker = 0u8;
    let top = std::hint::black_box(&marker as *const u8 as usize) - 4096;
    let bottom = top - PAINT;
    for a in bottom..top {
        // SAFETY: [bottom, top) lies inside this thread's stack (spawned with 8 MiB, we are near
        // its top) below every live frame; nothing else uses it until `f` runs.
        unsafe { std::ptr::write_volatile(a as *mut u8, MAGIC) };
    }
    f();
    // SAFETY: as above; the memory stays mapped for the thread's life.
    let lowest = (bottom..top).find(|&a| unsafe { std::ptr::read_volatile(a as *const u8) } != MAGIC);
    lowest.map_or(0, |a| top - a) + 4096
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let cfg = shape(&a[1]);
    let path = a[2].clone();
    if a.get(3).map(String::as_str) != Some("measure") {
        let bytes = synth::random_model(&cfg, 30, tinv::format::DType::F32);
        std::fs::write(&path, bytes).expect("model written");
        return;
    }
    let x = synth::random_inputs(&cfg, 2, 3);
    let (p, c, xx) = (path.clone(), cfg.clone(), x.clone());
    let used = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || measure(|| work(&p, &c, &xx)))
        .expect("thread")
        .join()
        .expect("measured run");
    let fit = used + (16 << 10);
    let ok = std::thread::Builder::new()
        .stack_size(fit)
        .spawn(move || work(&path, &cfg, &x))
        .expect("thread")
        .join()
        .is_ok();
    println!(
        "{}: deepest stack use {} KiB (incl. 4 KiB above the paint); a {} KiB thread stack {}",
        a[1],
        used.div_ceil(1024),
        fit / 1024,
        if ok { "runs it" } else { "FAILS" }
    );
    std::process::exit(if ok { 0 } else { 1 });
}
EOF
echo "building the probe in $work (release)..." >&2
cargo build --release -q --manifest-path "$work/Cargo.toml" --target-dir "$work/target"
probe="$work/target/release/tinv-stack-probe"
for shape in fmnist vit-tiny; do
    model="$work/$shape.tinv"
    [ -f "$model" ] || "$probe" "$shape" "$model"
    "$probe" "$shape" "$model" measure
done

echo "recursion check (functions whose body calls their own name):"
python3 - "$root/src" <<'EOF'
import pathlib, re, sys

def body_span(text, i):
    """From just after `fn name`: the body's (start, end), or None for a declaration (`;`) or a
    macro template (`$body`)."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and c in ";$":
            return None
        elif depth == 0 and c == "{":
            break
        i += 1
    start, depth = i, 0
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return start, i
        i += 1
    return None

hits = 0
for f in sorted(pathlib.Path(sys.argv[1]).rglob("*.rs")):
    text = f.read_text()
    for m in re.finditer(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)", text):
        name, span = m.group(1), body_span(text, m.end())
        if span is None:
            continue
        body = text[span[0] + 1:span[1]]
        own = r"(?:(?<![A-Za-z0-9_.:])|\bself\.|\bSelf::)" + name + r"\s*(?:::<[^>]*>)?\s*\("
        if re.search(own, body):
            hits += 1
            print(f"  {f.relative_to(sys.argv[1])}: fn {name} calls itself")
print(f"  {hits} recursive function(s) found")
EOF
