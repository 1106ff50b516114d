//! The host's request: one per host, whatever the number of processes that load the library
//! (libvirt's modular daemons each do, beside the command-line tool and Python scripts).
//!
//! Its files are in `run/virnodesuspend/` under the root (`/run`: a tmpfs, gone at reboot
//! as a request is):
//!
//! - `guard`: an exclusive `flock` held for a few file operations at a time by whoever
//!   reads the record to change it (a request being accepted, aborted or settled, the
//!   owner recording a new phase), so that each change is one step for the whole host.
//! - `request`: the record, written under the guard, each time whole (a new file renamed
//!   over the old), so a reader without the guard always reads one version.
//! - `lock.PID.START.N`: the lock of one request, made for it (its name is in the record)
//!   and removed when it ends. The owner holds an exclusive `flock` on it for the life of
//!   the request; a waiter blocks on it, shared. A fresh file per request because fork()
//!   copies the owner's descriptor into its children: a child that outlives its parent
//!   keeps that request's lock taken, but no later request uses the file.
//!
//! A request is in progress while the record says so, its lock is taken, and its owner
//! may be alive (the lock may be held only by a child of an owner that died). Otherwise
//! the owner is gone and the request abandoned.
//!
//! The guard is 0600: whoever can open it could hold it for good and stop every request.
//! A request's lock is 0644: holding it shared stops nothing (a later request makes a file
//! of its own), and lets any user wait. The record is text, one `key=value` per line;
//! values are escaped so that each stays on its line.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::FlockArg;
use nix::unistd::{getpid, Pid};

use crate::config::BackendKind;
use crate::error::{Error, ErrorCode, Result};
use crate::sysfs;
use crate::target::Target;

const FUNCTION: &str = "virNodeSuspend";

/// The process that made a request: its pid; its start time (clock ticks after boot,
/// `/proc/PID/stat` field 22), so that a reused pid is not taken for the owner; and its pid
/// namespace (the inode of `/proc/PID/ns/pid`), within which alone its pid means it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: i32,
    pub start_time: u64,
    pub pid_namespace: u64,
}

impl Owner {
    /// This process.
    /// This process, or the error that kept its start time or pid namespace from being
    /// read (no descriptor free, say): a request recorded without them would be judged
    /// gone by every other process.
    pub fn this_process() -> Result<Owner> {
        let unreadable = |e: io::Error, path: &str| {
            Error::system(FUNCTION, &e, format!("Unable to read '{path}'"))
        };
        Ok(Owner {
            pid: getpid().as_raw(),
            // /proc/self: /proc/PID may show another process where /proc belongs to
            // another pid namespace.
            start_time: start_time("self").map_err(|e| unreadable(e, "/proc/self/stat"))?,
            pid_namespace: pid_namespace().map_err(|e| unreadable(e, "/proc/self/ns/pid"))?,
        })
    }

    /// Whether the process may still run. One of another pid namespace may: its pid says
    /// nothing here. What cannot be read (no descriptor free, say) does not tell it gone.
    pub fn may_be_alive(&self) -> bool {
        match pid_namespace() {
            Ok(namespace) if namespace == self.pid_namespace => {}
            _ => return true,
        }
        match start_time(&self.pid.to_string()) {
            Ok(start_time) => start_time == self.start_time,
            Err(e) => !gone(&e),
        }
    }
}

/// Whether reading a process's /proc entry failed because the process is gone.
fn gone(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH)
}

/// A process's start time, from proc(5)'s `/proc/PROCESS/stat` (the real one: the owner is
/// a process of this machine, whatever the root).
fn start_time(process: &str) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{process}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let field = stat
        .rfind(')')
        .and_then(|name_end| stat[name_end + 1..].split_whitespace().nth(19))
        .and_then(|field| field.parse().ok());
    field.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
}

/// This process's pid namespace: the inode of `/proc/self/ns/pid` (namespaces(7)).
fn pid_namespace() -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self/ns/pid").map(|m| m.ino())
}

/// An accepted request, as the record tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub owner: Owner,
    pub target: Target,
    pub backend: BackendKind,
    /// The alarm armed for it: the `wakealarm` file, relative to the root, and the value
    /// it holds once armed.
    pub wakealarm: String,
    pub wake_at: u64,
    /// When it was accepted, in seconds since the epoch (the system clock).
    pub accepted_at: u64,
    /// The name of its lock file.
    pub lock: String,
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

