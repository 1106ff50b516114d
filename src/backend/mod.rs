//! Backends: the ways a host can be asked whether it can sleep, and be put to sleep.
//!
//! As in libvirt, backends are consulted in order for each target and the first one that
//! is *available* answers; a later one is asked only when an earlier one is unavailable.
//! The suspend is then carried out by the backend that answered for that target.

pub mod kernel;

use crate::error::Result;
use crate::target::Target;

/// A backend's answer to "is this target supported?". Every "no" carries its reason, so
/// that an unsupported target can be explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    Yes,
    No(String),
    /// The backend cannot answer on this host (its service or interface is missing).
    Unavailable(String),
}

pub trait Backend: Send + Sync {
    /// Short name, as in `VIRNODESUSPEND_BACKENDS`.
    fn name(&self) -> &'static str;

    /// Whether the host can be put into `target` this way. An `Err` fails the whole
    /// capability query (and so is not cached).
    fn probe(&self, target: Target) -> Result<Support>;

    /// Puts the host into `target`; returns once it is back, or the attempt failed.
    fn suspend(&self, target: Target) -> Result<()>;
}
