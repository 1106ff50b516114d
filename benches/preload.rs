//! What preloading costs where it is never called (libvirt's daemon passes `LD_PRELOAD` on
//! to every QEMU, dnsmasq and helper it starts), and what the first capability query
//! through logind costs: the preload shim as the drop-in deploys it (preload/, which loads
//! the library at its first call), against the library itself preloaded (as before the
//! shim).
//!
//! `VIRNODESUSPEND_PRELOAD=SHIM cargo bench --bench preload [-- LIBRARY...]`: the library
//! `cargo build --release` left (default), or the shared libraries named, side by side,
//! and the shim (scripts/bench builds it with meson), which loads the first library (by
//! its SONAME, through a link on `LD_LIBRARY_PATH`). For each object: its file size (as
//! built, and stripped as Debian ships it), its `ldd` closure, the median time of a whole
//! `/bin/true` process with it in `LD_PRELOAD` against plain `/bin/true` (300 runs each,
//! taking turns), the private dirty memory of a process that sleeps with it preloaded (its
//! own mappings, and whatever it brought, against the same process without it), and the
//! first `virNodeSuspendGetTargetMask` of a process through the stand-in logind on a
//! private bus (31 processes; through the shim, this includes loading the library). Needs
//! dbus-daemon and python3-dbus. It measures and reports; only a failure to measure fails
//! it.

use std::collections::BTreeSet;
use std::ffi::{c_int, c_uint, CString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../src/testing.rs"]
mod testing;

use testing::{FakeRoot, PrivateBus};

const EXEC_RUNS: usize = 300;
const COLD_QUERIES: usize = 31;
const COLD_QUERY_FLAG: &str = "--cold-query";
const SONAME: &str = "libvirnodesuspend.so.0";

/// The stand-in's answers: "mem" and "disk" supported, "hybrid" not.
const STANDIN: &str =
    r#"{"CanSuspend": "yes", "CanHibernate": "challenge", "CanHybridSleep": "no", "warm": true}"#;
const STANDIN_MASK: c_uint = 0b011;

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The file size, and the size stripped of what the loader never reads (`strip
/// --strip-unneeded`, as dh_strip does), if strip is there.
fn sizes(library: &Path, scratch: &Path) -> (u64, Option<u64>) {
    let size = fs::metadata(library).unwrap().len();
    let stripped = scratch.join("stripped.so");
    let ran = Command::new("strip")
        .arg("--strip-unneeded")
        .arg("-o")
        .arg(&stripped)
        .arg(library)
        .status();
    let stripped_size = match ran {
        Ok(status) if status.success() => fs::metadata(&stripped).ok().map(|m| m.len()),
        _ => None,
    };
    let _ = fs::remove_file(&stripped);
    (size, stripped_size)
}

/// The shared objects `ldd` says the library brings (the vDSO left out).
fn closure(library: &Path) -> Vec<String> {
    let out = Command::new("ldd").arg(library).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| !name.starts_with("linux-vdso"))
        .map(|name| name.rsplit('/').next().unwrap_or(name).to_owned())
        .collect()
}

fn run_true(preload: Option<&Path>) -> Duration {
    let mut command = Command::new("/bin/true");
    command.env_remove("LD_PRELOAD");
    if let Some(library) = preload {
        command.env("LD_PRELOAD", library);
    }
    let began = Instant::now();
    let status = command.status().unwrap();
    let took = began.elapsed();
    assert!(status.success(), "/bin/true with {preload:?}: {status}");
    took
}

/// Median of whole `/bin/true` processes: plain (slot 0) and with each library preloaded,
/// taking turns so that the machine's drift reaches all alike.
fn exec_medians(libraries: &[PathBuf]) -> Vec<Duration> {
    let variants: Vec<Option<&Path>> = std::iter::once(None)
        .chain(libraries.iter().map(|l| Some(l.as_path())))
        .collect();
    for variant in &variants {
        for _ in 0..20 {
            run_true(*variant);
        }
    }
    let mut samples: Vec<Vec<Duration>> = variants.iter().map(|_| vec![]).collect();
    for round in 0..EXEC_RUNS {
        for i in 0..variants.len() {
            // Each round starts with another variant: none is always first after a pause.
            let slot = (i + round) % variants.len();
            samples[slot].push(run_true(variants[slot]));
        }
    }
    samples.into_iter().map(median).collect()
}

