//! The fuzz targets' entry points (issue 21): each takes the bytes libFuzzer makes up and
//! runs them through the library's own parsers, as the library meets such bytes. The fuzz
//! crate (`fuzz/`) and the corpus replay in `cargo test` (`tests/fuzz_corpora.rs`) call
//! these same functions, so an input saved from a fuzzing run is a regression test.
//!
//! A target fails by panicking: the library's own panics (an index out of range, an
//! overflow under `-C overflow-checks`), and the assertions here, which state what a
//! parse must keep (a record printed reads back the same, a swap area stays under the root).

use std::hint::black_box;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::bus::{self, Connection, Message};
use crate::backend::kernel::hibernation;
use crate::backend::kernel::{self, DiskModes};
use crate::request::Record;
use crate::{rtc, sysfs};

/// The fake root that paths read from kernel files are placed under.
const ROOT: &str = "/fuzz-root";

/// One D-Bus message's bytes, as the connection takes one from what it read: its length
/// from the fixed header, then the message parsed and every argument reader tried on it.
pub fn bus_message(data: &[u8]) {
    let Ok(Some(length)) = bus::declared_length(data) else {
        return;
    };
    let Some(whole) = data.get(..length) else {
        return;
    };
    if let Ok(message) = Message::parse(whole.to_vec()) {
        read_all(&message);
    }
}

/// What a bus sends after the connection is made (the answer to the authentication, then
/// messages), fed through the client's connection code on a socket pair: the bus's end
/// writes the bytes as the socket takes them and then hangs up; the client reads until it
/// fails (the hang-up, or what it refuses), and every message it took is read.
pub fn bus_stream(data: &[u8]) {
    let (client, bus) = UnixStream::pair().expect("a socket pair");
    client.set_nonblocking(true).expect("a non-blocking socket");
    bus.set_nonblocking(true).expect("a non-blocking socket");
    // No authentication of the client's: its bytes would go to a peer that never reads
    // them, and once the peer hangs up the failed write would end the connection before
    // the rest of what the bus said is read.
    let mut connection = Connection::over(client, Vec::new());
    let mut bus = Some(bus);
    let mut unsent = data;
    // The client must end once the bus has hung up; far longer than any input takes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(socket) = &bus {
            match (&*socket).write(unsent) {
                Ok(written) => unsent = &unsent[written..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("writing to the client's socket: {e}"),
            }
            if unsent.is_empty() {
                bus = None;
            }
        }
        let transferred = connection.read_write(Duration::from_millis(10));
        while let Some(message) = connection.pop_message() {
            read_all(&message);
        }
        if transferred.is_err() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the connection goes on after the bus hung up"
        );
    }
}

/// Every question the backends ask of a message.
fn read_all(message: &Message) {
    // Kept (black_box) so that none of the calls is optimised away; what they answer is
    // of no interest.
    let _ = black_box((
        message.reply_to(),
        message.is_signal("org.freedesktop.login1", "PrepareForSleep"),
        message.as_result(),
        message.read_string(),
        message.read_bool(),
        message.read_strings(),
    ));
}

/// The host's request record (`/run/virnodesuspend/request`), read as text as the library
/// reads it; a record that parses, printed, must parse to the same record (each process
/// rewrites the record it read).
pub fn record(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(record) = Record::parse(text) {
        let printed = record.to_string();
        assert_eq!(
            Record::parse(&printed),
            Ok(record),
            "printed as {printed:?}"
        );
    }
}

/// The parsers of the kernel's files: the first byte chooses the file (`'0'` the first of
/// [`KERNEL_FILES`], `'1'` the next, and so on, any byte taken modulo their number), the
/// rest is its content.
pub fn kernel_files(data: &[u8]) {
    let Some((&which, content)) = data.split_first() else {
        return;
    };
    let parse = KERNEL_FILES[usize::from(which.wrapping_sub(b'0')) % KERNEL_FILES.len()];
    parse(content);
}

/// In the order of the selecting byte: `'0'` is `/sys/power/state`.
const KERNEL_FILES: [fn(&[u8]); 10] = [
    power_state,
    power_disk,
    power_resume,
    power_resume_offset,
    proc_cmdline,
    proc_swaps,
    proc_meminfo,
    rtc_seconds,
    rtc_class_entry,
    rtc_wakealarm_path,
];

