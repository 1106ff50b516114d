//! For the unit tests: fake roots (a directory laid out like `/` with the kernel files a
//! test needs) and a private bus with a stand-in logind, both gone when the test ends.
//!
//! The fake host's files and values are those of `tests/fake-host/` (its README), the one
//! description the C and Python tests copy too.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

/// `tests/fake-host/`: the fake host's files (`root/`), its block devices, its environment.
fn fake_host() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-host")
}

/// A file of the fake host, as `tests/fake-host/root/` has it.
fn fake_host_file(relative: &str) -> String {
    fs::read_to_string(fake_host().join("root").join(relative)).unwrap()
}

/// The fake host's swap area: its one block device (path under the root, major, minor) and
/// its line of `/proc/swaps` after the device's path.
fn fake_host_swap() -> (String, u64, u64, String) {
    let devices = fs::read_to_string(fake_host().join("block-devices")).unwrap();
    let [path, major, minor] = devices.split_whitespace().collect::<Vec<_>>()[..] else {
        panic!("tests/fake-host/block-devices: not one device: {devices:?}");
    };
    let swaps = fake_host_file("proc/swaps");
    let entry = swaps.lines().nth(1).expect("a swap area in /proc/swaps");
    let (_, after_path) = entry.split_once('\t').unwrap();
    (
        path.to_owned(),
        major.parse().unwrap(),
        minor.parse().unwrap(),
        format!("\t{after_path}\n"),
    )
}

/// Copies the files below `from` to the same places below `to`.
fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub struct FakeRoot {
    dir: PathBuf,
}

impl FakeRoot {
    pub fn new() -> FakeRoot {
        FakeRoot::new_in(&std::env::temp_dir())
    }