impl Phase {
    /// The request in progress, if the record holds one.
    pub fn accepted(&self) -> Option<&Accepted> {
        match self {
            Phase::Idle => None,
            Phase::Pending(accepted) | Phase::Suspending(accepted) => Some(accepted),
        }
    }
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
    /// Why it did not end with the host back; `None` when it did.
    pub error: Option<RecordedError>,
}

/// An error as the record keeps it: enough for a process that waited for another's
/// request to report it as the owner did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedError {
    pub code: ErrorCode,
    /// A `virErrorDomain`.
    pub domain: i32,
    pub message: String,
}

impl From<&Error> for RecordedError {
    fn from(error: &Error) -> RecordedError {
        RecordedError {
            code: error.code,
            domain: error.domain,
            message: error.message.clone(),
        }
    }
}

impl RecordedError {
    /// The error again, as raised by `function` of the process that reads it.
    pub fn to_error(&self, function: &'static str) -> Error {
        Error::recorded(self.code, self.domain, function, self.message.clone())
    }
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
            writeln!(f, "pid_namespace={}", a.owner.pid_namespace)?;
            writeln!(f, "target={}", a.target.name())?;
            writeln!(f, "backend={}", a.backend.name())?;
            writeln!(f, "wakealarm={}", escape(&a.wakealarm))?;
            writeln!(f, "wake_at={}", a.wake_at)?;
            writeln!(f, "lock={}", a.lock)?;
            writeln!(f, "accepted_at={}", a.accepted_at)?;
        }
        if let Some(last) = &self.last {
            writeln!(f, "last_outcome={}", last.ending.name())?;
            writeln!(f, "last_target={}", last.target.name())?;
            if let Some(error) = &last.error {
                writeln!(f, "last_error={}", escape(&error.message))?;
                writeln!(f, "last_code={}", error.code as i32)?;
                writeln!(f, "last_domain={}", error.domain)?;
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
    /// Parses the record's text; the error names the first key missing or malformed.
    pub(crate) fn parse(text: &str) -> std::result::Result<Record, String> {
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
                    pid_namespace: number("pid_namespace")?,
                },
                target: target("target")?,
                backend: BackendKind::named(value("backend")?).ok_or("backend is unknown")?,
                wakealarm: unescape(value("wakealarm")?),
                lock: lock_name(value("lock")?).ok_or("lock is not a lock file's name")?,
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
        // How the last request ended is for display: one this version cannot read (an
        // error code it does not know) is left out rather than the whole record.
        let last = || -> std::result::Result<Option<Ended>, String> {
            let Ok(name) = value("last_outcome") else {
                return Ok(None);
            };
            Ok(Some(Ended {
                ending: Ending::ALL
                    .into_iter()
                    .find(|e| e.name() == name)
                    .ok_or("last_outcome is unknown")?,
                target: target("last_target")?,
                error: match value("last_error") {
                    Err(_) => None,
                    Ok(message) => Some(RecordedError {
                        code: i32::try_from(number("last_code")?)
                            .ok()
                            .and_then(ErrorCode::from_number)
                            .ok_or("last_code is unknown")?,
                        domain: i32::try_from(number("last_domain")?)
                            .map_err(|_| "last_domain is out of range")?,
                        message: unescape(message),
                    }),
                },
            }))
        };
        Ok(Record {
            phase,
            last: last().unwrap_or(None),
        })
    }
}

/// `name` if it is a request lock's file name (`lock.` and digits and dots): a record
/// never makes the library open anything else.
fn lock_name(name: &str) -> Option<String> {
    let tail = name.strip_prefix("lock.")?;
    (!tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .then(|| name.to_owned())
}

/// The host's request files under one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRequest {
    dir: PathBuf,
}

/// An exclusive or shared `flock`. Dropped, it is released, but only by the process that
/// took it: a child forked meanwhile shares the lock's open file description, and
/// releasing it there would release the parent's lock too; the child only closes its copy.
/// (nix's `Flock` always releases on drop, hence the plain `flock` call.)
#[derive(Debug)]
pub struct HostLock {
    file: File,
    holder: Pid,
}

impl HostLock {
    /// The descriptor, for a forked child to let go of (see `node.rs`, `Requests::forked`).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        if getpid() == self.holder {
            // Closing the file releases the lock as well when no child shares it; the
            // explicit release covers children that do.
            #[allow(deprecated)]
            let _ = nix::fcntl::flock(self.file.as_raw_fd(), FlockArg::Unlock);
        }
    }
}

