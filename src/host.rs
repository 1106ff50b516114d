//! The host's request files: one request per host, whatever the number of processes that
//! load the library (libvirt's modular daemons each do, beside the command-line tool and
//! Python scripts). What the record says and when it changes is [`crate::request`]'s; this
//! module keeps the files, their locks and their text.
//!
//! Its files are in `run/virnodesuspend/` under the root (`/run`: a tmpfs, gone at reboot
//! as a request is):
//!
//! - `guard`: an exclusive `flock` held for a few file operations at a time by whoever
//!   reads the record to change it (a request being accepted, aborted or settled, the
//!   owner recording a new phase), so that each change is one step for the whole host.
//! - `request`: the record, written under the guard, each time whole (a new file renamed
//!   over the old), so a reader without the guard always reads one version.
//! - `lock.PID.START.N`: the lock of one request, made for it (its name is in the record,
//!   and names the request in the outcome recorded when it ends) and removed when it ends.
//!   The owner holds an exclusive `flock` on it for the life of the request. A fresh file
//!   per request because fork() copies the owner's descriptor into its children: a child
//!   that outlives its parent keeps that request's lock taken, but no later request uses
//!   the file.
//!
//! A request is in progress while the record says so, its lock is taken, and its owner
//! may be alive (the lock may be held only by a child of an owner that died). Otherwise
//! the owner is gone and the request abandoned.
//!
//! What another local user can do: read the record (0644), so see the request and wait for
//! it; nothing else. The guard and the locks are 0600: whoever can open a lock file can
//! `flock` it (a read-only descriptor is enough), and a lock held by someone else would
//! refuse a request or hold up whoever waits on it. So no one waits on a lock: a waiter
//! watches the record change (inotify) and looks at the owner's process now and then
//! ([`HostRequest::wait_for`]). Nothing in the directory is trusted that root did not make:
//! the directory must be root's (or, on a test's fake root, the caller's own) and writable
//! by no one else, files are opened without following links, without blocking (a FIFO
//! answers at once) and taken only when regular, and new names are made exclusively.
//! The record is text, one `key=value` per line; values are escaped so that each stays on
//! its line.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::FlockArg;
use nix::unistd::{geteuid, getpid, Pid};

use crate::config::BackendKind;
use crate::error::{Error, ErrorCode, Result};
use crate::request::{Accepted, Ended, Ending, Phase, Record, RecordedError};
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
            writeln!(f, "last_request={}", last.request)?;
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
                request: lock_name(value("last_request")?)
                    .ok_or("last_request is not a lock file's name")?,
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

/// An exclusive `flock`. Dropped, it is released, but only by the process that took it: a
/// child forked meanwhile shares the lock's open file description, and releasing it there
/// would release the parent's lock too; the child only closes its copy (which is how a
/// forked child lets go of its parent's request: `request::Life`). (nix's `Flock`
/// always releases on drop, hence the plain `flock` call.)
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

/// How a wait for a request of another process ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited {
    /// The record no longer holds the request: here it is, as it was then.
    Over(Record),
    /// Its owner seems gone with the request still recorded: whoever may take the guard
    /// settles it.
    OwnerGone,
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

/// How often a waiter looks whether the owner of the request it waits for is still there:
/// a change of the record wakes it at once, the owner's death does not.
const OWNER_LOOK_INTERVAL: Duration = Duration::from_millis(500);

/// The most of the record that is read: it is a few hundred bytes.
const RECORD_MAX: u64 = 64 * 1024;

impl HostRequest {
    pub fn new(root: &Path) -> HostRequest {
        HostRequest {
            dir: sysfs::under(root, "run/virnodesuspend"),
        }
    }

    fn record_path(&self) -> PathBuf {
        self.dir.join("request")
    }

