//! Opening and reading files a user names (data sets, images, checkpoints, manifests): regular
//! files only.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens `path` for reading if it is a regular file, else fails with "not a regular file".
/// Checked before opening: opening a FIFO blocks until a writer comes, and a device such as
/// `/dev/zero` never ends.
pub fn open_regular(path: &Path) -> io::Result<File> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    File::open(path)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_limit_only() {
        let dir = std::env::temp_dir().join(format!("tinv-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.txt");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_regular_text(&f, 5).unwrap(), "hello");
        assert!(read_regular_capped(&f, 4)
            .unwrap_err()
            .to_string()
            .contains("larger than 4 bytes"));
        assert_eq!(read_regular(&f).unwrap(), b"hello");
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_regular_text(&f, 10).is_err());
        for irregular in [Path::new("/dev/zero"), dir.as_path()] {
            let e = read_regular(irregular).unwrap_err();
            assert_eq!(e.to_string(), "not a regular file", "{irregular:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
