//! The host's request: one per host, whatever the number of processes that load the library
//! (libvirt's modular daemons each do, beside the command-line tool and Python scripts).
//!
//! Its files are in `run/virnodesuspend/` under the root (`/run`: a tmpfs, gone at reboot
//! as a request is):
//!
//! - `lock`: the owner of a request holds an exclusive `flock` on it for the life of the
//!   request, pending and suspending. Taking it without waiting is how a request is
//!   accepted; finding it free while the record says a request is in progress is how an
//!   owner that died is recognised (the kernel drops the lock with the process).
//! - `guard`: held (exclusive, waiting for it) for a few file operations at a time, by
//!   whoever reads the record to change it: a request being accepted, an abandoned one
//!   being settled, the owner recording a new phase. So a process that only looks for an
//!   abandoned request (taking `lock` for a moment) never makes another's request look
//!   "in progress": the request waits for the guard, then finds `lock` free.
//! - `request`: the record, written under the guard, each time whole (a new file renamed
//!   over the old), so a reader without the guard always reads one version.
//!
//! Both lock files are 0600: whoever can open one could hold it for good.
//!
//! The record is text, one `key=value` per line; values are escaped so that each stays on
//! its line.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::unistd::{getpid, Pid};

use crate::config::BackendKind;
use crate::error::{Error, ErrorCode, Result};
use crate::sysfs;
use crate::target::Target;

/// The process that made a request: its pid, and its start time (clock ticks after boot,
/// `/proc/PID/stat` field 22), so that a reused pid is not taken for the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: i32,
    pub start_time: u64,
}

impl Owner {
    /// This process.
    pub fn this_process() -> Owner {
        let pid = getpid().as_raw();
        Owner {
            pid,
            start_time: start_time(pid).unwrap_or(0),
        }
    }
}

/// A process's start time, from proc(5)'s `/proc/PID/stat` (the real one: the owner is a
/// process of this machine, whatever the root).
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// An accepted request, as the record tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub owner: Owner,
    pub target: Target,
    pub backend: BackendKind,
    /// The alarm armed for it: the `wakealarm` file, relative to the root, and the value
    /// written there.
    pub wakealarm: String,
    pub wake_at: u64,
    /// When it was accepted, in seconds since the epoch (the system clock).
    pub accepted_at: u64,
}

/// The phase of the host's request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Idle,
    /// Accepted, the alarm armed; the suspend has not started.
    Pending(Accepted),
    /// The backend has been asked to suspend the host.
    Suspending(Accepted),
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The backend reported the host back from its sleep.
    Back,
    Failed,
    /// Cancelled before the suspend started.
    Aborted,
    /// Its process ended before the request did.
    Abandoned,
}

impl Ending {
    const ALL: [Ending; 4] = [
        Ending::Back,
        Ending::Failed,
        Ending::Aborted,
        Ending::Abandoned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ending::Back => "back",
            Ending::Failed => "failed",
            Ending::Aborted => "aborted",
            Ending::Abandoned => "abandoned",
        }
    }
}

/// The last request that ended, as every process on the host can read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    pub ending: Ending,
    pub target: Target,
    /// The error's message; `None` when the host came back.
    pub error: Option<String>,
}

/// The record: the host's request now, and how the last one ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub phase: Phase,
    pub last: Option<Ended>,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (state, accepted) = match &self.phase {
            Phase::Idle => ("idle", None),
            Phase::Pending(accepted) => ("pending", Some(accepted)),
            Phase::Suspending(accepted) => ("suspending", Some(accepted)),
        };
        writeln!(f, "state={state}")?;
        if let Some(a) = accepted {
            writeln!(f, "pid={}", a.owner.pid)?;
            writeln!(f, "start_time={}", a.owner.start_time)?;
            writeln!(f, "target={}", a.target.name())?;
            writeln!(f, "backend={}", a.backend.name())?;
            writeln!(f, "wakealarm={}", escape(&a.wakealarm))?;
            writeln!(f, "wake_at={}", a.wake_at)?;
            writeln!(f, "accepted_at={}", a.accepted_at)?;
        }
        if let Some(last) = &self.last {
            writeln!(f, "last_outcome={}", last.ending.name())?;
            writeln!(f, "last_target={}", last.target.name())?;
            if let Some(error) = &last.error {
                writeln!(f, "last_error={}", escape(error))?;
            }
        }
        Ok(())
    }
}

/// Backslashes and line ends escaped, so that a value stays on its line.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn unescape(value: &str) -> String {
    let mut text = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => text.push('\n'),
                Some('r') => text.push('\r'),
                Some(other) => text.push(other),
                None => text.push('\\'),
            },
            (c, false) => text.push(c),
        }
    }
    text
}

