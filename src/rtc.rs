//! The RTC wake alarm, set through the kernel's RTC class rather than by running `rtcwake`.
//!
//! File formats: Linux `Documentation/ABI/stable/sysfs-class-rtc`. `since_epoch` is the
//! RTC's own time in seconds since the epoch; `wakealarm` takes an absolute time on the same
//! scale (writing 0, a time in the past, disables the alarm) and exists only for clocks that
//! can wake the system. Writing a new alarm while one is armed fails with EBUSY: then the
//! armed one is disarmed and the new one written again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};
use crate::sysfs;

/// The latest wake time accepted, 2099-12-31 23:59:59 UTC: the end of the PC CMOS clock's
/// calendar, which has the narrowest range among the clocks hosts wake from.
pub const LATEST_WAKE: u64 = 4_102_444_799;

/// libvirt's name for the function that checks the duration and sets the alarm; it appears
/// in the daemon's log line for those errors.
const SET_WAKEUP: &str = "virNodeSuspendSetNodeWakeup";

#[derive(Clone, Debug)]
pub struct Rtc {
    /// `sys/class/rtc/rtcN`, relative to the root (as the request record names it).
    dir: String,
    wakealarm: PathBuf,
    since_epoch: PathBuf,
}

impl Rtc {
    /// The lowest-numbered RTC that can wake the system.
    pub fn find(root: &Path) -> Result<Rtc> {
        let class = sysfs::under(root, "sys/class/rtc");
        // libvirt's virDirOpen and virDirRead messages.
        let failed = |e: &io::Error, what: &str| {
            Error::system(SET_WAKEUP, e, format!("{what} '{}'", class.display()))
        };
        let unopened = |e: &io::Error| failed(e, "cannot open directory");
        let unread = |e: &io::Error| failed(e, "Unable to read directory");
        let mut clocks = Vec::new();
        let entries = match fs::read_dir(&class) {
            Ok(entries) => Some(entries),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(unopened(&e)),
        };
        for entry in entries.into_iter().flatten() {
            let name = entry.map_err(|e| unread(&e))?.file_name();
            let Some((number, name)) = name
                .to_str()
                .and_then(|name| Some((clock_number(name)?, name.to_owned())))
            else {
                continue;
            };
            let wakealarm = class.join(&name).join("wakealarm");
            match fs::metadata(&wakealarm) {
                Ok(_) => clocks.push((number, name)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::system(
                        SET_WAKEUP,
                        &e,
                        format!("cannot stat file '{}'", wakealarm.display()),
                    ))
                }
            }
        }
        clocks.sort();
        match clocks.into_iter().next() {
            Some((_, name)) => Ok(Rtc::named(root, &name)),
            None => Err(Error::new(
                ErrorCode::OperationUnsupported,
                SET_WAKEUP,
                format!(
                    "no real-time clock in '{}' can wake the host",
                    class.display()
                ),
            )),
        }
    }

    /// The clock `sys/class/rtc/NAME` under `root`.
    fn named(root: &Path, name: &str) -> Rtc {
        let dir = format!("sys/class/rtc/{name}");
        let path = sysfs::under(root, &dir);
        Rtc {
            wakealarm: path.join("wakealarm"),
            since_epoch: path.join("since_epoch"),
            dir,
        }
    }

    /// The clock whose alarm file is `wakealarm` (relative to the root, as
    /// [`Rtc::wakealarm_name`] gives it); `None` for a path no clock has.
    pub fn with_wakealarm(root: &Path, wakealarm: &str) -> Option<Rtc> {
        let name = wakealarm
            .strip_prefix("sys/class/rtc/")?
            .strip_suffix("/wakealarm")?;
        (name.starts_with("rtc") && !name.contains('/')).then(|| Rtc::named(root, name))
    }

    /// The alarm file, relative to the root.
    pub fn wakealarm_name(&self) -> String {
        format!("{}/wakealarm", self.dir)
    }

    /// The RTC's current time, in whole seconds since the epoch.
    fn now(&self) -> Result<u64> {
        let text = sysfs::read_attribute(&self.since_epoch, SET_WAKEUP)?;
        seconds(&text).ok_or_else(|| {
            Error::new(
                ErrorCode::InternalError,
                SET_WAKEUP,
                format!(
                    "'{}' holds no time: '{}'",
                    self.since_epoch.display(),
                    text.trim()
                ),
            )
        })
    }

    /// The RTC time at which to wake so that at least `duration` seconds pass from now.
    ///
    /// The RTC counts whole seconds, and the second it reads now may be almost over: waking
    /// at `now + duration` could come up to a second early. Waking one tick later comes no
    /// earlier than `duration` and at most one second after it.
    pub fn wake_time(&self, duration: u64) -> Result<u64> {
        self.now()?
            .checked_add(duration)
            .and_then(|t| t.checked_add(1))
            .filter(|t| *t <= LATEST_WAKE)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidArg,
                    SET_WAKEUP,
                    format!(
                        "Suspend duration {duration} is too long, the RTC cannot wake the host after 2099-12-31 23:59:59 UTC"
                    ),
                )
            })
    }

    /// Arms the alarm for RTC time `at`, replacing any alarm already set.
    pub fn arm(&self, at: u64, duration: u64) -> Result<()> {
        let value = at.to_string();
        // An alarm already armed refuses a new one (EBUSY): then it is disarmed first. Only
        // then, to spare `virNodeSuspend` a write in the common case (`scripts/bench`).
        let written = match sysfs::write(&self.wakealarm, &value, SET_WAKEUP) {
            Err(e) if e.int1 == libc::EBUSY => self
                .disarm()
                .and_then(|()| sysfs::write(&self.wakealarm, &value, SET_WAKEUP)),
            written => written,
        };
        written.map_err(|e| {
            // The kernel refuses alarms beyond the clock's reach (the PC CMOS clock holds
            // one day, month or year ahead, depending on the firmware).
            if e.int1 == libc::ERANGE || e.int1 == libc::EINVAL {
                Error::new(
                    ErrorCode::InvalidArg,
                    SET_WAKEUP,
                    format!(
                        "Suspend duration {duration} is too long, the RTC '{}' cannot hold a wake-up that far ahead",
                        self.wakealarm.display()
                    ),
                )
            } else {
                e
            }
        })
    }

    fn disarm(&self) -> Result<()> {
        sysfs::write(&self.wakealarm, "0", SET_WAKEUP)
    }

    /// The wake-up the alarm holds, or `None` when it holds none (it reads empty when
    /// disarmed or rung).
    pub fn alarm(&self) -> Result<Option<u64>> {
        let held = sysfs::read_attribute(&self.wakealarm, SET_WAKEUP)?;
        Ok(seconds(&held))
    }

    /// Disarms the alarm if it still holds `at`, the value a request wrote. An alarm
    /// someone set since (an administrator's `rtcwake`) is theirs, and one that has rung
    /// reads empty: both are left alone. Returns whether it disarmed.
    pub fn disarm_if_at(&self, at: u64) -> Result<bool> {
        if self.alarm()? != Some(at) {
            return Ok(false);
        }
        self.disarm().map(|()| true)
    }
}

