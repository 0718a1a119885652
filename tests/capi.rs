//! The C ABI seen from C and C++: builds tests/c/*.c and tests/c/*.cpp with `-Wall -Wextra
//! -Werror` against include/tinv.h, links them to the `libtinv.so` that `cargo test` builds next
//! to this test (target/<profile>/), and runs them on a model written here, comparing with what
//! the Rust API computes (the expectation file). Also: the C test under valgrind memcheck and
//! AddressSanitizer, and checks that the header and the library agree (exported symbols,
//! struct layouts, enum values, version macros).
//!
//! Environment: `CC` / `CXX` pick the compilers (default `cc` / `c++`);
//! `TINV_SKIP_VALGRIND=1` / `TINV_SKIP_ASAN=1` skip those runs.

#[path = "capi/alloc_count.rs"]
mod alloc_count;
#[path = "capi/expect.rs"]
mod expect;
#[path = "capi/signatures.rs"]
mod signatures;
#[path = "capi/toolchain.rs"]
mod toolchain;

use toolchain::{compile, have, root, run, Lang};

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

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

#[test]
fn header_declares_exactly_the_exported_functions() {
    let header = std::fs::read_to_string(root().join("include/tinv.h")).unwrap();
    let declared = toolchain::header_functions(&header);
    let exported = toolchain::exported_functions();
    assert_eq!(declared, exported, "include/tinv.h and libtinv.so disagree");
    assert!(declared.len() >= 25, "{declared:?}");
}

#[test]
fn header_prototypes_match_rust_signatures() {
    let header =
        signatures::header(&std::fs::read_to_string(root().join("include/tinv.h")).unwrap());
    let sources: Vec<String> = [
        "src/capi/mod.rs",
        "src/capi/session.rs",
        "src/capi/logging.rs",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(root().join(f)).unwrap())
    .collect();
    let rust = signatures::rust(&sources);
    assert_eq!(
        header.keys().collect::<Vec<_>>(),
        rust.keys().collect::<Vec<_>>(),
        "functions differ"
    );
    for (name, (h_ret, h_params)) in &header {
        let (r_ret, r_params) = &rust[name];
        assert!(
            signatures::compatible(h_ret, r_ret),
            "{name}: header returns {h_ret}, Rust {r_ret}"
        );
        assert_eq!(
            h_params.len(),
            r_params.len(),
            "{name}: {h_params:?} vs {r_params:?}"
        );
        for (h, r) in h_params.iter().zip(r_params) {
            assert!(
                signatures::compatible(h, r),
                "{name}: header {h_params:?}, Rust {r_params:?}"
            );
        }
    }
    // The parser sees what it should: a known prototype, parsed in full.
    assert_eq!(
        header["tinv_session_infer_depth"],
        (
            "tinv_status".to_string(),
            [
                "tinv_session*",
                "const float*",
                "size_t",
                "size_t",
                "size_t",
                "float*",
                "size_t"
            ]
            .map(String::from)
            .to_vec()
        )
    );
}

#[test]
fn header_layouts_and_constants_match_rust() {
    use std::mem::{offset_of, size_of};
    use tinv::capi::{ModelOptions, SessionOptionsC, StatsC};
    let bin = compile(Lang::Layout, &[], "layout");
    let out = run(&[bin.as_str()], &[]);
    // The enums are passed as uint32_t on the Rust side, so they must be 4 bytes in C even where
    // the toolchain packs enums (-fshort-enums, a default of some ARM embedded compilers).
    let packed = compile(Lang::Layout, &["-fshort-enums"], "layout-short-enums");
    assert_eq!(
        run(&[packed.as_str()], &[]),
        out,
        "-fshort-enums changes the ABI"
    );
    let mut want = vec![
        format!("sizeof tinv_model_options {}", size_of::<ModelOptions>()),
        format!(
            "sizeof tinv_session_options {}",
            size_of::<SessionOptionsC>()
        ),
        format!("sizeof tinv_stats {}", size_of::<StatsC>()),
        format!("sizeof tinv_status {}", size_of::<u32>()),
        format!("sizeof tinv_backend {}", size_of::<u32>()),
        format!("sizeof tinv_mode {}", size_of::<u32>()),
        format!("sizeof tinv_pixels {}", size_of::<u32>()),
    ];
    macro_rules! off {
        ($c:literal, $t:ty, $($f:ident),*) => {
            $(want.push(format!("offsetof {} {} {}", $c, stringify!($f), offset_of!($t, $f)));)*
        };
    }
    off!(
        "tinv_model_options",
        ModelOptions,
        struct_size,
        backend,
        verify,
        reserved,
        engines_dir
    );
    off!(
        "tinv_session_options",
        SessionOptionsC,
        struct_size,
        mode,
        threshold,
        budget,
        max_batch,
        threads
    );
    off!(
        "tinv_stats",
        StatsC,
        depth,
        path,
        start_depth,
        escalations,
        flops,
        weight_bytes,
        class_id,
        confidence,
        predicted_path,
        reserved,
        latency_us
    );
    for (s, text) in tinv::capi::status::ALL {
        want.push(format!("status {} {}", *s as u32, text.to_str().unwrap()));
    }
    use tinv::capi::*;
    for (n, v) in [
        ("TINV_BACKEND_AUTO", BACKEND_AUTO),
        ("TINV_BACKEND_CPU", BACKEND_CPU),
        ("TINV_BACKEND_TENSORRT", BACKEND_TENSORRT),
        ("TINV_MODE_ADAPTIVE", MODE_ADAPTIVE),
        ("TINV_MODE_GRAPH", MODE_GRAPH),
        ("TINV_MODE_THRESHOLD", MODE_THRESHOLD),
        ("TINV_PIXELS_GRAY8", PIXELS_GRAY8),
        ("TINV_PIXELS_RGB8", PIXELS_RGB8),
        ("TINV_PIXELS_BGR8", PIXELS_BGR8),
        ("TINV_PIXELS_RGBA8", PIXELS_RGBA8),
        ("TINV_PIXELS_BGRA8", PIXELS_BGRA8),
    ] {
        want.push(format!("const {n} {v}"));
    }
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got, want.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The SONAME carries the ABI generation: `libtinv.so.0.<minor>` before 1.0, since under
/// Cargo's semver 0.1 → 0.2 may break the ABI.
#[test]
fn library_soname_names_the_abi_generation() {
    if !have("readelf") {
        eprintln!("skipped: readelf (binutils) not found");
        return;
    }
    let lib = toolchain::built_library();
    let dynamic = run(&["readelf", "-d", lib.to_str().unwrap()], &[]);
    let want = format!("Library soname: [{}]", toolchain::soname());
    assert!(dynamic.contains(&want), "{want} not in:\n{dynamic}");
    assert!(toolchain::soname().starts_with("libtinv.so.0."));
}

#[test]
fn version_macros_match_cargo() {
    let header = std::fs::read_to_string(root().join("include/tinv.h")).unwrap();
    let mac = |name: &str| -> String {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} missing"));
        line[format!("#define {name} ").len()..]
            .trim()
            .trim_matches('"')
            .to_string()
    };
    assert_eq!(mac("TINV_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MAJOR"));
    assert_eq!(mac("TINV_VERSION_MINOR"), env!("CARGO_PKG_VERSION_MINOR"));
    assert_eq!(mac("TINV_VERSION_PATCH"), env!("CARGO_PKG_VERSION_PATCH"));
    assert_eq!(mac("TINV_VERSION_STRING"), env!("CARGO_PKG_VERSION"));
}

