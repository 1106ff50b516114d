//! The C surface: every exported function, and the thread-local error callers without
//! libvirt read. Each export runs behind [`boundary`], so no panic crosses into C; each
//! leads with one call into the plain-Rust core ([`NodeSuspend`]).

use std::any::Any;
use std::cell::Cell;
use std::ffi::{
    c_char, c_int, c_longlong, c_uint, c_ulong, c_ulonglong, c_void, CStr, CString, OsString,
};
use std::os::unix::ffi::OsStringExt;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};

use once_cell::sync::OnceCell;

use crate::config::Config;
use crate::error::{Error, ErrorCode, Result, LEVEL_ERROR};
use crate::libvirt;
use crate::node::NodeSuspend;
use crate::request::{Ending, Phase, Record};

/// An error, laid out as libvirt's `virError` so that code written for one reads the other.
/// `conn`, `dom`, `str3` and `net` are always NULL.
#[repr(C)]
pub struct virNodeSuspendError {
    /// A `virErrorNumber`.
    pub code: c_int,
    /// A `virErrorDomain`, as in libvirt: `VIR_FROM_NONE` (0), or `VIR_FROM_DBUS` (47) for
    /// an error of the D-Bus exchange with logind.
    pub domain: c_int,
    /// The full message, as libvirt formats it.
    pub message: *mut c_char,
    /// A `virErrorLevel`: always `VIR_ERR_ERROR` (2).
    pub level: c_int,
    pub conn: *mut c_void,
    pub dom: *mut c_void,
    pub str1: *mut c_char,
    pub str2: *mut c_char,
    pub str3: *mut c_char,
    pub int1: c_int,
    pub int2: c_int,
    pub net: *mut c_void,
}

/// The error as stored: the C view and the strings it points into.
struct LastError {
    view: virNodeSuspendError,
    _strings: [CString; 3],
}

impl LastError {
    fn new(error: &Error) -> Box<LastError> {
        let strings = [&error.message, &error.str1, &error.str2].map(|s| libvirt::c_text(s));
        let text = |i: usize| strings[i].as_ptr().cast_mut();
        Box::new(LastError {
            view: virNodeSuspendError {
                code: error.code as c_int,
                domain: error.domain,
                message: text(0),
                level: LEVEL_ERROR,
                conn: ptr::null_mut(),
                dom: ptr::null_mut(),
                str1: text(1),
                str2: text(2),
                str3: ptr::null_mut(),
                int1: error.int1,
                int2: error.int2,
                net: ptr::null_mut(),
            },
            _strings: strings,
        })
    }
}

thread_local! {
    /// This thread's last error. Boxed so that the pointer handed out stays valid until
    /// the next call on this thread replaces or resets it.
    static LAST_ERROR: Cell<Option<HeldError>> = const { Cell::new(None) };
}

/// How many threads hold an error right now. While none does, an API call's reset needs
/// no thread-local access (in a shared library that is a call to `__tls_get_addr`, most
/// of the cost of a cached `virNodeSuspendGetTargetMask`). A thread always sees its own
/// increment, so it never skips resetting an error of its own.
static THREADS_HOLDING_AN_ERROR: AtomicUsize = AtomicUsize::new(0);

/// A stored error, counted in [`THREADS_HOLDING_AN_ERROR`] for as long as it lives
/// (including until its thread exits).
struct HeldError(Box<LastError>);

impl HeldError {
    fn new(error: &Error) -> HeldError {
        THREADS_HOLDING_AN_ERROR.fetch_add(1, Ordering::Relaxed);
        HeldError(LastError::new(error))
    }
}

impl Drop for HeldError {
    fn drop(&mut self) {
        THREADS_HOLDING_AN_ERROR.fetch_sub(1, Ordering::Relaxed);
    }
}

// The thread-local error is reached with `try_with` throughout: the library can be called
// from a thread's last destructors, after its Rust thread-locals are gone, and must not
// panic there (a panic outside the boundary would abort the process).

fn with_last_error<T>(read: impl FnOnce(Option<&LastError>) -> T) -> T {
    let stored = LAST_ERROR.try_with(Cell::take).ok().flatten();
    let value = read(stored.as_ref().map(|held| &*held.0));
    if let Some(stored) = stored {
        // Put back the same box: pointers handed out into it stay valid.
        let _ = LAST_ERROR.try_with(|cell| cell.set(Some(stored)));
    }
    value
}

