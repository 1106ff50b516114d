//! A D-Bus client for the few exchanges the logind backend has with the system bus, in the
//! library itself (the D-Bus Specification: its wire format, and SASL `EXTERNAL`
//! authentication over a Unix socket). A process that maps this library maps no D-Bus
//! client library: every QEMU, dnsmasq and helper a preloaded libvirt daemon starts, and
//! the daemon itself until logind is asked.
//!
//! It knows what the backend needs and nothing more: method calls with no argument, a
//! string or a boolean; replies, errors and signals, of which only the first argument is
//! read, when it is a string, a boolean or an array of strings. Yet every message it
//! receives is checked whole, as the specification says a valid one must be (its
//! signatures, nesting, lengths, padding, strings and required header fields), because the
//! bus is not trusted to have done so and a message the specification forbids must not
//! hold the caller. The authentication and the first messages go out in one write, without
//! waiting for the bus's `OK` (as the specification allows a client to pipeline), so that a
//! question to logind costs one round trip. Nothing here waits without the caller's
//! deadline, and a bus that sends what is not D-Bus fails the connection.
//!
//! One module for each section of the specification it implements: [`address`] (server
//! addresses), [`auth`] (the authentication protocol), [`signature`] (the type system and
//! valid signatures), [`marshal`] (the wire format and its limits), [`message`] (the
//! message format) and [`connection`] (the message protocol over a socket).

mod address;
mod auth;
mod connection;
mod marshal;
mod message;
mod signature;

#[cfg(test)]
pub mod forge;

pub use connection::Connection;
/// For the fuzz targets (`crate::fuzzing`).
pub(crate) use message::declared_length;
pub use message::{Call, Message};

/// How a D-Bus exchange failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusError {
    /// The connection itself failed (no error reply from anyone): what happened, said as
    /// GLib says it where GLib has words for it ("Timeout was reached").
    Local(String),
    /// An error reply, or a reply whose argument is not what was asked for: the D-Bus
    /// error's name and its message (empty where the reply had none).
    Named { name: String, message: String },
}

impl BusError {
    fn failed(message: String) -> BusError {
        BusError::Named {
            name: "org.freedesktop.DBus.Error.Failed".into(),
            message,
        }
    }

    fn malformed() -> BusError {
        BusError::Local("The bus sent what is not a D-Bus message".into())
    }

    /// What happened: the text of a local failure, the message of a named error.
    pub fn message(&self) -> &str {
        match self {
            BusError::Local(what) => what,
            BusError::Named { message, .. } => message,
        }
    }

    pub fn closed() -> BusError {
        BusError::Local("The connection is closed".into())
    }

    pub fn timed_out() -> BusError {
        BusError::Local("Timeout was reached".into())
    }

    /// A reply's first argument is not of the type expected (the dbus crate's text, which
    /// the backend has always reported).
    fn mismatch(expected: u8, found: u8) -> BusError {
        let kind = |code: u8| signature::type_code(code).map_or("nothing", |row| row.name);
        let found = if expected == found {
            "same but still different somehow"
        } else {
            kind(found)
        };
        BusError::failed(format!(
            "D-Bus argument type mismatch at position 0: expected {}, found {found}",
            kind(expected)
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    /// The shared library `cargo build` left beside this test's executable.
    fn shared_library() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let built = exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("libvirnodesuspend.so");
        assert!(built.exists(), "{} (cargo build first)", built.display());
        built
    }

    /// The shared objects a process maps, by file name.
    fn objects(maps: &str) -> std::collections::BTreeSet<String> {
        maps.lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .filter(|path| path.contains(".so"))
            .map(|path| path.rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    /// The environment is left as it is (docs/libvirt.md, "Preloaded"): a child of
    /// a preloading process inherits `LD_PRELOAD` and maps the library, and nothing more
    /// than the library: no D-Bus client, no unwinder of its own.
    #[test]
    fn a_child_of_a_preloading_process_maps_the_library_and_no_dbus_client() {
        let library = shared_library();
        // The shell preloads the library, as the daemon does; cat is its child.
        let out = Command::new("/bin/sh")
            .args(["-c", "cat /proc/$$/maps; echo --; cat /proc/self/maps"])
            .env("LD_PRELOAD", &library)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let (parent, child) = text.split_once("--\n").unwrap();
        for maps in [parent, child] {
            let objects = objects(maps);
            assert!(objects.contains("libvirnodesuspend.so"), "{objects:?}");
            let others: Vec<&String> = objects
                .iter()
                .filter(|o| !o.starts_with("libvirnodesuspend.so"))
                .filter(|o| !o.starts_with("libc.so") && !o.starts_with("ld-linux"))
                .collect();
            assert!(others.is_empty(), "the library brought {others:?}");
        }
    }
}
