//! This library and Debian's libvirt 9.0 (`libvirt.so.0`'s private virNodeSuspend*), side by
//! side in one run, each called through a function pointer from `dlopen`.
//!
//! `cargo bench --bench side_by_side`. Needs libvirt0, dbus-daemon and python3-dbus (libvirt
//! 9.0 answers through logind only: a stand-in on a private bus says "mem" is supported).
//! Neither library touches this machine: ours works on a fake root, and libvirt's rtcwake
//! and pm-suspend are `/bin/true` on PATH.

use std::ffi::{c_int, c_uint, c_ulonglong, c_void, CStr};
use std::path::Path;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use std::{env, fs, hint, thread};

type Suspend = unsafe extern "C" fn(c_uint, c_ulonglong, c_uint) -> c_int;
type GetTargetMask = unsafe extern "C" fn(*mut c_uint) -> c_int;

#[derive(Clone, Copy)]
struct Api {
    suspend: Suspend,
    mask: GetTargetMask,
}

// The unit tests' fake roots and private bus.
#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../src/testing.rs"]
mod testing;

use testing::{FakeRoot, PrivateBus};

/// Child modes: one libvirt virNodeSuspend, or one cold capability query of the library
/// at the path that follows; each prints its time in nanoseconds.
const CHILD_FLAG: &str = "--libvirt-suspend-once";
const COLD_QUERY_FLAG: &str = "--cold-query";

fn open(library: &Path) -> Api {
    let path = std::ffi::CString::new(library.to_str().unwrap()).unwrap();
    // SAFETY: dlopen with a NUL-terminated path; the handle is never closed.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(
        !handle.is_null(),
        "cannot load {} (run scripts/bench)",
        library.display()
    );
    let symbol = |name: &CStr| {
        // SAFETY: dlsym on a live handle with a NUL-terminated name.
        let address = unsafe { libc::dlsym(handle, name.as_ptr()) };
        assert!(
            !address.is_null(),
            "{name:?} missing from {}",
            library.display()
        );
        address
    };
    if library.ends_with("libvirt.so.0") {
        // SAFETY: virInitialize is `int virInitialize(void)`.
        let initialize: unsafe extern "C" fn() -> c_int =
            unsafe { std::mem::transmute(symbol(c"virInitialize")) };
        // SAFETY: as above.
        assert_eq!(unsafe { initialize() }, 0);
    }
    // SAFETY: both symbols have the C signatures of Suspend and GetTargetMask.
    unsafe {
        Api {
            suspend: std::mem::transmute::<*mut c_void, Suspend>(symbol(c"virNodeSuspend")),
            mask: std::mem::transmute::<*mut c_void, GetTargetMask>(symbol(
                c"virNodeSuspendGetTargetMask",
            )),
        }
    }
}

/// The floor: a function that does nothing, called the same way.
extern "C" fn empty_mask(bitmask: *mut c_uint) -> c_int {
    // SAFETY: the benchmark passes a valid pointer.
    unsafe { bitmask.write_volatile(0) };
    0
}

extern "C" fn empty_suspend(_: c_uint, _: c_ulonglong, _: c_uint) -> c_int {
    0
}

fn mask(api: Api) -> (c_int, c_uint) {
    let mut value = 0;
    // SAFETY: a valid pointer to an unsigned int.
    let ret = unsafe { (api.mask)(&mut value) };
    (ret, value)
}

fn suspend_mem_60(api: Api) -> c_int {
    // SAFETY: plain integer arguments.
    unsafe { (api.suspend)(0, 60, 0) }
}

/// Nanoseconds per cached `virNodeSuspendGetTargetMask` call, each of `threads` threads
/// calling it `calls` times at once; the median of five rounds.
fn cached_mask_ns(api: Api, threads: usize, calls: u32) -> f64 {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let start = Barrier::new(threads);
            let per_thread: Vec<Duration> = thread::scope(|s| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            let began = Instant::now();
                            for _ in 0..calls {
                                let mut value = 0;
                                // SAFETY: a valid pointer to an unsigned int.
                                hint::black_box(unsafe { (api.mask)(hint::black_box(&mut value)) });
                            }
                            began.elapsed()
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).collect()
            });
            per_thread.iter().map(Duration::as_secs_f64).sum::<f64>() / threads as f64 * 1e9
                / f64::from(calls)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Our `virNodeSuspend` on the kernel backend, with no delay: each accepted call, timed.