fn reset_last_error() {
    let _ = LAST_ERROR.try_with(|cell| cell.set(None));
}

/// Runs `body`, turning a panic into `on_panic` (and, for API calls, an internal error).
fn boundary<T>(on_panic: impl FnOnce(Box<dyn Any + Send>) -> T, body: impl FnOnce() -> T) -> T {
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(on_panic)
}

/// One libvirt API call: resets this thread's error on entry (libvirt's public-API
/// convention), and returns 0, or -1 with the error reported.
fn api_call(function: &'static str, body: impl FnOnce() -> Result<()>) -> c_int {
    boundary(
        |payload| {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            report_failure(Error::new(
                ErrorCode::InternalError,
                function,
                format!("unexpected failure in {function}: {what}"),
            ))
        },
        || {
            if THREADS_HOLDING_AN_ERROR.load(Ordering::Relaxed) != 0 {
                reset_last_error();
            }
            match body() {
                Ok(()) => 0,
                Err(error) => report_failure(error),
            }
        },
    )
}

/// Makes `error` this thread's last error, and libvirt's too when libvirt is loaded.
#[cold]
#[inline(never)]
fn report_failure(error: Error) -> c_int {
    libvirt::raise(&error);
    let held = HeldError::new(&error);
    let _ = LAST_ERROR.try_with(|cell| cell.set(Some(held)));
    -1
}

/// libvirt's `virCheckFlags(0, -1)` in `function`: no export defines a flag. Checked here,
/// first of all (before the configuration, too), as libvirt does; the core takes none.
fn check_no_flags(function: &'static str, flags: c_uint) -> Result<()> {
    match flags {
        0 => Ok(()),
        _ => Err(Error::unsupported_flags(function, flags)),
    }
}

/// A caller's out-pointer, checked not NULL: where an export stores its answer.
struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// `pointer`, or libvirt's "invalid argument" naming `argument` of `function` when it
    /// is NULL.
    ///
    /// # Safety
    ///
    /// `pointer` is NULL or points to writable memory for a `T` for as long as the
    /// `Out` is used (the export's call).
    unsafe fn new(
        function: &'static str,
        argument: &'static str,
        pointer: *mut T,
    ) -> Result<Out<T>> {
        // SAFETY: the caller's promise, passed on.
        unsafe { Out::non_null(pointer) }.ok_or_else(|| Error::null_argument(function, argument))
    }

    /// `pointer` unless it is NULL.
    ///
    /// # Safety
    ///
    /// As [`Out::new`].
    #[inline]
    unsafe fn non_null(pointer: *mut T) -> Option<Out<T>> {
        NonNull::new(pointer).map(Out)
    }

    fn set(&mut self, value: T) {
        // SAFETY: not NULL, and writable for a `T` as `Out::new`'s caller promised.
        unsafe { self.0.as_ptr().write(value) }
    }
}

extern "C" {
    /// glibc's getenv that returns NULL in set-user-ID and similar processes (not bound by
    /// the libc crate).
    fn secure_getenv(name: *const c_char) -> *mut c_char;
}

/// A knob from the environment, ignored in set-user-ID and similar processes.
fn knob(name: &CStr) -> Option<OsString> {
    // SAFETY: secure_getenv reads the environment with a NUL-terminated name; the value is
    // copied out at once, before anything can change the environment.
    let value = unsafe { secure_getenv(name.as_ptr()) };
    (!value.is_null()).then(|| {
        // SAFETY: a non-NULL result is a NUL-terminated string in the environment.
        OsString::from_vec(unsafe { CStr::from_ptr(value) }.to_bytes().to_vec())
    })
}

/// The process's node, configured from the environment once (and only once that worked).
fn node() -> Result<&'static NodeSuspend> {
    match NODE.get() {
        Some(node) => Ok(node),
        None => configure_node(),
    }
}

static NODE: OnceCell<NodeSuspend> = OnceCell::new();

