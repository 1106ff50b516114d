//! The D-Bus Specification, "Server Addresses": where a bus address
//! (`unix:path=/run/dbus/system_bus_socket`, alternatives separated by `;`) says a Unix
//! socket is, and the connection to it.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType, UnixAddr};

use super::BusError;
use crate::error::strerror;

#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

/// The Unix sockets `address` names, in its order; other transports are passed over.
pub fn endpoints(address: &str) -> Vec<Endpoint> {
    address
        .split(';')
        .filter_map(|entry| entry.strip_prefix("unix:"))
        .filter_map(|keys| {
            keys.split(',')
                .find_map(|pair| match pair.split_once('=')? {
                    ("path", value) => Some(Endpoint::Path(PathBuf::from(OsString::from_vec(
                        unescape(value)?,
                    )))),
                    ("abstract", value) => Some(Endpoint::Abstract(unescape(value)?)),
                    _ => None,
                })
        })
        .collect()
}

/// An address value with its `%XX` escapes undone; `None` for a broken escape (`%`
/// followed by anything but two hexadecimal digits).
fn unescape(value: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let (&[high, low], after) = after.split_first_chunk::<2>()?;
            // Digits only: `u8::from_str_radix` would take a sign ("%+f").
            let digit = |c: u8| char::from(c).to_digit(16);
            bytes.push(u8::try_from(digit(high)? * 16 + digit(low)?).ok()?);
            rest = after;
        } else {
            bytes.push(byte);
            rest = after;
        }
    }
    Some(bytes)
}

/// A socket connected to `endpoint`, non-blocking. The connection is non-blocking too: a
/// bus whose queue of connections is full refuses at once ("Resource temporarily
/// unavailable") rather than holding the caller without a deadline.
pub fn connect(endpoint: &Endpoint) -> Result<UnixStream, BusError> {
    let (address, shown) = match endpoint {
        Endpoint::Path(path) => (UnixAddr::new(path), path.display().to_string()),
        Endpoint::Abstract(name) => (
            UnixAddr::new_abstract(name),
            format!("(abstract) {}", String::from_utf8_lossy(name)),
        ),
    };
    let connected = address.and_then(|address| {
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let socket = socket(AddressFamily::Unix, SockType::Stream, flags, None)?;
        nix::sys::socket::connect(socket.as_raw_fd(), &address)?;
        Ok(UnixStream::from(socket))
    });
    // libdbus's words, which the backend has always reported.
    connected.map_err(|e| {
        BusError::Local(format!(
            "Failed to connect to socket {shown}: {}",
            strerror(e as i32)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_their_unix_sockets_in_order() {
        assert_eq!(
            endpoints("tcp:host=localhost,port=1;unix:guid=00,path=/run/a%20b;unix:abstract=x%2fy"),
            [
                Endpoint::Path("/run/a b".into()),
                Endpoint::Abstract(b"x/y".to_vec())
            ]
        );
    }

    #[test]
    fn a_percent_is_followed_by_two_hexadecimal_digits() {
        assert_eq!(endpoints("unix:path=/run/%4"), []);
        assert_eq!(endpoints("unix:path=/run/%+f"), []);
        assert_eq!(endpoints("unix:path=/run/%-1"), []);
        assert_eq!(endpoints("unix:path=/run/% f"), []);
        assert_eq!(endpoints("unix:path=/run/%g0"), []);
        assert_eq!(
            endpoints("unix:path=/run/%fF%00"),
            [Endpoint::Path(PathBuf::from(OsString::from_vec(
                b"/run/\xff\0".to_vec()
            )))]
        );
    }
}