fn our_suspend_latency(api: Api, requests: usize) -> Vec<Duration> {
    let mut accepted = Vec::with_capacity(requests);
    while accepted.len() < requests {
        let began = Instant::now();
        if suspend_mem_60(api) == 0 {
            accepted.push(began.elapsed());
        }
        // Until the worker has finished the previous request, the next is refused.
        thread::sleep(Duration::from_millis(1));
    }
    accepted
}

/// libvirt's `virNodeSuspend` succeeds once per process (its worker waits 10 s before it
/// lets the next one in), so each sample is a child process of its own.
fn libvirt_suspend_latency(samples: usize) -> Vec<Duration> {
    (0..samples)
        .map(|_| {
            let out = Command::new(env::current_exe().unwrap())
                .arg(CHILD_FLAG)
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            Duration::from_nanos(
                text.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("child said {text:?}")),
            )
        })
        .collect()
}

fn main() {
    let libvirt_path = Path::new("libvirt.so.0");
    let args: Vec<String> = env::args().collect();
    if let Some(at) = args.iter().position(|a| a == COLD_QUERY_FLAG) {
        let api = open(Path::new(&args[at + 1]));
        let began = Instant::now();
        assert_eq!(mask(api), (0, 0b011), "{}", args[at + 1]);
        println!("{}", began.elapsed().as_nanos());
        return;
    }
    if args.iter().any(|a| a == CHILD_FLAG) {
        let libvirt = open(libvirt_path);
        mask(libvirt);
        let began = Instant::now();
        assert_eq!(suspend_mem_60(libvirt), 0, "libvirt refused the request");
        println!("{}", began.elapsed().as_nanos());
        return;
    }

    let profile = common::profile_dir();
    // The kernel's files live in memory: a tmpfs fake root times like them (an ext4 one
    // adds the journal's cost of every O_TRUNC). The fake roots are made in TMPDIR.
    env::set_var("TMPDIR", "/dev/shm");
    let scratch = FakeRoot::new();
    let root = FakeRoot::new()
        .state("freeze mem disk")
        .swap("/dev/vda2")
        .rtc(0, 1_800_000_000);
    let bin = scratch.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    for helper in ["rtcwake", "pm-suspend"] {
        std::os::unix::fs::symlink("/bin/true", bin.join(helper)).unwrap();
    }

    let bus = PrivateBus::start(
        r#"{"CanSuspend": "yes", "CanHibernate": "challenge", "CanHybridSleep": "no", "asleep_ms": 1, "warm": true}"#,
    );
    env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
    env::set_var("PATH", &bin);
    env::set_var("VIRNODESUSPEND_ROOT", root.path());
    env::set_var("VIRNODESUSPEND_DELAY", "0");

    // Two copies of the library, each configured by the environment at its first call:
    // the default backends (logind answers, on the same bus as libvirt), and the kernel's.
    let copy = |tag: &str| {
        let file = scratch.path().join(format!("libvirnodesuspend-{tag}.so"));
        fs::copy(profile.join("libvirnodesuspend.so"), &file).unwrap();
        open(&file)
    };
    let ours = copy("default");
    let libvirt = open(libvirt_path);

    // A cold query happens once per process: each sample is a process of its own, the two
    // libraries taking turns on the same (warmed) stand-in.
    println!("virNodeSuspendGetTargetMask, first call (capability query), 9 processes each:");
    let our_library = profile.join("libvirnodesuspend.so");
    let mut samples: [Vec<Duration>; 2] = [vec![], vec![]];
    for _ in 0..9 {
        for (slot, library) in [our_library.as_path(), libvirt_path]
            .into_iter()
            .enumerate()
        {
            let out = Command::new(env::current_exe().unwrap())
                .args([COLD_QUERY_FLAG, library.to_str().unwrap()])
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let nanos = text
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("child said {text:?}"));
            samples[slot].push(Duration::from_nanos(nanos));
        }
    }
    let [our_samples, their_samples] = samples;
    for (name, samples) in [
        ("virnodesuspend", our_samples),
        ("libvirt 9.0", their_samples),
    ] {
        let (low, high) = (
            *samples.iter().min().unwrap(),
            *samples.iter().max().unwrap(),
        );
        println!(
            "  {name:<15} median {:>8.1} us  min {:>8.1}  max {:>8.1}  (logind: same stand-in, same bus)",
            median(samples).as_secs_f64() * 1e6,
            low.as_secs_f64() * 1e6,
            high.as_secs_f64() * 1e6
        );
    }
    assert_eq!(mask(ours), (0, 0b011));
    assert_eq!(mask(libvirt), (0, 0b011));
    env::set_var("VIRNODESUSPEND_BACKENDS", "kernel");
    let ours_kernel = copy("kernel");
    let began = Instant::now();
    assert_eq!(mask(ours_kernel), (0, 0b011));
    let took = began.elapsed().as_secs_f64() * 1e6;
    println!("  {:<15} {took:>10.1} us  (kernel)", "virnodesuspend");

    println!("virNodeSuspendGetTargetMask, cached, ns per call (median of 5 rounds):");
    let floor = Api {
        suspend: empty_suspend,
        mask: empty_mask,
    };
    for (name, api, calls) in [
        ("virnodesuspend", ours, 50_000_000),
        ("libvirt 9.0", libvirt, 5_000_000),
        ("empty function", floor, 50_000_000),
    ] {
        let one = cached_mask_ns(api, 1, calls);
        let two = cached_mask_ns(api, 2, calls);
        println!("  {name:<15} 1 thread {one:>7.2}   2 threads {two:>7.2} each");
    }

    // Each call resets its thread's error; while any thread in the process holds one, that
    // costs a thread-local access on every call (in a shared library, __tls_get_addr).
    let (hold, release) = std::sync::mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        // SAFETY: plain integer arguments; flags 1 is refused, and the error is kept.
        unsafe { (ours.suspend)(0, 60, 1) };
        release.recv().unwrap();
    });
    thread::sleep(Duration::from_millis(10));
    let one = cached_mask_ns(ours, 1, 50_000_000);
    println!("  virnodesuspend  1 thread {one:>7.2}   while another thread holds an error");
    hold.send(()).unwrap();
    holder.join().unwrap();

    println!("virNodeSuspend(mem, 60) accepted, time to return (ours: kernel backend):");
    let our = our_suspend_latency(ours_kernel, 200);
    let theirs = libvirt_suspend_latency(9);
    for (name, samples) in [("virnodesuspend", our), ("libvirt 9.0", theirs)] {
        let n = samples.len();
        let (low, high) = (
            *samples.iter().min().unwrap(),
            *samples.iter().max().unwrap(),
        );
        let mid = median(samples);
        println!(
            "  {name:<15} median {:>8.1} us  min {:>8.1}  max {:>8.1}  ({n} requests)",
            mid.as_secs_f64() * 1e6,
            low.as_secs_f64() * 1e6,
            high.as_secs_f64() * 1e6
        );
    }

    // The record of the last request (back) is read and parsed on every call.
    let info = info_function(&scratch.path().join("libvirnodesuspend-kernel.so"));
    let samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let mut out = std::mem::MaybeUninit::<Info>::uninit();
            let began = Instant::now();
            // SAFETY: a valid pointer to writable memory for the struct.
            assert_eq!(unsafe { info(out.as_mut_ptr(), 0) }, 0);
            let took = began.elapsed();
            // SAFETY: filled by the successful call.
            let out = unsafe { out.assume_init() };
            assert_eq!((out.state, out.last_outcome), (0, 1));
            took
        })
        .collect();
    println!(
        "virNodeSuspendGetInfo (tmpfs root), median {:.1} us  (2000 calls)",
        median(samples).as_secs_f64() * 1e6
    );

    drop(bus);
}

/// `virNodeSuspendInfo`, as include/virnodesuspend.h lays it out.
#[repr(C)]
struct Info {
    state: c_int,
    target: c_int,
    pid: c_int,
    backend: *const std::ffi::c_char,
    accepted_at: i64,
    wake_at: i64,
    last_outcome: c_int,
    last_target: c_int,
    last_error: *const std::ffi::c_char,
}

type GetInfo = unsafe extern "C" fn(*mut Info, c_uint) -> c_int;

/// `virNodeSuspendGetInfo` of the library at `path`, already loaded by [`open`].
fn info_function(path: &Path) -> GetInfo {
    let path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: dlopen of a loaded library by its path only takes another reference to it.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    assert!(!handle.is_null());
    // SAFETY: dlsym on a live handle with a NUL-terminated name.
    let address = unsafe { libc::dlsym(handle, c"virNodeSuspendGetInfo".as_ptr()) };
    assert!(!address.is_null());
    // SAFETY: the symbol has GetInfo's C signature.
    unsafe { std::mem::transmute::<*mut c_void, GetInfo>(address) }
}
