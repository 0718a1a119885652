//! scripts/install.sh: bad arguments are one `error:` line, the TensorRT shims go beside
//! libtinv.so, and a C program built only from `pkg-config --cflags --libs tinv` (shared and
//! `--static`) against the installed package runs like one built in the tree.
//!
//! Environment: `CC` picks the C compiler (default `cc`).

#[path = "capi/toolchain.rs"]
#[allow(dead_code)] // the C programs' `Lang`s and the symbol lists are for the other capi*.rs
mod toolchain;

use toolchain::{have, root, run, Lang};

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
