//! The pm-utils backend: `pm-is-supported` answers, `pm-suspend`, `pm-hibernate` and
//! `pm-suspend-hybrid` carry out, found on `PATH` as libvirt finds them.
//!
//! The helpers run without a shell, with no descriptor of this process but standard input,
//! output and error (a daemon's sockets must not leak into them), and within a time bound:
//! one that exits non-zero, is killed, or outlives its bound is a failed suspend.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::ptr;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::resource::{getrlimit, Resource};
use nix::unistd::{access, pipe2, AccessFlags};

use super::{since_boot, Backend, Probe, Support, SuspendFailure, Unsupported};
use crate::config::BackendKind;
use crate::error::{Error, ErrorCode, Result};
use crate::target::Target;

const PROBE: &str = "virNodeSuspendGetTargetMask";
const SUSPEND: &str = "virNodeSuspend";

/// How long `pm-is-supported` may take to answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PmUtils {
    /// `PATH`, as the process had it when the backend was made.
    path: Option<OsString>,
}

impl PmUtils {
    pub fn new(path: Option<OsString>) -> PmUtils {
        PmUtils { path }
    }

    /// The program `name` on `PATH`, found as GLib's `g_find_program_in_path` (which
    /// libvirt 9.0 uses) finds it: the first file of that name that access(2) lets this
    /// process execute and that is not a directory; `/bin:/usr/bin` when `PATH` is unset.
    /// Unlike GLib, the current directory is never searched (GLib adds it to that default,
    /// and takes an empty `PATH` element for it): a helper run as root from wherever the
    /// daemon happens to stand is not one to trust.
    fn find(&self, name: &str) -> Option<PathBuf> {
        let path = self.path.clone().unwrap_or_else(|| "/bin:/usr/bin".into());
        std::env::split_paths(&path)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join(name))
            .find(|file| !file.is_dir() && access(file, AccessFlags::X_OK).is_ok())
    }

    fn helper(&self, name: &str, function: &'static str) -> Result<PathBuf> {
        self.find(name).ok_or_else(|| {
            let missing = std::io::Error::from_raw_os_error(libc::ENOENT);
            Error::system(function, &missing, format!("Cannot find '{name}' in path"))
        })
    }
}

/// What the process between this one and the helper reports through its pipe, one
/// message of two `i32`s (a kind and a value), written at once (pipe writes of up to
/// PIPE_BUF bytes are never split).
const HELPER_NOT_RUN: i32 = 1; // value: the errno of the failed fork or exec
const HELPER_ENDED: i32 = 2; // value: the helper's wait status
const REPORT_SIZE: usize = 8;

/// The longest poll(2) between two looks at the boot clock: poll's timeout runs on the
/// monotonic clock, which stops while the host sleeps.
const LONGEST_POLL: Duration = Duration::from_secs(1);