/// scripts/install.sh on bad arguments: one `error:` line and exit status 1; `--help` prints its
/// header comment and nothing of the script.
#[test]
fn install_script_refuses_bad_arguments() {
    let script = root().join("scripts/install.sh");
    let run = |args: &[&str]| {
        let o = std::process::Command::new("sh")
            .arg(&script)
            .args(args)
            .output()
            .expect("sh runs");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // A missing value said "scripts/install.sh: 18: 2: parameter not set"; an empty --prefix
    // would have installed into /lib.
    for flag in ["--prefix", "--from"] {
        for args in [&[flag][..], &[flag, ""], &["--from", "/nonexistent", flag]] {
            let (code, _, err) = run(args);
            assert_eq!(
                (code, err),
                (Some(1), format!("error: {flag} needs a value\n")),
                "{args:?}"
            );
        }
    }
    // A relative prefix went into tinv.pc as is: -I and -L flags that broke from any other
    // directory.
    let (code, _, err) = run(&["--prefix", "rel/prefix"]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(1),
            "error: --prefix must be an absolute path, not rel/prefix\n"
        )
    );
    // pkg-config splits at white space, and reads # and ${...}: tinv.pc would name other
    // folders.
    for bad in ["/opt/my tinv", "/opt/a#b", "/opt/${HOME}", "/opt/it's"] {
        let (code, _, err) = run(&["--prefix", bad]);
        assert_eq!(code, Some(1), "{bad}");
        assert!(
            err.starts_with(&format!(
                "error: --prefix '{bad}' holds white space or one of"
            )),
            "{err}"
        );
    }
    let (code, _, err) = run(&["--bogus"]);
    assert_eq!(
        (code, err.as_str()),
        (Some(1), "error: unknown argument --bogus (see --help)\n")
    );
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("# Installs the C library")
            && out
                .trim_end()
                .ends_with("leaves the previous install as it was."),
        "{out}"
    );
}

/// scripts/install.sh --prefix `prefix` --from `from`, which must succeed.
fn install(from: &std::path::Path, prefix: &std::path::Path) {
    run(
        &[
            "sh",
            root().join("scripts/install.sh").to_str().unwrap(),
            "--prefix",
            prefix.to_str().unwrap(),
            "--from",
            from.to_str().unwrap(),
        ],
        &[],
    );
}