/// The number of the clock named `name` in the RTC class (`rtcN`).
pub(crate) fn clock_number(name: &str) -> Option<u32> {
    name.strip_prefix("rtc")?.parse().ok()
}

/// The time in a `since_epoch` or `wakealarm` file: seconds, on a line of their own.
pub(crate) fn seconds(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::testing::FakeRoot;

    #[test]
    fn wake_time_is_one_tick_after_now_plus_duration() {
        let root = FakeRoot::new().rtc(0, 1_800_000_000);
        let rtc = Rtc::find(root.path()).unwrap();
        assert_eq!(rtc.wake_time(60).unwrap(), 1_800_000_061);
    }

    #[test]
    fn wake_time_beyond_the_rtc_calendar_is_invalid_argument() {
        let root = FakeRoot::new().rtc(0, 1_800_000_000);
        let rtc = Rtc::find(root.path()).unwrap();
        for duration in [10_000_000_000, u64::MAX, LATEST_WAKE] {
            let e = rtc.wake_time(duration).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArg);
            assert_eq!(e.function, "virNodeSuspendSetNodeWakeup");
        }
        assert_eq!(
            rtc.wake_time(LATEST_WAKE - 1_800_000_001).unwrap(),
            LATEST_WAKE
        );
    }

    #[test]
    fn lowest_numbered_wakeup_capable_rtc_is_chosen() {
        let root = FakeRoot::new().rtc(2, 1).rtc(1, 1);
        // rtc0 cannot wake the system: it has no wakealarm attribute.
        fs::create_dir_all(root.path().join("sys/class/rtc/rtc0")).unwrap();
        Rtc::find(root.path()).unwrap().arm(61, 60).unwrap();
        assert_eq!(root.read("sys/class/rtc/rtc1/wakealarm"), "61");
        assert_eq!(root.read("sys/class/rtc/rtc2/wakealarm"), "");
    }

    #[test]
    fn no_rtc_is_operation_unsupported() {
        let e = Rtc::find(FakeRoot::new().path()).err().unwrap();
        assert_eq!(e.code, ErrorCode::OperationUnsupported);
    }

    #[test]
    fn a_class_directory_that_cannot_be_listed_is_named_with_its_errno() {
        let root = FakeRoot::new();
        std::fs::create_dir_all(root.path().join("sys/class")).unwrap();
        std::fs::write(root.path().join("sys/class/rtc"), "").unwrap();
        let e = Rtc::find(root.path()).err().unwrap();
        assert_eq!(e.code, ErrorCode::SystemError);
        assert_eq!(
            e.message,
            format!(
                "cannot open directory '{}': Not a directory",
                root.path().join("sys/class/rtc").display()
            )
        );
        assert_eq!(e.int1, libc::ENOTDIR);
    }

    #[test]
    fn arm_then_disarm() {
        let root = FakeRoot::new().rtc(0, 1_800_000_000);
        let rtc = Rtc::find(root.path()).unwrap();
        rtc.arm(1_800_000_061, 60).unwrap();
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "1800000061");
        assert!(rtc.disarm_if_at(1_800_000_061).unwrap());
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "0");
    }

    #[test]
    fn alarm_someone_else_set_is_left_alone() {
        let root = FakeRoot::new().rtc(0, 1_800_000_000);
        let rtc = Rtc::find(root.path()).unwrap();
        rtc.arm(1_800_000_061, 60).unwrap();
        fs::write(
            root.path().join("sys/class/rtc/rtc0/wakealarm"),
            "1800009999\n",
        )
        .unwrap();
        assert!(!rtc.disarm_if_at(1_800_000_061).unwrap());
        assert_eq!(root.read("sys/class/rtc/rtc0/wakealarm"), "1800009999\n");
    }

    #[test]
    fn clock_is_found_again_by_its_alarm_file() {
        let root = FakeRoot::new().rtc(3, 1);
        let rtc = Rtc::find(root.path()).unwrap();
        assert_eq!(rtc.wakealarm_name(), "sys/class/rtc/rtc3/wakealarm");
        let again = Rtc::with_wakealarm(root.path(), &rtc.wakealarm_name()).unwrap();
        assert_eq!(again.wakealarm, rtc.wakealarm);
        for bad in [
            "sys/class/rtc/../x/wakealarm",
            "etc/passwd",
            "sys/class/rtc/rtc0/x/wakealarm",
        ] {
            assert!(Rtc::with_wakealarm(root.path(), bad).is_none(), "{bad}");
        }
    }

    /// Like an RTC's `wakealarm`, this process's own OOM score adjustment takes 0 and
    /// refuses values out of its range (-1000..1000) with EINVAL: a real kernel refusal,
    /// and writing 0 to it changes nothing but this test process's own score.
    pub const REFUSES_LARGE_VALUES: &str = "/proc/self/oom_score_adj";

    #[test]
    fn alarm_the_kernel_refuses_is_invalid_argument() {
        let root = FakeRoot::new().rtc(0, 1_800_000_000);
        root.link("sys/class/rtc/rtc0/wakealarm", REFUSES_LARGE_VALUES);
        let rtc = Rtc::find(root.path()).unwrap();
        let e = rtc.arm(1_800_000_061, 60).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArg);
        assert!(
            e.message
                .starts_with("invalid argument: Suspend duration 60 is too long, the RTC '")
                && e.message
                    .ends_with("' cannot hold a wake-up that far ahead"),
            "{}",
            e.message
        );
    }
}