/// Runs `program` with `args` and waits for it, at most `limit` (on the boot clock, so
/// time asleep counts): then its whole process group is killed (the pm-utils helpers are
/// scripts that run hooks of their own).
///
/// The caller may reap children of its own: qemu-ga calls `waitpid(-1, WNOHANG)` from a
/// SIGCHLD handler, other daemons set SIGCHLD to SIG_IGN; either would take the helper's
/// exit status before this function could. So, as qemu-ga does for its own helpers, a
/// process of this library's stands between: it leads the helper's process group, waits
/// for the helper with SIGCHLD at its default, and reports its status through a pipe,
/// which no reaping can take away.
fn run(
    program: &Path,
    args: &[&str],
    limit: Duration,
    function: &'static str,
) -> Result<ExitStatus> {
    let shown = || {
        let mut words = vec![program.display().to_string()];
        words.extend(args.iter().map(|a| a.to_string()));
        words.join(" ")
    };
    let cannot_run =
        |e: &io::Error| Error::system(function, e, format!("Cannot run '{}'", shown()));
    // What the two processes use is made before fork: after it, in a process that may have
    // other threads, they make async-signal-safe system calls only.
    let invalid = || io::Error::from_raw_os_error(libc::EINVAL);
    let path = CString::new(program.as_os_str().as_bytes()).map_err(|_| cannot_run(&invalid()))?;
    let mut arguments = vec![path.clone()];
    for arg in args {
        arguments.push(CString::new(*arg).map_err(|_| cannot_run(&invalid()))?);
    }
    let argv: Vec<*const libc::c_char> = arguments
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect();
    // Where close_range is missing or refused: every descriptor the process may have.
    let open_max = getrlimit(Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft.min(1 << 16) as libc::c_int);
    let (report_read, report_write) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| cannot_run(&io::Error::from(e)))?;
    // Above standard error, where the helper's /dev/null cannot take its place (a caller
    // with 0-2 closed gets its pipes there).
    let report_write = above_standard_error(report_write).map_err(|e| cannot_run(&e))?;
    let helper = Helper {
        path: &path,
        argv: &argv,
        report: report_write.as_raw_fd(),
        open_max,
    };
    // SAFETY: the child runs `Helper::between`, which makes async-signal-safe calls only and
    // ends in _exit.
    let between = match unsafe { libc::fork() } {
        -1 => return Err(cannot_run(&io::Error::last_os_error())),
        // SAFETY: in the child just forked, as `between` requires.
        0 => unsafe { helper.between() },
        pid => pid,
    };
    // The group is made on both sides of the fork (the usual way): whichever runs first, it
    // exists before the parent may need to kill it.
    // SAFETY: setpgid on this process's own child; failing (it has already exec'd or ended)
    // is harmless.
    unsafe { libc::setpgid(between, between) };
    drop(report_write);
    let report = read_report(&report_read, since_boot() + limit);
    if !matches!(report, Ok(Some(_))) {
        // No report: the process in between has not ended (it reports before it does), so
        // its pid and group are still its own. The group goes, helper and hooks with it.
        // SAFETY: signals this process's own child and the group it leads.
        unsafe {
            if libc::kill(-between, libc::SIGKILL) != 0 {
                libc::kill(between, libc::SIGKILL);
            }
        }
    }
    reap(between);
    match report {
        Ok(Some([HELPER_ENDED, status])) => Ok(ExitStatus::from_raw(status)),
        Ok(Some([HELPER_NOT_RUN, errno])) => Err(cannot_run(&io::Error::from_raw_os_error(errno))),
        Ok(Some(_)) => Err(Error::new(
            ErrorCode::OperationFailed,
            function,
            format!(
                "the process that waited for '{}' ended without reporting its exit status",
                shown()
            ),
        )),
        Ok(None) => Err(Error::new(
            ErrorCode::OperationFailed,
            function,
            format!(
                "'{}' did not finish within {limit:?} and was killed",
                shown()
            ),
        )),
        Err(e) => Err(Error::system(
            function,
            &e,
            format!("Cannot wait for '{}'", shown()),
        )),
    }
}

