//! The kernel backend: `/sys/power` itself, for hosts with neither systemd-logind nor pm-utils
//! (minimal hosts, initramfs, guests).
//!
//! File formats: Linux `Documentation/ABI/testing/sysfs-power` (`state`: the supported sleep
//! states separated by spaces; `disk`: the hibernation modes with the selected one in
//! brackets). Whether an image could be resumed from (`disk`, `hybrid`) is decided in
//! [`hibernation`], from `/sys/power/resume`, `/proc/swaps` and `/proc/meminfo`, with
//! reasons of its own ([`NotResumable`]) that this backend's wrap.

// pub(crate): the fuzz targets (crate::fuzzing) call its parsers.
pub(crate) mod hibernation;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use self::hibernation::{Hibernation, NotResumable};
use super::{Backend, Probe, Support, SuspendFailure, Unreadable};
use crate::config::BackendKind;
use crate::error::{Error, ErrorCode, Result};
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
    /// The hibernation mode file is not as the kernel writes it.
    ModesGarbled { file: PathBuf, why: &'static str },
    /// The hibernation mode file exists but cannot be read.
    Unreadable(Unreadable),
    /// An image written now might not be resumed from (`disk`, `hybrid`).
    Hibernation(NotResumable),
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
            Unsupported::ModesGarbled { file, why } => {
                write!(
                    f,
                    "{} is not a list of hibernation modes: {why}",
                    file.display()
                )
            }
            Unsupported::Unreadable(why) => why.fmt(f),
            Unsupported::Hibernation(why) => why.fmt(f),
        }
    }
}

impl From<NotResumable> for Unsupported {
    fn from(why: NotResumable) -> Unsupported {
        Unsupported::Hibernation(why)
    }
}

impl From<Unsupported> for Support {
    fn from(why: Unsupported) -> Support {
        Support::No(super::Unsupported::Kernel(why))
    }
}

/// What `/sys/power/disk` offers, without the selection brackets, and the one selected.
pub(crate) struct DiskModes {
    pub(crate) offered: Vec<String>,
    pub(crate) selected: Option<String>,
}

impl DiskModes {
    /// `/sys/power/disk` (`Documentation/ABI/testing/sysfs-power`): the modes separated by
    /// white space, at most one of them in brackets (the selected one).
    pub(crate) fn parse(bytes: &[u8]) -> std::result::Result<DiskModes, &'static str> {
        let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8 text")?;
        let mut modes = DiskModes {
            offered: Vec::new(),
            selected: None,
        };
        for word in text.split_whitespace() {
            let mode = match word.strip_prefix('[') {
                Some(rest) => {
                    let mode = rest
                        .strip_suffix(']')
                        .ok_or("a mode has unbalanced brackets")?;
                    if modes.selected.replace(mode.to_owned()).is_some() {
                        return Err("it has more than one mode in brackets");
                    }
                    mode
                }
                None => word,
            };
            if mode.is_empty() || mode.contains(['[', ']']) {
                return Err("a mode has unbalanced brackets");
            }
            modes.offered.push(mode.to_owned());
        }
        Ok(modes)
    }

    fn offers(&self, mode: &str) -> bool {
        self.offered.iter().any(|m| m == mode)
    }
}