/// Out of line, so that the cached path of every call stays a few instructions.
#[cold]
#[inline(never)]
fn configure_node() -> Result<&'static NodeSuspend> {
    NODE.get_or_try_init(|| {
        let mut config = Config::from_values(
            knob(c"VIRNODESUSPEND_ROOT"),
            knob(c"VIRNODESUSPEND_DELAY"),
            knob(c"VIRNODESUSPEND_BACKENDS"),
        )?;
        // Not knobs: pm-utils helpers are looked for where libvirt looks for them, and the
        // system bus is where every D-Bus client looks for it.
        config.path = std::env::var_os("PATH");
        config.system_bus = knob(c"DBUS_SYSTEM_BUS_ADDRESS").and_then(|a| a.into_string().ok());
        let node = NodeSuspend::new(config);
        // Every process's first call looks for a request some process left behind.
        node.settle_abandoned();
        Ok(node)
    })
}

/// Puts the host to sleep in `target` (a `virNodeSuspendTarget`) and wakes it again after
/// `duration` seconds (at least 60), with the RTC alarm. `flags` must be 0.
///
/// The alarm is armed before the call returns; the suspend itself starts a short delay
/// later (10 s, `VIRNODESUSPEND_DELAY`), so that the caller's reply can leave the host.
/// Only one request is in progress at a time: a second one is refused until the host is
/// back from the first, or the first failed.
///
/// Returns 0 when the host is going to sleep, -1 with an error set otherwise.
#[no_mangle]
pub extern "C" fn virNodeSuspend(target: c_uint, duration: c_ulonglong, flags: c_uint) -> c_int {
    const FUNCTION: &str = "virNodeSuspend";
    api_call(FUNCTION, || {
        check_no_flags(FUNCTION, flags)?;
        node()?.suspend(target, duration)
    })
}

/// Stores in `*bitmask` the targets this host supports, as bits `1 << target`.
///
/// `*bitmask` is set to 0 first. The host is queried on the first successful call only;
/// later calls read the cached answer without taking a lock.
///
/// Returns 0 on success, -1 with an error set otherwise.
///
/// # Safety
///
/// `bitmask` is NULL (an error) or points to writable memory for an `unsigned int`.
#[no_mangle]
pub unsafe extern "C" fn virNodeSuspendGetTargetMask(bitmask: *mut c_uint) -> c_int {
    // The cached answer: three atomic loads and a store, which cannot panic, so they need no
    // unwinding frame (saving its register spills is a third of the call's cost).
    if let Some(mask) = NODE.get().and_then(NodeSuspend::cached_target_mask) {
        // SAFETY: the caller's promise about `bitmask`, passed on.
        if let Some(mut out) = unsafe { Out::non_null(bitmask) } {
            if THREADS_HOLDING_AN_ERROR.load(Ordering::Relaxed) == 0 {
                out.set(mask);
                return 0;
            }
        }
    }
    // SAFETY: the caller's promise about `bitmask`, passed on.
    unsafe { target_mask_call(bitmask) }
}

/// `virNodeSuspendGetTargetMask` behind the boundary: the first call, and every error.
///
/// # Safety
///
/// As `virNodeSuspendGetTargetMask`.
#[inline(never)]
unsafe fn target_mask_call(bitmask: *mut c_uint) -> c_int {
    const FUNCTION: &str = "virNodeSuspendGetTargetMask";
    api_call(FUNCTION, || {
        // SAFETY: the caller's promise about `bitmask`, passed on.
        let mut bitmask = unsafe { Out::new(FUNCTION, "bitmask", bitmask) }?;
        bitmask.set(0);
        bitmask.set(node()?.target_mask()?);
        Ok(())
    })
}

/// Waits until the host's suspend request in progress is over, whichever process on the
/// host made it, and tells how it ended: 0 when the backend reported the host back from its
/// sleep, -1 with the reason as error when the suspend failed (`VIR_ERR_OPERATION_ABORTED`,
/// 78, when it was aborted). With no request in progress it returns at once: how this
/// process's last request ended, or, when it made none, the host's last; -1 with an error
/// when there was none.
///
/// A request is carried out by a thread of the process that made it, after
/// `virNodeSuspend` returned: a program that would exit right after it (a command-line
/// tool) waits here instead, or the suspend never happens. Another process, of any user,
/// watches the host's record change and looks at the owner's process every half second;
/// it reports the outcome recorded for the request it waited for, never another's. A
/// request whose process ended before it did is settled as abandoned on the way (-1,
/// `VIR_ERR_OPERATION_FAILED`, 9), or, where the caller may not settle it (not root),
/// reported as abandoned with the same code.
#[no_mangle]
pub extern "C" fn virNodeSuspendWait() -> c_int {
    api_call("virNodeSuspendWait", || node()?.wait())
}

