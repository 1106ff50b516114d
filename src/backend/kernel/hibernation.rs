//! Whether a hibernation image written now could be resumed from: the kernel backend's
//! `disk` and `hybrid` follow systemd 257's judgement (`hibernate-util`: the resume
//! configuration, the active swap areas, which of them is the resume device, and whether it
//! has room for the image), read under the configured root.
//!
//! Every "no" is a [`NotResumable`] with its reason (the kernel backend wraps it in its
//! own); nothing here fails the whole capability
//! query, so that Suspend-to-RAM is still answered when a hibernation file is unreadable or
//! garbled.
//!
//! Deliberate differences from systemd:
//! - Swap areas are `stat`ed, never opened (a device node is never opened; a swap file is
//!   opened only for its extent map, after `stat` says it is a regular file).
//! - A swap area that cannot be examined does not decide the answer when another one is the
//!   resume device; it is the reason only when none is. (systemd refuses as soon as one
//!   before the resume device cannot be examined.)
//! - The kernel's octal escapes in `/proc/swaps` paths (`\040` for a space) are undone.
//! - A swap file's device is its `st_dev`. On Btrfs that is an anonymous device and never
//!   the resume device (systemd asks Btrfs for the backing device and the physical offset).
//! - `noresume` on the kernel command line is a "no" (systemd checks it when it looks for
//!   the resume device, `read_resume_config`, not in `hibernation_is_safe`: the kernel
//!   would not resume either way).
//! - An EFI boot without `resume=` is a "no": systemd-sleep would write the resume location
//!   into an EFI variable then; this library does not.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{major, minor, stat, FileStat, SFlag};
use nix::unistd::{sysconf, SysconfVar};

use crate::backend::{errno_of, Unreadable};
use crate::error::strerror;
use crate::sysfs;

/// systemd's `HIBERNATION_SWAP_THRESHOLD`: the image (about `Active(anon)`) may fill at most
/// this share of the resume device's free swap, in percent.
const SWAP_THRESHOLD_PERCENT: u128 = 98;

/// Why an image written now might not be resumed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotResumable {
    /// A file the answer depends on exists but cannot be read.
    Unreadable(Unreadable),
    /// `noresume` is on the kernel command line: no image is resumed from at boot.
    NoResume { file: PathBuf },
    /// No resume device is configured: `/sys/power/resume` is missing, or `0:0`.
    NoResumeDevice { file: PathBuf, exists: bool },
    /// `/sys/power/resume` does not hold `MAJ:MIN`.
    ResumeGarbled { file: PathBuf, text: String },
    /// `/sys/power/resume_offset` does not hold a number.
    ResumeOffsetGarbled { file: PathBuf, text: String },
    /// A line of `/proc/swaps` (numbered from 1, the header's) does not parse.
    SwapsLineGarbled { file: PathBuf, line: usize },
    /// No swap area could be told to be the resume device, because of this one's `problem`.
    SwapUnusable { swap: PathBuf, problem: SwapProblem },
    /// None of the active swap areas is the resume device.
    NotResumeDevice { file: PathBuf, device: DevNum },
    /// `/proc/meminfo` does not exist: how large the image would be is unknown.
    MeminfoMissing { file: PathBuf },
    /// `/proc/meminfo` has no `Active(anon):  N kB` line.
    ActiveAnonGarbled { file: PathBuf },
    /// The image (about `Active(anon)`) would fill more than 98% of the free swap of the
    /// resume device.
    TooLittleFreeSwap {
        swap: PathBuf,
        meminfo: PathBuf,
        active_kb: u64,
        free_kb: u64,
    },
}

/// Why an active swap area cannot be compared with the resume device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapProblem {
    Stat(Errno),
    /// A `partition` area that is not a block device.
    NotBlockDevice,
    /// A `file` area that is not a regular file.
    NotRegularFile,
    Open(Errno),
    /// The path was something else by the time it was opened.
    Replaced,
    /// The extent map (FIEMAP) could not be read: the file's first page is unknown.
    Fiemap(Errno),
    /// The extent map has no extent.
    NoExtent,
}