impl Record {
    /// Parses the record's text; `None` names the first key missing or malformed.
    fn parse(text: &str) -> std::result::Result<Record, String> {
        let values: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let value = |key: &str| {
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("no {key}"))
        };
        let number = |key: &str| -> std::result::Result<u64, String> {
            value(key)?
                .parse()
                .map_err(|_| format!("{key} is not a number"))
        };
        let target = |key: &str| {
            value(key).and_then(|name| Target::named(name).ok_or(format!("{key} is unknown")))
        };
        let accepted = || -> std::result::Result<Accepted, String> {
            Ok(Accepted {
                owner: Owner {
                    pid: i32::try_from(number("pid")?).map_err(|_| "pid is out of range")?,
                    start_time: number("start_time")?,
                },
                target: target("target")?,
                backend: BackendKind::named(value("backend")?).ok_or("backend is unknown")?,
                wakealarm: unescape(value("wakealarm")?),
                wake_at: number("wake_at")?,
                accepted_at: number("accepted_at")?,
            })
        };
        let phase = match value("state")? {
            "idle" => Phase::Idle,
            "pending" => Phase::Pending(accepted()?),
            "suspending" => Phase::Suspending(accepted()?),
            _ => return Err("state is unknown".to_owned()),
        };
        let last = match value("last_outcome") {
            Err(_) => None,
            Ok(name) => Some(Ended {
                ending: Ending::ALL
                    .into_iter()
                    .find(|e| e.name() == name)
                    .ok_or("last_outcome is unknown")?,
                target: target("last_target")?,
                error: value("last_error").ok().map(unescape),
            }),
        };
        Ok(Record { phase, last })
    }
}

/// The host's request files under one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRequest {
    dir: PathBuf,
}

/// The exclusive lock on the host's request. Dropped, it is released, but only by the
/// process that took it: a child forked meanwhile shares the lock's open file description,
/// and releasing it there would release the parent's lock too; the child only closes its
/// copy. (nix's `Flock` always releases on drop, hence the plain `flock` call.)
#[derive(Debug)]
pub struct HostLock {
    file: File,
    holder: Pid,
}

impl Drop for HostLock {
    fn drop(&mut self) {
        if getpid() == self.holder {
            // Closing the file releases the lock as well when no child shares it; the
            // explicit release covers children that do.
            #[allow(deprecated)]
            let _ = nix::fcntl::flock(self.file.as_raw_fd(), nix::fcntl::FlockArg::Unlock);
        }
    }
}

const FUNCTION: &str = "virNodeSuspend";

/// The guard held: reading the record, changing it and taking the owner's lock are one
/// step for every process on the host.
pub struct Guard<'a> {
    host: &'a HostRequest,
    _held: HostLock,
}

impl HostRequest {
    pub fn new(root: &Path) -> HostRequest {
        HostRequest {
            dir: sysfs::under(root, "run/virnodesuspend"),
        }
    }

    fn record_path(&self) -> PathBuf {
        self.dir.join("request")
    }

    /// Takes the guard, waiting for it (nobody holds it longer than a few file operations).
    /// The directory and the lock files are made when missing (only root can, in `/run`).
    pub fn guard(&self) -> Result<Guard<'_>> {
        if let Err(e) = DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
        {
            return Err(Error::system(
                FUNCTION,
                &e,
                format!("Unable to create '{}'", self.dir.display()),
            ));
        }
        let held = lock(&self.dir.join("guard"), Wait::Yes)?.expect("a waiting lock is taken");
        Ok(Guard {
            host: self,
            _held: held,
        })
    }

    /// Replaces the record for `_owner`, the holder of the request's lock.
    pub fn record(&self, _owner: &HostLock, record: &Record) -> Result<()> {
        self.guard()?.write(record)
    }

    /// The record as it is now (see [`Guard::read`]).
    pub fn read(&self) -> Result<Record> {
        let path = self.record_path();
        match sysfs::read_optional(&path, FUNCTION)? {
            None => Ok(Record::default()),
            Some(text) => Ok(Record::parse(&text).unwrap_or_default()),
        }
    }

    /// Looks for a request whose owner is gone, and settles it with `settle` (under the
    /// guard). Nothing is created: a host that never had a request has nothing to settle.
    pub fn settle_abandoned(&self, settle: impl FnOnce(&Guard, Record)) -> Result<()> {
        if !self.dir.join("guard").exists() {
            return Ok(());
        }
        let guard = self.guard()?;
        if guard.try_own()?.is_some() {
            let record = guard.read()?;
            if record.phase != Phase::Idle {
                settle(&guard, record);
            }
        }
        Ok(())
    }
}

