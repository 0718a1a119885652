//! Where `libtinv_trt<major>.so` is looked for. A shim runs with the process's rights, so only
//! places its installer controls are searched: `$TINV_TRT_SHIM_DIR` (ignored in a setuid or
//! setgid process, as the dynamic loader ignores `LD_LIBRARY_PATH` there), the folder of the
//! binary this code is in (`libtinv.so`'s folder for a C program, the executable's for
//! `tinv-run`), the cargo build folder only for binaries of that same build (tests, `cargo run`),
//! then the loader's search path.

use std::path::{Path, PathBuf};

/// Where `libtinv_trt<major>.so` may be, in search order; the last is the bare name.
pub(crate) fn shim_candidates(major: u32) -> Vec<PathBuf> {
    candidates_from(env_dir(), major)
}

/// `$TINV_TRT_SHIM_DIR`, unless the process runs in secure-execution mode.
pub(crate) fn env_dir() -> Option<PathBuf> {
    std::env::var_os("TINV_TRT_SHIM_DIR")
        .filter(|_| !secure_execution())
        .map(PathBuf::from)
}

/// [`shim_candidates`] with the environment's folder given.
fn candidates_from(env: Option<PathBuf>, major: u32) -> Vec<PathBuf> {
    let name = format!("libtinv_trt{major}.so");
    let mut dirs: Vec<PathBuf> = env.into_iter().collect();
    dirs.extend(own_folder());
    dirs.extend(build_folder());
    let mut out: Vec<PathBuf> = dirs
        .into_iter()
        .map(|d| d.join(&name))
        .filter(|p| p.is_file())
        .collect();
    out.push(PathBuf::from(name)); // bare name: LD_LIBRARY_PATH / ldconfig
    out
}

/// Whether the process runs in secure-execution mode (setuid, setgid or file capabilities),
/// where environment variables must not choose code to load.
fn secure_execution() -> bool {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn getauxval(kind: std::ffi::c_ulong) -> std::ffi::c_ulong;
        }
        const AT_SECURE: std::ffi::c_ulong = 23;
        // SAFETY: getauxval (glibc ≥ 2.16, musl, bionic) reads the process's auxiliary
        // vector; any key is valid (an unknown one returns 0).
        unsafe { getauxval(AT_SECURE) != 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The folder of the file mapped where this function's code is: the shared library that holds
/// tinv-sys (`libtinv.so`), or the executable it is linked into.
fn own_folder() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    folder_of(&maps, own_folder as fn() -> Option<PathBuf> as usize)
}

/// The folder of the file that `maps` (the text of `/proc/<pid>/maps`) maps at `addr`.
fn folder_of(maps: &str, addr: usize) -> Option<PathBuf> {
    maps.lines().find_map(|line| {
        let (range, _) = line.split_once(' ')?;
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        if !(start..end).contains(&addr) {
            return None;
        }
        // The path is the last field and the only one with a '/'; it may hold spaces.
        let path = Path::new(&line[line.find('/')?..]);
        path.parent().map(Path::to_path_buf)
    })
}