impl fmt::Display for SwapProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The C library's text for the errno ("Operation not supported").
        let describe = |errno: &Errno| strerror(*errno as i32);
        match self {
            SwapProblem::Stat(errno) => write!(f, "cannot stat it: {}", describe(errno)),
            SwapProblem::NotBlockDevice => {
                f.write_str("it is listed as a partition but is not a block device")
            }
            SwapProblem::NotRegularFile => {
                f.write_str("it is listed as a file but is not a regular file")
            }
            SwapProblem::Open(errno) => write!(f, "cannot open it: {}", describe(errno)),
            SwapProblem::Replaced => f.write_str("it was replaced while being examined"),
            SwapProblem::Fiemap(errno) => write!(
                f,
                "its extent map (FIEMAP), needed to compare it with resume_offset, \
                 cannot be read: {}",
                describe(errno)
            ),
            SwapProblem::NoExtent => f.write_str("it has no extent to compare with resume_offset"),
        }
    }
}

impl fmt::Display for NotResumable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotResumable::Unreadable(why) => why.fmt(f),
            NotResumable::NoResume { file } => write!(
                f,
                "{} has 'noresume': the kernel would not resume from a hibernation image",
                file.display()
            ),
            NotResumable::NoResumeDevice { file, exists } => write!(
                f,
                "no resume device is configured: {} {}",
                file.display(),
                if *exists { "is 0:0" } else { "does not exist" }
            ),
            NotResumable::ResumeGarbled { file, text } => write!(
                f,
                "{} holds '{text}', not a device number MAJ:MIN",
                file.display()
            ),
            NotResumable::ResumeOffsetGarbled { file, text } => {
                write!(f, "{} holds '{text}', not a page offset", file.display())
            }
            NotResumable::SwapsLineGarbled { file, line } => write!(
                f,
                "{} line {line} is not 'path type size used priority'",
                file.display()
            ),
            NotResumable::SwapUnusable { swap, problem } => write!(
                f,
                "swap area {} cannot be compared with the resume device: {problem}",
                swap.display()
            ),
            NotResumable::NotResumeDevice { file, device } => write!(
                f,
                "no active swap area in {} is the resume device {device}",
                file.display()
            ),
            NotResumable::MeminfoMissing { file } => write!(
                f,
                "{} does not exist: the size of a hibernation image is unknown",
                file.display()
            ),
            NotResumable::ActiveAnonGarbled { file } => {
                write!(f, "{} has no 'Active(anon):  N kB' line", file.display())
            }
            NotResumable::TooLittleFreeSwap {
                swap,
                meminfo,
                active_kb,
                free_kb,
            } => write!(
                f,
                "too little free swap on the resume device {} for a hibernation image: \
                 Active(anon) is {active_kb} kB in {}, more than 98% of its {free_kb} kB free",
                swap.display(),
                meminfo.display()
            ),
        }
    }
}

/// A device number, `MAJ:MIN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevNum {
    pub major: u64,
    pub minor: u64,
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl DevNum {
    fn of(dev: libc::dev_t) -> DevNum {
        DevNum {
            major: major(dev),
            minor: minor(dev),
        }
    }
}

/// Where the kernel looks for the image at boot.
struct ResumeConfig {
    device: DevNum,
    /// The swap file's first page on `device`; `None` when the kernel does not expose
    /// `resume_offset` (then a swap file is matched on its device only, as systemd does).
    offset: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
enum SwapKind {
    Partition,
    File,
}

/// An active swap area that could hold an image.
pub(crate) struct SwapEntry {
    /// The area's path under the root.
    pub(crate) path: PathBuf,
    kind: SwapKind,
    size_kb: u64,
    used_kb: u64,
}

pub struct Hibernation {
    root: PathBuf,
    cmdline: PathBuf,
    resume: PathBuf,
    resume_offset: PathBuf,
    swaps: PathBuf,
    meminfo: PathBuf,
}

impl Hibernation {
    pub fn new(root: &Path) -> Hibernation {
        Hibernation {
            root: root.to_owned(),
            cmdline: sysfs::under(root, "proc/cmdline"),
            resume: sysfs::under(root, "sys/power/resume"),
            resume_offset: sysfs::under(root, "sys/power/resume_offset"),
            swaps: sysfs::under(root, "proc/swaps"),
            meminfo: sysfs::under(root, "proc/meminfo"),
        }
    }

