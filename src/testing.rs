//! For the unit tests: fake roots (a directory laid out like `/` with the kernel files a
//! test needs) and a private bus with a stand-in logind, both gone when the test ends.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct FakeRoot {
    dir: PathBuf,
}

impl FakeRoot {
    pub fn new() -> FakeRoot {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "virnodesuspend-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        FakeRoot { dir }
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

    /// `/proc/swaps` with one active swap area.
    pub fn swap(self, device: &str) -> FakeRoot {
        let swaps = format!(
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n{device}\tpartition\t1048572\t\t0\t\t-2\n"
        );
        self.file("proc/swaps", &swaps)
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

/// A real dbus-daemon with the stand-in logind of tests/abi/logind_standin.py on it,
/// configured with `config` (its JSON: answers and sleep behaviour).
pub struct PrivateBus {
    helper: Child,
    pub address: String,
    directory: FakeRoot,
}

impl PrivateBus {
    pub fn start(config: &str) -> PrivateBus {
        let directory = FakeRoot::new();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/abi/private_bus.py");
        let mut helper = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(directory.path())
            .arg(config)
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