impl Guard<'_> {
    /// Takes the request's lock if no process holds it: `None` when a request is in
    /// progress.
    pub fn try_own(&self) -> Result<Option<HostLock>> {
        lock(&self.host.dir.join("lock"), Wait::No)
    }

    /// The record; an empty one when there is none. A record that cannot be parsed reads
    /// as no request and no outcome: it is replaced at the next write.
    pub fn read(&self) -> Result<Record> {
        self.host.read()
    }

    /// Replaces the record.
    pub fn write(&self, record: &Record) -> Result<()> {
        let path = self.host.record_path();
        let new = self.host.dir.join(format!("request.{}.new", getpid()));
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&new)
            .and_then(|mut file| file.write_all(record.to_string().as_bytes()))
            .and_then(|()| fs::rename(&new, &path));
        written.map_err(|e| {
            let _ = fs::remove_file(&new);
            Error::system(
                FUNCTION,
                &e,
                format!("Unable to write the request record '{}'", path.display()),
            )
        })
    }
}

#[derive(PartialEq, Eq)]
enum Wait {
    Yes,
    No,
}

/// An exclusive `flock` on `path` (created 0600 when missing); `None` when another open
/// file description holds it and `wait` is `No`.
fn lock(path: &Path, wait: Wait) -> Result<Option<HostLock>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::system(FUNCTION, &e, format!("Unable to open '{}'", path.display())))?;
    let how = match wait {
        Wait::Yes => nix::fcntl::FlockArg::LockExclusive,
        Wait::No => nix::fcntl::FlockArg::LockExclusiveNonblock,
    };
    loop {
        #[allow(deprecated)] // see HostLock: nix's Flock would release it in forked children
        match nix::fcntl::flock(file.as_raw_fd(), how) {
            Ok(()) => {
                return Ok(Some(HostLock {
                    file,
                    holder: getpid(),
                }))
            }
            Err(Errno::EWOULDBLOCK) if wait == Wait::No => return Ok(None),
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(Error::system(
                    FUNCTION,
                    &io::Error::from(errno),
                    format!("Unable to lock '{}'", path.display()),
                ))
            }
        }
    }
}

/// Seconds since the epoch on the system clock.
pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// "Suspend operation already in progress", as libvirt 9.0 refuses a second request.
#[cold]
pub fn already_in_progress() -> Error {
    Error::new(
        ErrorCode::OperationInvalid,
        FUNCTION,
        "Suspend operation already in progress",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeRoot;

    fn accepted() -> Accepted {
        Accepted {
            owner: Owner {
                pid: 42,
                start_time: 7,
            },
            target: Target::Hybrid,
            backend: BackendKind::PmUtils,
            wakealarm: "sys/class/rtc/rtc0/wakealarm".into(),
            wake_at: 1_800_000_061,
            accepted_at: 1_799_999_990,
        }
    }

    #[test]
    fn record_reads_back_as_written() {
        let records = [
            Record::default(),
            Record {
                phase: Phase::Suspending(accepted()),
                last: Some(Ended {
                    ending: Ending::Failed,
                    target: Target::Mem,
                    error: Some("line one\nline \\two".into()),
                }),
            },
            Record {
                phase: Phase::Pending(accepted()),
                last: Some(Ended {
                    ending: Ending::Back,
                    target: Target::Disk,
                    error: None,
                }),
            },
        ];
        for record in records {
            assert_eq!(Record::parse(&record.to_string()), Ok(record));
        }
    }

    #[test]
    fn garbled_record_reads_as_none() {
        let root = FakeRoot::new().file("run/virnodesuspend/request", "state=pending\npid=x\n");
        assert_eq!(
            HostRequest::new(root.path()).read().unwrap(),
            Record::default()
        );
    }

    #[test]
    fn lock_is_taken_once_per_host() {
        let root = FakeRoot::new();
        let host = HostRequest::new(root.path());
        let held = host.guard().unwrap().try_own().unwrap().expect("free");
        // Another open file description, as another process has: refused.
        assert!(host.guard().unwrap().try_own().unwrap().is_none());
        drop(held);
        assert!(host.guard().unwrap().try_own().unwrap().is_some());
    }

    #[test]
    fn record_files_are_private_to_root_but_the_record_is_readable() {
        use std::os::unix::fs::PermissionsExt;
        let root = FakeRoot::new();
        let host = HostRequest::new(root.path());
        host.guard().unwrap().write(&Record::default()).unwrap();
        let mode = |name: &str| {
            fs::metadata(root.path().join("run/virnodesuspend").join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        host.guard().unwrap().try_own().unwrap();
        assert_eq!(
            (mode("guard"), mode("lock"), mode("request")),
            (0o600, 0o600, 0o644)
        );
    }

    #[test]
    fn this_process_has_a_start_time() {
        let owner = Owner::this_process();
        assert_eq!(owner.pid, std::process::id() as i32);
        assert!(owner.start_time > 0);
    }
}