    /// `Ok` when the kernel could resume from an image written now, else why not.
    pub fn check(&self) -> Result<(), NotResumable> {
        self.refuse_noresume()?;
        let resume = self.resume_config()?;
        let entries = self.swap_entries()?;
        let entry = self.resume_entry(&resume, &entries)?;
        self.check_room(entry)
    }

    /// `noresume` on the kernel command line (Documentation/admin-guide/kernel-parameters.txt):
    /// the kernel ignores any image at boot. A missing command line is no objection.
    fn refuse_noresume(&self) -> Result<(), NotResumable> {
        let Some(cmdline) = read_bytes(&self.cmdline)? else {
            return Ok(());
        };
        if has_noresume(&cmdline) {
            return Err(NotResumable::NoResume {
                file: self.cmdline.clone(),
            });
        }
        Ok(())
    }

    /// `/sys/power/resume` and `/sys/power/resume_offset`
    /// (Linux `Documentation/ABI/testing/sysfs-power`): the device the kernel resumes from,
    /// as `MAJ:MIN`, `0:0` when none is set; and for a swap file, its first page on that
    /// device (the file exists since Linux 4.17).
    ///
    /// systemd also allows hibernation without a resume device on an EFI boot: systemd-sleep
    /// then writes the image's location to the `HibernateLocation` EFI variable, and the next
    /// boot resumes from it. This backend writes no such variable, so without
    /// `/sys/power/resume` nothing would find the image: it needs the resume device set.
    fn resume_config(&self) -> Result<ResumeConfig, NotResumable> {
        let Some(bytes) = read_bytes(&self.resume)? else {
            return Err(NotResumable::NoResumeDevice {
                file: self.resume.clone(),
                exists: false,
            });
        };
        let device =
            parse_trimmed(&bytes, parse_devnum).map_err(|text| NotResumable::ResumeGarbled {
                file: self.resume.clone(),
                text,
            })?;
        if device.major == 0 && device.minor == 0 {
            return Err(NotResumable::NoResumeDevice {
                file: self.resume.clone(),
                exists: true,
            });
        }
        let offset = match read_bytes(&self.resume_offset)? {
            None => None,
            Some(bytes) => Some(parse_trimmed(&bytes, parse_decimal).map_err(|text| {
                NotResumable::ResumeOffsetGarbled {
                    file: self.resume_offset.clone(),
                    text,
                }
            })?),
        };
        Ok(ResumeConfig { device, offset })
    }

    /// The active swap areas that could hold an image, from `/proc/swaps` (proc(5): a header
    /// line, then per area `Filename Type Size Used Priority`, sizes in kB, separated by
    /// white space; spaces, tabs, newlines and backslashes in the path escaped as `\ooo`).
    /// Deleted swap files, zram devices (compressed RAM: gone at power-off) and types other
    /// than `partition` and `file` are left out. A missing file lists no swap area.
    fn swap_entries(&self) -> Result<Vec<SwapEntry>, NotResumable> {
        let Some(swaps) = read_bytes(&self.swaps)? else {
            return Ok(Vec::new());
        };
        parse_swaps(&self.root, &swaps).map_err(|line| NotResumable::SwapsLineGarbled {
            file: self.swaps.clone(),
            line,
        })
    }

