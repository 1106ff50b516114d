//! virnodesuspend: libvirt's node suspend (`virNodeSuspend`, `virNodeSuspendGetTargetMask`)
//! as a library with a C ABI, compatible with libvirt 9.0 and without its known bugs.
//!
//! The C surface is [`ffi`]; behind it, [`NodeSuspend`] is plain Rust that takes its
//! configuration as a value.

#![allow(non_snake_case, non_camel_case_types)] // the C surface uses libvirt's names

mod backend;
mod config;
mod error;
pub mod ffi;
// The fuzz targets' entry points, for the fuzz crate (fuzz/) and the corpus replay test:
// not part of the library's interface.
#[doc(hidden)]
pub mod fuzzing;
mod host;
mod libvirt;
mod node;
mod request;
mod rtc;
mod sysfs;
mod target;
#[cfg(test)]
mod testing;

pub use backend::{Backend, Probe, Support, Unsupported};
pub use config::{BackendKind, Config};
pub use error::{Error, ErrorCode, Result};
pub use node::{Answer, Capabilities, NodeSuspend};
pub use request::{Outcome, Request};
pub use target::Target;

/// The library's version as libvirt encodes its own (`virGetVersion`): major * 1,000,000 +
/// minor * 1,000 + release.
pub fn version_number() -> u64 {
    let part = |text: &str| {
        text.parse::<u64>()
            .expect("Cargo's version parts are numbers")
    };
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_number_is_libvirts_encoding_of_the_package_version() {
        let version = super::version_number();
        let text = format!(
            "{}.{}.{}",
            version / 1_000_000,
            version / 1_000 % 1_000,
            version % 1_000
        );
        assert_eq!(text, env!("CARGO_PKG_VERSION"));
    }
}
