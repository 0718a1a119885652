//! include/tinv.h against libtinv.so and the Rust side: the header declares exactly the exported
//! functions, with the prototypes of their Rust signatures; a C program built against it prints
//! the struct layouts, enum values and constants the Rust side has (also under `-fshort-enums`);
//! the library's SONAME names the ABI generation; the version macros match Cargo's.
//!
//! Environment: `CC` picks the C compiler (default `cc`).

#[path = "capi/signatures.rs"]
mod signatures;
#[path = "capi/toolchain.rs"]
#[allow(dead_code)] // the C programs' `Lang`s are for capi.rs
mod toolchain;

use toolchain::{compile, have, root, run, Lang};

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