    /// The entry that is the resume device: the first one whose device (a partition's own
    /// device number, a swap file's file system's) is the resume device, and for a swap file
    /// whose first page there is `resume_offset`, when the kernel exposes it.
    fn resume_entry<'a>(
        &self,
        resume: &ResumeConfig,
        entries: &'a [SwapEntry],
    ) -> Result<&'a SwapEntry, NotResumable> {
        let mut first_problem = None;
        for entry in entries {
            match is_resume_device(entry, resume) {
                Ok(true) => return Ok(entry),
                Ok(false) => {}
                Err(problem) => {
                    first_problem.get_or_insert(NotResumable::SwapUnusable {
                        swap: entry.path.clone(),
                        problem,
                    });
                }
            }
        }
        Err(
            first_problem.unwrap_or_else(|| NotResumable::NotResumeDevice {
                file: self.swaps.clone(),
                device: resume.device,
            }),
        )
    }

    /// The image must fit: `Active(anon)` in `/proc/meminfo` (proc(5): `Field:  N kB` lines)
    /// at most 98% of the resume device's free swap, as systemd requires.
    fn check_room(&self, entry: &SwapEntry) -> Result<(), NotResumable> {
        let Some(meminfo) = read_bytes(&self.meminfo)? else {
            return Err(NotResumable::MeminfoMissing {
                file: self.meminfo.clone(),
            });
        };
        let meminfo = String::from_utf8_lossy(&meminfo);
        let active_kb =
            active_anon_kb(&meminfo).ok_or_else(|| NotResumable::ActiveAnonGarbled {
                file: self.meminfo.clone(),
            })?;
        let free_kb = entry.size_kb.saturating_sub(entry.used_kb);
        if u128::from(active_kb) * 100 > u128::from(free_kb) * SWAP_THRESHOLD_PERCENT {
            return Err(NotResumable::TooLittleFreeSwap {
                swap: entry.path.clone(),
                meminfo: self.meminfo.clone(),
                active_kb,
                free_kb,
            });
        }
        Ok(())
    }
}

/// `path`, a swap area as the kernel names it (absolute, no `.` or `..`: `d_path`), under
/// `root`; `None` for any other path, which would name a file outside the root.
fn under_root(root: &Path, path: &Path) -> Option<std::path::PathBuf> {
    use std::path::Component;
    let mut components = path.components();
    (components.next() == Some(Component::RootDir)).then_some(())?;
    components.try_fold(root.to_owned(), |under, component| match component {
        Component::Normal(name) => Some(under.join(name)),
        _ => None,
    })
}

/// `/proc/swaps` (see [`Hibernation::swap_entries`]): the areas that could hold an image,
/// their paths under `root`; the number of the first line that does not parse.
pub(crate) fn parse_swaps(root: &Path, swaps: &[u8]) -> Result<Vec<SwapEntry>, usize> {
    let mut entries = Vec::new();
    for (index, line) in swaps.split(|&b| b == b'\n').enumerate().skip(1) {
        let fields: Vec<&[u8]> = line
            .split(u8::is_ascii_whitespace)
            .filter(|field| !field.is_empty())
            .collect();
        if fields.is_empty() {
            continue;
        }
        // Numbered from 1, the header's.
        let number = index + 1;
        let &[path, kind, size, used, priority] = fields.as_slice() else {
            return Err(number);
        };
        let (Some(size_kb), Some(used_kb), Some(_)) = (
            ascii(size).and_then(parse_decimal),
            ascii(used).and_then(parse_decimal),
            ascii(priority).and_then(|p| p.parse::<i32>().ok()),
        ) else {
            return Err(number);
        };
        let kind = match kind {
            b"file" if path.ends_with(b"\\040(deleted)") => continue,
            b"file" => SwapKind::File,
            b"partition" if path.starts_with(b"/dev/zram") => continue,
            b"partition" => SwapKind::Partition,
            _ => continue,
        };
        let path = unescape(path);
        let Some(path) = under_root(root, Path::new(OsStr::from_bytes(&path))) else {
            return Err(number);
        };
        entries.push(SwapEntry {
            path,
            kind,
            size_kb,
            used_kb,
        });
    }
    Ok(entries)
}

/// The file's bytes, `None` when it does not exist; any other failure is a reason.
fn read_bytes(file: &Path) -> Result<Option<Vec<u8>>, NotResumable> {
    match fs::read(file) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NotResumable::Unreadable(Unreadable::new(
            file.to_owned(),
            &e,
        ))),
    }
}

