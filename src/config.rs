//! The configuration: where the kernel's files are, how long to wait before sleeping, which
//! backends to ask, and where they find pm-utils and the system bus.
//!
//! The core takes a [`Config`] as a value; only the C boundary reads the environment
//! (once per process, see `ffi.rs`).

use std::ffi::{CStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};

/// The shortest suspend libvirt accepts, in seconds ("Give sufficient time for performing
/// the suspend operation on the host").
const MIN_DURATION_SECS: u64 = 60;

/// The time between the start of the suspend and the alarm that libvirt's defaults leave
/// (60 s minimum, 10 s delay): enough to freeze tasks and write a hibernation image. A
/// longer delay raises the minimum duration by as much, so the alarm cannot ring while the
/// host is still on its way to sleep (and then never wake it).
const SLEEP_BEFORE_ALARM_SECS: u64 = 50;

/// The longest delay accepted: an hour.
const MAX_DELAY_SECS: u64 = 3600;

/// The backends, by the names `VIRNODESUSPEND_BACKENDS` lists them with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Logind,
    PmUtils,
    Kernel,
}

impl BackendKind {
    const ALL: [BackendKind; 3] = [
        BackendKind::Logind,
        BackendKind::PmUtils,
        BackendKind::Kernel,
    ];

    /// The backend's one name: in `VIRNODESUSPEND_BACKENDS`, in messages, and (this C string)
    /// for callers of `virNodeSuspendGetBackend`.
    pub fn c_name(self) -> &'static CStr {
        match self {
            BackendKind::Logind => c"logind",
            BackendKind::PmUtils => c"pm-utils",
            BackendKind::Kernel => c"kernel",
        }
    }

    pub fn name(self) -> &'static str {
        self.c_name().to_str().expect("backend names are ASCII")
    }

    /// The kind with this name.
    pub fn named(name: &str) -> Option<BackendKind> {
        BackendKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Kernel files are read and written below this directory (`/` on a real host).
    pub root: PathBuf,
    /// Time between a successful request and the start of the suspend: it lets the
    /// caller's reply leave the host (over the network, for a remote virsh) before it sleeps.
    pub delay: Duration,
    /// The backends to consult, in order.
    pub backends: Vec<BackendKind>,
    /// `PATH`, where the pm-utils helpers are looked for (as libvirt does).
    pub path: Option<OsString>,
    /// `DBUS_SYSTEM_BUS_ADDRESS`, where the system bus is (`None`: the usual socket,
    /// as for every D-Bus client).
    pub system_bus: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: PathBuf::from("/"),
            // libvirt's SUSPEND_DELAY.
            delay: Duration::from_secs(10),
            // libvirt's order: systemd, then pm-utils; the kernel itself last.
            backends: BackendKind::ALL.to_vec(),
            path: None,
            system_bus: None,
        }
    }
}

impl Config {
    /// The shortest duration a request may ask for: libvirt's 60 s, or more with a delay
    /// longer than libvirt's.
    pub fn min_duration_secs(&self) -> u64 {
        MIN_DURATION_SECS.max(self.delay.as_secs() + SLEEP_BEFORE_ALARM_SECS)
    }

    /// Builds the configuration from the values of `VIRNODESUSPEND_ROOT`,
    /// `VIRNODESUSPEND_DELAY` and `VIRNODESUSPEND_BACKENDS` (each `None` when unset).
    pub fn from_values(
        root: Option<OsString>,
        delay: Option<OsString>,
        backends: Option<OsString>,
    ) -> Result<Config> {
        let mut config = Config::default();
        if let Some(root) = root {
            config.root = parse_root(root)?;
        }
        if let Some(delay) = delay {
            config.delay = parse_delay(&delay)?;
        }
        if let Some(backends) = backends {
            config.backends = parse_backends(&backends)?;
        }
        Ok(config)
    }
}

fn unsupported(knob: &str, expected: &str, value: &OsString) -> Error {
    Error::new(
        ErrorCode::ConfigUnsupported,
        "virNodeSuspend",
        format!(
            "{knob} must be {expected}, not '{}'",
            value.to_string_lossy()
        ),
    )
}

/// A comma-separated list of backend names, each at most once.
fn parse_backends(value: &OsString) -> Result<Vec<BackendKind>> {
    let expected = "a comma-separated list of logind, pm-utils and kernel";
    let text = value
        .to_str()
        .ok_or_else(|| unsupported("VIRNODESUSPEND_BACKENDS", expected, value))?;
    let mut backends = Vec::new();
    for name in text.split(',').map(str::trim) {
        match BackendKind::named(name) {
            Some(kind) if !backends.contains(&kind) => backends.push(kind),
            _ => return Err(unsupported("VIRNODESUSPEND_BACKENDS", expected, value)),
        }
    }
    Ok(backends)
}