/// The TensorRT shims of a `--features tensorrt` build go beside libtinv.so: a deployed program
/// finds them by bare name (ldconfig), not in a build tree the install left behind.
#[test]
fn install_copies_the_tensorrt_shims() {
    let from = toolchain::scratch("shim-from");
    let prefix = toolchain::scratch("shim-prefix");
    // The real library: install.sh checks its SONAME.
    std::fs::copy(toolchain::built_library(), from.join("libtinv.so")).unwrap();
    for f in ["libtinv_trt8.so", "libtinv_trt10.so"] {
        std::fs::write(from.join(f), f).unwrap();
    }
    install(&from, &prefix);
    for f in ["libtinv_trt8.so", "libtinv_trt10.so"] {
        assert_eq!(
            std::fs::read(prefix.join("lib").join(f)).unwrap(),
            f.as_bytes()
        );
    }
    // A later build without one of them: the old shim would still be found through ldconfig
    // and loaded with the new library, so the install removes it.
    std::fs::remove_file(from.join("libtinv_trt8.so")).unwrap();
    // Another release of this ABI generation left by an earlier install: ldconfig would point
    // the SONAME at it (the highest-numbered file), undoing this install. It goes.
    let abi = format!(
        "libtinv.so.{}.{}",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    std::fs::write(prefix.join("lib").join(format!("{abi}.99")), "old").unwrap();
    install(&from, &prefix);
    assert!(!prefix.join("lib/libtinv_trt8.so").exists());
    assert!(prefix.join("lib/libtinv_trt10.so").exists());
    assert!(!prefix.join("lib").join(format!("{abi}.99")).exists());
    // Debug info stripped where `strip` can read the library; its symbols stay.
    let installed = prefix
        .join("lib")
        .join(format!("libtinv.so.{}", env!("CARGO_PKG_VERSION")));
    if std::process::Command::new("strip")
        .arg("--version")
        .output()
        .is_ok()
    {
        let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
        // The built library carries its debug info: the installed copy is smaller.
        assert!(size(&installed) < size(&from.join("libtinv.so")));
        let nm = std::process::Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(&installed)
            .output();
        if let Ok(nm) = nm {
            assert!(String::from_utf8_lossy(&nm.stdout).contains("tinv_model_open"));
        }
    }
    // --uninstall takes every file back out.
    let out = std::process::Command::new("sh")
        .arg(root().join("scripts/install.sh"))
        .args(["--uninstall", "--prefix", prefix.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let versioned = format!("libtinv.so.{}", env!("CARGO_PKG_VERSION"));
    for f in [
        "libtinv.so",
        &abi,
        &versioned,
        "libtinv_trt10.so",
        "pkgconfig/tinv.pc",
    ] {
        let p = prefix.join("lib").join(f);
        assert!(!p.exists() && std::fs::symlink_metadata(&p).is_err(), "{f}");
    }
    assert!(!prefix.join("include/tinv.h").exists());
}

/// The documented install step (scripts/install.sh) into a scratch prefix, then a C program
/// built only from `pkg-config --cflags --libs tinv` (shared) and `--static` (libtinv.a).
#[test]
fn installed_package_links_through_pkg_config() {
    if !have("pkg-config") {
        eprintln!("skipped: pkg-config not found");
        return;
    }
    let prefix = toolchain::scratch("prefix");
    let lib = toolchain::built_library();
    let from = lib.parent().unwrap();
    install(from, &prefix);
    let pc_path = prefix.join("lib/pkgconfig");
    let pc = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["pkg-config"];
        a.extend_from_slice(args);
        let out = run(&a, &[("PKG_CONFIG_PATH", pc_path.to_str().unwrap())]);
        out.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(pc(&["--modversion", "tinv"]), [env!("CARGO_PKG_VERSION")]);
    let src = root().join("tests/c/abi_layout.c");
    let layout = run(
        &[toolchain::compile(Lang::Layout, &[], "layout-ref").as_str()],
        &[],
    );
    for (name, static_link) in [("pc-shared", false), ("pc-static", true)] {
        let bin = toolchain::scratch("bin").join(name);
        let mut args: Vec<String> = vec![
            "cc".into(),
            "-std=c99".into(),
            "-Wall".into(),
            "-Werror".into(),
        ];
        args.extend(pc(&["--cflags", "tinv"]));
        args.push(src.to_str().unwrap().into());
        args.extend(["-o".into(), bin.to_str().unwrap().into()]);
        if static_link {
            args.push(prefix.join("lib/libtinv.a").to_str().unwrap().into());
            args.extend(
                pc(&["--static", "--libs-only-l", "tinv"])
                    .into_iter()
                    .filter(|l| l != "-ltinv"),
            );
        } else {
            args.extend(pc(&["--libs", "tinv"]));
            args.push(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&argv, &[]);
        assert_eq!(run(&[bin.to_str().unwrap()], &[]), layout, "{name}");
        if !static_link {
            let ldd = run(&["ldd", bin.to_str().unwrap()], &[]);
            let want = format!(
                "{} => {}",
                toolchain::soname(),
                prefix.join("lib").display()
            );
            assert!(ldd.contains(&want), "{ldd}");
        }
    }
}

/// After a warm-up call, the C ABI's per-frame calls (infer in every mode, at every forced depth,
/// batch 1 and batch 4, stats, budget and mode changes) allocate nothing on the calling thread.
#[test]
fn c_abi_hot_path_does_not_allocate() {
    use std::ptr::null_mut;
    use tinv::capi::*;
    let cfg = tinv::synth::config(16, 3, 4, 32, 4, 2, 10, &[1, 2, 3, 4], true);
    let bytes = tinv::synth::random_model(&cfg, 12, tinv::format::DType::F32);
    let input = tinv::synth::random_inputs(&cfg, 4, 11);
    let (mut logits, mut stats, mut n) = (vec![0f32; 40], vec![StatsC::default(); 4], 0usize);
    let (mut m, mut s) = (null_mut(), null_mut());
    // SAFETY: every pointer is a live buffer of the stated length, or an out slot.
    unsafe {
        let ok = Status::Ok;
        assert_eq!(
            tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), std::ptr::null(), &mut m),
            ok
        );
        let mut o = tinv_session_options_default();
        o.max_batch = 4;
        assert_eq!(tinv_session_open(m, &o, &mut s), ok);
        let x = |b: usize| (input.as_ptr(), b * cfg.input_len());
        let warm = tinv_session_infer(s, x(4).0, x(4).1, 4, logits.as_mut_ptr(), 40);
        assert_eq!(warm, ok);
        let before = alloc_count::allocations();
        for mode in [MODE_ADAPTIVE, MODE_GRAPH, MODE_THRESHOLD] {
            assert_eq!(tinv_session_set_mode(s, mode, 0.6), ok);
            assert_eq!(tinv_session_set_budget(s, 0.5), ok);
            for b in [1, 4] {
                assert_eq!(
                    tinv_session_infer(s, x(b).0, x(b).1, b, logits.as_mut_ptr(), 40),
                    ok
                );
                assert_eq!(
                    tinv_session_last_stats(s, stats.as_mut_ptr(), 4, &mut n),
                    ok
                );
                assert_eq!(n, b);
                for d in [1, 2, 3, 4] {
                    let st =
                        tinv_session_infer_depth(s, x(b).0, x(b).1, b, d, logits.as_mut_ptr(), 40);
                    assert_eq!(st, ok);
                }
            }
        }
        assert_eq!(
            alloc_count::allocations() - before,
            0,
            "the hot path allocated"
        );
        // The counter is live: an error (its message) allocates.
        let bad = tinv_session_infer(s, x(4).0, 1, 4, logits.as_mut_ptr(), 40);
        assert_eq!(bad, Status::InputLength);
        assert!(alloc_count::allocations() > before);
        assert_eq!(tinv_session_free(s), ok);
        assert_eq!(tinv_model_free(m), ok);
    }
}

/// This thread's last error message.
fn last_error() -> String {
    // SAFETY: the pointer is this thread's NUL-terminated message, read before the next call.
    unsafe { std::ffi::CStr::from_ptr(tinv::capi::tinv_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Every failed infer call on a valid session clears the stats, including the failures the
/// NULL checks catch before the session is looked at; an invalid handle changes nothing.
#[test]
fn c_abi_failed_infer_calls_leave_no_stats() {
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    let cfg = tinv::synth::tiny(3, true);
    let bytes = tinv::synth::random_model(&cfg, 5, tinv::format::DType::F32);
    let input = tinv::synth::random_inputs(&cfg, 1, 6);
    let n_in = cfg.input_len();
    let (mut logits, mut stats) = (vec![0f32; 3], vec![StatsC::default(); 2]);
    let (mut m, mut s, mut s2) = (null_mut(), null_mut(), null_mut());
    // SAFETY: every pointer is a live buffer of the stated length, an out slot, or NULL where
    // the call is meant to refuse it.
    unsafe {
        assert_eq!(
            tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), null(), &mut m),
            Status::Ok
        );
        assert_eq!(tinv_session_open(m, null(), &mut s), Status::Ok);
        assert_eq!(tinv_session_open(m, null(), &mut s2), Status::Ok);
        let count = |s: *mut TinvSession, stats: &mut Vec<StatsC>| {
            let mut n = 99usize;
            assert_eq!(
                tinv_session_last_stats(s, stats.as_mut_ptr(), 2, &mut n),
                Status::Ok
            );
            n
        };
        let lg = logits.as_mut_ptr();
        assert_eq!(count(s, &mut stats), 0, "before any call");
        let ok = |s| tinv_session_infer(s, input.as_ptr(), n_in, 1, lg, 3);
        type Call<'a> = Box<dyn Fn() -> Status + 'a>;
        let failures: [(&str, Status, Call); 5] = [
            (
                "NULL input",
                Status::NullArg,
                Box::new(|| tinv_session_infer(s, null(), n_in, 1, lg, 3)),
            ),
            (
                "NULL logits",
                Status::NullArg,
                Box::new(|| tinv_session_infer(s, input.as_ptr(), n_in, 1, null_mut(), 3)),
            ),
            (
                "NULL input, forced depth",
                Status::NullArg,
                Box::new(|| tinv_session_infer_depth(s, null(), n_in, 1, 1, lg, 3)),
            ),
            (
                "batch 0",
                Status::InvalidArg,
                Box::new(|| tinv_session_infer(s, input.as_ptr(), n_in, 0, lg, 3)),
            ),
            (
                "unknown depth",
                Status::InvalidArg,
                Box::new(|| tinv_session_infer_depth(s, input.as_ptr(), n_in, 1, 7, lg, 3)),
            ),
        ];
        for (what, want, call) in &failures {
            assert_eq!(ok(s), Status::Ok);
            assert_eq!(count(s, &mut stats), 1);
            assert_eq!(call(), *want, "{what}");
            assert_eq!(count(s, &mut stats), 0, "stats left behind after {what}");
        }
        // The NULL checks still come first and name the argument.
        assert_eq!(
            tinv_session_infer(s, null(), n_in, 1, lg, 3),
            Status::NullArg
        );
        assert_eq!(last_error(), "tinv_session_infer: argument 'input' is NULL");
        // A failure on another session, or with an invalid handle, leaves this one alone.
        assert_eq!(ok(s), Status::Ok);
        assert_eq!(
            tinv_session_infer(s2, null(), n_in, 1, lg, 3),
            Status::NullArg
        );
        let forged = 0xdead_beef_usize as *mut TinvSession;
        assert_eq!(
            tinv_session_infer(forged, null(), n_in, 1, lg, 3),
            Status::NullArg
        );
        assert_eq!(
            tinv_session_infer(forged, input.as_ptr(), n_in, 1, lg, 3),
            Status::InvalidHandle
        );
        assert_eq!(count(s, &mut stats), 1);
        assert_eq!(tinv_session_free(s2), Status::Ok);
        assert_eq!(tinv_session_free(s), Status::Ok);
        assert_eq!(tinv_model_free(m), Status::Ok);
    }
}

/// Where the engines come from and what `tinv_model_backend` reports, as far as a machine
/// without a GPU can tell: NULL `engines_dir` = `plans/` beside the model file (never the
/// current directory), none for a model opened from bytes; `AUTO` without usable engines is
/// the CPU; `TENSORRT` without them fails at `tinv_model_open` with
/// `TINV_ERR_BACKEND_UNAVAILABLE`. (That `AUTO` reports TensorRT when the engines open needs a
/// GPU with TensorRT.)
#[test]
fn c_abi_backend_is_decided_at_model_open() {
    use std::ffi::CString;
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    let trt = cfg!(feature = "tensorrt");
    let dir = toolchain::scratch("backend");
    let _ = std::fs::remove_dir_all(dir.join("plans"));
    let cfg = tinv::synth::tiny(3, false);
    let bytes = tinv::synth::random_model(&cfg, 9, tinv::format::DType::F32);
    let file = dir.join("model.tinv");
    std::fs::write(&file, &bytes).unwrap();
    let path = CString::new(file.to_str().unwrap()).unwrap();
    let opts = |backend: u32, engines: Option<&CString>| ModelOptions {
        backend,
        engines_dir: engines.map_or(null(), |e| e.as_ptr()),
        ..tinv_model_options_default()
    };
    // SAFETY: every pointer is a live NUL-terminated string, buffer, or out slot.
    unsafe {
        let from_file = |o: &ModelOptions| -> Result<u32, (Status, String)> {
            let mut m = null_mut();
            match tinv_model_open(path.as_ptr(), o, &mut m) {
                Status::Ok => {}
                st => {
                    assert!(m.is_null());
                    return Err((st, last_error()));
                }
            }
            let (mut b, mut s) = (99u32, null_mut());
            assert_eq!(tinv_model_backend(m, &mut b), Status::Ok);
            // A session opens on the backend reported, and runs.
            assert_eq!(tinv_session_open(m, null(), &mut s), Status::Ok);
            let input = vec![0.5f32; cfg.input_len()];
            let mut logits = [0f32; 3];
            let r = tinv_session_infer(s, input.as_ptr(), input.len(), 1, logits.as_mut_ptr(), 3);
            assert_eq!(r, Status::Ok);
            assert_eq!(tinv_session_free(s), Status::Ok);
            assert_eq!(tinv_model_free(m), Status::Ok);
            Ok(b)
        };
        let from_bytes = |o: &ModelOptions| -> Result<u32, (Status, String)> {
            let mut m = null_mut();
            match tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), o, &mut m) {
                Status::Ok => {}
                st => return Err((st, last_error())),
            }
            let mut b = 99u32;
            assert_eq!(tinv_model_backend(m, &mut b), Status::Ok);
            assert_eq!(tinv_model_free(m), Status::Ok);
            Ok(b)
        };
        let unavailable = |r: Result<u32, (Status, String)>, trt_says: &str| {
            let (st, msg) = r.expect_err("TENSORRT without usable engines must fail at open");
            assert_eq!(st, Status::BackendUnavailable, "{msg}");
            let want = if trt {
                trt_says
            } else {
                "TensorRT backend not built"
            };
            assert!(msg.contains(want), "{msg:?} lacks {want:?}");
        };
        let plans = dir.join("plans");

        // No engines anywhere: AUTO and CPU run on the CPU, TENSORRT is refused at open.
        assert_eq!(from_file(&opts(BACKEND_AUTO, None)), Ok(BACKEND_CPU));
        assert_eq!(from_file(&opts(BACKEND_CPU, None)), Ok(BACKEND_CPU));
        assert_eq!(from_bytes(&opts(BACKEND_AUTO, None)), Ok(BACKEND_CPU));
        unavailable(
            from_file(&opts(BACKEND_TENSORRT, None)),
            plans.join("manifest").to_str().unwrap(),
        );
        unavailable(from_file(&opts(BACKEND_TENSORRT, None)), "tinv-run build");
        // From bytes there is no folder to look in (not even the current directory).
        unavailable(
            from_bytes(&opts(BACKEND_TENSORRT, None)),
            "opened from memory has no folder",
        );

        // A manifest beside the model (an unusable one): the default folder is that one.
        std::fs::create_dir_all(&plans).unwrap();
        std::fs::write(plans.join("manifest"), "not a manifest\n").unwrap();
        assert_eq!(from_file(&opts(BACKEND_AUTO, None)), Ok(BACKEND_CPU));
        unavailable(
            from_file(&opts(BACKEND_TENSORRT, None)),
            &format!("TensorRT engines in {}: engine manifest", plans.display()),
        );
        // The same folder named explicitly, for a model from bytes.
        let explicit = CString::new(plans.to_str().unwrap()).unwrap();
        assert_eq!(
            from_bytes(&opts(BACKEND_AUTO, Some(&explicit))),
            Ok(BACKEND_CPU)
        );
        unavailable(
            from_bytes(&opts(BACKEND_TENSORRT, Some(&explicit))),
            &format!("TensorRT engines in {}: engine manifest", plans.display()),
        );
        // Engines built for something else (another manifest schema, found before TensorRT is
        // loaded): their own status, TINV_ERR_ENGINES_STALE, so a program can rebuild them.
        std::fs::write(plans.join("manifest"), "tinv-trt-manifest 1\n").unwrap();
        assert_eq!(from_file(&opts(BACKEND_AUTO, None)), Ok(BACKEND_CPU));
        if trt {
            let (st, msg) = from_file(&opts(BACKEND_TENSORRT, None)).unwrap_err();
            assert_eq!((st, st as u32), (Status::EnginesStale, 302), "{msg}");
            assert!(msg.contains("`schema` is 1"), "{msg}");
        } else {
            unavailable(from_file(&opts(BACKEND_TENSORRT, None)), "");
        }
        std::fs::write(plans.join("manifest"), "not a manifest\n").unwrap();
        // An explicit folder wins over the one beside the model.
        let empty = dir.join("no-engines");
        std::fs::create_dir_all(&empty).unwrap();
        let empty_c = CString::new(empty.to_str().unwrap()).unwrap();
        unavailable(
            from_file(&opts(BACKEND_TENSORRT, Some(&empty_c))),
            &format!("{}: ", empty.join("manifest").display()),
        );
        // "" is refused where the folder is read, ignored where it is not.
        let blank = CString::new("").unwrap();
        assert_eq!(from_file(&opts(BACKEND_CPU, Some(&blank))), Ok(BACKEND_CPU));
        let r = from_file(&opts(BACKEND_AUTO, Some(&blank)));
        if trt {
            let (st, msg) = r.unwrap_err();
            assert_eq!(st, Status::InvalidArg);
            assert!(msg.contains("engines_dir is empty"), "{msg}");
        } else {
            assert_eq!(r, Ok(BACKEND_CPU));
        }
        let _ = std::fs::remove_dir_all(&plans);
    }
}

/// Opening a directory says so, instead of mapping's "No such device"; a FIFO is refused
/// instead of blocking until a writer comes; an empty path is named as such; a file that
/// cannot be mapped says that.
#[test]
fn c_abi_model_open_on_a_directory_fifo_or_empty_path_says_so() {
    use std::ffi::CString;
    let open = |p: &std::path::Path| {
        let path = CString::new(p.to_str().unwrap()).unwrap();
        let mut m = std::ptr::null_mut();
        // SAFETY: a live NUL-terminated string and an out slot.
        let st = unsafe { tinv::capi::tinv_model_open(path.as_ptr(), std::ptr::null(), &mut m) };
        assert!(m.is_null());
        (st, last_error())
    };
    let dir = toolchain::scratch("a-directory");
    assert_eq!(
        open(&dir),
        (
            tinv::capi::Status::Io,
            format!("{}: is a directory, not a .tinv file", dir.display())
        )
    );
    let fifo = dir.join("a-fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let (st, msg) = open(&fifo);
        assert_eq!(st, tinv::capi::Status::Io);
        assert!(
            msg.ends_with("is not a regular file (a device, FIFO or socket), not a .tinv file"),
            "{msg}"
        );
    } else {
        eprintln!("mkfifo unavailable: FIFO case skipped");
    }
    let (st, msg) = open(std::path::Path::new(""));
    assert_eq!(st, tinv::capi::Status::Io);
    assert!(msg.starts_with("empty path: "), "{msg}");
    // A regular file the kernel cannot map said only "No such device (os error 19)".
    let (st, msg) = open(std::path::Path::new("/proc/self/status"));
    assert_eq!(st, tinv::capi::Status::Io);
    assert!(
        msg.starts_with("/proc/self/status: cannot be memory-mapped (")
            && msg.ends_with("); copy it to a local file system"),
        "{msg}"
    );
}

/// `tinv_session_set_budget` with a negative budget restores the model's stored default, as a
/// negative budget in the session options does: the decisions match a fresh session's again;
/// a budget of 0 in the options decides as one set to 0 afterwards.
#[test]
fn c_abi_a_negative_budget_restores_the_models_default() {
    use std::ptr::null_mut;
    use tinv::capi::*;
    let path = std::ffi::CString::new(format!(
        "{}/engines/fmnist/model.tinv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let n = 64;
    let (mut m, mut s) = (null_mut(), null_mut());
    // SAFETY: every pointer is a live buffer of the stated length, or an out slot.
    unsafe {
        let ok = Status::Ok;
        assert_eq!(tinv_model_open(path.as_ptr(), std::ptr::null(), &mut m), ok);
        let mut len = 0;
        assert_eq!(tinv_model_input_len(m, &mut len), ok);
        let mut default = -1.0;
        assert_eq!(tinv_model_default_budget(m, &mut default), ok);
        assert!(default > 0.0 && default < 1.0, "{default}");
        // Discs of many sizes and places: unlike noise (confidently "bag" at depth 2), some of
        // them the controller continues at small budgets.
        let mut rng = tinv::synth::Rng::new(3);
        let mut input = Vec::with_capacity(n * len);
        for _ in 0..n {
            let (r, cx, cy) = (3.0 + 11.0 * rng.uniform(), 14.0, 10.0 + 8.0 * rng.uniform());
            input.extend((0..len).map(|i| {
                let (x, y) = ((i % 28) as f32, (i / 28) as f32);
                f32::from(u8::from((x - cx).powi(2) + (y - cy).powi(2) < r * r))
            }));
        }
        let mut o = tinv_session_options_default();
        o.max_batch = n as u32;
        assert_eq!(tinv_session_open(m, &o, &mut s), ok);
        let mut logits = vec![0f32; n * 10];
        let mut stats = vec![StatsC::default(); n];
        let mut run = |s| {
            let st = tinv_session_infer(
                s,
                input.as_ptr(),
                input.len(),
                n,
                logits.as_mut_ptr(),
                n * 10,
            );
            assert_eq!(st, ok);
            let mut count = 0;
            assert_eq!(
                tinv_session_last_stats(s, stats.as_mut_ptr(), n, &mut count),
                ok
            );
            stats[..count].iter().map(|x| x.flops).collect::<Vec<_>>()
        };
        let at_default = run(s);
        assert_eq!(tinv_session_set_budget(s, 0.0), ok);
        let at_zero = run(s);
        assert_ne!(
            at_zero, at_default,
            "budget 0 changed no decision: the test shows nothing"
        );
        // 0 in the options is a budget too: only a negative one means the model's default.
        let mut z = null_mut();
        o.budget = 0.0;
        assert_eq!(tinv_session_open(m, &o, &mut z), ok);
        assert_eq!(run(z), at_zero);
        assert_eq!(tinv_session_free(z), ok);
        assert_eq!(tinv_session_set_budget(s, -1.0), ok);
        assert_eq!(run(s), at_default);
        assert_eq!(tinv_session_set_budget(s, f32::NAN), Status::InvalidArg);
        assert_eq!(tinv_session_free(s), ok);
        assert_eq!(tinv_model_free(m), ok);
    }
}

/// `tinv_model_image_input`: a camera frame (BGR8, rows padded) of the model's size becomes the
/// input the library's converter gives, luma for a grey model; bad calls get their status.
#[test]
fn c_abi_converts_camera_pixels_to_the_input() {
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    let path = std::ffi::CString::new(format!(
        "{}/engines/fmnist/model.tinv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (w, h, stride) = (28usize, 28usize, 28 * 3 + 5);
    let frame: Vec<u8> = (0..stride * h).map(|i| (i * 7 % 251) as u8).collect();
    let mut m = null_mut();
    // SAFETY: every pointer is a live buffer of the stated length, an out slot, or NULL where the
    // call is meant to refuse it.
    unsafe {
        assert_eq!(tinv_model_open(path.as_ptr(), null(), &mut m), Status::Ok);
        let mut out = vec![-1f32; 784];
        let conv = |px: *const u8, w, stride, fmt, out: &mut [f32]| {
            tinv_model_image_input(m, px, w, h, stride, fmt, out.as_mut_ptr(), out.len())
        };
        assert_eq!(
            conv(frame.as_ptr(), w, stride, PIXELS_BGR8, &mut out),
            Status::Ok
        );
        // Pixel (row 3, column 5), by hand: bytes B, G, R at 3·stride + 15.
        let p = &frame[3 * stride + 15..][..3];
        let luma = (0.299 * p[2] as f32 + 0.587 * p[1] as f32 + 0.114 * p[0] as f32) / 255.0;
        assert!((out[3 * 28 + 5] - luma).abs() < 1e-6);
        let mut want = vec![0f32; 784];
        let model = tinv::Model::open(path.to_str().unwrap(), &Default::default()).unwrap();
        tinv::pixels::to_input(
            model.config(),
            &frame,
            w,
            h,
            stride,
            tinv::pixels::PixelFormat::Bgr8,
            &mut want,
        )
        .unwrap();
        assert_eq!(out, want);
        assert_eq!(
            conv(null(), w, stride, PIXELS_BGR8, &mut out),
            Status::NullArg
        );
        assert_eq!(
            conv(frame.as_ptr(), w, stride, 9, &mut out),
            Status::InvalidArg
        );
        assert_eq!(
            conv(frame.as_ptr(), 27, stride, PIXELS_BGR8, &mut out),
            Status::InvalidArg
        );
        assert!(last_error().contains("27x28"), "{}", last_error());
        assert_eq!(
            conv(frame.as_ptr(), w, 80, PIXELS_BGR8, &mut out),
            Status::InvalidArg
        );
        assert_eq!(
            conv(frame.as_ptr(), w, usize::MAX / 2, PIXELS_BGR8, &mut out),
            Status::InvalidArg
        );
        assert_eq!(
            conv(frame.as_ptr(), w, stride, PIXELS_BGR8, &mut out[..783]),
            Status::BufferTooSmall
        );
        assert_eq!(tinv_model_free(m), Status::Ok);
    }
}

/// `tinv_session_infer_stats` gives the logits and stats that `tinv_session_infer` and
/// `tinv_session_last_stats` give, in one call; a short or NULL stats buffer is refused before
/// anything runs. The session's sizes are its options and the Rust API's arena.
#[test]
fn c_abi_infer_with_stats_in_one_call() {
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    let cfg = tinv::synth::tiny(3, true);
    let bytes = tinv::synth::random_model(&cfg, 8, tinv::format::DType::F32);
    let input = tinv::synth::random_inputs(&cfg, 3, 9);
    let (mut m, mut s) = (null_mut(), null_mut());
    // SAFETY: every pointer is a live buffer of the stated length, an out slot, or NULL where
    // the call is meant to refuse it.
    unsafe {
        let ok = Status::Ok;
        let st = tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), null(), &mut m);
        assert_eq!(st, ok);
        let mut o = tinv_session_options_default();
        (o.max_batch, o.threads) = (3, 2);
        assert_eq!(tinv_session_open(m, &o, &mut s), ok);
        // The session's sizes: its options (no two alike) and the arena of the Rust API's
        // session of the same model and options.
        let (mut batch, mut threads, mut arena) = (0, 0, 0);
        assert_eq!(tinv_session_max_batch(s, &mut batch), ok);
        assert_eq!(tinv_session_threads(s, &mut threads), ok);
        assert_eq!(tinv_session_arena_bytes(s, &mut arena), ok);
        let model = tinv::Model::from_bytes(&bytes, &Default::default()).unwrap();
        let opts = tinv::SessionOptions::default().max_batch(3).threads(2);
        let rust = tinv::Session::new(std::sync::Arc::new(model), opts).unwrap();
        assert_eq!((batch, threads, arena), (3, 2, rust.arena_bytes()));
        let (mut a, mut b) = (vec![0f32; 9], vec![-1f32; 9]);
        let (mut sa, mut sb, mut n) = (vec![StatsC::default(); 3], vec![StatsC::default(); 3], 0);
        let x = (input.as_ptr(), input.len());
        assert_eq!(tinv_session_infer(s, x.0, x.1, 3, a.as_mut_ptr(), 9), ok);
        assert_eq!(tinv_session_last_stats(s, sa.as_mut_ptr(), 3, &mut n), ok);
        assert_eq!(n, 3);
        let both = |b: &mut [f32], st: *mut StatsC, len| {
            tinv_session_infer_stats(s, x.0, x.1, 3, b.as_mut_ptr(), 9, st, len)
        };
        assert_eq!(both(&mut b, sb.as_mut_ptr(), 3), ok);
        assert_eq!(a, b);
        for (p, q) in sa.iter().zip(&sb) {
            assert_eq!(
                (p.depth, p.class_id, p.flops, p.confidence),
                (q.depth, q.class_id, q.flops, q.confidence)
            );
        }
        let mut c = vec![-1f32; 9];
        assert_eq!(both(&mut c, sb.as_mut_ptr(), 2), Status::BufferTooSmall);
        assert_eq!(both(&mut c, null_mut(), 3), Status::NullArg);
        assert!(c.iter().all(|&v| v == -1.0), "a refused call wrote logits");
        assert_eq!(tinv_session_free(s), ok);
        assert_eq!(tinv_model_free(m), ok);
    }
}

/// `verify` (tinv.h: nonzero recomputes every tensor checksum at open): a flipped bit in a
/// tensor's data opens without it and is `TINV_ERR_CHECKSUM` naming the tensor with it.
#[test]
fn c_abi_verify_option_recomputes_the_tensor_checksums() {
    use tinv::capi::*;
    let cfg = tinv::synth::tiny(3, false);
    let mut bytes = tinv::synth::random_model(&cfg, 5, tinv::format::DType::F32);
    let t = tinv::format::parse(&bytes).unwrap().tensors[0].clone();
    bytes[t.offset + t.nbytes / 2] ^= 0x10;
    let open = |verify: u32| {
        let o = ModelOptions {
            verify,
            ..tinv_model_options_default()
        };
        let mut m = std::ptr::null_mut();
        // SAFETY: live bytes of the stated length, a valid options struct, an out slot; `m` is
        // a handle of this library or NULL.
        unsafe {
            let s = tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), &o, &mut m);
            let msg = last_error();
            assert_eq!(tinv_model_free(m), Status::Ok);
            (s, msg)
        }
    };
    assert_eq!(open(0).0, Status::Ok);
    for verify in [1, 7] {
        let (s, msg) = open(verify);
        assert_eq!(s, Status::Checksum, "verify = {verify}");
        assert!(msg.contains(&format!("tensor '{}'", t.name)), "{msg}");
    }
}

/// `tinv_model_open_bytes` refuses a `len` past `PTRDIFF_MAX` (tinv.h: `TINV_ERR_INVALID_ARG`)
/// before it reads a byte, and leaves `*out` alone.
#[test]
fn c_abi_open_bytes_refuses_a_length_past_ptrdiff_max() {
    use tinv::capi::*;
    let cfg = tinv::synth::tiny(3, false);
    let bytes = tinv::synth::random_model(&cfg, 5, tinv::format::DType::F32);
    for len in [isize::MAX as usize + 1, usize::MAX] {
        let mut m = std::ptr::null_mut();
        // SAFETY: live bytes and an out slot; the header promises that a `len` past
        // PTRDIFF_MAX is refused without reading `data`.
        let st =
            unsafe { tinv_model_open_bytes(bytes.as_ptr().cast(), len, std::ptr::null(), &mut m) };
        assert_eq!(st, Status::InvalidArg, "len {len}");
        assert!(m.is_null());
        assert!(last_error().contains(&len.to_string()), "{}", last_error());
    }
}

/// The model queries report the file's values, on a model where no two of them coincide: a
/// 3-channel 8 × 12 input (so that channels, height and width in the wrong slot show), a
/// stored default budget of 0.375 (0 without a controller, tinv.h), and the host weights as
/// 4 bytes for each element of each tensor the f32 file lists.
#[test]
fn c_abi_model_queries_report_the_files_values() {
    use tinv::capi::*;
    let mut cfg = tinv::synth::config(8, 3, 4, 16, 2, 2, 5, &[1, 2], true);
    cfg.image_w = 12;
    cfg.controller.as_mut().unwrap().default_budget = 0.375;
    let mut plain = cfg.clone();
    plain.controller = None;
    for (cfg, budget) in [(&cfg, 0.375f32), (&plain, 0.0)] {
        let bytes = tinv::synth::random_model(cfg, 3, tinv::format::DType::F32);
        let index = tinv::format::parse(&bytes).unwrap();
        let elements: usize = index
            .tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        let mut m = std::ptr::null_mut();
        // SAFETY: live bytes of the stated length, out slots of the declared types.
        unsafe {
            let st =
                tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), std::ptr::null(), &mut m);
            assert_eq!(st, Status::Ok);
            let (mut c, mut h, mut w, mut len) = (0, 0, 0, 0);
            assert_eq!(
                tinv_model_input_shape(m, &mut c, &mut h, &mut w),
                Status::Ok
            );
            assert_eq!((c, h, w), (3, 8, 12));
            assert_eq!(tinv_model_input_len(m, &mut len), Status::Ok);
            assert_eq!(len, 3 * 8 * 12);
            let (mut classes, mut paths) = (0, 0);
            assert_eq!(tinv_model_num_classes(m, &mut classes), Status::Ok);
            assert_eq!(tinv_model_num_paths(m, &mut paths), Status::Ok);
            assert_eq!((classes, paths), (5, 2));
            let mut b = -1.0f32;
            assert_eq!(tinv_model_default_budget(m, &mut b), Status::Ok);
            assert_eq!(b, budget);
            let mut wb = 0u64;
            assert_eq!(tinv_model_weight_bytes(m, &mut wb), Status::Ok);
            assert_eq!(wb, 4 * elements as u64);
            assert_eq!(tinv_model_free(m), Status::Ok);
        }
    }
}

