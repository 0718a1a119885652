//! Opening and reading files a user names (data sets, images, checkpoints, manifests), and
//! where to write one atomically: regular files only.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Opens `path` for reading if it is a regular file, else fails with "not a regular file".
/// Checked before opening: opening a FIFO blocks until a writer comes, and a device such as
/// `/dev/zero` never ends (see [`open_checked`]).
pub fn open_regular(path: &Path) -> io::Result<File> {
    open_checked(path, regular_only)
}

/// [`open_regular`]'s check: a regular file, else "not a regular file".
fn regular_only(kind: std::fs::FileType) -> io::Result<()> {
    if kind.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

/// Opens `path` for reading once `check` accepts its type: first by path, before opening (a
/// device may act on being opened), then on the file opened, which a rename may have swapped
/// in since. The open does not block where the platform's `O_NONBLOCK` is known (Linux but
/// MIPS and SPARC), so a FIFO swapped in is refused instead of blocking for ever.
pub fn open_checked(
    path: &Path,
    check: impl Fn(std::fs::FileType) -> io::Result<()>,
) -> io::Result<File> {
    check(std::fs::metadata(path)?.file_type())?;
    open_then_check(path, check)
}

/// [`open_checked`]'s second half: a non-blocking open and the check of what it opened.
fn open_then_check(
    path: &Path,
    check: impl Fn(std::fs::FileType) -> io::Result<()>,
) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    non_blocking(&mut options);
    let file = match options.open(path) {
        // A lease on the file (Samba's oplocks, an NFS server's delegations) refuses a
        // non-blocking open; a blocking one waits for the lease to break, as it always did.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => File::open(path)?,
        opened => opened?,
    };
    check(file.metadata()?.file_type())?;
    Ok(file)
}

/// Whether [`open_checked`] opens without blocking here: `O_NONBLOCK` is 0o4000 on Linux but
/// on MIPS and SPARC (and Alpha and PA-RISC, which Rust does not target).
const NON_BLOCKING_OPEN: bool = cfg!(all(
    target_os = "linux",
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "mips32r6",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
));

fn non_blocking(options: &mut std::fs::OpenOptions) {
    #[cfg(target_os = "linux")]
    if NON_BLOCKING_OPEN {
        std::os::unix::fs::OpenOptionsExt::custom_flags(options, 0o4000);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = options;
}

/// Reads all of the regular file `path` ([`open_regular`]); its size bounds the read.
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    io::Read::read_to_end(&mut open_regular(path)?, &mut v)?;
    Ok(v)
}

/// [`read_regular`], refusing a file of more than `limit` bytes ("larger than …") instead of
/// holding it: for files that are small when they are what they claim (text, images).
pub fn read_regular_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(open_regular(path)?, limit + 1), &mut v)?;
    if v.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            if limit.is_multiple_of(1 << 20) {
                format!("larger than {} MiB", limit >> 20)
            } else {
                format!("larger than {limit} bytes")
            },
        ));
    }
    Ok(v)
}

/// [`read_regular_capped`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_regular_capped(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Where an atomic write of `path` (a temporary file beside it, then a rename onto it) must go:
/// `path` itself, or the file a symbolic link there ends at, so that the link stays a link and
/// the file it names is the one written. Fails when that exists and is not a regular file: the
/// rename would replace a device node (`/dev/null`), a FIFO or a socket with a plain file, and
/// fail on a directory only after all the work.
pub fn write_destination(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    // Linux's own limit on links followed in one lookup.
    for _ in 0..40 {
        let meta = match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", p.display()))),
            Ok(m) => m,
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(&p)?;
            // A relative target is relative to the link's folder; `join` keeps an absolute one.
            p = p
                .parent()
                .map_or_else(|| target.clone(), |d| d.join(&target));
        } else if kind.is_file() {
            return Ok(p);
        } else {
            let what = if kind.is_dir() {
                "is a directory"
            } else {
                "is not a regular file (a device, FIFO or socket), which the write would replace"
            };
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} {what}", p.display()),
            ));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: too many levels of symbolic links", path.display()),
    ))
}

