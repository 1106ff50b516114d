//! Fake roots for the unit tests: a directory laid out like `/` with the kernel files a
//! test needs, removed again when the test ends.

use std::fs;
use std::path::{Path, PathBuf};
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
