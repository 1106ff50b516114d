//! Reading and writing the kernel's attribute files (sysfs, procfs) under the configured root.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};

/// `root` joined with a path given relative to `/` (`"sys/power/state"`).
pub fn under(root: &Path, relative: &str) -> PathBuf {
    root.join(relative)
}

/// The file's content, or `None` when it does not exist.
pub fn read_optional(path: &Path, function: &'static str) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => text(path, bytes, function).map(Some),
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
    text(path, page[..length].to_vec(), function)
}

/// A kernel file's bytes as text. The kernel writes ASCII; anything else is named as what
/// it is, not as an I/O error (no system call failed).
pub fn text(path: &Path, bytes: Vec<u8>, function: &'static str) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Error::new(
            ErrorCode::InternalError,
            function,
            format!(
                "'{}' is not text: byte 0x{:02x} at offset {at} is not UTF-8",
                path.display(),
                e.as_bytes()[at]
            ),
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeRoot;

    #[test]
    fn bytes_that_are_not_utf8_are_named_as_such() {
        let root = FakeRoot::new();
        let path = root.path().join("state");
        fs::write(&path, b"mem \xff disk").unwrap();
        let expected = format!(
            "internal error: '{}' is not text: byte 0xff at offset 4 is not UTF-8",
            path.display()
        );
        for e in [
            read_attribute(&path, "f").unwrap_err(),
            read_optional(&path, "f").unwrap_err(),
        ] {
            assert_eq!(e.code, ErrorCode::InternalError);
            assert_eq!(e.message, expected);
        }
    }
}