/// Writes `bytes` to `path` atomically: a temporary file of our own beside it (same file system,
/// so the rename is atomic), synced, then renamed over the name, which replaces whatever entry
/// held it; on failure the temporary file is removed and nothing under `path` changes. A stale
/// temporary file of a crashed run under the same process id (common in containers) is replaced.
/// Callers that must not replace a link or a device resolve `path` with [`write_destination`]
/// first.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_staged(path, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The first half of [`replace_atomically`]: writes and syncs `bytes` to a temporary file of
/// our own beside `path` (`<name>.<pid>.<n>.partial`) and returns its name, for the caller to
/// rename over `path` (or remove); on failure nothing is left.
pub fn write_staged(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    // The process id and a count: two writes of the same file in one process (two threads
    // exporting into one folder) must not take each other's temporary for a stale one.
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.partial", std::process::id()));
    let tmp = path.with_file_name(name);
    let written = (|| {
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = File::create_new(&tmp)?;
        io::Write::write_all(&mut f, bytes)?;
        f.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The command-line arguments after the program name, for tools whose paths are UTF-8: an
/// argument that is not (a file name in another encoding) is an error naming it, where
/// `std::env::args` panics.
pub fn utf8_args() -> Result<Vec<String>, String> {
    std::env::args_os()
        .skip(1)
        .map(|a| {
            a.into_string().map_err(|a| {
                format!(
                    "argument '{}' is not valid UTF-8 (rename the file)",
                    a.to_string_lossy()
                )
            })
        })
        .collect()
}

/// `tinv-NAME-PID` under the temp folder, with nothing left there: process ids repeat (a fresh
/// CI machine runs the tests twice), so what an earlier run under the same id left is removed.
/// Not created: a test that needs the folder makes it.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `open_checked` meets when a rename swaps a FIFO in after its check by path: the open
    /// itself must not block (no writer ever comes), and the opened file is refused.
    #[test]
    fn a_fifo_reached_past_the_path_check_is_refused_without_blocking() {
        if !NON_BLOCKING_OPEN {
            return;
        }
        let dir = test_dir("fifo");
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("model.tinv");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(open_then_check(&path, regular_only).map(|_| ())));
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("opening a FIFO blocked");
        let e = got.unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file under another process's write lease (Samba's oplocks, an NFS server's
    /// delegations) refuses the non-blocking open; the blocking one waits for the lease to be
    /// given back, then reads the file. No sleep decides the order: the lease is given back
    /// only once the kernel reports the break the reader's open began, and the reader must
    /// still be waiting then.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_leased_file_opens_once_the_lease_is_given_back() {
        use std::os::fd::AsRawFd;
        use std::time::{Duration, Instant};
        extern "C" {
            fn fcntl(fd: i32, cmd: i32, ...) -> i32;
        }
        // The lease break signals the holder, this process: SIGWINCH, which it ignores by
        // default, rather than SIGIO, which would end it.
        const F_SETSIG: i32 = 10;
        const SIGWINCH: i32 = 28;
        const F_SETLEASE: i32 = 1024;
        const F_GETLEASE: i32 = 1025;
        const F_WRLCK: i32 = 1;
        const F_UNLCK: i32 = 2;
        if !NON_BLOCKING_OPEN {
            return;
        }
        let dir = test_dir("lease");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("leased");
        std::fs::write(&path, "x").unwrap();
        let holder = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        // SAFETY: fcntl on a file descriptor this test owns, with integer arguments.
        let fd = holder.as_raw_fd();
        assert_eq!(unsafe { fcntl(fd, F_SETSIG, SIGWINCH) }, 0);
        // SAFETY: as above.
        if unsafe { fcntl(fd, F_SETLEASE, F_WRLCK) } != 0 {
            // A file system without leases (overlayfs, some network ones): nothing to test.
            eprintln!("no lease: {}", std::io::Error::last_os_error());
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn({
            let path = path.clone();
            move || tx.send(open_then_check(&path, regular_only).map(|_| ()))
        });
        // While a break is pending, F_GETLEASE gives the type the holder must go down to (a
        // read lease, for a reader) instead of the write lease it holds (fcntl(2)).
        let start = Instant::now();
        // SAFETY: as above.
        while unsafe { fcntl(fd, F_GETLEASE) } == F_WRLCK {
            assert!(
                rx.try_recv().is_err(),
                "the reader finished without breaking the lease"
            );
            assert!(start.elapsed() < Duration::from_secs(20), "no lease break");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            rx.try_recv().is_err(),
            "the reader did not wait for the lease to be given back"
        );
        // SAFETY: as above.
        assert_eq!(unsafe { fcntl(fd, F_SETLEASE, F_UNLCK) }, 0);
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the reader still waits after the lease was given back")
            .unwrap();
        reader.join().unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_regular_files_within_the_limit_only() {
        let dir = test_dir("files");
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.txt");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_regular_text(&f, 5).unwrap(), "hello");
        assert!(read_regular_capped(&f, 4)
            .unwrap_err()
            .to_string()
            .contains("larger than 4 bytes"));
        assert_eq!(read_regular(&f).unwrap(), b"hello");
        // A limit of whole MiB is named in MiB.
        std::fs::write(&f, vec![0u8; (1 << 20) + 1]).unwrap();
        let e = read_regular_capped(&f, 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "larger than 1 MiB");
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_regular_text(&f, 10).is_err());
        for irregular in [Path::new("/dev/zero"), dir.as_path()] {
            let e = read_regular(irregular).unwrap_err();
            assert_eq!(e.to_string(), "not a regular file", "{irregular:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_go_to_regular_files_and_through_links() {
        let dir = test_dir("dest");
        std::fs::create_dir_all(&dir).unwrap();
        let (file, new) = (dir.join("a.tinv"), dir.join("new.tinv"));
        std::fs::write(&file, "x").unwrap();
        assert_eq!(write_destination(&file).unwrap(), file);
        assert_eq!(write_destination(&new).unwrap(), new);
        // Links are followed, relative ones from the link's folder, dangling ones too.
        let (rel, dangling, to_dev) = (dir.join("rel"), dir.join("dangling"), dir.join("dev"));
        std::os::unix::fs::symlink("a.tinv", &rel).unwrap();
        std::os::unix::fs::symlink(&new, &dangling).unwrap();
        std::os::unix::fs::symlink("/dev/null", &to_dev).unwrap();
        assert_eq!(write_destination(&rel).unwrap(), file);
        assert_eq!(write_destination(&dangling).unwrap(), new);
        // Devices (also behind a link) and folders are refused, naming what was found.
        for (p, shown) in [
            (Path::new("/dev/null"), "/dev/null"),
            (to_dev.as_path(), "/dev/null"),
        ] {
            let e = write_destination(p).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "{shown} is not a regular file (a device, FIFO or socket), which the \
                     write would replace"
                )
            );
        }
        let e = write_destination(&dir).unwrap_err().to_string();
        assert_eq!(e, format!("{} is a directory", dir.display()));
        // A lookup that fails for another reason than a missing name (a file used as a
        // folder) is an error, not a place to write.
        let e = write_destination(&file.join("x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotADirectory, "{e}");
        // A loop ends with an error, not a hang.
        let (l1, l2) = (dir.join("l1"), dir.join("l2"));
        std::os::unix::fs::symlink(&l2, &l1).unwrap();
        std::os::unix::fs::symlink(&l1, &l2).unwrap();
        assert!(write_destination(&l1)
            .unwrap_err()
            .to_string()
            .ends_with("too many levels of symbolic links"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
