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
    use std::process::Command;
    use std::thread;
    use std::time::{Duration, Instant};

    const LATER: Duration = Duration::from_secs(60);

    /// What a row expects of the backend on its fake root. In the texts, `{root}` stands
    /// for the fake root's path and `{root_dev}` for the device number `MAJ:MIN` of the
    /// file system it is on.
    enum Expected {
        /// The capability query's answers for mem, disk and hybrid: `None` for yes, else
        /// the reason of the no.
        Answers([Option<&'static str>; 3]),
        /// The backend is unavailable, for this reason.
        Unavailable(&'static str),
        /// The capability query fails with this error.
        QueryFails(ErrorCode, &'static str),
        /// Suspending to the target fails with this error, and the state file is left as
        /// it was.
        SuspendFails(Target, ErrorCode, &'static str),
    }

    const ALL_YES: Expected = Expected::Answers([None; 3]);

    /// mem is answered yes; disk and hybrid no, both for `why`.
    const fn only_mem(why: &'static str) -> Expected {
        Expected::Answers([None, Some(why), Some(why)])
    }

    /// A host that could hibernate but for what a row changes: mem and disk listed, the
    /// `suspend` mode offered, the resume device an active swap partition with room.
    fn resumable() -> FakeRoot {
        FakeRoot::new()
            .state("freeze mem disk")
            .disk("[platform] shutdown reboot suspend")
            .swap("/dev/vda2")
    }

    /// The resume device 254:2, a partition of 1000000 kB with nothing used (98%: 980000 kB),
    /// and `Active(anon)` `active_kb`.
    fn with_active_anon(active_kb: u64) -> FakeRoot {
        resumable()
            .swaps("/dev/vda2\tpartition\t1000000\t0\t-2\n")
            .active_anon(active_kb)
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

    /// A fake root in `parent` with `/swapfile` a 64 KiB swap file on the root's file
    /// system, the resume device that file system.
    fn with_swap_file(parent: &Path) -> FakeRoot {
        let root = FakeRoot::new_in(parent);
        fs::write(root.path().join("swapfile"), vec![1u8; 65536]).unwrap();
        let device = file_system_of(&root);
        root.state("mem disk")
            .disk("[platform] shutdown suspend")
            .swaps("/swapfile\tfile\t1048572\t0\t-2\n")
            .resume(&format!("{device}\n"))
            .active_anon(102400)
    }

    /// `relative` under `root` replaced by a directory, which cannot be read as a file.
    fn directory_at(root: FakeRoot, relative: &str) -> FakeRoot {
        let path = root.path().join(relative);
        let _ = fs::remove_file(&path);
        fs::create_dir_all(path).unwrap();
        root
    }

    fn without(root: FakeRoot, relative: &str) -> FakeRoot {
        fs::remove_file(root.path().join(relative)).unwrap();
        root
    }

    /// A row of [`CASES`]: the behaviour, its fake root, what the backend says there.
    type Case = (&'static str, fn() -> FakeRoot, Expected);

    /// Every way the kernel backend answers a target or fails a suspend, with the message
    /// each gives.
    const CASES: &[Case] = &[
        (
            "mem and disk with swap, hybrid only with the suspend mode",
            || FakeRoot::new().state("freeze mem disk").swap("/dev/vda2"),
            Expected::Answers([
                None,
                None,
                Some("{root}/sys/power/disk does not offer the 'suspend' mode"),
            ]),
        ),
        (
            "hybrid when the suspend mode is offered",
            || {
                FakeRoot::new()
                    .state("mem disk")
                    .disk("[platform] shutdown reboot suspend test_resume")
                    .swap("/dev/vda2")
            },
            ALL_YES,
        ),
        (
            // Kernels since 4.17 expose resume_offset; 0 for a partition, and not compared.
            "a partition that is the resume device with room supports everything",
            || resumable().file("sys/power/resume_offset", "0\n"),
            ALL_YES,
        ),
        (
            "an empty state file supports nothing",
            || FakeRoot::new().state("").swap("/dev/vda2"),
            Expected::Answers([
                Some("{root}/sys/power/state does not list 'mem'"),
                Some("{root}/sys/power/state does not list 'disk'"),
                Some("{root}/sys/power/state does not list 'disk'"),
            ]),
        ),
        (
            "a missing state file makes the backend unavailable",
            FakeRoot::new,
            Expected::Unavailable("{root}/sys/power/state does not exist"),
        ),
        (
            "an unreadable state file is an error",
            || directory_at(FakeRoot::new(), "sys/power/state"),
            Expected::QueryFails(
                ErrorCode::SystemError,
                "Unable to read '{root}/sys/power/state': Is a directory",
            ),
        ),
        (
            "no disk when /sys/power/resume is missing",
            || without(resumable(), "sys/power/resume"),
            only_mem("no resume device is configured: {root}/sys/power/resume does not exist"),
        ),
        (
            "no disk when /sys/power/resume is 0:0",
            || resumable().resume("0:0\n"),
            only_mem("no resume device is configured: {root}/sys/power/resume is 0:0"),
        ),
        (
            "no disk without swap",
            || {
                FakeRoot::new()
                    .state("mem disk")
                    .disk("[platform] shutdown suspend")
                    .resume("254:2\n")
            },
            only_mem("no active swap area in {root}/proc/swaps is the resume device 254:2"),
        ),
        (
            "no disk when the resume device is not among the swaps",
            || resumable().resume("8:1\n"),
            only_mem("no active swap area in {root}/proc/swaps is the resume device 8:1"),
        ),
        (
            "a garbled resume device is a reason",
            || resumable().resume("vda2\n"),
            only_mem("{root}/sys/power/resume holds 'vda2', not a device number MAJ:MIN"),
        ),
        (
            "a garbled resume offset is a reason",
            || resumable().file("sys/power/resume_offset", "-1\n"),
            only_mem("{root}/sys/power/resume_offset holds '-1', not a page offset"),
        ),
        (
            "noresume on the kernel command line refuses disk",
            || {
                resumable().file(
                    "proc/cmdline",
                    "BOOT_IMAGE=/vmlinuz root=/dev/vda1 noresume quiet\n",
                )
            },
            only_mem(
                "{root}/proc/cmdline has 'noresume': \
                 the kernel would not resume from a hibernation image",
            ),
        ),
        (
            "a command line without noresume is no objection",
            || {
                resumable().file(
                    "proc/cmdline",
                    "root=/dev/vda1 resume=/dev/vda2 noresume2\n",
                )
            },
            ALL_YES,
        ),
        (
            "too little free swap refuses disk",
            || with_active_anon(980_001),
            only_mem(
                "too little free swap on the resume device {root}/dev/vda2 for a hibernation \
                 image: Active(anon) is 980001 kB in {root}/proc/meminfo, more than 98% of \
                 its 1000000 kB free",
            ),
        ),
        (
            "free swap is counted without the used part",
            || {
                resumable()
                    .swaps("/dev/vda2\tpartition\t1048572\t548572\t-2\n")
                    .active_anon(490_001)
            },
            only_mem(
                "too little free swap on the resume device {root}/dev/vda2 for a hibernation \
                 image: Active(anon) is 490001 kB in {root}/proc/meminfo, more than 98% of \
                 its 500000 kB free",
            ),
        ),
        (
            "Active(anon) of exactly 98% of the free swap fits",
            || with_active_anon(980_000),
            ALL_YES,
        ),
        (
            "a missing /proc/meminfo is a reason",
            || without(resumable(), "proc/meminfo"),
            only_mem(
                "{root}/proc/meminfo does not exist: the size of a hibernation image is unknown",
            ),
        ),
        (
            "/proc/meminfo without Active(anon) is a reason",
            || resumable().file("proc/meminfo", "MemTotal: 8000000 kB\nActive(anon): many\n"),
            only_mem("{root}/proc/meminfo has no 'Active(anon):  N kB' line"),
        ),
        (
            "a garbled /proc/swaps line refuses disk and hybrid but not mem",
            || {
                resumable().swaps(
                    "/dev/vda2\tpartition\t1048572\t0\t-2\n/dev/vdb1\tpartition\t1048572\t0\n",
                )
            },
            only_mem("{root}/proc/swaps line 3 is not 'path type size used priority'"),
        ),
        (
            "a /proc/swaps line with a non-number is garbled",
            || resumable().swaps("/dev/vda2\tpartition\tbig\t0\t-2\n"),
            only_mem("{root}/proc/swaps line 2 is not 'path type size used priority'"),
        ),
        (
            "an unreadable /proc/swaps is a reason, not an error",
            || directory_at(resumable(), "proc/swaps"),
            only_mem("Unable to read '{root}/proc/swaps': Is a directory"),
        ),
        (
            "an unreadable /sys/power/disk is a reason, not an error",
            || directory_at(resumable(), "sys/power/disk"),
            only_mem("Unable to read '{root}/sys/power/disk': Is a directory"),
        ),
        (
            "garbled hibernation modes refuse disk and hybrid",
            || resumable().disk("[platform] shutdown [suspend]\n"),
            only_mem(
                "{root}/sys/power/disk is not a list of hibernation modes: \
                 it has more than one mode in brackets",
            ),
        ),
        (
            "hibernation modes that are not text refuse disk and hybrid",
            || {
                let root = resumable();
                fs::write(
                    root.path().join("sys/power/disk"),
                    b"[platform] \xff suspend\n",
                )
                .unwrap();
                root
            },
            only_mem(
                "{root}/sys/power/disk is not a list of hibernation modes: it is not UTF-8 text",
            ),
        ),
        (
            // zram0 has the resume device's number and the deleted file's path would not
            // stat: either would show if it were considered.
            "deleted swap files and zram are skipped",
            || {
                resumable().block_device("/dev/zram0", 254, 2).swaps(
                    "/swapfile\\040(deleted)\tfile\t1048572\t0\t-2\n\
                     /dev/zram0\tpartition\t1048572\t0\t100\n\
                     none\tvirtual\t1048572\t0\t-3\n",
                )
            },
            only_mem("no active swap area in {root}/proc/swaps is the resume device 254:2"),
        ),
        (
            "zram swap cannot hold an image",
            || FakeRoot::new().state("mem disk").swap("/dev/zram0"),
            Expected::Answers([
                None,
                Some("no active swap area in {root}/proc/swaps is the resume device 254:2"),
                Some("{root}/sys/power/disk does not offer the 'suspend' mode"),
            ]),
        ),
        (
            "a swap area that cannot be stated is the reason when none is the resume device",
            || resumable().swaps("/dev/vdb1\tpartition\t1048572\t0\t-2\n"),
            only_mem(
                "swap area {root}/dev/vdb1 cannot be compared with the resume device: \
                 cannot stat it: No such file or directory",
            ),
        ),
        (
            "a swap area that cannot be stated does not hide the resume device",
            || {
                resumable().swaps(
                    "/dev/vdb1\tpartition\t1048572\t0\t-1\n/dev/vda2\tpartition\t1048572\t0\t-2\n",
                )
            },
            ALL_YES,
        ),
        (
            "a partition that is not a block device is a reason",
            || {
                resumable()
                    .file("dev/vdb1", "")
                    .swaps("/dev/vdb1\tpartition\t1048572\t0\t-2\n")
            },
            only_mem(
                "swap area {root}/dev/vdb1 cannot be compared with the resume device: \
                 it is listed as a partition but is not a block device",
            ),
        ),
        (
            "an escaped swap path is found",
            || {
                resumable()
                    .block_device("/dev/disk/swap space", 254, 2)
                    .swaps("/dev/disk/swap\\040space\tpartition\t1048572\t0\t-2\n")
            },
            ALL_YES,
        ),
        (
            "a swap file is matched by its file system when resume_offset is not exposed",
            || with_swap_file(&std::env::temp_dir()),
            ALL_YES,
        ),
        (
            "a swap file on another file system is not the resume device",
            || with_swap_file(&std::env::temp_dir()).resume("254:2\n"),
            only_mem("no active swap area in {root}/proc/swaps is the resume device 254:2"),
        ),
        (
            // Far beyond the end of any file system these tests run on. In the build tree,
            // which has extent maps (FIEMAP); /tmp may be a tmpfs, which has none.
            "a swap file whose first page is not resume_offset is not the resume device",
            || {
                with_swap_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
                    .file("sys/power/resume_offset", "99999999999\n")
            },
            only_mem("no active swap area in {root}/proc/swaps is the resume device {root_dev}"),
        ),
        (
            // tmpfs has no FIEMAP.
            "a swap file without an extent map cannot match resume_offset",
            || with_swap_file(Path::new("/dev/shm")).file("sys/power/resume_offset", "34816\n"),
            only_mem(
                "swap area {root}/swapfile cannot be compared with the resume device: its \
                 extent map (FIEMAP), needed to compare it with resume_offset, cannot be \
                 read: Operation not supported",
            ),
        ),
        (
            "a swap file that is not a regular file is a reason",
            || {
                directory_at(
                    without(with_swap_file(&std::env::temp_dir()), "swapfile"),
                    "swapfile",
                )
            },
            only_mem(
                "swap area {root}/swapfile cannot be compared with the resume device: \
                 it is listed as a file but is not a regular file",
            ),
        ),
        (
            // The answer the capability query cached may be out of date.
            "hibernation is judged again when it starts",
            || resumable().resume("0:0\n"),
            Expected::SuspendFails(
                Target::Disk,
                ErrorCode::OperationFailed,
                "operation failed: the host could not resume from hibernation: \
                 no resume device is configured: {root}/sys/power/resume is 0:0",
            ),
        ),
        (
            "suspend refuses garbled hibernation modes",
            || resumable().disk("[platform [suspend]"),
            Expected::SuspendFails(
                Target::Disk,
                ErrorCode::OperationFailed,
                "operation failed: {root}/sys/power/disk is not a list of hibernation modes: \
                 a mode has unbalanced brackets",
            ),
        ),
        (
            "suspend fails when the hibernation modes cannot be read",
            || directory_at(resumable(), "sys/power/disk"),
            Expected::SuspendFails(
                Target::Hybrid,
                ErrorCode::SystemError,
                "Unable to read '{root}/sys/power/disk': Is a directory",
            ),
        ),
    ];

    #[test]
    fn every_answer_and_failure_with_its_message() {
        for (behaviour, host, expected) in CASES {
            let root = host();
            let shown = |text: &str| {
                text.replace("{root_dev}", &file_system_of(&root))
                    .replace("{root}", &root.path().display().to_string())
            };
            let kernel = Kernel::new(root.path());
            match expected {
                Expected::Answers(answers) => {
                    let Ok(Probe::Answers(got)) = kernel.probe() else {
                        panic!("{behaviour}: no answers");
                    };
                    let got: Vec<Option<String>> = got
                        .iter()
                        .map(|answer| match answer {
                            Support::Yes => None,
                            Support::No(why) => Some(why.to_string()),
                        })
                        .collect();
                    let answers: Vec<Option<String>> =
                        answers.iter().map(|a| a.map(shown)).collect();
                    assert_eq!(got, answers, "{behaviour}");
                }
                Expected::Unavailable(why) => {
                    let Ok(Probe::Unavailable(got)) = kernel.probe() else {
                        panic!("{behaviour}: available");
                    };
                    assert_eq!(got, shown(why), "{behaviour}");
                }
                Expected::QueryFails(code, message) => {
                    let e = kernel.probe().expect_err(behaviour);
                    assert_eq!(
                        (e.code, e.message.as_str()),
                        (*code, shown(message).as_str()),
                        "{behaviour}"
                    );
                }
                Expected::SuspendFails(target, code, message) => {
                    let state = root.read("sys/power/state");
                    let e = kernel.suspend(*target, LATER).expect_err(behaviour).error;
                    assert_eq!(
                        (e.code, e.message.as_str()),
                        (*code, shown(message).as_str()),
                        "{behaviour}"
                    );
                    assert_eq!(root.read("sys/power/state"), state, "{behaviour}");
                }
            }
        }
    }

    #[test]
    fn what_the_capability_query_said_is_not_taken_for_the_suspend() {
        let root = resumable();
        let kernel = Kernel::new(root.path());
        assert!(matches!(
            kernel.probe(),
            Ok(Probe::Answers([_, Support::Yes, _]))
        ));
        // The resume device is cleared after the capability query (the table has the
        // message).
        let root = root.resume("0:0\n");
        let e = kernel.suspend(Target::Disk, LATER).unwrap_err().error;
        assert_eq!(e.code, ErrorCode::OperationFailed);
        assert_eq!(root.read("sys/power/state"), "freeze mem disk");
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