/// What the record's request is now.
#[derive(Debug, PartialEq, Eq)]
pub enum Liveness {
    /// No request in progress.
    Idle,
    /// Its owner holds its lock.
    Owned,
    /// Its owner is gone: the request is abandoned.
    Gone,
}

/// The guard held: reading the record, changing it and taking a request's lock are one
/// step for every process on the host.
pub struct Guard<'a> {
    host: &'a HostRequest,
    _held: HostLock,
}

/// Whether an error means this process may not take part in the host's request (an
/// unprivileged caller, a read-only `/run`).
pub fn is_not_permitted(error: &Error) -> bool {
    error.code == ErrorCode::SystemError
        && [libc::EACCES, libc::EPERM, libc::EROFS].contains(&error.int1)
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

    /// Takes the guard, waiting for it (it is held for a few file operations at a time).
    /// The directory and the guard file are made when missing (only root can, in `/run`).
    pub fn guard(&self) -> Result<Guard<'_>> {
        let path = self.dir.join("guard");
        let held = match lock(&path, FlockArg::LockExclusive, Create(0o600)) {
            // The directory is missing: made once, then every call finds it.
            Err(error) if error.int1 == libc::ENOENT => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(&self.dir)
                    // The mode asked for, whatever the process's umask: every process on
                    // the host reads the record.
                    .and_then(|()| fs::set_permissions(&self.dir, Permissions::from_mode(0o755)))
                    .map_err(|e| {
                        Error::system(
                            FUNCTION,
                            &e,
                            format!("Unable to create '{}'", self.dir.display()),
                        )
                    })?;
                lock(&path, FlockArg::LockExclusive, Create(0o600))?
            }
            held => held?,
        }
        .expect("a lock waited for is taken");
        Ok(Guard {
            host: self,
            _held: held,
        })
    }

    /// Takes the guard if it exists and is free now: for a look at an abandoned request,
    /// which must never wait (a process frozen with the guard would hang every first call)
    /// nor create anything.
    fn try_guard(&self) -> Result<Option<Guard<'_>>> {
        let path = self.dir.join("guard");
        if !path.exists() {
            return Ok(None);
        }
        Ok(
            lock(&path, FlockArg::LockExclusiveNonblock, Existing)?.map(|held| Guard {
                host: self,
                _held: held,
            }),
        )
    }

    /// The record as it is now; an empty one when there is none. A record that cannot be
    /// parsed reads as no request and no outcome: it is replaced at the next write.
    pub fn read(&self) -> Result<Record> {
        Ok(self.parsed()?.unwrap_or_default())
    }

    /// The record parsed, or why it could not be; an empty one when there is none.
    fn parsed(&self) -> Result<std::result::Result<Record, String>> {
        let text = sysfs::read_optional(&self.record_path(), FUNCTION)?;
        Ok(text.map_or_else(|| Ok(Record::default()), |text| Record::parse(&text)))
    }

    /// Returns once `accepted`'s owner no longer holds its lock: its request is over and
    /// recorded, or its process died. No polling: the kernel wakes the waiter. (Should the
    /// owner die leaving a forked child with a copy of the lock, that is when the child
    /// ends or execs.)
    pub fn wait_while_owned(&self, accepted: &Accepted) -> Result<()> {
        // Any user may: a request's lock file is readable, and holding it shared stops
        // nothing (a later request makes a file of its own).
        // Released at once: the lock is only the owner's to hold. No lock file: the
        // request is over.
        match lock(
            &self.dir.join(&accepted.lock),
            FlockArg::LockShared,
            Existing,
        ) {
            Err(error) if error.int1 == libc::ENOENT => Ok(()),
            taken => taken.map(drop),
        }
    }

    /// Looks for a request whose owner is gone, and settles it with `settle` (under the
    /// guard). Nothing is created, and nothing waited for.
    pub fn settle_abandoned(&self, settle: impl FnOnce(&Guard, Record)) -> Result<()> {
        if let Some(guard) = self.try_guard()? {
            let record = guard.read()?;
            if guard.liveness(&record)? == Liveness::Gone {
                settle(&guard, record);
            }
        }
        Ok(())
    }
}