/// The build output folder holding the shim, for binaries of this build only: the running
/// executable lies under the same `target/<profile>/` folder (tests in `deps/`, `cargo run`).
/// A binary copied elsewhere (a device, an install) never searches a build tree.
fn build_folder() -> Option<PathBuf> {
    // OUT_DIR is target/<profile>/build/tinv-sys-<hash>/out.
    let dir = PathBuf::from(option_env!("TINV_TRT_SHIM_BUILD_DIR")?);
    // Both resolved: a target folder reached through a symbolic link still matches.
    let profile = std::fs::canonicalize(dir.ancestors().nth(3)?).ok()?;
    let exe = std::fs::canonicalize(std::env::current_exe().ok()?).ok()?;
    exe.starts_with(&profile).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_folder_is_searched_by_this_builds_tests_only() {
        // This test binary lies under the build's target/<profile>/deps: it is of the build
        // whose folder holds the shim (when one was built at all).
        match option_env!("TINV_TRT_SHIM_BUILD_DIR") {
            Some(d) => assert_eq!(build_folder(), Some(PathBuf::from(d))),
            None => assert_eq!(build_folder(), None),
        }
    }

    #[test]
    fn the_folder_is_that_of_the_mapping_holding_the_address() {
        let maps = "\
55d0c0000000-55d0c0010000 r--p 00000000 08:01 1234       /usr/bin/robot
7f0000000000-7f0000100000 r-xp 00010000 08:01 99         /opt/my robot/lib/libtinv.so
7f0000200000-7f0000201000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0          [stack]
";
        assert_eq!(
            folder_of(maps, 0x7f0000000800),
            Some(PathBuf::from("/opt/my robot/lib"))
        );
        assert_eq!(
            folder_of(maps, 0x55d0c000ffff),
            Some(PathBuf::from("/usr/bin"))
        );
        // Anonymous memory, the stack, or no mapping at all: no folder.
        assert_eq!(folder_of(maps, 0x7f0000200010), None);
        assert_eq!(folder_of(maps, 0x7ffd00000010), None);
        assert_eq!(folder_of(maps, 0x10), None);
    }

    #[test]
    fn this_test_binary_finds_its_own_folder() {
        // tinv-sys is linked into the test executable: its code is mapped from that file.
        let exe = std::env::current_exe().unwrap();
        assert_eq!(own_folder().as_deref(), exe.parent());
        // Not setuid.
        assert!(!secure_execution());
    }

    /// Set in a child (see the next test): prints what the search sees.
    const CHILD: &str = "TINV_SEARCH_CHILD";

    /// The numbers of a line of /proc/self/status (`Uid:`, `Gid:`, `Groups:`): the kernel's
    /// word on this process's ids, not the code under test's.
    fn status_ids(name: &str) -> Vec<u32> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect()
    }

    #[test]
    fn child_reports_what_the_search_sees() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let gid = status_ids("Gid:");
        println!(
            "CHILD gid={}/{} secure={} env_dir={:?}",
            gid[0],
            gid[1],
            secure_execution(),
            env_dir()
        );
    }

    /// A setgid copy of this test binary, run with `$TINV_TRT_SHIM_DIR` set: the kernel runs it
    /// in secure-execution mode (its effective group is not its real one), where the variable
    /// must not choose the shim, as the dynamic loader ignores `LD_LIBRARY_PATH` there. Skips
    /// where no group other than the real one can be given (an unprivileged user in no second
    /// group) or setgid is not honoured (a `nosuid` mount, `no_new_privs`).
    #[test]
    #[cfg(target_os = "linux")]
    fn a_setgid_process_ignores_tinv_trt_shim_dir() {
        use std::os::unix::fs::PermissionsExt;
        use std::process::Command;
        let (uid, gid) = (status_ids("Uid:")[0], status_ids("Gid:")[0]);
        // Root may give the copy any group; anyone else one of their supplementary groups.
        let other = status_ids("Groups:")
            .into_iter()
            .find(|&g| g != gid)
            .or((uid == 0).then_some(if gid == 65534 { 65533 } else { 65534 }));
        let Some(other) = other else {
            return eprintln!("SKIPPED: no group but the real one to make a setgid copy with");
        };
        let dir = std::env::temp_dir().join(format!("tinv-search-setgid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("search-tests");
        std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
        let run = |exe: &Path| {
            let out = Command::new(exe)
                .args([
                    "--exact",
                    "search::tests::child_reports_what_the_search_sees",
                ])
                .args(["--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .env("TINV_TRT_SHIM_DIR", "/chosen/by/the/environment")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // libtest prints the test's name on the same line, before its output.
            let line = text
                .lines()
                .find_map(|l| l.find("CHILD ").map(|at| l[at..].to_string()));
            line.unwrap_or_else(|| panic!("no CHILD line in:\n{text}"))
        };
        // Not setgid: the variable's folder is searched.
        let plain = run(&copy);
        std::os::unix::fs::chown(&copy, None, Some(other)).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o2755)).unwrap();
        let setgid = run(&copy);
        std::fs::remove_dir_all(&dir).unwrap();
        let searched = "env_dir=Some(\"/chosen/by/the/environment\")";
        assert_eq!(
            plain,
            format!("CHILD gid={gid}/{gid} secure=false {searched}")
        );
        // The kernel's word: the effective group stayed the real one.
        if setgid.starts_with(&format!("CHILD gid={gid}/{gid} ")) {
            return eprintln!(
                "SKIPPED: the setgid bit is not honoured here (nosuid, no_new_privs)"
            );
        }
        assert_eq!(
            setgid,
            format!("CHILD gid={gid}/{other} secure=true env_dir=None")
        );
    }

    #[test]
    fn the_environment_folder_comes_first_and_the_bare_name_last() {
        let dir = std::env::temp_dir().join(format!("tinv-shim-search-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shim = dir.join("libtinv_trt77.so");
        std::fs::write(&shim, b"").unwrap();
        let c = candidates_from(Some(dir.clone()), 77);
        // A folder without the file is passed over.
        let none = candidates_from(Some(dir.join("empty")), 77);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.first(), Some(&shim));
        assert_eq!(c.last(), Some(&PathBuf::from("libtinv_trt77.so")));
        assert_eq!(none, [PathBuf::from("libtinv_trt77.so")]);
    }
}