/// The report of the process in between, or None when `deadline` (on the boot clock)
/// passed first. A report cut short, or none before the pipe's end, reads as `[0, 0]`.
fn read_report(pipe: &OwnedFd, deadline: Duration) -> io::Result<Option<[i32; 2]>> {
    loop {
        let left = deadline.saturating_sub(since_boot());
        if left.is_zero() {
            return Ok(None);
        }
        let timeout = PollTimeout::try_from(left.min(LONGEST_POLL)).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let mut message = [0u8; REPORT_SIZE];
        // libc's read, not nix's: nix 0.29 (Debian 13's) takes a RawFd, 0.31 an AsFd.
        // SAFETY: reads at most `message.len()` bytes into `message` from the open `pipe`.
        let read =
            unsafe { libc::read(pipe.as_raw_fd(), message.as_mut_ptr().cast(), message.len()) };
        match Errno::result(read) {
            Ok(read) if read == REPORT_SIZE as isize => {
                let (kind, value) = message.split_at(4);
                return Ok(Some([kind, value].map(|half| {
                    i32::from_ne_bytes(half.try_into().expect("4 bytes"))
                })));
            }
            Ok(_) => return Ok(Some([0, 0])),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `fd`, or a close-on-exec duplicate of it numbered 3 or above when it is one of 0-2.
fn above_standard_error(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // libc's fcntl, not nix's: nix 0.29 (Debian 13's) takes a RawFd, 0.31 an AsFd.
    // SAFETY: duplicates the open `fd` to the lowest free number from 3 up; no pointer.
    let moved = Errno::result(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// Waits for the process in between to end. It is this process's child; a caller that
/// reaps children may have reaped it already (ECHILD), which is as good.
fn reap(pid: libc::pid_t) {
    loop {
        // SAFETY: waits for this process's own child `pid`; no status is kept.
        if unsafe { libc::waitpid(pid, ptr::null_mut(), 0) } != -1 || Errno::last() != Errno::EINTR
        {
            return;
        }
    }
}

/// What the forked processes need, made before the fork.
struct Helper<'a> {
    path: &'a CString,
    /// The arguments, NULL-terminated.
    argv: &'a [*const libc::c_char],
    /// The report pipe's end to write.
    report: RawFd,
    open_max: libc::c_int,
}

impl Helper<'_> {
    /// The process in between: leads a process group of its own, runs the helper in it,
    /// waits for it and reports its status.
    ///
    /// # Safety
    /// Only in a child just forked: it makes async-signal-safe calls only and never returns.
    unsafe fn between(&self) -> ! {
        // SAFETY: async-signal-safe calls in this single-threaded child: every signal at
        // its default, as libvirt's virFork leaves its children (an inherited SIGCHLD
        // handler or SIG_IGN would take the helper's status; an ignored SIGPIPE or SIGHUP
        // would stay ignored in the helper); none of the caller's descriptors but the
        // report pipe kept (this process never execs, and would hold the caller's sockets
        // open for as long as the helper runs); a process group of its own; and the helper
        // forked with a bare clone(2), which runs none of the caller's pthread_atfork
        // handlers in this child of a multi-threaded process.
        unsafe {
            let default: libc::sigaction = std::mem::zeroed();
            for signal in 1..=libc::SIGRTMAX() {
                if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                    libc::sigaction(signal, &default, ptr::null_mut());
                }
            }
            self.close_all_but_the_report();
            libc::setpgid(0, 0);
            match libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0)
                as libc::pid_t
            {
                -1 => self.not_run(),
                0 => self.exec(),
                helper => {
                    let mut status = 0;
                    while libc::waitpid(helper, &mut status, 0) == -1 {
                        if Errno::last() != Errno::EINTR {
                            libc::_exit(127);
                        }
                    }
                    self.send([HELPER_ENDED, status]);
                    libc::_exit(0)
                }
            }
        }
    }

    /// Closes every descriptor above standard error but the report pipe's (close_range,
    /// Linux 5.9; one by one up to `open_max` where it is missing).
    ///
    /// # Safety
    /// As `between`.
    unsafe fn close_all_but_the_report(&self) {
        // SAFETY: close(2) and close_range(2) on this child's own descriptor table.
        unsafe {
            let report = self.report as libc::c_uint;
            let below = report == 3 || libc::syscall(libc::SYS_close_range, 3, report - 1, 0) == 0;
            let above = libc::syscall(libc::SYS_close_range, report + 1, libc::c_uint::MAX, 0) == 0;
            if !(below && above) {
                for fd in (3..self.open_max).filter(|fd| *fd != self.report) {
                    libc::close(fd);
                }
            }
        }
    }

    /// The helper: standard input, output and error on /dev/null, no other descriptor
    /// inherited (a daemon's sockets must not leak into it: the process in between kept
    /// only the report pipe, which closes on exec), no signal blocked.
    ///
    /// # Safety
    /// As `between`.
    unsafe fn exec(&self) -> ! {
        // SAFETY: async-signal-safe calls on descriptors and the signal mask of this
        // single-threaded child, then execv of strings made before the fork.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, ptr::null_mut());
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null < 0 {
                self.not_run();
            }
            for fd in 0..3 {
                if fd != null && libc::dup2(null, fd) < 0 {
                    self.not_run();
                }
            }
            if null > 2 {
                libc::close(null);
            }
            libc::execv(self.path.as_ptr(), self.argv.as_ptr());
            self.not_run()
        }
    }

    /// Reports errno as the reason the helper did not run, and ends the process.
    ///
    /// # Safety
    /// As `between`.
    unsafe fn not_run(&self) -> ! {
        self.send([HELPER_NOT_RUN, Errno::last_raw()]);
        // SAFETY: ends this forked child without running the parent's atexit handlers.
        unsafe { libc::_exit(127) }
    }

    fn send(&self, message: [i32; 2]) {
        let mut bytes = [0u8; REPORT_SIZE];
        bytes[..4].copy_from_slice(&message[0].to_ne_bytes());
        bytes[4..].copy_from_slice(&message[1].to_ne_bytes());
        // SAFETY: writes this stack buffer to the report pipe, a descriptor the child
        // inherited; write(2) is async-signal-safe.
        unsafe { libc::write(self.report, bytes.as_ptr().cast(), REPORT_SIZE) };
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended".to_owned(),
    }
}

impl Backend for PmUtils {
    fn kind(&self) -> BackendKind {
        BackendKind::PmUtils
    }