/// An absolute directory. An empty value is refused rather than taken for `/`: a test whose
/// fake root came from an unset shell variable must not reach the real host's power files.
fn parse_root(value: OsString) -> Result<PathBuf> {
    let root = PathBuf::from(&value);
    match root.is_absolute() {
        true => Ok(root),
        false => Err(unsupported(
            "VIRNODESUSPEND_ROOT",
            "an absolute directory",
            &value,
        )),
    }
}

/// A whole number of seconds, at most an hour.
fn parse_delay(value: &OsString) -> Result<Duration> {
    // Digits only: u64's parser would also take a leading '+'.
    let digits = value
        .to_str()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    match digits.and_then(|v| v.parse::<u64>().ok()) {
        Some(secs) if secs <= MAX_DELAY_SECS => Ok(Duration::from_secs(secs)),
        _ => Err(unsupported(
            "VIRNODESUSPEND_DELAY",
            &format!("a whole number of seconds up to {MAX_DELAY_SECS}"),
            value,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(root: Option<&str>, delay: Option<&str>) -> Result<Config> {
        Config::from_values(root.map(OsString::from), delay.map(OsString::from), None)
    }

    fn backends(list: &str) -> Result<Vec<BackendKind>> {
        Config::from_values(None, None, Some(list.into())).map(|c| c.backends)
    }

    #[test]
    fn backends_default_to_libvirts_order_then_the_kernel() {
        use BackendKind::*;
        assert_eq!(
            values(None, None).unwrap().backends,
            [Logind, PmUtils, Kernel]
        );
        assert_eq!(backends("kernel").unwrap(), [Kernel]);
        assert_eq!(backends("kernel, logind").unwrap(), [Kernel, Logind]);
    }

    #[test]
    fn unknown_repeated_or_no_backends_are_refused() {
        for bad in ["", "systemd", "kernel,kernel", "logind,", "pm_utils"] {
            let e = backends(bad).unwrap_err();
            assert_eq!(
                e.message,
                format!("unsupported configuration: VIRNODESUSPEND_BACKENDS must be a comma-separated list of logind, pm-utils and kernel, not '{bad}'")
            );
        }
    }

    #[test]
    fn unset_knobs_give_libvirts_defaults() {
        let config = values(None, None).unwrap();
        assert_eq!(config.root, PathBuf::from("/"));
        assert_eq!(config.delay, Duration::from_secs(10));
    }

    #[test]
    fn empty_or_relative_root_is_refused() {
        for bad in ["", "root", "./root"] {
            let e = values(Some(bad), None).unwrap_err();
            assert_eq!(
                e.message,
                format!("unsupported configuration: VIRNODESUSPEND_ROOT must be an absolute directory, not '{bad}'")
            );
        }
        assert_eq!(
            values(Some("/srv/root"), None).unwrap().root,
            PathBuf::from("/srv/root")
        );
    }

    #[test]
    fn delay_is_digits_only() {
        for bad in ["+5", " 5", "5 ", "-0", "", "5s", "0x5"] {
            let e = values(None, Some(bad)).unwrap_err();
            assert_eq!(
                e.message,
                format!("unsupported configuration: VIRNODESUSPEND_DELAY must be a whole number of seconds up to 3600, not '{bad}'")
            );
        }
        assert_eq!(
            values(None, Some("05")).unwrap().delay,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn delay_zero_is_allowed() {
        assert_eq!(values(None, Some("0")).unwrap().delay, Duration::ZERO);
    }

    #[test]
    fn delay_over_an_hour_is_refused() {
        assert_eq!(
            values(None, Some("3600")).unwrap().delay,
            Duration::from_secs(3600)
        );
        let e = values(None, Some("3601")).unwrap_err();
        assert_eq!(e.code, ErrorCode::ConfigUnsupported);
        assert_eq!(
            e.message,
            "unsupported configuration: VIRNODESUSPEND_DELAY must be a whole number of seconds up to 3600, not '3601'"
        );
    }

    #[test]
    fn minimum_duration_is_libvirts_unless_the_delay_is_longer() {
        for (delay, minimum) in [("0", 60), ("10", 60), ("11", 61), ("300", 350)] {
            assert_eq!(
                values(None, Some(delay)).unwrap().min_duration_secs(),
                minimum
            );
        }
    }

    #[test]
    fn delay_that_is_not_a_number_is_refused() {
        for bad in ["", "ten", "-1", "1.5", " 5"] {
            assert!(values(None, Some(bad)).is_err(), "{bad:?} accepted");
        }
    }
}