/// Stores in `*backend` the name of the backend that answers for this host, and would carry
/// out a suspend: "logind", "pm-utils" or "kernel" (static strings), or NULL when none is
/// available (then no target is supported).
///
/// This is the capability query of `virNodeSuspendGetTargetMask`, and shares its cache.
///
/// Returns 0 on success, -1 with an error set otherwise.
///
/// # Safety
///
/// `backend` is NULL (an error) or points to writable memory for a `const char *`.
#[no_mangle]
pub unsafe extern "C" fn virNodeSuspendGetBackend(backend: *mut *const c_char) -> c_int {
    const FUNCTION: &str = "virNodeSuspendGetBackend";
    api_call(FUNCTION, || {
        // SAFETY: the caller's promise about `backend`, passed on.
        let mut backend = unsafe { Out::new(FUNCTION, "backend", backend) }?;
        backend.set(match node()?.capabilities()?.backend() {
            None => ptr::null(),
            Some(answered) => answered.c_name().as_ptr(),
        });
        Ok(())
    })
}

/// The states of the host's request (`virNodeSuspendInfo::state`).
#[repr(C)]
pub enum virNodeSuspendState {
    VIR_NODE_SUSPEND_STATE_IDLE = 0,
    /// Accepted, the alarm armed; the suspend starts after the delay.
    VIR_NODE_SUSPEND_STATE_PENDING = 1,
    /// The backend has been asked to suspend the host; too late to abort.
    VIR_NODE_SUSPEND_STATE_SUSPENDING = 2,
}

/// How the last request ended (`virNodeSuspendInfo::lastOutcome`).
#[repr(C)]
pub enum virNodeSuspendOutcome {
    /// No request has ended since the host booted.
    VIR_NODE_SUSPEND_OUTCOME_NONE = 0,
    /// The backend reported the host back from its sleep.
    VIR_NODE_SUSPEND_OUTCOME_BACK = 1,
    VIR_NODE_SUSPEND_OUTCOME_FAILED = 2,
    /// Cancelled by `virNodeSuspendAbort` before the suspend started.
    VIR_NODE_SUSPEND_OUTCOME_ABORTED = 3,
    /// Its process ended before the request did.
    VIR_NODE_SUSPEND_OUTCOME_ABANDONED = 4,
}

/// The host's suspend request, whichever process made it, as `virNodeSuspendGetInfo` tells
/// it. The fields about the request are -1 (`pid` 0, `backend` NULL) when it is idle.
#[repr(C)]
pub struct virNodeSuspendInfo {
    /// A `virNodeSuspendState`.
    pub state: c_int,
    /// The request's `virNodeSuspendTarget`.
    pub target: c_int,
    /// The process that made it, as its `getpid()`.
    pub pid: c_int,
    /// The backend carrying it out: "logind", "pm-utils" or "kernel" (static strings).
    pub backend: *const c_char,
    /// When it was accepted, in seconds since the epoch.
    pub acceptedAt: c_longlong,
    /// The wake-up armed: the value written to the RTC's `wakealarm` (RTC seconds since
    /// the epoch).
    pub wakeAt: c_longlong,
    /// How the last finished request ended: a `virNodeSuspendOutcome`.
    pub lastOutcome: c_int,
    /// Its `virNodeSuspendTarget`; -1 when none ended.
    pub lastTarget: c_int,
    /// Its error message; NULL when it ended with the host back, or none ended. Valid
    /// until the next `virNodeSuspendGetInfo` on the same thread.
    pub lastError: *const c_char,
}

thread_local! {
    /// The text `virNodeSuspendInfo::lastError` points to, kept until the thread's next
    /// `virNodeSuspendGetInfo`.
    static INFO_ERROR: Cell<Option<CString>> = const { Cell::new(None) };
}

