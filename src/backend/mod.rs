//! Backends: the ways a host can be asked whether it can sleep, and be put to sleep.
//!
//! As in libvirt, backends are consulted in order and the first one that is *available*
//! answers; a later one is asked only when an earlier one is unavailable. The suspend is
//! then carried out by the backend that answered.

// pub(crate): the fuzz targets (crate::fuzzing) call their parsers.
pub(crate) mod bus;
pub mod kernel;
pub mod logind;
pub mod pm_utils;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::time::{clock_gettime, ClockId};

use crate::config::BackendKind;
use crate::error::{strerror, Error, Result};
use crate::target::Target;

/// Whether a target is supported. Every "no" carries its reason, so that an unsupported
/// target can be explained (it is logged through libvirt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    Yes,
    No(Unsupported),
}

/// Why a target is not supported: the answer of the backend that was asked, or why no
/// backend could be asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// logind answered `answer` (neither "yes" nor "challenge") to `method`.
    Logind {
        method: &'static str,
        answer: String,
    },
    /// `pm-is-supported OPTION` did not exit with status 0; `ended` says how it ended.
    PmUtils {
        option: &'static str,
        ended: String,
    },
    Kernel(kernel::Unsupported),
    /// No backend is available: each one's reason, or that none is configured.
    NoBackend(String),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Logind { method, answer } => {
                write!(f, "logind answers '{answer}' to {method}")
            }
            Unsupported::PmUtils { option, ended } => write!(f, "pm-is-supported {option} {ended}"),
            Unsupported::Kernel(why) => why.fmt(f),
            Unsupported::NoBackend(why) => f.write_str(why),
        }
    }
}

/// A backend's answer to the capability query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The backend cannot answer on this host (its service or interface is missing).
    Unavailable(String),
    /// The support of each target, indexed by the target's number.
    Answers([Support; 3]),
}

impl Probe {
    /// The answers of `support` for each target, asked in the targets' order (the first
    /// error ends the query).
    pub fn from_each(mut support: impl FnMut(Target) -> Result<Support>) -> Result<Probe> {
        let [mem, disk, hybrid] = Target::ALL;
        Ok(Probe::Answers([
            support(mem)?,
            support(disk)?,
            support(hybrid)?,
        ]))
    }
}

/// Why a suspend did not end with the host back.
#[derive(Debug)]
pub struct SuspendFailure {
    pub error: Error,
    /// The host may still go to sleep (logind had announced it): the wake alarm stays.
    pub may_still_sleep: bool,
}

impl From<Error> for SuspendFailure {
    fn from(error: Error) -> SuspendFailure {
        SuspendFailure {
            error,
            may_still_sleep: false,
        }
    }
}

pub trait Backend: Send + Sync {
    /// Which backend this is (the test doubles say which one they stand in for).
    fn kind(&self) -> BackendKind;

    /// Whether the host can be put into each target this way. An `Err` fails the whole
    /// capability query (and so is not cached).
    fn probe(&self) -> Result<Probe>;

    /// Puts the host into `target`; returns once it is back, or the attempt failed, or
    /// `give_up_after` has passed (counting the time asleep).
    fn suspend(
        &self,
        target: Target,
        give_up_after: Duration,
    ) -> std::result::Result<(), SuspendFailure>;
}

/// The errno an I/O error carries (EIO for one that carries none).
fn errno_of(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A file an answer depends on exists but cannot be read: a reason, not an error, so that
/// the targets that do not depend on it are still answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub file: PathBuf,
    pub errno: Errno,
}

impl Unreadable {
    fn new(file: PathBuf, e: &io::Error) -> Unreadable {
        Unreadable {
            file,
            errno: errno_of(e),
        }
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Unable to read '{}': {}",
            self.file.display(),
            strerror(self.errno as i32)
        )
    }
}

/// Time since boot, including time asleep: deadlines that span a suspend are measured on
/// it (the monotonic clock stops while the host sleeps).
pub fn since_boot() -> Duration {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .expect("CLOCK_BOOTTIME exists on every Linux since 2.6.39")
}
