//! Opening files a user names (data sets, images): regular files only.

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