/// A session runs on the backend its model was given at open (tinv.h: "decided here, once for
/// every session on the model"): opening one does not decide again. A model asked for `AUTO`
/// logs why it got the CPU at `tinv_model_open_bytes`; its session's open logs no such reason
/// (a session that asked for `AUTO` itself would).
#[test]
fn c_abi_session_open_does_not_decide_the_backend_again() {
    use std::cell::RefCell;
    use std::ffi::{c_char, c_void, CStr};
    use std::ptr::{null, null_mut};
    use tinv::capi::*;
    thread_local! {
        /// The records logged on this test's thread (other tests log on theirs).
        static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }
    unsafe extern "C" fn record(_: u32, message: *const c_char, _: *mut c_void) {
        // SAFETY: the library passes a NUL-terminated message valid for this call.
        let text = unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned();
        SEEN.with(|s| s.borrow_mut().push(text));
    }
    let taken = || SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let cfg = tinv::synth::tiny(3, false);
    let bytes = tinv::synth::random_model(&cfg, 4, tinv::format::DType::F32);
    let (mut m, mut s) = (null_mut(), null_mut());
    // SAFETY: `record` may be called from any thread for the process's life; live bytes of the
    // stated length and out slots.
    unsafe {
        assert_eq!(
            tinv_set_log_callback(Some(record), null_mut(), 5),
            Status::Ok
        );
        let st = tinv_model_open_bytes(bytes.as_ptr().cast(), bytes.len(), null(), &mut m);
        assert_eq!(st, Status::Ok);
        let at_model_open = taken();
        assert!(
            at_model_open.iter().any(|r| r.contains("using the CPU")),
            "the model's open logged no reason: {at_model_open:?}"
        );
        assert_eq!(tinv_session_open(m, null(), &mut s), Status::Ok);
        let at_session_open = taken();
        assert_eq!(tinv_set_log_callback(None, null_mut(), 0), Status::Ok);
        assert!(
            !at_session_open.iter().any(|r| r.contains("using the CPU")),
            "the session decided its backend again: {at_session_open:?}"
        );
        assert_eq!(tinv_session_free(s), Status::Ok);
        assert_eq!(tinv_model_free(m), Status::Ok);
    }
}