/// One mapping of /proc/PID/smaps: its path (empty for anonymous ones) and Private_Dirty.
struct Mapping {
    path: String,
    private_dirty_kb: u64,
}

fn smaps(pid: u32) -> Vec<Mapping> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut mappings: Vec<Mapping> = vec![];
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // "start-end perms offset dev inode [path]"
            let path = fields.nth(4).unwrap_or("").to_owned();
            mappings.push(Mapping {
                path,
                private_dirty_kb: 0,
            });
        } else if first == "Private_Dirty:" {
            let kb: u64 = fields.next().unwrap().parse().unwrap();
            mappings.last_mut().unwrap().private_dirty_kb += kb;
        }
    }
    mappings
}

/// A `/bin/sleep` that has got as far as its sleep (the loader is done with it).
fn sleeper(preload: Option<&Path>) -> Child {
    let mut command = Command::new("/bin/sleep");
    command.arg("60").env_remove("LD_PRELOAD");
    if let Some(library) = preload {
        command.env("LD_PRELOAD", library);
    }
    let mut child = command.stdin(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sleeping(child.id()) {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sleep never slept");
        }
        thread::sleep(Duration::from_millis(2));
    }
    child
}

/// Whether the process is blocked in clock_nanosleep (230) or nanosleep (35).
fn sleeping(pid: u32) -> bool {
    let syscall = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    syscall.starts_with("230 ") || syscall.starts_with("35 ")
}

struct Dirty {
    /// Private_Dirty of the library's own mappings.
    library_kb: u64,
    /// Of every mapping of a file the plain process does not map (the library and what
    /// it brought).
    brought_kb: u64,
    /// The whole process against the same process without the library.
    process_delta_kb: i64,
}

fn private_dirty(library: &Path) -> Dirty {
    // A file just written (a fresh build) has dirty pages in the page cache until they are
    // written back, and smaps counts those as the mapping's dirty pages: write them now.
    fs::File::open(library).unwrap().sync_all().unwrap();
    let mut plain = sleeper(None);
    let mut loaded = sleeper(Some(library));
    let base = smaps(plain.id());
    let with = smaps(loaded.id());
    for child in [&mut plain, &mut loaded] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let canonical = fs::canonicalize(library).unwrap();
    let base_paths: BTreeSet<&str> = base.iter().map(|m| m.path.as_str()).collect();
    let sum = |ms: &[Mapping], keep: &dyn Fn(&Mapping) -> bool| -> u64 {
        ms.iter()
            .filter(|m| keep(m))
            .map(|m| m.private_dirty_kb)
            .sum()
    };
    let library_kb = sum(&with, &|m| Path::new(&m.path) == canonical);
    let brought_kb = sum(&with, &|m| {
        m.path.starts_with('/') && !base_paths.contains(m.path.as_str())
    });
    let total = |ms: &[Mapping]| sum(ms, &|_| true) as i64;
    Dirty {
        library_kb,
        brought_kb,
        process_delta_kb: total(&with) - total(&base),
    }
}

/// The first `virNodeSuspendGetTargetMask` of a process, in this child: nanoseconds.
fn cold_query_child(library: &str) {
    let path = CString::new(library).unwrap();
    // SAFETY: dlopen with a NUL-terminated path; the handle is never closed.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "cannot load {library}");
    // SAFETY: dlsym on a live handle with a NUL-terminated name.
    let symbol = unsafe { libc::dlsym(handle, c"virNodeSuspendGetTargetMask".as_ptr()) };
    assert!(
        !symbol.is_null(),
        "{library} has no virNodeSuspendGetTargetMask"
    );
    // SAFETY: the symbol is `int virNodeSuspendGetTargetMask(unsigned int *)`.
    let mask: unsafe extern "C" fn(*mut c_uint) -> c_int = unsafe { std::mem::transmute(symbol) };
    let mut value = 0;
    let began = Instant::now();
    // SAFETY: a valid pointer to an unsigned int.
    let ret = unsafe { mask(&mut value) };
    let took = began.elapsed();
    assert_eq!((ret, value), (0, STANDIN_MASK), "{library}");
    println!("{}", took.as_nanos());
}