    /// A fake root in `parent` (`/dev/shm`, for a tmpfs one).
    pub fn new_in(parent: &Path) -> FakeRoot {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = parent.join(format!(
            "virnodesuspend-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        FakeRoot { dir }
    }

    /// The fake host (`tests/fake-host/`): mem, disk and hybrid sleep, a swap area the
    /// kernel can resume from (a block device node: needs root), and a wake-up capable
    /// `rtc0` with no alarm set.
    pub fn host() -> FakeRoot {
        let root = FakeRoot::new();
        copy_tree(&fake_host().join("root"), root.path());
        let (device, major, minor, _) = fake_host_swap();
        root.block_device(&device, major, minor)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn file(self, relative: &str, content: &str) -> FakeRoot {
        let path = self.dir.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        self
    }

    /// `/sys/power/state`.
    pub fn state(self, states: &str) -> FakeRoot {
        self.file("sys/power/state", states)
    }

    /// `/sys/power/disk`.
    pub fn disk(self, modes: &str) -> FakeRoot {
        self.file("sys/power/disk", modes)
    }

    /// A host that can hibernate to `device`: the fake host's swap area there (its line in
    /// `/proc/swaps`, `device` under the root its block device node, made with mknod, so the
    /// tests run as root, and never opened; `/sys/power/resume` naming it, `/proc/meminfo`
    /// with room for the image).
    pub fn swap(self, device: &str) -> FakeRoot {
        let (_, major, minor, entry_after_path) = fake_host_swap();
        self.block_device(device, major, minor)
            .swaps(&format!("{device}{entry_after_path}"))
            .resume(&fake_host_file("sys/power/resume"))
            .file("proc/meminfo", &fake_host_file("proc/meminfo"))
    }

    /// `/proc/swaps`: the fake host's header, then `entries` (lines of `path type size used
    /// priority`).
    pub fn swaps(self, entries: &str) -> FakeRoot {
        let swaps = fake_host_file("proc/swaps");
        let header = swaps.lines().next().unwrap();
        self.file("proc/swaps", &format!("{header}\n{entries}"))
    }

    /// `/sys/power/resume`: the resume device, `MAJ:MIN`.
    pub fn resume(self, device: &str) -> FakeRoot {
        self.file("sys/power/resume", device)
    }

    /// `/proc/meminfo` with `Active(anon)` `kb` kB (and the lines around it).
    pub fn active_anon(self, kb: u64) -> FakeRoot {
        let meminfo = format!(
            "MemTotal:        8000000 kB\nActive:          {} kB\nInactive:         100000 kB\n\
             Active(anon):    {kb} kB\nInactive(anon):    50000 kB\n",
            kb + 100000
        );
        self.file("proc/meminfo", &meminfo)
    }

    /// A block device node `major:minor` at `path` (absolute, under the root); replaces
    /// what was there. Needs root.
    pub fn block_device(self, path: &str, major: u64, minor: u64) -> FakeRoot {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let node = self.dir.join(path.trim_start_matches('/'));
        fs::create_dir_all(node.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&node);
        mknod(
            &node,
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o600),
            makedev(major, minor),
        )
        .unwrap_or_else(|e| panic!("mknod {}: {e} (the tests run as root)", node.display()));
        self
    }

    /// A wake-up capable `rtcN` whose clock reads `now`, with no alarm set.
    pub fn rtc(self, number: u32, now: u64) -> FakeRoot {
        let dir = format!("sys/class/rtc/rtc{number}");
        self.file(&format!("{dir}/since_epoch"), &format!("{now}\n"))
            .file(&format!("{dir}/wakealarm"), "")
    }

    /// Replaces a file by a symbolic link (to `/dev/full`, say, whose writes fail).
    pub fn link(&self, relative: &str, target: &str) {
        let path = self.dir.join(relative);
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    pub fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.dir.join(relative)).unwrap()
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A command run as another local user: nobody (uid and gid 65534, no supplementary
/// groups), through util-linux's setpriv. The tests run as root.
pub fn as_nobody(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    command
}

/// The variable that hands a test run again as nobody its fake root.
pub const NOBODYS_ROOT: &str = "VIRNODESUSPEND_TEST_NOBODYS_ROOT";

/// Runs the test `name` of this test binary again as nobody, on `root`, and returns what it
/// printed; panics unless it passed. The test is `#[ignore]`d (it runs only so) and finds
/// the root in [`NOBODYS_ROOT`].
pub fn rerun_as_nobody(name: &str, root: &FakeRoot) -> String {
    use std::os::unix::fs::PermissionsExt;
    // A copy nobody may run, wherever the build is (a clone under /root, say).
    let copy = FakeRoot::new();
    let program = copy.path().join("tests");
    fs::copy(std::env::current_exe().unwrap(), &program).unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = as_nobody(&program);
    command.arg("--ignored").env(NOBODYS_ROOT, root.path());
    run_one_test(command, name)
}

/// Set, to the test's name, in the process [`alone`] runs a test in.
const ALONE: &str = "VIRNODESUSPEND_TEST_ALONE";

/// Whether the calling test, `name` (as `module_path!()` and its function name give it),
/// does its work in this process: true in the process this starts for it; anywhere else,
/// runs this test binary again for that one test and returns false once it passed there.
/// For what a test measures on the whole process, its resident memory: in the test
/// binary's own process, the tests running beside it skew that by tens of megabytes.
pub fn alone(name: &str) -> bool {
    // The test harness names tests without the crate's name.
    let name = name.split_once("::").map_or(name, |(_, path)| path);
    if std::env::var(ALONE).as_deref() == Ok(name) {
        return true;
    }
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(ALONE, name);
    // For the record of each run (cargo test -- --nocapture).
    eprint!("{}", run_one_test(command, name));
    false
}

/// Runs the one test `name` with `command`, a test binary, and returns what it printed;
/// panics unless it passed.
fn run_one_test(mut command: Command, name: &str) -> String {
    let output = command
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && printed.contains("1 passed"),
        "{name}: {}\n{printed}",
        output.status
    );
    printed
}

/// The bus daemons a host may have: the tests against a real bus run against each.
#[derive(Clone, Copy, Debug)]
pub enum Daemon {
    /// Debian's dbus-daemon, the reference implementation.
    DbusDaemon,
    /// dbus-broker (run as tests/abi/broker_launch.py says).
    DbusBroker,
}

/// A real bus with the stand-in logind of tests/abi/logind_standin.py on it, configured
/// with `config` (its JSON: answers and sleep behaviour).
pub struct PrivateBus {
    helper: Child,
    pub address: String,
    directory: FakeRoot,
}

impl PrivateBus {
    /// A private dbus-daemon.
    pub fn start(config: &str) -> PrivateBus {
        PrivateBus::start_on(Daemon::DbusDaemon, config)
    }

    pub fn start_on(daemon: Daemon, config: &str) -> PrivateBus {
        let name = match daemon {
            Daemon::DbusDaemon => "dbus-daemon",
            Daemon::DbusBroker => "dbus-broker",
        };
        let config = config
            .trim()
            .strip_prefix('{')
            .expect("the configuration is a JSON object");
        let config = match config.trim() {
            "}" => format!(r#"{{"daemon": "{name}"}}"#),
            members => format!(r#"{{"daemon": "{name}", {members}"#),
        };
        let directory = FakeRoot::new();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/abi/private_bus.py");
        let mut helper = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(directory.path())
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with python3-dbus");
        let mut address = String::new();
        BufReader::new(helper.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        assert!(address.starts_with("unix:"), "no bus: {address:?}");
        PrivateBus {
            helper,
            address: address.trim().to_owned(),
            directory,
        }
    }

    /// The calls the stand-in received, one per line ("Suspend False", "CanHibernate").
    pub fn calls(&self) -> String {
        fs::read_to_string(self.directory.path().join("logind.log")).unwrap_or_default()
    }

    /// Waits (30 s at most) until the stand-in has received or sent `call`.
    pub fn wait_for_call(&self, call: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.calls().contains(call) {
            assert!(
                std::time::Instant::now() < deadline,
                "the stand-in never saw {call:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Stops the bus and the stand-in (as a bus that goes away).
    pub fn stop(&mut self) {
        drop(self.helper.stdin.take());
        let _ = self.helper.wait();
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A stand-in bus on a private Unix socket that takes one connection, answers its
/// authentication with `OK`, then has `speak` send what it likes: to show that what a
/// hostile bus sends cannot hold or swell a client. `speak` is told when the test is over
/// (the bus is dropped), so that a bus that writes for ever stops with the test.
pub struct HostileBus {
    pub address: String,
    over: Arc<AtomicBool>,
    _directory: FakeRoot,
}

impl HostileBus {
    pub fn start(speak: impl FnOnce(&mut UnixStream, &AtomicBool) + Send + 'static) -> HostileBus {
        let directory = FakeRoot::new();
        let path = directory.path().join("bus");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let over = Arc::new(AtomicBool::new(false));
        let over_in_thread = Arc::clone(&over);
        thread::spawn(move || {
            let over = over_in_thread;
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if over.load(Ordering::Relaxed) => return,
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut said: Vec<u8> = vec![];
            let mut buffer = [0; 4096];
            while !said.windows(7).any(|w| w == b"BEGIN\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(count) => said.extend(&buffer[..count]),
                }
            }
            // Writes give up now and then to see whether the test is over.
            stream
                .set_write_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            if stream
                .write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")
                .is_ok()
            {
                speak(&mut stream, &over);
            }
        });
        HostileBus {
            address: format!("unix:path={}", path.display()),
            over,
            _directory: directory,
        }
    }

    /// Writes all of `bytes` to `stream` unless the client goes away or the test is over:
    /// whether it did.
    pub fn send(stream: &mut UnixStream, over: &AtomicBool, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if over.load(Ordering::Relaxed) {
                return false;
            }
            match stream.write(bytes) {
                Ok(written) => bytes = &bytes[written..],
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Holds the connection open, saying nothing more, until the test is over.
    pub fn hold(over: &AtomicBool) {
        while !over.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for HostileBus {
    fn drop(&mut self) {
        self.over.store(true, Ordering::Relaxed);
    }
}

/// This process's resident memory now, in bytes (`VmRSS`).
pub fn resident() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// What `work` returns and how much the resident memory rose above where it was at the
/// start while `work` ran (sampled every few milliseconds); `None` if `work` has not
/// returned within `limit`, in which case it is left running, and the test is expected to
/// fail (a client that never returns must not hang the suite).
pub fn bounded<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> (Option<T>, u64) {
    let before = resident();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || drop(sender.send(work())));
    let deadline = std::time::Instant::now() + limit;
    let mut peak = before;
    loop {
        peak = peak.max(resident());
        match receiver.recv_timeout(Duration::from_millis(5)) {
            Ok(value) => return (Some(value), peak.saturating_sub(before)),
            Err(_) if std::time::Instant::now() >= deadline => {
                return (None, peak.saturating_sub(before))
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    /// The fake host's files agree: its one swap area in /proc/swaps is a block device and
    /// the resume device. That it supports every target, the C and Python tests assert
    /// through the API.
    #[test]
    fn the_fake_host_resumes_from_its_one_swap_area() {
        // The imports are the test's own: benches/ include this file and build no test.
        use super::FakeRoot;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let root = FakeRoot::host();
        let swaps = root.read("proc/swaps");
        let [_, entry] = swaps.lines().collect::<Vec<_>>()[..] else {
            panic!("not one swap area: {swaps:?}");
        };
        let device = entry.split('\t').next().unwrap().trim_start_matches('/');
        let node = std::fs::metadata(root.path().join(device)).unwrap();
        assert!(node.file_type().is_block_device());
        let (major, minor) = (
            nix::sys::stat::major(node.rdev()),
            nix::sys::stat::minor(node.rdev()),
        );
        assert_eq!(root.read("sys/power/resume"), format!("{major}:{minor}\n"));
    }
}
