//! The kernel backend: `/sys/power` itself, for hosts with neither systemd-logind nor pm-utils
//! (minimal hosts, initramfs, guests).
//!
//! File formats: Linux `Documentation/ABI/testing/sysfs-power` (`state`: the supported sleep
//! states separated by spaces; `disk`: the hibernation modes with the selected one in
//! brackets) and proc(5) (`/proc/swaps`: a header line, then one line per active swap area).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Backend, Probe, Support, SuspendFailure};
use crate::config::BackendKind;
use crate::error::Result;
use crate::sysfs;
use crate::target::Target;

const PROBE: &str = "virNodeSuspendGetTargetMask";
const SUSPEND: &str = "virNodeSuspend";

/// Hibernation modes for a plain Suspend-to-Disk, in order of preference (systemd's
/// `HibernateMode=platform shutdown`). When another mode is selected (`suspend` would make
/// it a hybrid sleep, `reboot` would not power off), one of these is selected for the
/// sleep; the administrator's selection is restored afterwards.
const DISK_MODES: [&str; 2] = ["platform", "shutdown"];
/// The hibernation mode that suspends to RAM after writing the image.
const HYBRID_MODE: &str = "suspend";

/// Why the kernel backend says "no" to a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// The state file does not list the sleep state the target needs.
    StateNotListed { file: PathBuf, state: &'static str },
    /// The hibernation mode file does not offer the mode the target needs.
    ModeNotOffered { file: PathBuf, mode: &'static str },
    /// No swap area could hold a hibernation image.
    NoSwap { file: PathBuf },
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::StateNotListed { file, state } => {
                write!(f, "{} does not list '{state}'", file.display())
            }
            Unsupported::ModeNotOffered { file, mode } => {
                write!(f, "{} does not offer the '{mode}' mode", file.display())
            }
            Unsupported::NoSwap { file } => write!(
                f,
                "{} lists no swap area to hold a hibernation image",
                file.display()
            ),
        }
    }
}

impl From<Unsupported> for Support {
    fn from(why: Unsupported) -> Support {
        Support::No(super::Unsupported::Kernel(why))
    }
}

pub struct Kernel {
    state: PathBuf,
    disk: PathBuf,
    swaps: PathBuf,
}

impl Kernel {
    pub fn new(root: &Path) -> Kernel {
        Kernel {
            state: sysfs::under(root, "sys/power/state"),
            disk: sysfs::under(root, "sys/power/disk"),
            swaps: sysfs::under(root, "proc/swaps"),
        }
    }

    /// The hibernation modes `/sys/power/disk` offers, without the selection brackets,
    /// and the one selected.
    fn disk_modes(&self, function: &'static str) -> Result<(Vec<String>, Option<String>)> {
        let text = sysfs::read_optional(&self.disk, function)?.unwrap_or_default();
        let selected = text
            .split_whitespace()
            .find_map(|mode| mode.strip_prefix('[')?.strip_suffix(']'))
            .map(str::to_owned);
        let offered = text
            .split_whitespace()
            .map(|mode| mode.trim_matches(['[', ']']).to_owned())
            .collect();
        Ok((offered, selected))
    }

    /// Writes `disk` to the state file with hibernation mode `mode` selected, then selects
    /// again the mode that was `selected` before.
    fn hibernate_in(&self, mode: &str, selected: Option<String>) -> Result<()> {
        if selected.as_deref() == Some(mode) {
            return sysfs::write(&self.state, "disk", SUSPEND);
        }
        sysfs::write(&self.disk, mode, SUSPEND)?;
        let slept = sysfs::write(&self.state, "disk", SUSPEND);
        let restored = match selected {
            Some(previous) => sysfs::write(&self.disk, &previous, SUSPEND),
            None => Ok(()),
        };
        slept.and(restored)
    }