impl Guard<'_> {
    /// The record, to change it. One that cannot be parsed (a corrupted file, a library of
    /// another version) is taken for a request in progress while any request's lock is
    /// held, so that it never lets a second request in; else for none.
    pub fn read(&self) -> Result<Record> {
        match self.host.parsed()? {
            Ok(record) => Ok(record),
            Err(_) if self.some_lock_is_held()? => Err(already_in_progress()),
            Err(_) => Ok(Record::default()),
        }
    }

    fn some_lock_is_held(&self) -> Result<bool> {
        let Ok(entries) = fs::read_dir(&self.host.dir) else {
            return Ok(false);
        };
        for name in entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
        {
            if lock_name(&name).is_some()
                && lock(
                    &self.host.dir.join(&name),
                    FlockArg::LockExclusiveNonblock,
                    Existing,
                )?
                .is_none()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `record`'s request is in progress, or abandoned.
    pub fn liveness(&self, record: &Record) -> Result<Liveness> {
        let Some(accepted) = record.phase.accepted() else {
            return Ok(Liveness::Idle);
        };
        let path = self.host.dir.join(&accepted.lock);
        Ok(
            match lock(&path, FlockArg::LockExclusiveNonblock, Existing) {
                // No lock file: its owner ended the request, or never made one.
                Err(error) if error.int1 == libc::ENOENT => Liveness::Gone,
                Err(error) => return Err(error),
                Ok(Some(_free)) => Liveness::Gone,
                // Taken, but perhaps only by a child of an owner that died.
                Ok(None) if accepted.owner.may_be_alive() => Liveness::Owned,
                Ok(None) => Liveness::Gone,
            },
        )
    }

    /// Makes and takes the lock of a new request of `owner`.
    pub fn new_lock(&self, owner: &Owner) -> Result<(HostLock, String)> {
        static REQUESTS: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "lock.{}.{}.{}",
            owner.pid,
            owner.start_time,
            REQUESTS.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.host.dir.join(&name);
        let held =
            lock(&path, FlockArg::LockExclusiveNonblock, Fresh(0o644))?.ok_or_else(|| {
                Error::system(
                    FUNCTION,
                    &io::Error::from_raw_os_error(libc::EWOULDBLOCK),
                    format!("Unable to lock '{}'", path.display()),
                )
            })?;
        Ok((held, name))
    }

    /// Removes the lock file of a request that is over (whoever still holds it open keeps
    /// only a file no request uses).
    pub fn remove_lock(&self, accepted: &Accepted) {
        let _ = fs::remove_file(self.host.dir.join(&accepted.lock));
    }

    /// Replaces the record.
    pub fn write(&self, record: &Record) -> Result<()> {
        let path = self.host.record_path();
        let new = self.host.dir.join(format!("request.{}.new", getpid()));
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&new)
            .and_then(|mut file| {
                // Readable by every process on the host, whatever the writer's umask.
                file.set_permissions(Permissions::from_mode(0o644))?;
                file.write_all(record.to_string().as_bytes())
            })
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

/// Which lock file [`lock`] opens.
#[derive(Clone, Copy)]
enum LockFile {
    /// Made with this mode when missing.
    Create(u32),
    /// Made anew with this mode; a leftover of the same name is replaced.
    Fresh(u32),
    Existing,
}
use LockFile::{Create, Existing, Fresh};

/// Opens (and makes) a lock file. An existing one is opened as it is, in one system call:
/// `virNodeSuspend` opens the guard every time, and its whole cost is a few dozen system
/// calls (`scripts/bench`).
fn open_lock_file(path: &Path, kind: LockFile) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).custom_flags(libc::O_CLOEXEC);
    let (made, mode) = match kind {
        Existing => return options.open(path),
        Create(mode) => match options.open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (options.write(true).create(true).mode(mode).open(path), mode)
            }
            opened => return opened,
        },
        Fresh(mode) => {
            options.write(true).create_new(true).mode(mode);
            let made = match options.open(path) {
                // Left by a process of the same pid and start time in another boot's
                // /run, or one this process could not remove.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    fs::remove_file(path).and_then(|()| options.open(path))
                }
                made => made,
            };
            (made, mode)
        }
    };
    let made = made?;
    // The mode asked for, whatever the process's umask.
    made.set_permissions(Permissions::from_mode(mode))?;
    Ok(made)
}