/// The word `parse` reads in a one-value file (trimmed of its newline), or the word when
/// it does not parse.
pub(crate) fn parse_trimmed<T>(
    bytes: &[u8],
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    parse(text).ok_or_else(|| text.to_owned())
}

/// Whether the kernel command line has the word `noresume`.
pub(crate) fn has_noresume(cmdline: &[u8]) -> bool {
    cmdline
        .split(u8::is_ascii_whitespace)
        .any(|word| word == b"noresume")
}

/// `MAJ:MIN`, both decimal.
pub(crate) fn parse_devnum(text: &str) -> Option<DevNum> {
    let (major, minor) = text.split_once(':')?;
    Some(DevNum {
        major: parse_decimal(major)?,
        minor: parse_decimal(minor)?,
    })
}

/// Digits only (no sign, no white space).
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn ascii(field: &[u8]) -> Option<&str> {
    std::str::from_utf8(field).ok()
}

/// The `Active(anon):  N kB` line's N.
pub(crate) fn active_anon_kb(meminfo: &str) -> Option<u64> {
    let value = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("Active(anon):"))?;
    let mut words = value.split_whitespace();
    let kb = parse_decimal(words.next()?)?;
    (words.next() == Some("kB") && words.next().is_none()).then_some(kb)
}

/// Undoes the kernel's `\ooo` escapes (seq_file's `mangle_path`).
fn unescape(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut rest = path;
    while let Some((&first, tail)) = rest.split_first() {
        let octal = match tail {
            [a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7', ..] if first == b'\\' => {
                Some((a - b'0') << 6 | (b - b'0') << 3 | (c - b'0'))
            }
            _ => None,
        };
        match octal {
            Some(byte) => {
                out.push(byte);
                rest = &tail[3..];
            }
            None => {
                out.push(first);
                rest = tail;
            }
        }
    }
    out
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// Whether `entry` is where the kernel resumes from (see [`Hibernation::resume_entry`]).
fn is_resume_device(entry: &SwapEntry, resume: &ResumeConfig) -> Result<bool, SwapProblem> {
    let st = stat(&entry.path).map_err(SwapProblem::Stat)?;
    match entry.kind {
        SwapKind::Partition => {
            if file_type(&st) != SFlag::S_IFBLK {
                return Err(SwapProblem::NotBlockDevice);
            }
            Ok(DevNum::of(st.st_rdev) == resume.device)
        }
        SwapKind::File => {
            if file_type(&st) != SFlag::S_IFREG {
                return Err(SwapProblem::NotRegularFile);
            }
            if DevNum::of(st.st_dev) != resume.device {
                return Ok(false);
            }
            match resume.offset {
                None => Ok(true),
                Some(offset) => Ok(first_page(&entry.path, &st)? == offset),
            }
        }
    }
}

/// `struct fiemap` without its extents (Linux `include/uapi/linux/fiemap.h`,
/// `Documentation/filesystems/fiemap.rst`).
#[repr(C)]
struct FiemapHeader {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

/// `struct fiemap_extent`.
#[repr(C)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

/// A `struct fiemap` with room for one extent.
#[repr(C)]
struct FiemapOneExtent {
    header: FiemapHeader,
    extent: FiemapExtent,
}

/// `FIEMAP_FLAG_SYNC`: write dirty pages out first, so that every extent has its place.
const FIEMAP_FLAG_SYNC: u32 = 0x1;

// FS_IOC_FIEMAP = _IOWR('f', 11, struct fiemap): the size is the header's.
nix::ioctl_readwrite!(fs_ioc_fiemap, b'f', 11, FiemapHeader);

/// `fstat` of an open file. libc's, not nix's: nix 0.29 (Debian 13's) takes a RawFd, 0.31
/// an AsFd.
fn fstat_file(file: &fs::File) -> nix::Result<FileStat> {
    let mut st = std::mem::MaybeUninit::<FileStat>::uninit();
    // SAFETY: `file` is open for the call, and `st` is a `struct stat` for fstat to fill.
    Errno::result(unsafe { libc::fstat(file.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// The swap file's first physical extent in pages, as `resume_offset` counts (systemd:
/// `fe_physical` of the first extent divided by the page size). `st` is the file's `stat`:
/// the file opened must still be that regular file.
fn first_page(path: &Path, st: &FileStat) -> Result<u64, SwapProblem> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| SwapProblem::Open(errno_of(&e)))?;
    let opened = fstat_file(&file).map_err(SwapProblem::Stat)?;
    if file_type(&opened) != SFlag::S_IFREG
        || (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino)
    {
        return Err(SwapProblem::Replaced);
    }
    let mut map = FiemapOneExtent {
        header: FiemapHeader {
            fm_start: 0,
            fm_length: u64::MAX,
            fm_flags: FIEMAP_FLAG_SYNC,
            fm_mapped_extents: 0,
            fm_extent_count: 1,
            fm_reserved: 0,
        },
        extent: FiemapExtent {
            fe_logical: 0,
            fe_physical: 0,
            fe_length: 0,
            fe_reserved64: [0; 2],
            fe_flags: 0,
            fe_reserved: [0; 3],
        },
    };
    // SAFETY: the descriptor is the open file's; the pointer is to a `struct fiemap`
    // followed by room for the one extent `fm_extent_count` allows, and it covers the whole
    // of `map` (derived from `&mut map`, not from its header alone), which outlives the call.
    unsafe {
        fs_ioc_fiemap(
            file.as_raw_fd(),
            std::ptr::addr_of_mut!(map).cast::<FiemapHeader>(),
        )
    }
    .map_err(SwapProblem::Fiemap)?;
    if map.header.fm_mapped_extents == 0 {
        return Err(SwapProblem::NoExtent);
    }
    let page = sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .filter(|&size| size > 0)
        .unwrap_or(4096);
    Ok(map.extent.fe_physical / page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_in_swap_paths_are_undone() {
        assert_eq!(unescape(b"/swap\\040file"), b"/swap file");
        assert_eq!(unescape(b"/a\\\\b\\9"), b"/a\\\\b\\9");
        assert_eq!(unescape(b"/back\\134slash"), b"/back\\slash");
    }

    #[test]
    fn swap_paths_stay_under_the_root() {
        let root = Path::new("/fake");
        let under = |path: &str| under_root(root, Path::new(path));
        assert_eq!(under("/dev/vda2"), Some("/fake/dev/vda2".into()));
        assert_eq!(under("//etc/shadow"), Some("/fake/etc/shadow".into()));
        for outside in ["/dev/../../etc/shadow", "/..", "swapfile", ""] {
            assert_eq!(under(outside), None, "{outside}");
        }
    }

    #[test]
    fn swap_areas_stay_under_the_root() {
        let swaps = b"Filename Type Size Used Priority\n//dev/vda2 partition 1 0 -2\n";
        let entries = parse_swaps(Path::new("/root"), swaps).unwrap();
        assert_eq!(entries[0].path, Path::new("/root/dev/vda2"));
    }

    #[test]
    fn active_anon_needs_a_number_of_kb() {
        assert_eq!(
            active_anon_kb("Active:  5 kB\nActive(anon):  102400 kB\n"),
            Some(102400)
        );
        assert_eq!(active_anon_kb("Active(anon):  lots kB\n"), None);
        assert_eq!(active_anon_kb("Active(anon):  12\n"), None);
        assert_eq!(active_anon_kb("MemTotal:  12 kB\n"), None);
    }

    #[test]
    fn device_numbers_are_major_colon_minor() {
        assert_eq!(
            parse_devnum("254:2"),
            Some(DevNum {
                major: 254,
                minor: 2
            })
        );
        for garbled in ["254", "254:", ":2", "254:2:1", "-1:2", "a:b", "254: 2"] {
            assert_eq!(parse_devnum(garbled), None, "{garbled}");
        }
    }
}
