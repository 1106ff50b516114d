//! Reading and writing the kernel's attribute files (sysfs, procfs) under the configured root.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `root` joined with a path given relative to `/` (`"sys/power/state"`).
pub fn under(root: &Path, relative: &str) -> PathBuf {
    root.join(relative)
}

/// The file's content, or `None` when it does not exist.
pub fn read_optional(path: &Path, function: &'static str) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::system(
            function,
            &e,
            format!("Unable to read '{}'", path.display()),
        )),
    }
}

/// An attribute's value, read with one `read(2)`: a sysfs attribute holds at most one page
/// and comes whole from the first read (a file standing in for one that never ends, such
/// as `/dev/full` in tests, is cut short). One system call where `fs::read_to_string`
/// makes three: `virNodeSuspend` reads two attributes (`scripts/bench`).
pub fn read_attribute(path: &Path, function: &'static str) -> Result<String> {
    use std::io::Read;
    let failed =
        |e: &io::Error| Error::system(function, e, format!("Unable to read '{}'", path.display()));
    let mut page = [0u8; 4096];
    let length = fs::File::open(path)
        .and_then(|mut file| file.read(&mut page))
        .map_err(|e| failed(&e))?;
    String::from_utf8(page[..length].to_vec())
        .map_err(|_| failed(&io::Error::from(io::ErrorKind::InvalidData)))
}

/// Writes `value` to an existing attribute in one `write(2)`, as sysfs requires; the file
/// is never created (a missing attribute is an error, not something to make up).
pub fn write(path: &Path, value: &str, function: &'static str) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(value.as_bytes()))
        .map_err(|e| {
            Error::system(
                function,
                &e,
                format!("Unable to write '{value}' to '{}'", path.display()),
            )
        })
}