    fn probe(&self) -> Result<Probe> {
        let Some(program) = self.find("pm-is-supported") else {
            return Ok(Probe::Unavailable(
                "pm-is-supported is not on PATH".to_owned(),
            ));
        };
        Probe::from_each(|target| {
            let option = match target {
                Target::Mem => "--suspend",
                Target::Disk => "--hibernate",
                Target::Hybrid => "--suspend-hybrid",
            };
            let status = run(&program, &[option], QUERY_TIMEOUT, PROBE)?;
            Ok(match status.success() {
                true => Support::Yes,
                false => Support::No(Unsupported::PmUtils {
                    option,
                    ended: describe(status),
                }),
            })
        })
    }

    fn suspend(
        &self,
        target: Target,
        give_up_after: Duration,
    ) -> std::result::Result<(), SuspendFailure> {
        let name = match target {
            Target::Mem => "pm-suspend",
            Target::Disk => "pm-hibernate",
            Target::Hybrid => "pm-suspend-hybrid",
        };
        let status = run(&self.helper(name, SUSPEND)?, &[], give_up_after, SUSPEND)?;
        match status.success() {
            true => Ok(()),
            false => Err(Error::new(
                ErrorCode::OperationFailed,
                SUSPEND,
                format!("{name} {}", describe(status)),
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeRoot;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::thread;

    /// A directory of helper scripts; each writes its name and arguments to `calls`.
    fn helpers(root: &FakeRoot, scripts: &[(&str, &str)]) -> PmUtils {
        let bin = root.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let calls = root.path().join("calls");
        for (name, body) in scripts {
            let file = bin.join(name);
            fs::write(
                &file,
                format!(
                    "#!/bin/sh\necho \"{name} $*\" >> {}\n{body}\n",
                    calls.display()
                ),
            )
            .unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
        }
        PmUtils::new(Some(bin.into_os_string()))
    }

    const SUPPORTS_SUSPEND_ONLY: (&str, &str) = ("pm-is-supported", "[ \"$1\" = --suspend ]");

    #[test]
    fn lookup_skips_what_cannot_be_executed_and_the_current_directory() {
        let root = FakeRoot::new();
        let first = root.path().join("first");
        let second = root.path().join("second");
        fs::create_dir_all(first.join("pm-suspend")).unwrap(); // a directory
        fs::create_dir_all(&second).unwrap();
        fs::write(second.join("pm-suspend"), "#!/bin/sh\n").unwrap(); // not executable
        let third = root.path().join("third");
        fs::create_dir_all(&third).unwrap();
        fs::write(third.join("pm-suspend"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(third.join("pm-suspend"), fs::Permissions::from_mode(0o700)).unwrap();
        let path = std::env::join_paths([
            "",
            first.to_str().unwrap(),
            second.to_str().unwrap(),
            third.to_str().unwrap(),
        ])
        .unwrap();
        let pm = PmUtils::new(Some(path));
        assert_eq!(pm.find("pm-suspend"), Some(third.join("pm-suspend")));
    }

    #[test]
    fn unavailable_without_pm_is_supported_on_path() {
        let root = FakeRoot::new();
        let pm = helpers(&root, &[("pm-suspend", "")]);
        assert!(matches!(pm.probe(), Ok(Probe::Unavailable(_))));
    }

    #[test]
    fn exit_status_zero_means_supported() {
        let root = FakeRoot::new();
        let pm = helpers(&root, &[SUPPORTS_SUSPEND_ONLY]);
        let Probe::Answers([mem, disk, hybrid]) = pm.probe().unwrap() else {
            panic!("unavailable")
        };
        assert_eq!(mem, Support::Yes);
        assert_eq!(
            disk,
            Support::No(Unsupported::PmUtils {
                option: "--hibernate",
                ended: "exited with status 1".into()
            })
        );
        assert!(matches!(hybrid, Support::No(_)));
        assert_eq!(
            root.read("calls"),
            "pm-is-supported --suspend\npm-is-supported --hibernate\npm-is-supported --suspend-hybrid\n"
        );
    }

    #[test]
    fn each_target_runs_its_helper() {
        let root = FakeRoot::new();
        let pm = helpers(
            &root,
            &[
                ("pm-suspend", ""),
                ("pm-hibernate", ""),
                ("pm-suspend-hybrid", ""),
            ],
        );
        for target in Target::ALL {
            pm.suspend(target, Duration::from_secs(30)).unwrap();
        }
        assert_eq!(
            root.read("calls"),
            "pm-suspend \npm-hibernate \npm-suspend-hybrid \n"
        );
    }

    #[test]
    fn helper_that_fails_is_a_failed_suspend() {
        let root = FakeRoot::new();
        let pm = helpers(&root, &[("pm-suspend", "exit 3")]);
        let e = pm
            .suspend(Target::Mem, Duration::from_secs(30))
            .unwrap_err()
            .error;
        assert_eq!(
            e.message,
            "operation failed: pm-suspend exited with status 3"
        );
    }

    #[test]
    fn helper_that_is_killed_is_a_failed_suspend() {
        let root = FakeRoot::new();
        let pm = helpers(&root, &[("pm-hibernate", "kill -9 $$")]);
        let e = pm
            .suspend(Target::Disk, Duration::from_secs(30))
            .unwrap_err()
            .error;
        assert_eq!(
            e.message,
            "operation failed: pm-hibernate was killed by signal 9"
        );
    }

    #[test]
    fn helper_that_hangs_is_killed_at_the_bound() {
        let root = FakeRoot::new();
        // The helper's own children (hooks) go with it.
        let pids = root.path().join("pids");
        let script = format!("sleep 600 & echo $! > {}\nexec sleep 600", pids.display());
        let pm = helpers(&root, &[("pm-suspend", &script)]);
        let e = pm
            .suspend(Target::Mem, Duration::from_millis(300))
            .unwrap_err()
            .error;
        assert_eq!(e.code, ErrorCode::OperationFailed);
        assert!(
            e.message
                .ends_with("did not finish within 300ms and was killed"),
            "{}",
            e.message
        );
        let hook: i32 = root.read("pids").trim().parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Gone, or a zombie waiting for init to reap it.
        while fs::read_to_string(format!("/proc/{hook}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the helper's child outlived it"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn helper_that_cannot_be_executed_is_a_failure_to_run_it() {
        let root = FakeRoot::new();
        let pm = helpers(&root, &[("pm-suspend", "")]);
        let file = root.path().join("bin/pm-suspend");
        fs::write(&file, "#!/nonexistent/sh\n").unwrap();
        let e = pm
            .suspend(Target::Mem, Duration::from_secs(30))
            .unwrap_err()
            .error;
        assert_eq!(e.code, ErrorCode::SystemError);
        assert_eq!(
            e.message,
            format!("Cannot run '{}': No such file or directory", file.display())
        );
    }

    #[test]
    fn missing_helper_is_libvirts_cannot_find() {
        let root = FakeRoot::new();
        let pm = helpers(&root, &[SUPPORTS_SUSPEND_ONLY]);
        let e = pm
            .suspend(Target::Mem, Duration::from_secs(30))
            .unwrap_err()
            .error;
        assert_eq!(
            e.message,
            "Cannot find 'pm-suspend' in path: No such file or directory"
        );
    }

    #[test]
    fn helpers_inherit_no_descriptors_but_the_standard_three() {
        let root = FakeRoot::new();
        // An inheritable descriptor, as a daemon's socket without close-on-exec would be,
        // numbered well above those the helper opens itself.
        let file = fs::File::open("/dev/null").unwrap();
        // SAFETY: F_DUPFD duplicates a descriptor this test owns, without FD_CLOEXEC.
        let fd = unsafe {
            libc::fcntl(
                std::os::unix::io::AsRawFd::as_raw_fd(&file),
                libc::F_DUPFD,
                100,
            )
        };
        assert!(fd >= 100);
        let (listing, between) = (root.path().join("fds"), root.path().join("between"));
        let pm = helpers(
            &root,
            &[(
                "pm-suspend",
                &format!(
                    "ls /proc/self/fd > {}; ls /proc/$PPID/fd > {}",
                    listing.display(),
                    between.display()
                ),
            )],
        );
        pm.suspend(Target::Mem, Duration::from_secs(30)).unwrap();
        // 0, 1, 2, and the descriptor ls opens to read the directory.
        let fds: Vec<String> = root.read("fds").lines().map(str::to_owned).collect();
        assert_eq!(fds.len(), 4, "{fds:?}");
        assert!(!fds.contains(&fd.to_string()), "{fds:?}");
        // The process in between, which never execs, holds the caller's 0, 1, 2 and the
        // report pipe, nothing else of the caller's for as long as the helper runs.
        let fds: Vec<String> = root.read("between").lines().map(str::to_owned).collect();
        assert_eq!(fds.len(), 4, "{fds:?}");
        assert!(!fds.contains(&fd.to_string()), "{fds:?}");
        // SAFETY: closes the duplicate this test made.
        unsafe { libc::close(fd) };
    }
}