    /// Why hibernation has nowhere to write its image, if it has not.
    fn no_swap_reason(&self) -> Result<Option<Unsupported>> {
        let swaps = sysfs::read_optional(&self.swaps, PROBE)?.unwrap_or_default();
        let usable = swaps
            .lines()
            .skip(1)
            .filter_map(|line| line.split_whitespace().next())
            // An image written to compressed RAM does not survive the power-off.
            .any(|device| !device.starts_with("/dev/zram"));
        Ok((!usable).then(|| Unsupported::NoSwap {
            file: self.swaps.clone(),
        }))
    }

    fn support(&self, states: &[&str], target: Target) -> Result<Support> {
        let needed = match target {
            Target::Mem => "mem",
            Target::Disk | Target::Hybrid => "disk",
        };
        if !states.contains(&needed) {
            return Ok(Unsupported::StateNotListed {
                file: self.state.clone(),
                state: needed,
            }
            .into());
        }
        if target == Target::Hybrid && !self.disk_modes(PROBE)?.0.iter().any(|m| m == HYBRID_MODE) {
            return Ok(Unsupported::ModeNotOffered {
                file: self.disk.clone(),
                mode: HYBRID_MODE,
            }
            .into());
        }
        if target != Target::Mem {
            if let Some(reason) = self.no_swap_reason()? {
                return Ok(reason.into());
            }
        }
        Ok(Support::Yes)
    }
}

impl Backend for Kernel {
    fn kind(&self) -> BackendKind {
        BackendKind::Kernel
    }

    fn probe(&self) -> Result<Probe> {
        let Some(text) = sysfs::read_optional(&self.state, PROBE)? else {
            return Ok(Probe::Unavailable(format!(
                "{} does not exist",
                self.state.display()
            )));
        };
        let states: Vec<&str> = text.split_whitespace().collect();
        Probe::from_each(|target| self.support(&states, target))
    }

    /// The write to the state file returns once the host is back: nothing to wait for.
    fn suspend(
        &self,
        target: Target,
        _give_up_after: Duration,
    ) -> std::result::Result<(), SuspendFailure> {
        Ok(self.sleep(target)?)
    }
}

