#!/usr/bin/env bash
# Measures the stack the deepest library path needs, and checks the library for recursion.
#
#   scripts/stack-depth.sh            both shapes; prints the minimum stack per shape
#
# 1. A probe program (built in $TMPDIR/tinv-stack-depth against this checkout, release profile,
#    as deployed) runs, in one thread of a given stack size: Model::open with --verify, Session::new,
#    then every inference entry point (adaptive, graph, threshold, all exits, every fixed depth;
#    batch 1 and 2; one thread, so every kernel runs on that stack). A stack overflow aborts the
#    probe. The script bisects the smallest stack that passes, to 1 KiB, for two shapes: the
#    Fashion-MNIST default (28², 8 blocks, controller) and ViT-Tiny (224², 12 blocks, 1000
#    classes, controller). Equal results for both shapes show stack use does not grow with sizes.
# 2. A recursion check: every `fn` in src/ (library and CLI) whose body calls its own name.
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
//! tinv-stack-probe SHAPE FILE [STACK_BYTES]: without STACK_BYTES writes the model FILE; with it,
//! runs every library entry point on FILE in a thread of that stack size (exit 0 = it fit).
use std::sync::Arc;
use tinv::{synth, Mode, Model, OpenOptions, Session, SessionOptions};

fn shape(name: &str) -> tinv::Config {
    match name {
        "fmnist" => synth::config(28, 1, 4, 96, 8, 3, 10, &[2, 4, 6, 8], true),
        "vit-tiny" => synth::config(224, 3, 16, 192, 12, 3, 1000, &[3, 6, 9, 12], true),
        other => panic!("unknown shape {other}"),
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let cfg = shape(&a[1]);
    let Some(stack) = a.get(3).map(|s| s.parse::<usize>().expect("stack bytes")) else {
        let bytes = synth::random_model(&cfg, 30, tinv::format::DType::F32);
        std::fs::write(&a[2], bytes).expect("model written");
        return;
    };
    let path = a[2].clone();
    let x = synth::random_inputs(&cfg, 2, 3);
    let t = std::thread::Builder::new().stack_size(stack).spawn(move || {
        let m = Arc::new(Model::open(&path, &OpenOptions { verify: true }).expect("open"));
        let opts = SessionOptions { max_batch: 2, threads: 1, ..SessionOptions::default() };
        let mut s = Session::new(m, opts).expect("session");
        let (p, k) = (cfg.depths.len(), cfg.classes);
        let mut out = vec![0f32; 2 * p * k];
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
    });
    let ok = t.expect("thread spawned").join().is_ok();
    std::process::exit(if ok { 0 } else { 1 });
}
EOF
echo "building the probe in $work (release)..." >&2
cargo build --release -q --manifest-path "$work/Cargo.toml" --target-dir "$work/target"
probe="$work/target/release/tinv-stack-probe"
for shape in fmnist vit-tiny; do
    model="$work/$shape.tinv"
    [ -f "$model" ] || "$probe" "$shape" "$model"
    "$probe" "$shape" "$model" $((8 << 20)) || { echo "$shape: fails even with 8 MiB" >&2; exit 1; }
    lo=0 hi=$((8 << 20))
    while [ $((hi - lo)) -gt 1024 ]; do
        mid=$(((lo + hi) / 2))
        if "$probe" "$shape" "$model" "$mid" 2>/dev/null; then hi=$mid; else lo=$mid; fi
    done
    echo "$shape: minimum stack $((hi / 1024)) KiB (fails at $((lo / 1024)) KiB)"
done

echo "recursion check (functions whose body calls their own name):"
python3 - "$root/src" <<'EOF'
import pathlib, re, sys
hits = 0
for f in sorted(pathlib.Path(sys.argv[1]).rglob("*.rs")):
    text = f.read_text()
    for m in re.finditer(r"\bfn\s+([a-z_][a-z0-9_]*)\s*(<[^{;]*?>)?\s*\(", text):
        name, start = m.group(1), text.find("{", m.end())
        if start < 0 or ";" in text[m.end():start] and text[m.end():start].strip().endswith(";"):
            continue
        depth, i = 0, start
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        body = text[start + 1:i]
        if re.search(r"(?<![A-Za-z0-9_.:])" + name + r"\s*\(", body) or re.search(r"\bSelf::" + name + r"\s*\(", body):
            hits += 1
            print(f"  {f.relative_to(sys.argv[1])}: fn {name} calls itself")
print(f"  {hits} recursive function(s) found")
EOF