/// Medians of the first capability query through the stand-in logind, a process each, the
/// objects taking turns; `library_path` is their `LD_LIBRARY_PATH` (where the shim finds
/// the library).
fn cold_queries(objects: &[PathBuf], library_path: &Path) -> Vec<Duration> {
    let mut samples: Vec<Vec<Duration>> = objects.iter().map(|_| vec![]).collect();
    for _ in 0..COLD_QUERIES {
        for (slot, library) in objects.iter().enumerate() {
            let out = Command::new(env::current_exe().unwrap())
                .args([COLD_QUERY_FLAG, library.to_str().unwrap()])
                .env("LD_LIBRARY_PATH", library_path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let nanos = text.trim().parse().unwrap_or_else(|_| {
                panic!(
                    "cold query of {}: {text:?} {}",
                    library.display(),
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            samples[slot].push(Duration::from_nanos(nanos));
        }
    }
    samples.into_iter().map(median).collect()
}

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == COLD_QUERY_FLAG) {
        cold_query_child(&args[at + 1]);
        return;
    }
    // cargo bench passes --bench; anything else is a library to measure.
    let mut libraries: Vec<PathBuf> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(|a| fs::canonicalize(a).unwrap_or_else(|e| panic!("{a}: {e}")))
        .collect();
    if libraries.is_empty() {
        let profile = common::profile_dir();
        libraries.push(profile.join("libvirnodesuspend.so"));
    }
    let shim = env::var_os("VIRNODESUSPEND_PRELOAD")
        .map(|path| fs::canonicalize(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .expect("VIRNODESUSPEND_PRELOAD must name the preload shim (scripts/bench builds it)");
    env::set_var("TMPDIR", "/dev/shm");
    let scratch = FakeRoot::new();
    // The shim loads the first library by its SONAME, found here.
    let library_path = scratch.path().join("lib");
    fs::create_dir(&library_path).unwrap();
    std::os::unix::fs::symlink(&libraries[0], library_path.join(SONAME)).unwrap();
    let objects: Vec<PathBuf> = std::iter::once(shim.clone())
        .chain(libraries.iter().cloned())
        .collect();
    let label = |object: &Path| {
        if object == shim {
            format!("shim (loads {})", libraries[0].display())
        } else {
            format!("library {}", object.display())
        }
    };

    println!(
        "Preloaded and never called (LD_PRELOAD=OBJECT; issue 15's bounds: +100 us per process start, 16 kB private dirty, 1.5 ms cold logind query):"
    );
    for object in &objects {
        let (size, stripped) = sizes(object, scratch.path());
        let stripped = stripped.map_or("strip not found".into(), |s| format!("{s} stripped"));
        println!("  {}", label(object));
        println!("    {}", object.display());
        println!("    size {size} bytes ({stripped})");
        println!("    ldd  {}", closure(object).join(" "));
        let dirty = private_dirty(object);
        println!(
            "    private dirty of a sleeping /bin/sleep: {} kB its own, with what it brought {} kB, whole process {:+} kB",
            dirty.library_kb, dirty.brought_kb, dirty.process_delta_kb
        );
    }
    println!("/bin/true, whole process, median of {EXEC_RUNS} each (taking turns):");
    let medians = exec_medians(&objects);
    println!("  plain                 {:>8.1} us", us(medians[0]));
    for (object, took) in objects.iter().zip(&medians[1..]) {
        println!(
            "  preloaded             {:>8.1} us  ({:+.1} us)  {}",
            us(*took),
            us(*took) - us(medians[0]),
            label(object)
        );
    }

    // The first query goes to the stand-in logind (warmed: it has answered once already).
    let root = FakeRoot::new().state("freeze mem disk");
    let bus = PrivateBus::start(STANDIN);
    env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
    env::set_var("VIRNODESUSPEND_ROOT", root.path());
    env::remove_var("VIRNODESUSPEND_BACKENDS");
    println!(
        "virNodeSuspendGetTargetMask, first call of a process, through the stand-in logind (median of {COLD_QUERIES}; through the shim: loading the library included):"
    );
    for (object, took) in objects.iter().zip(cold_queries(&objects, &library_path)) {
        println!("  {:>8.1} us  {}", us(took), label(object));
    }
}
