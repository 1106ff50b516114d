//! The fuzz corpora (fuzz/corpus/TARGET/: the seeds and what fuzzing runs found) replayed as
//! regression inputs: every file through its target's entry point, as the fuzz targets run
//! them (virnodesuspend::fuzzing), without the fuzzer. An input fails by panicking or by
//! taking longer than the bound below: each runs on a thread of its own, so that one that
//! never returns (a parser caught in a loop) fails the test instead of hanging it.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use virnodesuspend::fuzzing;

/// Far more than any input takes (a stream's reads wait 10 ms at most when nothing came).
const BOUND: Duration = Duration::from_secs(5);

/// Each file of `target`'s corpus through `entry`: the names of those that panicked or
/// took too long, all of them, so that one failure does not hide the others. (A thread
/// that never returns is left running; it ends with the test process.)
fn replay(target: &str, entry: fn(&[u8])) {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", corpus.display());
    let mut failed = vec![];
    for file in &files {
        let data = fs::read(file).unwrap();
        let (done, ran) = mpsc::channel();
        thread::spawn(move || {
            let returned = panic::catch_unwind(AssertUnwindSafe(|| entry(&data))).is_ok();
            let _ = done.send(returned);
        });
        match ran.recv_timeout(BOUND) {
            Ok(true) => {}
            Ok(false) => failed.push(format!("{} panicked", file.display())),
            Err(_) => failed.push(format!("{} ran longer than {BOUND:?}", file.display())),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn bus_message() {
    replay("bus_message", fuzzing::bus_message);
}

#[test]
fn bus_stream() {
    replay("bus_stream", fuzzing::bus_stream);
}

#[test]
fn record() {
    replay("record", fuzzing::record);
}

#[test]
fn kernel_files() {
    replay("kernel_files", fuzzing::kernel_files);
}