/// `/sys/power/state` (`Documentation/ABI/testing/sysfs-power`): the sleep states the
/// kernel supports, separated by spaces.
pub(crate) fn listed_states(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

pub struct Kernel {
    state: PathBuf,
    disk: PathBuf,
    hibernation: Hibernation,
}

impl Kernel {
    pub fn new(root: &Path) -> Kernel {
        Kernel {
            state: sysfs::under(root, "sys/power/state"),
            disk: sysfs::under(root, "sys/power/disk"),
            hibernation: Hibernation::new(root),
        }
    }

    /// The hibernation modes, for the capability query: a missing file offers none; a file
    /// that cannot be read or is garbled is the reason hybrid is not supported.
    fn probe_disk_modes(&self) -> std::result::Result<DiskModes, Unsupported> {
        let bytes = match std::fs::read(&self.disk) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(Unsupported::Unreadable(Unreadable::new(
                    self.disk.clone(),
                    &e,
                )))
            }
        };
        DiskModes::parse(&bytes).map_err(|why| Unsupported::ModesGarbled {
            file: self.disk.clone(),
            why,
        })
    }

    /// The hibernation modes, to suspend: any failure is the suspend's error.
    fn disk_modes(&self) -> Result<DiskModes> {
        let bytes = match std::fs::read(&self.disk) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(Error::system(
                    SUSPEND,
                    &e,
                    format!("Unable to read '{}'", self.disk.display()),
                ))
            }
        };
        DiskModes::parse(&bytes).map_err(|why| {
            let why = Unsupported::ModesGarbled {
                file: self.disk.clone(),
                why,
            };
            Error::new(ErrorCode::OperationFailed, SUSPEND, why.to_string())
        })
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

    /// The answer for `target`; `resumable` is the hibernation verdict, asked at most once
    /// per query (it syncs swap files for their extent maps).
    fn support(
        &self,
        states: &[&str],
        target: Target,
        resumable: &mut Option<std::result::Result<(), NotResumable>>,
    ) -> std::result::Result<(), Unsupported> {
        let needed = match target {
            Target::Mem => "mem",
            Target::Disk | Target::Hybrid => "disk",
        };
        if !states.contains(&needed) {
            return Err(Unsupported::StateNotListed {
                file: self.state.clone(),
                state: needed,
            });
        }
        if target != Target::Mem {
            // Both hibernate through the mode file: Disk selects a plain mode in it, Hybrid
            // needs its "suspend".
            let modes = self.probe_disk_modes()?;
            if target == Target::Hybrid && !modes.offers(HYBRID_MODE) {
                return Err(Unsupported::ModeNotOffered {
                    file: self.disk.clone(),
                    mode: HYBRID_MODE,
                });
            }
            resumable
                .get_or_insert_with(|| self.hibernation.check())
                .clone()?;
        }
        Ok(())
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
        let states = listed_states(&text);
        let mut resumable = None;
        Probe::from_each(|target| {
            Ok(match self.support(&states, target, &mut resumable) {
                Ok(()) => Support::Yes,
                Err(why) => why.into(),
            })
        })
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
        // Judged again now: the answer the capability query cached is as old as the
        // process, and since then the swap may be gone, /sys/power/resume cleared, or the
        // memory grown past the swap. Hibernating where the host cannot resume cold-boots it.
        if let Err(why) = self.hibernation.check() {
            return Err(Error::new(
                ErrorCode::OperationFailed,
                SUSPEND,
                format!("the host could not resume from hibernation: {why}"),
            ));
        }
        let DiskModes { offered, selected } = self.disk_modes()?;
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
    use std::path::Path;
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

    /// The reason of a "no" (panics on "yes").
    fn reason(answer: &Support) -> String {
        match answer {
            Support::No(why) => why.to_string(),
            Support::Yes => panic!("supported"),
        }
    }

    /// What the fake root's path `relative` is shown as in a reason.
    fn shown(root: &FakeRoot, relative: &str) -> String {
        root.path().join(relative).display().to_string()
    }

    /// A host that could hibernate but for what a test changes: mem and disk listed, the
    /// `suspend` mode offered, the resume device an active swap partition with room.
    fn resumable() -> FakeRoot {
        FakeRoot::new()
            .state("freeze mem disk")
            .disk("[platform] shutdown reboot suspend")
            .swap("/dev/vda2")
    }

    /// mem is answered yes; disk and hybrid no, both with `why`.
    fn assert_only_mem(root: &FakeRoot, why: &str) {
        let a = answers(root);
        assert_eq!(a[0], Support::Yes);
        assert_eq!(reason(&a[1]), why);
        assert_eq!(reason(&a[2]), why);
    }

    /// The device number `MAJ:MIN` of the file system the fake root is on.
    fn file_system_of(root: &FakeRoot) -> String {
        use std::os::unix::fs::MetadataExt;
        let dev = fs::metadata(root.path()).unwrap().dev();
        format!(
            "{}:{}",
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev)
        )
    }

    /// `root` with `/swapfile` a 64 KiB swap file on the root's file system, the resume
    /// device that file system.
    fn with_swap_file(root: FakeRoot) -> FakeRoot {
        fs::write(root.path().join("swapfile"), vec![1u8; 65536]).unwrap();
        let device = file_system_of(&root);
        root.state("mem disk")
            .disk("[platform] shutdown suspend")
            .swaps("/swapfile\tfile\t1048572\t0\t-2\n")
            .resume(&format!("{device}\n"))
            .active_anon(102400)
    }

    #[test]
    fn mem_and_disk_with_swap() {
        let root = FakeRoot::new().state("freeze mem disk").swap("/dev/vda2");
        let a = answers(&root);
        assert_eq!(a[0], Support::Yes);
        assert_eq!(a[1], Support::Yes);
        assert_eq!(
            reason(&a[2]),
            format!(
                "{} does not offer the 'suspend' mode",
                shown(&root, "sys/power/disk")
            )
        );
    }

    #[test]
    fn partition_that_is_the_resume_device_with_room_supports_everything() {
        // Kernels since 4.17 expose resume_offset; 0 for a partition, and not compared.
        let root = resumable().file("sys/power/resume_offset", "0\n");
        assert_eq!(answers(&root), vec![Support::Yes; 3]);
    }

    #[test]
    fn no_disk_when_sys_power_resume_is_missing() {
        let root = resumable();
        fs::remove_file(root.path().join("sys/power/resume")).unwrap();
        let why = format!(
            "no resume device is configured: {} does not exist",
            shown(&root, "sys/power/resume")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn no_disk_when_sys_power_resume_is_0_0() {
        let root = resumable().resume("0:0\n");
        let why = format!(
            "no resume device is configured: {} is 0:0",
            shown(&root, "sys/power/resume")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn no_disk_without_swap() {
        let root = FakeRoot::new()
            .state("mem disk")
            .disk("[platform] shutdown suspend")
            .resume("254:2\n");
        let why = format!(
            "no active swap area in {} is the resume device 254:2",
            shown(&root, "proc/swaps")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn no_disk_when_the_resume_device_is_not_among_the_swaps() {
        let root = resumable().resume("8:1\n");
        let why = format!(
            "no active swap area in {} is the resume device 8:1",
            shown(&root, "proc/swaps")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn garbled_resume_device_is_a_reason() {
        let root = resumable().resume("vda2\n");
        let why = format!(
            "{} holds 'vda2', not a device number MAJ:MIN",
            shown(&root, "sys/power/resume")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn garbled_resume_offset_is_a_reason() {
        let root = resumable().file("sys/power/resume_offset", "-1\n");
        let why = format!(
            "{} holds '-1', not a page offset",
            shown(&root, "sys/power/resume_offset")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn noresume_on_the_kernel_command_line_refuses_disk() {
        let root = resumable().file(
            "proc/cmdline",
            "BOOT_IMAGE=/vmlinuz root=/dev/vda1 noresume quiet\n",
        );
        let why = format!(
            "{} has 'noresume': the kernel would not resume from a hibernation image",
            shown(&root, "proc/cmdline")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn command_line_without_noresume_is_no_objection() {
        let root = resumable().file(
            "proc/cmdline",
            "root=/dev/vda1 resume=/dev/vda2 noresume2\n",
        );
        assert_eq!(answers(&root), vec![Support::Yes; 3]);
    }

    /// The resume device 254:2, a partition of 1000000 kB with nothing used (98%: 980000 kB),
    /// and `Active(anon)` `active_kb`.
    fn with_active_anon(active_kb: u64) -> FakeRoot {
        resumable()
            .swaps("/dev/vda2\tpartition\t1000000\t0\t-2\n")
            .active_anon(active_kb)
    }

    #[test]
    fn too_little_free_swap_refuses_disk() {
        let root = with_active_anon(980_001);
        let why = format!(
            "too little free swap on the resume device {} for a hibernation image: \
             Active(anon) is 980001 kB in {}, more than 98% of its 1000000 kB free",
            shown(&root, "dev/vda2"),
            shown(&root, "proc/meminfo")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn free_swap_is_counted_without_the_used_part() {
        let root = resumable()
            .swaps("/dev/vda2\tpartition\t1048572\t548572\t-2\n")
            .active_anon(490_001);
        let why = format!(
            "too little free swap on the resume device {} for a hibernation image: \
             Active(anon) is 490001 kB in {}, more than 98% of its 500000 kB free",
            shown(&root, "dev/vda2"),
            shown(&root, "proc/meminfo")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn active_anon_of_exactly_98_percent_of_free_swap_fits() {
        assert_eq!(answers(&with_active_anon(980_000)), vec![Support::Yes; 3]);
    }

    #[test]
    fn missing_meminfo_is_a_reason() {
        let root = resumable();
        fs::remove_file(root.path().join("proc/meminfo")).unwrap();
        let why = format!(
            "{} does not exist: the size of a hibernation image is unknown",
            shown(&root, "proc/meminfo")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn meminfo_without_active_anon_is_a_reason() {
        let root = resumable().file("proc/meminfo", "MemTotal: 8000000 kB\nActive(anon): many\n");
        let why = format!(
            "{} has no 'Active(anon):  N kB' line",
            shown(&root, "proc/meminfo")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn garbled_swaps_line_refuses_disk_and_hybrid_but_not_mem() {
        let root = resumable()
            .swaps("/dev/vda2\tpartition\t1048572\t0\t-2\n/dev/vdb1\tpartition\t1048572\t0\n");
        let why = format!(
            "{} line 3 is not 'path type size used priority'",
            shown(&root, "proc/swaps")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn swaps_line_with_a_non_number_is_garbled() {
        let root = resumable().swaps("/dev/vda2\tpartition\tbig\t0\t-2\n");
        let why = format!(
            "{} line 2 is not 'path type size used priority'",
            shown(&root, "proc/swaps")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn unreadable_swaps_is_a_reason_not_an_error() {
        let root = resumable();
        fs::remove_file(root.path().join("proc/swaps")).unwrap();
        fs::create_dir(root.path().join("proc/swaps")).unwrap();
        let why = format!(
            "Unable to read '{}': Is a directory",
            shown(&root, "proc/swaps")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn garbled_disk_modes_refuse_disk_and_hybrid() {
        let root = resumable().disk("[platform] shutdown [suspend]\n");
        let a = answers(&root);
        assert_eq!(a[0], Support::Yes);
        assert_eq!(reason(&a[1]), reason(&a[2]));
        assert_eq!(
            reason(&a[2]),
            format!(
                "{} is not a list of hibernation modes: it has more than one mode in brackets",
                shown(&root, "sys/power/disk")
            )
        );
    }

    #[test]
    fn disk_modes_that_are_not_text_refuse_disk_and_hybrid() {
        let root = resumable();
        fs::write(
            root.path().join("sys/power/disk"),
            b"[platform] \xff suspend\n",
        )
        .unwrap();
        let a = answers(&root);
        assert_eq!(a[0], Support::Yes);
        assert_eq!(reason(&a[1]), reason(&a[2]));
        assert_eq!(
            reason(&a[2]),
            format!(
                "{} is not a list of hibernation modes: it is not UTF-8 text",
                shown(&root, "sys/power/disk")
            )
        );
    }

    #[test]
    fn hibernation_is_judged_again_when_it_starts() {
        let root = resumable();
        let kernel = Kernel::new(root.path());
        assert_eq!(answers(&root)[1], Support::Yes);
        // The resume device is cleared after the capability query.
        let root = root.resume("0:0\n");
        let e = kernel.suspend(Target::Disk, LATER).unwrap_err().error;
        assert_eq!(e.code, ErrorCode::OperationFailed);
        assert_eq!(
            e.message,
            format!(
                "operation failed: the host could not resume from hibernation: \
                 no resume device is configured: {} is 0:0",
                shown(&root, "sys/power/resume")
            )
        );
        assert_eq!(root.read("sys/power/state"), "freeze mem disk");
    }

    #[test]
    fn suspend_refuses_garbled_disk_modes() {
        let root = resumable().disk("[platform [suspend]");
        let e = Kernel::new(root.path())
            .suspend(Target::Disk, LATER)
            .unwrap_err()
            .error;
        assert_eq!(
            e.message,
            format!(
                "operation failed: {} is not a list of hibernation modes: \
                 a mode has unbalanced brackets",
                shown(&root, "sys/power/disk")
            )
        );
        assert_eq!(root.read("sys/power/state"), "freeze mem disk");
    }

    #[test]
    fn deleted_swap_files_and_zram_are_skipped() {
        // zram0 has the resume device's number and the deleted file's path would not stat:
        // either would show if it were considered.
        let root = resumable().block_device("/dev/zram0", 254, 2).swaps(
            "/swapfile\\040(deleted)\tfile\t1048572\t0\t-2\n\
             /dev/zram0\tpartition\t1048572\t0\t100\n\
             none\tvirtual\t1048572\t0\t-3\n",
        );
        let why = format!(
            "no active swap area in {} is the resume device 254:2",
            shown(&root, "proc/swaps")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn zram_swap_cannot_hold_an_image() {
        let root = FakeRoot::new().state("mem disk").swap("/dev/zram0");
        let why = format!(
            "no active swap area in {} is the resume device 254:2",
            shown(&root, "proc/swaps")
        );
        assert_eq!(reason(&answers(&root)[1]), why);
    }

    #[test]
    fn swap_area_that_cannot_be_stated_is_the_reason_when_none_is_the_resume_device() {
        let root = resumable().swaps("/dev/vdb1\tpartition\t1048572\t0\t-2\n");
        let why = format!(
            "swap area {} cannot be compared with the resume device: cannot stat it: \
             No such file or directory",
            shown(&root, "dev/vdb1")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn swap_area_that_cannot_be_stated_does_not_hide_the_resume_device() {
        let root = resumable()
            .swaps("/dev/vdb1\tpartition\t1048572\t0\t-1\n/dev/vda2\tpartition\t1048572\t0\t-2\n");
        assert_eq!(answers(&root), vec![Support::Yes; 3]);
    }

    #[test]
    fn partition_that_is_not_a_block_device_is_a_reason() {
        let root = resumable()
            .file("dev/vdb1", "")
            .swaps("/dev/vdb1\tpartition\t1048572\t0\t-2\n");
        let why = format!(
            "swap area {} cannot be compared with the resume device: \
             it is listed as a partition but is not a block device",
            shown(&root, "dev/vdb1")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn escaped_swap_path_is_found() {
        let root = resumable()
            .block_device("/dev/disk/swap space", 254, 2)
            .swaps("/dev/disk/swap\\040space\tpartition\t1048572\t0\t-2\n");
        assert_eq!(answers(&root), vec![Support::Yes; 3]);
    }

    #[test]
    fn swap_file_is_matched_by_its_file_system_when_resume_offset_is_not_exposed() {
        let root = with_swap_file(FakeRoot::new());
        assert_eq!(answers(&root), vec![Support::Yes; 3]);
    }

    #[test]
    fn swap_file_on_another_file_system_is_not_the_resume_device() {
        let root = with_swap_file(FakeRoot::new()).resume("254:2\n");
        let why = format!(
            "no active swap area in {} is the resume device 254:2",
            shown(&root, "proc/swaps")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn swap_file_whose_first_page_is_not_resume_offset_is_not_the_resume_device() {
        // Far beyond the end of any file system these tests run on. In the build tree, which
        // has extent maps (FIEMAP); /tmp may be a tmpfs, which has none.
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let root = with_swap_file(FakeRoot::new_in(&target))
            .file("sys/power/resume_offset", "99999999999\n");
        let why = format!(
            "no active swap area in {} is the resume device {}",
            shown(&root, "proc/swaps"),
            file_system_of(&root)
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn swap_file_without_an_extent_map_cannot_match_resume_offset() {
        // tmpfs has no FIEMAP.
        let root = with_swap_file(FakeRoot::new_in(Path::new("/dev/shm")))
            .file("sys/power/resume_offset", "34816\n");
        let why = format!(
            "swap area {} cannot be compared with the resume device: its extent map (FIEMAP), \
             needed to compare it with resume_offset, cannot be read: Operation not supported",
            shown(&root, "swapfile")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn swap_file_that_is_not_a_regular_file_is_a_reason() {
        let root = with_swap_file(FakeRoot::new());
        fs::remove_file(root.path().join("swapfile")).unwrap();
        fs::create_dir(root.path().join("swapfile")).unwrap();
        let why = format!(
            "swap area {} cannot be compared with the resume device: \
             it is listed as a file but is not a regular file",
            shown(&root, "swapfile")
        );
        assert_only_mem(&root, &why);
    }

    #[test]
    fn hybrid_when_suspend_mode_is_offered() {
        let root = FakeRoot::new()
            .state("mem disk")
            .disk("[platform] shutdown reboot suspend test_resume")
            .swap("/dev/vda2");
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
        let root = FakeRoot::new().swap("/dev/vda2").disk(disk);
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
        let root = resumable().disk("platform [shutdown] suspend");
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