/// Fills `*info` with the host's suspend request (idle, pending or suspending), whichever
/// process on the host made it, and how the last one ended. `flags` must be 0.
///
/// It reads the host's request record only: no capability query, no kernel file. A
/// request whose process has died is recorded as abandoned first.
///
/// Returns 0 on success, -1 with an error set otherwise.
///
/// # Safety
///
/// `info` is NULL (an error) or points to writable memory for a `virNodeSuspendInfo`.
#[no_mangle]
pub unsafe extern "C" fn virNodeSuspendGetInfo(
    info: *mut virNodeSuspendInfo,
    flags: c_uint,
) -> c_int {
    const FUNCTION: &str = "virNodeSuspendGetInfo";
    api_call(FUNCTION, || {
        check_no_flags(FUNCTION, flags)?;
        // SAFETY: the caller's promise about `info`, passed on.
        let mut info = unsafe { Out::new(FUNCTION, "info", info) }?;
        info.set(info_of(&node()?.info()?));
        Ok(())
    })
}

/// The C view of `record`; its error text is kept in [`INFO_ERROR`].
fn info_of(record: &Record) -> virNodeSuspendInfo {
    use virNodeSuspendOutcome::*;
    use virNodeSuspendState::*;
    let (state, accepted) = match &record.phase {
        Phase::Idle => (VIR_NODE_SUSPEND_STATE_IDLE, None),
        Phase::Pending(accepted) => (VIR_NODE_SUSPEND_STATE_PENDING, Some(accepted)),
        Phase::Suspending(accepted) => (VIR_NODE_SUSPEND_STATE_SUSPENDING, Some(accepted)),
    };
    let error = record
        .last
        .as_ref()
        .and_then(|last| last.error.as_ref())
        .map(|error| libvirt::c_text(&error.message));
    // The CString's buffer does not move when the CString does. Where the thread-local is
    // gone (a call from the thread's last destructors) the text could not be kept: NULL.
    let last_error = INFO_ERROR
        .try_with(|cell| {
            let pointer = error.as_ref().map_or(ptr::null(), |text| text.as_ptr());
            cell.set(error);
            pointer
        })
        .unwrap_or(ptr::null());
    let epoch = |seconds: u64| c_longlong::try_from(seconds).unwrap_or(c_longlong::MAX);
    virNodeSuspendInfo {
        state: state as c_int,
        target: accepted.map_or(-1, |a| a.target as c_int),
        pid: accepted.map_or(0, |a| a.owner.pid),
        backend: accepted.map_or(ptr::null(), |a| a.backend.c_name().as_ptr()),
        acceptedAt: accepted.map_or(-1, |a| epoch(a.accepted_at)),
        wakeAt: accepted.map_or(-1, |a| epoch(a.wake_at)),
        lastOutcome: match record.last.as_ref().map(|last| last.ending) {
            None => VIR_NODE_SUSPEND_OUTCOME_NONE,
            Some(Ending::Back) => VIR_NODE_SUSPEND_OUTCOME_BACK,
            Some(Ending::Failed) => VIR_NODE_SUSPEND_OUTCOME_FAILED,
            Some(Ending::Aborted) => VIR_NODE_SUSPEND_OUTCOME_ABORTED,
            Some(Ending::Abandoned) => VIR_NODE_SUSPEND_OUTCOME_ABANDONED,
        } as c_int,
        lastTarget: record.last.as_ref().map_or(-1, |last| last.target as c_int),
        lastError: last_error,
    }
}

/// Cancels the host's pending suspend request, whichever process on the host made it:
/// the suspend never starts, its wake-up alarm is disarmed (unless someone has set another
/// since), the last outcome reads "aborted", and the owner's `virNodeSuspendWait` returns
/// -1 with `VIR_ERR_OPERATION_ABORTED` (78). It has taken effect when it returns. Once the
/// suspend has started it is too late, and with no request there is nothing to abort:
/// both are `VIR_ERR_OPERATION_INVALID` (55), with a message that says which. `flags` must
/// be 0.
///
/// Returns 0 when the request was aborted, -1 with an error set otherwise.
#[no_mangle]
pub extern "C" fn virNodeSuspendAbort(flags: c_uint) -> c_int {
    const FUNCTION: &str = "virNodeSuspendAbort";
    api_call(FUNCTION, || {
        check_no_flags(FUNCTION, flags)?;
        node()?.abort()
    })
}

