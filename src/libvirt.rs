//! libvirt in the same process, found at run time.
//!
//! When this library runs inside libvirt (libvirtd or virtqemud with it preloaded, or any
//! program linked with `libvirt.so.0`), errors are also raised through libvirt's own
//! `virRaiseErrorFull`, so `virGetLastError()`, virsh and the daemon's log see them exactly
//! as libvirt's own; and what happens after the call returns is logged through
//! `virLogMessage` under libvirt's log source name for this code, `util.nodesuspend`.
//! Without libvirt, both are skipped: the library never prints.

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

use crate::error::{Error, LEVEL_ERROR};

/// `virRaiseErrorFull(filename, funcname, linenr, domain, code, level, str1, str2, str3,
/// int1, int2, fmt, ...)` (libvirt's src/util/virerror.h).
type RaiseErrorFull = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    usize,
    c_int,
    c_int,
    c_int,
    *const c_char,
    *const c_char,
    *const c_char,
    c_int,
    c_int,
    *const c_char,
    ...
);

/// `virLogMessage(source, priority, filename, linenr, funcname, metadata, fmt, ...)`
/// (libvirt's src/util/virlog.h).
type LogMessage = unsafe extern "C" fn(
    *mut LogSource,
    c_int,
    *const c_char,
    c_int,
    *const c_char,
    *mut c_void,
    *const c_char,
    ...
);

/// libvirt's `virLogSource`. libvirt updates `priority` and `serial` (under its own log
/// lock) whenever its log filters change, so it lives in writable memory.
#[repr(C)]
struct LogSource {
    name: *const c_char,
    priority: c_uint,
    serial: c_uint,
}

struct SharedLogSource(UnsafeCell<LogSource>);
// SAFETY: only libvirt touches the fields, and it does so under its own log lock.
unsafe impl Sync for SharedLogSource {}

/// `VIR_LOG_INIT("util.nodesuspend")`: priority starts at VIR_LOG_ERROR, serial at 0.
static LOG_SOURCE: SharedLogSource = SharedLogSource(UnsafeCell::new(LogSource {
    name: c"util.nodesuspend".as_ptr(),
    priority: 4,
    serial: 0,
}));

/// libvirt's `virLogPriority`, for the messages this library logs.
#[derive(Clone, Copy)]
pub enum LogPriority {
    Info = 2,
    Warn = 3,
}

fn lookup(symbol: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads the loaded
    // objects' symbol tables.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, symbol.as_ptr()) };
    (!address.is_null()).then_some(address)
}

/// `symbol` from libvirt, once libvirt is initialized. libvirt 9.0's error and log
/// functions need `virInitialize` first (its thread-local error key is created there: an
/// error raised before it corrupts the heap); every libvirt API call runs it first, and it
/// does its work only once, so this does the same.
fn initialized_libvirt(symbol: &CStr) -> Option<*mut c_void> {
    let initialize = lookup(c"virInitialize")?;
    // SAFETY: the symbol is libvirt's public `int virInitialize(void)`.
    let initialize: unsafe extern "C" fn() -> c_int = unsafe { std::mem::transmute(initialize) };
    // SAFETY: as above; it is thread-safe and idempotent.
    if unsafe { initialize() } < 0 {
        return None;
    }
    lookup(symbol)
}

/// A Rust string as C text (NUL bytes, which C strings cannot hold, are dropped).
pub fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', "")).expect("NUL bytes were removed")
}

/// Raises `error` through libvirt, if libvirt is in the process.
pub fn raise(error: &Error) {
    let Some(address) = initialized_libvirt(c"virRaiseErrorFull") else {
        return;
    };
    // SAFETY: the symbol is libvirt's virRaiseErrorFull, whose C signature RaiseErrorFull
    // spells out.
    let raise_error_full: RaiseErrorFull = unsafe { std::mem::transmute(address) };
    let [file, function, str1, str2, message] = [
        error.file,
        error.function,
        &error.str1,
        &error.str2,
        &error.message,
    ]
    .map(c_text);
    // SAFETY: every pointer is a live NUL-terminated string or NULL (str3, as libvirt's
    // macros pass it), and the format "%s" consumes exactly the one string argument.
    unsafe {
        raise_error_full(
            file.as_ptr(),
            function.as_ptr(),
            error.line as usize,
            error.domain,
            error.code as c_int,
            LEVEL_ERROR,
            str1.as_ptr(),
            str2.as_ptr(),
            std::ptr::null(),
            error.int1,
            error.int2,
            c"%s".as_ptr(),
            message.as_ptr(),
        );
    }
}

/// Logs `text` through libvirt, if libvirt is in the process, as libvirt's own
/// `VIR_INFO`/`VIR_WARN` in `function` would.
#[track_caller]
pub fn log(priority: LogPriority, function: &CStr, text: &str) {
    let Some(address) = initialized_libvirt(c"virLogMessage") else {
        return;
    };
    // SAFETY: the symbol is libvirt's virLogMessage, whose C signature LogMessage spells out.
    let log_message: LogMessage = unsafe { std::mem::transmute(address) };
    let caller = std::panic::Location::caller();
    let (file, text) = (c_text(caller.file()), c_text(text));
    // SAFETY: the source lives for the whole process, the strings for the call; NULL
    // metadata is what libvirt's own VIR_WARN passes; "%s" consumes the one argument.
    unsafe {
        log_message(
            LOG_SOURCE.0.get(),
            priority as c_int,
            file.as_ptr(),
            caller.line() as c_int,
            function.as_ptr(),
            std::ptr::null_mut(),
            c"%s".as_ptr(),
            text.as_ptr(),
        );
    }
}