    /// Whether the directory exists; an error when it does but is not to be trusted: not
    /// a directory (a link, say), not root's (nor, on a test's fake root, this process's
    /// own user's), or writable by others, who could plant or replace what is in it.
    fn trusted_dir(&self) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let metadata = match fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(Error::system(
                    FUNCTION,
                    &e,
                    format!("Unable to read '{}'", self.dir.display()),
                ))
            }
            Ok(metadata) => metadata,
        };
        let owner_trusted = metadata.uid() == 0 || metadata.uid() == geteuid().as_raw();
        match metadata.is_dir() && owner_trusted && metadata.mode() & 0o022 == 0 {
            true => Ok(true),
            false => Err(Error::new(
                ErrorCode::InternalError,
                FUNCTION,
                format!(
                    "'{}' is not a directory of root's that only root may write to: nothing in it is trusted",
                    self.dir.display()
                ),
            )),
        }
    }

    /// Takes the guard, waiting for it (it is held for a few file operations at a time).
    /// The directory and the guard file are made when missing (only root can, in `/run`).
    pub fn guard(&self) -> Result<Guard<'_>> {
        self.take_guard(FlockArg::LockExclusive)
            .map(|guard| guard.expect("a lock waited for is taken"))
    }

    /// Takes the guard if it is free now (`None` when another holds it), as
    /// [`HostRequest::guard`] otherwise: for a caller that holds something else, and must
    /// not hold it while it waits.
    pub fn guard_now(&self) -> Result<Option<Guard<'_>>> {
        self.take_guard(FlockArg::LockExclusiveNonblock)
    }

    fn take_guard(&self, how: FlockArg) -> Result<Option<Guard<'_>>> {
        if !self.trusted_dir()? {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&self.dir)
                // The mode asked for, whatever the process's umask: every process on the
                // host reads the record.
                .and_then(|()| fs::set_permissions(&self.dir, Permissions::from_mode(0o755)))
                .map_err(|e| {
                    Error::system(
                        FUNCTION,
                        &e,
                        format!("Unable to create '{}'", self.dir.display()),
                    )
                })?;
            self.trusted_dir()?;
        }
        let held = self.lock("guard", how, Create(0o600))?;
        Ok(held.map(|held| Guard {
            host: self,
            _held: held,
        }))
    }

    /// Takes the guard if it exists and is free now: for a look at an abandoned request,
    /// which must never wait (a process frozen with the guard would hang every first call)
    /// nor create anything.
    fn try_guard(&self) -> Result<Option<Guard<'_>>> {
        if !self.trusted_dir()? {
            return Ok(None);
        }
        match self.lock("guard", FlockArg::LockExclusiveNonblock, Existing) {
            Err(error) if error.int1 == libc::ENOENT => Ok(None),
            held => Ok(held?.map(|held| Guard {
                host: self,
                _held: held,
            })),
        }
    }

    /// The record as it is now; an empty one when there is none. A record that cannot be
    /// parsed reads as no request and no outcome: it is replaced at the next write.
    pub fn read(&self) -> Result<Record> {
        if !self.trusted_dir()? {
            return Ok(Record::default());
        }
        Ok(self.parsed()?.unwrap_or_default())
    }

    /// The record parsed, or why it could not be; an empty one when there is none. The
    /// caller has found the directory trusted ([`HostRequest::read`], or the guard taken).
    fn parsed(&self) -> Result<std::result::Result<Record, String>> {
        use std::io::Read;
        let file = match self.open("request", OpenOptions::new().read(true)) {
            Err(error) if error.int1 == libc::ENOENT => return Ok(Ok(Record::default())),
            opened => opened?,
        };
        let mut bytes = Vec::new();
        file.take(RECORD_MAX)
            .read_to_end(&mut bytes)
            .map_err(|e| self.failed("read", "request", &e))?;
        Ok(String::from_utf8(bytes)
            .map_err(|_| "the record is not UTF-8".to_owned())
            .and_then(|text| Record::parse(&text)))
    }

    /// Waits until the record no longer holds `accepted` (its request is over: its
    /// outcome is in the record then, unless a later request has ended since), or its
    /// owner seems gone. Any user may: the record is readable, and nothing here takes a
    /// lock. A change of the record wakes the waiter at once (inotify on the directory; a
    /// host whose inotify instances ran out only looks each interval); the owner's process
    /// and, where this process may open it, its lock are looked at each interval.
    pub fn wait_for(&self, accepted: &Accepted) -> Result<Waited> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let changes = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .and_then(|inotify| {
                let flags = AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_DELETE
                    | AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF;
                inotify.add_watch(&self.dir, flags).map(|_| inotify)
            })
            .ok();
        loop {
            let record = self.read()?;
            if record.phase.accepted() != Some(accepted) {
                return Ok(Waited::Over(record));
            }
            if self.owner_seems_gone(accepted) {
                return Ok(Waited::OwnerGone);
            }
            match &changes {
                Some(changes) => {
                    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
                    use std::os::fd::AsFd;
                    let mut fds = [PollFd::new(changes.as_fd(), PollFlags::POLLIN)];
                    let timeout = PollTimeout::try_from(OWNER_LOOK_INTERVAL)
                        .expect("the interval fits a poll timeout");
                    match poll(&mut fds, timeout) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(errno) => {
                            return Err(Error::system(
                                FUNCTION,
                                &io::Error::from(errno),
                                "Unable to wait for the request record to change",
                            ))
                        }
                    }
                    // Emptied: what changed is read from the record itself.
                    while changes.read_events().is_ok_and(|events| !events.is_empty()) {}
                }
                None => std::thread::sleep(OWNER_LOOK_INTERVAL),
            }
        }
    }

    /// Whether `accepted`'s owner has ended, or (looked at where this process may open
    /// it) its lock is free or gone.
    fn owner_seems_gone(&self, accepted: &Accepted) -> bool {
        if !accepted.owner.may_be_alive() {
            return true;
        }
        match self.lock(&accepted.lock, FlockArg::LockExclusiveNonblock, Existing) {
            Ok(free) => free.is_some(),
            Err(error) => error.int1 == libc::ENOENT,
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

    /// Opens `name` in the directory: never through a link, never blocking (a FIFO would
    /// hang the caller), and only a regular file.
    fn open(&self, name: &str, options: &mut OpenOptions) -> Result<File> {
        let file = options
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.dir.join(name))
            .map_err(|e| self.failed("open", name, &e))?;
        let regular = file
            .metadata()
            .map_err(|e| self.failed("read", name, &e))?
            .is_file();
        match regular {
            true => Ok(file),
            false => Err(Error::new(
                ErrorCode::InternalError,
                FUNCTION,
                format!(
                    "'{}' is not a regular file: it is none of the library's",
                    self.dir.join(name).display()
                ),
            )),
        }
    }

    /// Makes `name`, with `mode` whatever the process's umask; fails (`EEXIST`) where the
    /// name is taken, whatever by.
    fn make(&self, name: &str, options: &mut OpenOptions, mode: u32) -> Result<File> {
        let file = self.open(name, options.create_new(true).mode(mode))?;
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| self.failed("open", name, &e))?;
        Ok(file)
    }

    /// Makes `name` anew: a leftover of the same name (an earlier boot's, or one a failed
    /// write left; the name is this process's own) is replaced, never opened.
    fn make_anew(&self, name: &str, options: &mut OpenOptions, mode: u32) -> Result<File> {
        match self.make(name, options, mode) {
            Err(error) if error.int1 == libc::EEXIST => {
                let _ = fs::remove_file(self.dir.join(name));
                self.make(name, options, mode)
            }
            made => made,
        }
    }

    /// Opens (and makes) a lock file. An existing one is opened as it is, in one system
    /// call: `virNodeSuspend` opens the guard every time, and its whole cost is a few
    /// dozen system calls (`scripts/bench`).
    fn open_lock_file(&self, name: &str, kind: LockFile) -> Result<File> {
        let mut options = OpenOptions::new();
        options.read(true);
        match kind {
            Existing => self.open(name, &mut options),
            Create(mode) => match self.open(name, &mut options.clone()) {
                // Made by whoever comes first: another process may make it meanwhile, and
                // then its file is the one (replacing it would make two guards).
                Err(error) if error.int1 == libc::ENOENT => {
                    match self.make(name, options.clone().write(true), mode) {
                        Err(error) if error.int1 == libc::EEXIST => self.open(name, &mut options),
                        made => made,
                    }
                }
                opened => opened,
            },
            Fresh(mode) => self.make_anew(name, options.write(true), mode),
        }
    }

    /// A `flock` on `name`; `None` when another open file description holds it and `how`
    /// does not wait.
    fn lock(&self, name: &str, how: FlockArg, kind: LockFile) -> Result<Option<HostLock>> {
        let file = self.open_lock_file(name, kind)?;
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
                Err(errno) => return Err(self.failed("lock", name, &io::Error::from(errno))),
            }
        }
    }

    /// "Unable to `what` '`dir`/`name`'", with the system's error.
    fn failed(&self, what: &str, name: &str, e: &io::Error) -> Error {
        let path = self.dir.join(name);
        Error::system(
            FUNCTION,
            e,
            format!("Unable to {what} '{}'", path.display()),
        )
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
                && self
                    .host
                    .lock(&name, FlockArg::LockExclusiveNonblock, Existing)?
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
        Ok(
            match self
                .host
                .lock(&accepted.lock, FlockArg::LockExclusiveNonblock, Existing)
            {
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

    /// Makes and takes the lock of a new request of `owner`. No one else can open it
    /// (0600): a lock another user held would refuse the request, or hold up its waiters.
    pub fn new_lock(&self, owner: &Owner) -> Result<(HostLock, String)> {
        static REQUESTS: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "lock.{}.{}.{}",
            owner.pid,
            owner.start_time,
            REQUESTS.fetch_add(1, Ordering::Relaxed)
        );
        let taken = self
            .host
            .lock(&name, FlockArg::LockExclusiveNonblock, Fresh(0o600))
            .and_then(|held| {
                held.ok_or_else(|| {
                    self.host.failed(
                        "lock",
                        &name,
                        &io::Error::from_raw_os_error(libc::EWOULDBLOCK),
                    )
                })
            });
        match taken {
            Ok(held) => Ok((held, name)),
            Err(error) => {
                // A refused request leaves nothing behind.
                let _ = fs::remove_file(self.host.dir.join(&name));
                Err(error)
            }
        }
    }

    /// Removes the lock file of a request that is over (whoever still holds it open keeps
    /// only a file no request uses).
    pub fn remove_lock(&self, accepted: &Accepted) {
        let _ = fs::remove_file(self.host.dir.join(&accepted.lock));
    }

    /// Replaces the record.
    pub fn write(&self, record: &Record) -> Result<()> {
        let new = format!("request.{}.new", getpid());
        // Readable by every process on the host, whatever the writer's umask.
        let written = self
            .host
            .make_anew(&new, OpenOptions::new().write(true), 0o644)
            .and_then(|mut file| {
                file.write_all(record.to_string().as_bytes())
                    .and_then(|()| fs::rename(self.host.dir.join(&new), self.host.record_path()))
                    .map_err(|e| self.host.failed("write the request record", "request", &e))
            });
        if written.is_err() {
            let _ = fs::remove_file(self.host.dir.join(&new));
        }
        written
    }
}

/// Which lock file [`HostRequest::lock`] opens.
#[derive(Clone, Copy)]
enum LockFile {
    /// Made with this mode when missing.
    Create(u32),
    /// Made anew with this mode; a leftover of the same name is replaced.
    Fresh(u32),
    Existing,
}
use LockFile::{Create, Existing, Fresh};

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
                    request: "lock.41.6.3".into(),
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
                    request: "lock.41.6.4".into(),
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
            (0o755, 0o600, 0o600, 0o644)
        );
    }

    /// The error of a directory or file not to be trusted, from a thread that could hang
    /// on it (10 s at most).
    fn refused(what: impl FnOnce() -> Result<()> + Send + 'static) -> Error {
        let (answer, answered) = std::sync::mpsc::channel();
        std::thread::spawn(move || answer.send(what()));
        answered
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("an answer at once")
            .unwrap_err()
    }

    #[test]
    fn directory_that_is_not_roots_alone_is_not_trusted() {
        use std::os::unix::fs::{chown, symlink};
        type LayOut = fn(&Path);
        let layouts: [(&str, LayOut); 4] = [
            ("writable by others", |dir| {
                fs::set_permissions(dir, Permissions::from_mode(0o777)).unwrap()
            }),
            ("writable by its group", |dir| {
                fs::set_permissions(dir, Permissions::from_mode(0o775)).unwrap()
            }),
            ("another user's", |dir| {
                chown(dir, Some(65534), Some(65534)).unwrap()
            }),
            ("a link to a directory", |dir| {
                fs::remove_dir(dir).unwrap();
                symlink(dir.with_file_name("elsewhere"), dir).unwrap();
            }),
        ];
        for (layout, lay_out) in layouts {
            let root = FakeRoot::new();
            let dir = root.path().join("run/virnodesuspend");
            fs::create_dir_all(&dir).unwrap();
            fs::create_dir(dir.with_file_name("elsewhere")).unwrap();
            lay_out(&dir);
            let host = HostRequest::new(root.path());
            let expected = format!(
                "internal error: '{}' is not a directory of root's that only root may write to: nothing in it is trusted",
                dir.display()
            );
            assert_eq!(
                host.guard().err().map(|e| e.message.clone()),
                Some(expected.clone()),
                "{layout}"
            );
            assert_eq!(
                host.read().map_err(|e| e.message.clone()),
                Err(expected),
                "{layout}"
            );
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "{layout}: written");
        }
    }

    #[test]
    fn link_in_place_of_the_new_record_is_not_followed() {
        let root = FakeRoot::new().file("etc/shadow", "root's");
        let host = HostRequest::new(root.path());
        let guard = host.guard().unwrap();
        let new = root
            .path()
            .join(format!("run/virnodesuspend/request.{}.new", getpid()));
        std::os::unix::fs::symlink(root.path().join("etc/shadow"), new).unwrap();
        guard.write(&Record::default()).unwrap();
        assert_eq!(root.read("etc/shadow"), "root's");
        assert_eq!(root.read("run/virnodesuspend/request"), "state=idle\n");
    }

    #[test]
    fn fifo_in_place_of_the_guard_or_the_record_fails_at_once() {
        for name in ["guard", "request"] {
            let root = FakeRoot::new();
            let dir = root.path().join("run/virnodesuspend");
            fs::create_dir_all(&dir).unwrap();
            nix::unistd::mkfifo(&dir.join(name), nix::sys::stat::Mode::S_IRWXU).unwrap();
            let host = HostRequest::new(root.path());
            let e = refused(move || host.guard().and_then(|guard| guard.read()).map(drop));
            assert_eq!(
                e.message,
                format!(
                    "internal error: '{}' is not a regular file: it is none of the library's",
                    dir.join(name).display()
                )
            );
        }
    }

    #[test]
    fn callers_racing_to_make_the_guard_share_one() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::{Arc, Barrier};
        for _ in 0..20 {
            let root = Arc::new(FakeRoot::new());
            let start = Arc::new(Barrier::new(8));
            let inside = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let callers: Vec<_> = (0..8)
                .map(|_| {
                    let (root, start) = (Arc::clone(&root), Arc::clone(&start));
                    let (inside, most) = (Arc::clone(&inside), Arc::clone(&most));
                    std::thread::spawn(move || {
                        // A file description of its own, as another process has.
                        let host = HostRequest::new(root.path());
                        start.wait();
                        let _guard = host.guard().unwrap();
                        most.fetch_max(inside.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            callers.into_iter().for_each(|c| c.join().unwrap());
            assert_eq!(most.load(Ordering::SeqCst), 1);
        }
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