/// The version of this library, the one running (preloaded or loaded by path, it may not
/// be the one whose header the caller was built with), encoded as libvirt's
/// `virGetVersion` encodes libvirt's: major * 1,000,000 + minor * 1,000 + release.
///
/// Returns 0 on success, -1 with an error set when `version` is NULL.
///
/// # Safety
///
/// `version` is NULL (an error) or points to writable memory for an `unsigned long`.
#[no_mangle]
pub unsafe extern "C" fn virNodeSuspendGetVersion(version: *mut c_ulong) -> c_int {
    const FUNCTION: &str = "virNodeSuspendGetVersion";
    api_call(FUNCTION, || {
        // SAFETY: the caller's promise about `version`, passed on.
        let mut version = unsafe { Out::new(FUNCTION, "version", version) }?;
        version.set(crate::version_number() as c_ulong);
        Ok(())
    })
}

/// This thread's last error, or NULL when the last call succeeded. The error stays valid
/// until the next call of this library on the same thread.
#[no_mangle]
pub extern "C" fn virNodeSuspendGetLastError() -> *const virNodeSuspendError {
    boundary(
        |_| ptr::null(),
        || with_last_error(|e| e.map_or(ptr::null(), |e| &e.view as *const _)),
    )
}

/// This thread's last error's `virErrorNumber`, or 0 (`VIR_ERR_OK`) when there is none.
#[no_mangle]
pub extern "C" fn virNodeSuspendGetLastErrorCode() -> c_int {
    boundary(|_| 0, || with_last_error(|e| e.map_or(0, |e| e.view.code)))
}

/// This thread's last error's message, or "no error" when there is none (as libvirt's
/// `virGetLastErrorMessage`). Valid as long as the error is.
#[no_mangle]
pub extern "C" fn virNodeSuspendGetLastErrorMessage() -> *const c_char {
    const NO_ERROR: &CStr = c"no error";
    boundary(
        |_| NO_ERROR.as_ptr(),
        || with_last_error(|e| e.map_or(NO_ERROR.as_ptr(), |e| e.view.message.cast_const())),
    )
}

/// Clears this thread's last error.
#[no_mangle]
pub extern "C" fn virNodeSuspendResetLastError() {
    boundary(|_| (), reset_last_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> Option<(c_int, String, String, String)> {
        with_last_error(|e| {
            e.map(|e| {
                // SAFETY: the stored strings are live, NUL-terminated C strings.
                let text =
                    |p: *mut c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
                (
                    e.view.code,
                    text(e.view.message),
                    text(e.view.str1),
                    text(e.view.str2),
                )
            })
        })
    }

    #[test]
    fn panic_in_an_api_call_becomes_an_internal_error() {
        let ret = api_call("virNodeSuspend", || panic!("injected"));
        assert_eq!(ret, -1);
        let (code, message, str1, str2) = last_error().unwrap();
        assert_eq!(code, 1);
        assert_eq!(
            message,
            "internal error: unexpected failure in virNodeSuspend: injected"
        );
        assert_eq!(
            (str1.as_str(), str2.as_str()),
            (
                "internal error: %s",
                "unexpected failure in virNodeSuspend: injected"
            )
        );
    }

    #[test]
    fn flags_are_refused_before_anything_else() {
        // Before the node is even configured: no root, no capability query, no target check.
        assert_eq!(virNodeSuspend(9, 1, 0x10), -1);
        let (code, message, _, _) = last_error().unwrap();
        assert_eq!(
            (code, message.as_str()),
            (
                ErrorCode::InvalidArg as c_int,
                "unsupported flags (0x10) in function virNodeSuspend"
            )
        );
        assert_eq!(virNodeSuspendAbort(1), -1);
        assert_eq!(
            last_error().unwrap().1,
            "unsupported flags (0x1) in function virNodeSuspendAbort"
        );
        // Before the pointer, too.
        // SAFETY: NULL is allowed (an error).
        assert_eq!(unsafe { virNodeSuspendGetInfo(ptr::null_mut(), 2) }, -1);
        assert_eq!(
            last_error().unwrap().1,
            "unsupported flags (0x2) in function virNodeSuspendGetInfo"
        );
    }

    #[test]
    fn successful_call_resets_the_error_and_the_count_of_holders() {
        assert_eq!(api_call("f", || Err(Error::unsupported_flags("f", 1))), -1);
        assert!(THREADS_HOLDING_AN_ERROR.load(Ordering::Relaxed) >= 1);
        assert!(last_error().is_some());
        assert_eq!(api_call("f", || Ok(())), 0);
        assert!(last_error().is_none());
    }
}