/// `/sys/power/state`: read as text (a sysfs attribute), the states it lists.
fn power_state(content: &[u8]) {
    let path = Path::new("/sys/power/state");
    if let Ok(text) = sysfs::text(path, content.to_vec(), "fuzz") {
        for state in kernel::listed_states(&text) {
            assert!(!state.is_empty() && !state.contains(char::is_whitespace));
        }
    }
}

/// `/sys/power/disk`: the selected mode is one of those offered, none has brackets left.
fn power_disk(content: &[u8]) {
    if let Ok(modes) = DiskModes::parse(content) {
        if let Some(selected) = &modes.selected {
            assert!(modes.offered.contains(selected));
        }
        for mode in &modes.offered {
            assert!(!mode.is_empty() && !mode.contains(['[', ']']));
        }
    }
}

/// `/sys/power/resume`: a device number read is printed as one that reads the same.
fn power_resume(content: &[u8]) {
    if let Ok(device) = hibernation::parse_trimmed(content, hibernation::parse_devnum) {
        assert_eq!(hibernation::parse_devnum(&device.to_string()), Some(device));
    }
}

/// `/sys/power/resume_offset`.
fn power_resume_offset(content: &[u8]) {
    if let Ok(offset) = hibernation::parse_trimmed(content, hibernation::parse_decimal) {
        assert_eq!(
            hibernation::parse_decimal(&offset.to_string()),
            Some(offset)
        );
    }
}

/// `/proc/cmdline`.
fn proc_cmdline(content: &[u8]) {
    black_box(hibernation::has_noresume(content));
}

/// `/proc/swaps`: every swap area is under the root (a path read from a kernel file never
/// leads the library outside it); a garbled line is one after the header.
fn proc_swaps(content: &[u8]) {
    let root = Path::new(ROOT);
    match hibernation::parse_swaps(root, content) {
        Ok(entries) => {
            for entry in entries {
                assert!(entry.path.starts_with(root), "{}", entry.path.display());
            }
        }
        Err(line) => assert!(line >= 2),
    }
}

/// `/proc/meminfo`, read as the hibernation check reads it.
fn proc_meminfo(content: &[u8]) {
    black_box(hibernation::active_anon_kb(&String::from_utf8_lossy(
        content,
    )));
}

/// An RTC's `since_epoch` or `wakealarm`, read as text (sysfs attributes).
fn rtc_seconds(content: &[u8]) {
    let path = Path::new("/sys/class/rtc/rtc0/since_epoch");
    if let Ok(text) = sysfs::text(path, content.to_vec(), "fuzz") {
        if let Some(seconds) = rtc::seconds(&text) {
            assert_eq!(rtc::seconds(&seconds.to_string()), Some(seconds));
        }
    }
}

/// A name in `/sys/class/rtc`.
fn rtc_class_entry(content: &[u8]) {
    if let Ok(name) = std::str::from_utf8(content) {
        black_box(rtc::clock_number(name));
    }
}

/// The `wakealarm` path the request record names: a clock found by it names it back.
fn rtc_wakealarm_path(content: &[u8]) {
    if let Ok(wakealarm) = std::str::from_utf8(content) {
        if let Some(clock) = rtc::Rtc::with_wakealarm(Path::new(ROOT), wakealarm) {
            assert_eq!(clock.wakealarm_name(), wakealarm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    /// The seeds of `target`'s corpus (the files named `seed-*`; the others are what
    /// fuzzing runs found).
    fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let seeds: Vec<_> = fs::read_dir(corpus)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("seed-")
            })
            .map(|path| {
                let data = fs::read(&path).unwrap();
                (path, data)
            })
            .collect();
        assert!(!seeds.is_empty());
        seeds
    }

    /// The seeds stay what the library reads: were the format to change, they would lead
    /// the fuzzer from the wrong place.
    #[test]
    fn record_seeds_are_records() {
        for (path, data) in seeds("record") {
            let text = std::str::from_utf8(&data).unwrap();
            assert!(Record::parse(text).is_ok(), "{}", path.display());
        }
    }

    #[test]
    fn bus_message_seeds_are_messages() {
        for (path, data) in seeds("bus_message") {
            let length = bus::declared_length(&data).unwrap();
            assert_eq!(length, Some(data.len()), "{}", path.display());
            assert!(Message::parse(data).is_ok(), "{}", path.display());
        }
    }
}
