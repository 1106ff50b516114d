//! The configuration: where the kernel's files are, and how long to wait before sleeping.
//!
//! The core takes a [`Config`] as a value; only the C boundary reads the environment
//! (once per process, see `ffi.rs`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};

/// The shortest suspend libvirt accepts, in seconds ("Give sufficient time for performing
/// the suspend operation on the host").
pub const MIN_DURATION_SECS: u64 = 60;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Kernel files are read and written below this directory (`/` on a real host).
    pub root: PathBuf,
    /// Time between a successful request and the start of the suspend: it lets the
    /// caller's reply leave the host (over the network, for a remote virsh) before it sleeps.
    pub delay: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: PathBuf::from("/"),
            // libvirt's SUSPEND_DELAY.
            delay: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Builds the configuration from the values of `VIRNODESUSPEND_ROOT` and
    /// `VIRNODESUSPEND_DELAY` (each `None` when unset).
    pub fn from_values(root: Option<OsString>, delay: Option<OsString>) -> Result<Config> {
        let mut config = Config::default();
        if let Some(root) = root.filter(|r| !r.is_empty()) {
            config.root = PathBuf::from(root);
        }
        if let Some(delay) = delay {
            config.delay = parse_delay(&delay)?;
        }
        Ok(config)
    }
}

/// A whole number of seconds below the shortest suspend duration: the wake alarm counts
/// from the request, so a delay as long as the duration would let it ring while the host
/// is still awake, and the host would then sleep with no alarm to wake it.
fn parse_delay(value: &OsString) -> Result<Duration> {
    match value.to_str().and_then(|v| v.parse::<u64>().ok()) {
        Some(secs) if secs < MIN_DURATION_SECS => Ok(Duration::from_secs(secs)),
        _ => Err(Error::new(
            ErrorCode::ConfigUnsupported,
            "virNodeSuspend",
            format!(
                "VIRNODESUSPEND_DELAY must be a whole number of seconds below {MIN_DURATION_SECS}, not '{}'",
                value.to_string_lossy()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(root: Option<&str>, delay: Option<&str>) -> Result<Config> {
        Config::from_values(root.map(OsString::from), delay.map(OsString::from))
    }

    #[test]
    fn unset_knobs_give_libvirts_defaults() {
        let config = values(None, None).unwrap();
        assert_eq!(config.root, PathBuf::from("/"));
        assert_eq!(config.delay, Duration::from_secs(10));
    }

    #[test]
    fn empty_root_means_the_real_root() {
        assert_eq!(values(Some(""), None).unwrap().root, PathBuf::from("/"));
    }

    #[test]
    fn delay_zero_is_allowed() {
        assert_eq!(values(None, Some("0")).unwrap().delay, Duration::ZERO);
    }

    #[test]
    fn delay_that_could_outlast_the_alarm_is_refused() {
        let e = values(None, Some("60")).unwrap_err();
        assert_eq!(e.code, ErrorCode::ConfigUnsupported);
        assert_eq!(
            e.message,
            "unsupported configuration: VIRNODESUSPEND_DELAY must be a whole number of seconds below 60, not '60'"
        );
    }

    #[test]
    fn delay_that_is_not_a_number_is_refused() {
        for bad in ["", "ten", "-1", "1.5", " 5"] {
            assert!(values(None, Some(bad)).is_err(), "{bad:?} accepted");
        }
    }
}
