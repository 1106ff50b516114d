//! The pm-utils backend: `pm-is-supported` answers, `pm-suspend`, `pm-hibernate` and
//! `pm-suspend-hybrid` carry out, found on `PATH` as libvirt finds them.
//!
//! The helpers run without a shell, with no descriptor of this process but standard input,
//! output and error (a daemon's sockets must not leak into them), and within a time bound:
//! one that exits non-zero, is killed, or outlives its bound is a failed suspend.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use nix::sys::resource::{getrlimit, Resource};
use nix::unistd::{access, AccessFlags};

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

/// Descriptors above standard error get close-on-exec in the child (close_range with
/// CLOSE_RANGE_CLOEXEC, Linux 5.11). Marking rather than closing keeps the standard
/// library's own pipe, which reports a failed exec, open until the exec.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Runs `program` with `args` in a process group of its own and waits for it, at most
/// `limit` (on the boot clock, so time asleep counts): then the whole group is killed (the
/// pm-utils helpers are scripts that run hooks of their own).
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
    // Where close_range is missing or refused: every descriptor the process may have.
    let open_max = getrlimit(Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft.min(1 << 16) as libc::c_int);
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe system calls, on descriptors alone.
    unsafe {
        command.pre_exec(move || {
            if libc::syscall(
                libc::SYS_close_range,
                3,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                for fd in 3..open_max {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| Error::system(function, &e, format!("Cannot run '{}'", shown())))?;
    let kill_group = |child: &mut std::process::Child| {
        // SAFETY: signals the process group the child leads (its pid, negated).
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = child.wait();
    };
    let deadline = since_boot() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if since_boot() >= deadline => {
                kill_group(&mut child);
                return Err(Error::new(
                    ErrorCode::OperationFailed,
                    function,
                    format!(
                        "'{}' did not finish within {limit:?} and was killed",
                        shown()
                    ),
                ));
            }
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                kill_group(&mut child);
                return Err(Error::system(
                    function,
                    &e,
                    format!("Cannot wait for '{}'", shown()),
                ));
            }
        }
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
        let listing = root.path().join("fds");
        let pm = helpers(
            &root,
            &[(
                "pm-suspend",
                &format!("ls /proc/self/fd > {}", listing.display()),
            )],
        );
        pm.suspend(Target::Mem, Duration::from_secs(30)).unwrap();
        // 0, 1, 2, and the descriptor ls opens to read the directory.
        let fds: Vec<String> = root.read("fds").lines().map(str::to_owned).collect();
        assert_eq!(fds.len(), 4, "{fds:?}");
        assert!(!fds.contains(&fd.to_string()), "{fds:?}");
        // SAFETY: closes the duplicate this test made.
        unsafe { libc::close(fd) };
    }
}