impl Kernel {
    fn sleep(&self, target: Target) -> Result<()> {
        if target == Target::Mem {
            return sysfs::write(&self.state, "mem", SUSPEND);
        }
        let (offered, selected) = self.disk_modes(SUSPEND)?;
        let mode = match target {
            Target::Hybrid => Some(HYBRID_MODE),
            // The administrator's choice between the plain modes stands.
            _ if selected.as_deref().is_some_and(|m| DISK_MODES.contains(&m)) => None,
            _ => DISK_MODES
                .into_iter()
                .find(|m| offered.iter().any(|o| o == m)),
        };
        match mode {
            Some(mode) => self.hibernate_in(mode, selected),
            None => sysfs::write(&self.state, "disk", SUSPEND),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeRoot;
    use std::fs;
    use std::process::Command;
    use std::thread;
    use std::time::{Duration, Instant};

    fn answers(root: &FakeRoot) -> Vec<Support> {
        match Kernel::new(root.path()).probe().unwrap() {
            Probe::Answers(answers) => answers.to_vec(),
            Probe::Unavailable(why) => panic!("unavailable: {why}"),
        }
    }

    const LATER: Duration = Duration::from_secs(60);

    #[test]
    fn mem_and_disk_with_swap() {
        let root = FakeRoot::new().state("freeze mem disk").swap("/dev/vda2");
        let a = answers(&root);
        assert_eq!(a[0], Support::Yes);
        assert_eq!(a[1], Support::Yes);
        assert!(
            matches!(&a[2], Support::No(r) if r.to_string().ends_with("does not offer the 'suspend' mode"))
        );
    }

    #[test]
    fn no_disk_without_swap() {
        let root = FakeRoot::new()
            .state("mem disk")
            .disk("[platform] shutdown suspend");
        let a = answers(&root);
        assert_eq!(a[0], Support::Yes);
        assert!(
            matches!(&a[1], Support::No(r) if r.to_string().ends_with("lists no swap area to hold a hibernation image"))
        );
        assert!(matches!(&a[2], Support::No(_)));
    }

    #[test]
    fn zram_swap_cannot_hold_an_image() {
        let root = FakeRoot::new().state("mem disk").swap("/dev/zram0");
        assert!(matches!(answers(&root)[1], Support::No(_)));
    }

    #[test]
    fn hybrid_when_suspend_mode_is_offered() {
        let root = FakeRoot::new()
            .state("mem disk")
            .disk("[platform] shutdown reboot suspend test_resume")
            .swap("/swapfile");
        assert_eq!(answers(&root), vec![Support::Yes; 3]);
    }

    #[test]
    fn empty_state_file_supports_nothing() {
        let root = FakeRoot::new().state("").swap("/dev/vda2");
        assert!(answers(&root).iter().all(|a| matches!(a, Support::No(_))));
    }

    #[test]
    fn missing_state_file_makes_the_backend_unavailable() {
        let root = FakeRoot::new();
        assert!(matches!(
            Kernel::new(root.path()).probe(),
            Ok(Probe::Unavailable(_))
        ));
    }

    #[test]
    fn unreadable_state_file_is_an_error() {
        let root = FakeRoot::new();
        std::fs::create_dir_all(root.path().join("sys/power/state")).unwrap();
        let e = Kernel::new(root.path()).probe().unwrap_err();
        assert!(e.message.ends_with("Is a directory"), "{}", e.message);
    }

    /// Suspends to `target` with the state file as a FIFO: the backend "sleeps" in its
    /// write until the test reads it. Returns the hibernation mode selected while asleep,
    /// what was written to the state file, and the disk file's content after waking.
    fn sleep_through_fifo(disk: &str, target: Target) -> (String, String, String) {
        let root = FakeRoot::new().disk(disk);
        let state = root.path().join("sys/power/state");
        fs::create_dir_all(state.parent().unwrap()).unwrap();
        assert!(Command::new("mkfifo")
            .arg(&state)
            .status()
            .unwrap()
            .success());
        let kernel = Kernel::new(root.path());
        let sleeper = thread::spawn(move || kernel.suspend(target, LATER));
        // The mode is written before the state file is opened, and the opening blocks
        // until the test opens the FIFO for reading.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut while_asleep = root.read("sys/power/disk");
        while while_asleep == disk {
            assert!(Instant::now() < deadline, "no mode was selected");
            thread::sleep(Duration::from_millis(5));
            while_asleep = root.read("sys/power/disk");
        }
        let written = fs::read_to_string(&state).unwrap();
        sleeper.join().unwrap().unwrap();
        (while_asleep, written, root.read("sys/power/disk"))
    }

    #[test]
    fn hybrid_selects_suspend_mode_while_asleep_and_restores_the_previous_one() {
        let (asleep, written, after) =
            sleep_through_fifo("[platform] shutdown suspend", Target::Hybrid);
        assert_eq!((asleep.as_str(), written.as_str()), ("suspend", "disk"));
        assert_eq!(after, "platform");
    }

    #[test]
    fn disk_replaces_a_left_over_suspend_mode_while_asleep_and_restores_it() {
        let (asleep, written, after) =
            sleep_through_fifo("shutdown [suspend] platform", Target::Disk);
        assert_eq!((asleep.as_str(), written.as_str()), ("platform", "disk"));
        assert_eq!(after, "suspend");
    }

    #[test]
    fn disk_keeps_the_administrators_shutdown_mode() {
        let root = FakeRoot::new()
            .state("mem disk")
            .disk("platform [shutdown] suspend");
        Kernel::new(root.path())
            .suspend(Target::Disk, LATER)
            .unwrap();
        assert_eq!(root.read("sys/power/disk"), "platform [shutdown] suspend");
        assert_eq!(root.read("sys/power/state"), "disk");
    }

    #[test]
    fn mem_writes_mem() {
        let root = FakeRoot::new().state("mem");
        Kernel::new(root.path())
            .suspend(Target::Mem, LATER)
            .unwrap();
        assert_eq!(root.read("sys/power/state"), "mem");
    }
}
