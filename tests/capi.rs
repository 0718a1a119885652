//! The C ABI seen from C and C++: builds tests/c/*.c and tests/c/*.cpp with `-Wall -Wextra
//! -Werror` against include/tinv.h, links them to the `libtinv.so` that `cargo test` builds next
//! to this test (target/<profile>/), and runs them on a model written here, comparing with what
//! the Rust API computes (the expectation file). Also: the C test under valgrind memcheck and
//! AddressSanitizer. That the header and the library agree is checked in capi_header.rs,
//! scripts/install.sh in capi_install.rs, the exported functions called from Rust in
//! capi_model.rs and capi_session.rs.
//!
//! Environment: `CC` / `CXX` pick the compilers (default `cc` / `c++`);
//! `TINV_SKIP_VALGRIND=1` / `TINV_SKIP_ASAN=1` skip those runs.

#[path = "capi/expect.rs"]
mod expect;
#[path = "capi/toolchain.rs"]
#[allow(dead_code)] // `Lang::Layout` and the symbol lists are for capi_header.rs
mod toolchain;

use toolchain::{compile, have, root, run, Lang};

/// Small controller model: 16×16×3, patch 4, dim 32, 4 blocks, exits after every block. Seed 12
/// makes its random controller start the six inputs on three different paths and escalate some
/// of them (asserted), so the C side sees a mixed batch with resumption.
fn small_model(dir: &str) -> expect::Case {
    let cfg = tinv::synth::config(16, 3, 4, 32, 4, 2, 10, &[1, 2, 3, 4], true);
    let case = expect::write_case(
        dir,
        &tinv::synth::random_model(&cfg, 12, tinv::format::DType::F32),
        6,
        11,
    );
    let mut starts: Vec<usize> = case.adaptive.iter().map(|s| s.start_depth).collect();
    starts.sort();
    starts.dedup();
    assert!(
        starts.len() >= 2,
        "fixture lost its mixed batch: starts {starts:?}"
    );
    assert!(
        case.adaptive.iter().any(|s| s.escalations > 0),
        "fixture lost its escalations"
    );
    case
}

/// The `PRED i class depth` lines a C run printed, as (class, depth) per input.
fn predictions(stdout: &str) -> Vec<(usize, usize)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PRED "))
        .map(|l| {
            let v: Vec<usize> = l
                .split(' ')
                .map(|x| x.parse().expect("PRED line of numbers"))
                .collect();
            (v[1], v[2])
        })
        .collect()
}

#[test]
fn c_program_agrees_with_rust_api() {
    let case = small_model("c");
    let bin = compile(Lang::C, &[], "c");
    let out = run(&[bin.as_str(), &case.model, &case.expect], &[]);
    assert_eq!(
        predictions(&out),
        case.predictions,
        "C predictions differ from the Rust API's"
    );
    assert!(out.contains("test_tinv: all checks passed"));
}

#[test]
fn cpp_program_agrees_with_rust_api() {
    let case = small_model("cpp");
    let bin = compile(Lang::Cpp, &[], "cpp");
    let out = run(&[bin.as_str(), &case.model, &case.expect], &[]);
    assert!(out.contains("test_tinv_cpp: all checks passed"), "{out}");
}

#[test]
fn c_program_on_a_model_without_controller() {
    // Adaptive mode then means the deepest path; f16 weights exercise the widened tensors.
    let cfg = tinv::synth::config(8, 1, 4, 16, 3, 2, 5, &[1, 3], false);
    let bytes = tinv::synth::random_model(&cfg, 3, tinv::format::DType::F16);
    let case = expect::write_case("noctrl", &bytes, 3, 5);
    assert!(case
        .adaptive
        .iter()
        .all(|s| s.depth == 3 && s.predicted_path.is_none()));
    let bin = compile(Lang::C, &[], "noctrl");
    let out = run(&[bin.as_str(), &case.model, &case.expect, "--quick"], &[]);
    assert_eq!(predictions(&out), case.predictions);
}

#[test]
fn ros2_example_wrapper_classifies_like_rust() {
    let case = small_model("example");
    let bin = compile(Lang::Example, &[], "example");
    let out = run(&[bin.as_str(), &case.model, &case.input0], &[]);
    let (class, depth) = case.predictions[0];
    assert_eq!(out.trim(), format!("{class} {depth}"));
}

#[test]
fn c_program_on_the_default_model() {
    let pkg = root().join("engines/fmnist/model.tinv");
    if !pkg.exists() {
        eprintln!("skipped: {} not present", pkg.display());
        return;
    }
    let bytes = std::fs::read(&pkg).unwrap();
    let case = expect::write_case("fmnist", &bytes, 4, 3);
    let bin = compile(Lang::C, &[], "fmnist");
    let out = run(&[bin.as_str(), &case.model, &case.expect, "--quick"], &[]);
    assert_eq!(predictions(&out), case.predictions);
}

#[test]
fn c_program_under_valgrind_memcheck() {
    if std::env::var_os("TINV_SKIP_VALGRIND").is_some() || !have("valgrind") {
        eprintln!("skipped: valgrind not found or TINV_SKIP_VALGRIND set");
        return;
    }
    let case = small_model("valgrind");
    let bin = compile(Lang::C, &["-g"], "valgrind");
    run(
        &[
            "valgrind",
            // Valgrind runs one thread at a time; without fair scheduling the thread that loops
            // on inference calls (`run_until_freed`) kept the lock and the main thread, which
            // ends the loop, waited up to 15 minutes for its turn.
            "--fair-sched=yes",
            "--error-exitcode=1",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible",
            "--quiet",
            &bin,
            &case.model,
            &case.expect,
            "--quick",
        ],
        // A forked child forgets its session's worker handles (the workers stayed in the
        // parent): a small leak by design, which memcheck would report.
        &[("TINV_TEST_NO_FORK", "1")],
    );
}

#[test]
fn c_program_under_address_sanitizer() {
    if std::env::var_os("TINV_SKIP_ASAN").is_some() {
        eprintln!("skipped: TINV_SKIP_ASAN set");
        return;
    }
    let case = small_model("asan");
    let bin = compile(
        Lang::C,
        &[
            "-g",
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
        ],
        "asan",
    );
    run(
        &[bin.as_str(), &case.model, &case.expect],
        &[
            ("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=1"),
            ("UBSAN_OPTIONS", "halt_on_error=1"),
        ],
    );
}