/// A `flock` on `path`; `None` when another open file description holds it and `how` does
/// not wait.
fn lock(path: &Path, how: FlockArg, kind: LockFile) -> Result<Option<HostLock>> {
    let file = open_lock_file(path, kind)
        .map_err(|e| Error::system(FUNCTION, &e, format!("Unable to open '{}'", path.display())))?;
    loop {
        #[allow(deprecated)] // see HostLock: nix's Flock would release it in forked children
        match nix::fcntl::flock(file.as_raw_fd(), how) {
            Ok(()) => {
                return Ok(Some(HostLock {
                    file,
                    holder: getpid(),
                }))
            }
            Err(Errno::EWOULDBLOCK) => return Ok(None),
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
                pid_namespace: 4026531836,
            },
            target: Target::Hybrid,
            backend: BackendKind::PmUtils,
            wakealarm: "sys/class/rtc/rtc0/wakealarm".into(),
            wake_at: 1_800_000_061,
            accepted_at: 1_799_999_990,
            lock: "lock.42.7.0".into(),
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
                    error: Some(RecordedError {
                        code: ErrorCode::DbusService,
                        domain: 47,
                        message: "line one\nline \\two".into(),
                    }),
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

    /// The record of a request of this process, with its lock taken.
    fn owned(host: &HostRequest) -> (HostLock, Record) {
        let guard = host.guard().unwrap();
        let owner = Owner::this_process().unwrap();
        let (lock, name) = guard.new_lock(&owner).unwrap();
        let record = Record {
            phase: Phase::Pending(Accepted {
                owner,
                lock: name,
                ..accepted()
            }),
            last: None,
        };
        guard.write(&record).unwrap();
        (lock, record)
    }

    #[test]
    fn request_is_owned_while_its_lock_is_held() {
        let root = FakeRoot::new();
        let host = HostRequest::new(root.path());
        let (lock, record) = owned(&host);
        // Looked at through another open file description, as another process does.
        assert_eq!(host.guard().unwrap().liveness(&record), Ok(Liveness::Owned));
        drop(lock);
        assert_eq!(host.guard().unwrap().liveness(&record), Ok(Liveness::Gone));
        assert_eq!(
            host.guard().unwrap().liveness(&Record::default()),
            Ok(Liveness::Idle)
        );
    }

    #[test]
    fn lock_held_only_for_an_owner_that_is_gone_is_abandoned() {
        let root = FakeRoot::new();
        let host = HostRequest::new(root.path());
        let (_lock, mut record) = owned(&host);
        // As a child forked by an owner that has died holds its copy of the lock.
        if let Phase::Pending(accepted) = &mut record.phase {
            accepted.owner.start_time += 1;
        }
        assert_eq!(host.guard().unwrap().liveness(&record), Ok(Liveness::Gone));
        // An owner of another pid namespace may be alive: its pid says nothing here.
        if let Phase::Pending(accepted) = &mut record.phase {
            accepted.owner.pid_namespace += 1;
        }
        assert_eq!(host.guard().unwrap().liveness(&record), Ok(Liveness::Owned));
    }

    #[test]
    fn record_names_no_file_but_a_lock_file() {
        for bad in ["../../etc/passwd", "lock.", "lock.1/2", "guard", "lock.1.x"] {
            assert_eq!(lock_name(bad), None, "{bad}");
        }
        assert_eq!(lock_name("lock.1.2.3").as_deref(), Some("lock.1.2.3"));
    }

    #[test]
    fn record_files_are_private_to_root_but_the_record_is_readable_whatever_the_umask() {
        let root = FakeRoot::new();
        let host = HostRequest::new(root.path());
        // SAFETY: umask only changes this process's creation mask; restored below.
        let umask = unsafe { libc::umask(0o077) };
        let (_lock, record) = owned(&host);
        // SAFETY: as above.
        unsafe { libc::umask(umask) };
        let mode = |name: &str| {
            fs::metadata(root.path().join("run/virnodesuspend").join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        let lock = &record.phase.accepted().unwrap().lock;
        assert_eq!(
            (mode(""), mode("guard"), mode(lock), mode("request")),
            (0o755, 0o600, 0o644, 0o644)
        );
    }

    #[test]
    fn this_process_has_a_start_time() {
        let owner = Owner::this_process().unwrap();
        assert_eq!(owner.pid, std::process::id() as i32);
        assert!(owner.start_time > 0);
        assert!(owner.may_be_alive());
    }

    #[test]
    fn a_process_that_is_gone_or_started_later_is_not_alive() {
        let owner = Owner::this_process().unwrap();
        let restarted = Owner {
            start_time: owner.start_time + 1,
            ..owner
        };
        assert!(!restarted.may_be_alive());
        // Beyond the largest pid the kernel hands out (4194304): never a process.
        let gone = Owner {
            pid: 1 << 23,
            ..owner
        };
        assert!(!gone.may_be_alive());
    }
}
