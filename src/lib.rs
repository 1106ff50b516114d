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
mod host;
mod libvirt;
mod node;
mod rtc;
mod sysfs;
mod target;
#[cfg(test)]
mod testing;

pub use backend::{Backend, Probe, Support, Unsupported};
pub use config::{BackendKind, Config};
pub use error::{Error, ErrorCode, Result};
pub use node::{Answer, Capabilities, NodeSuspend, Outcome, Request};
pub use target::Target;
