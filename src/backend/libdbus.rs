//! libdbus (`libdbus-1.so.3`), loaded with `dlopen` the first time the logind backend is
//! asked, as systemd loads its optional libraries: a process that maps this library and
//! never asks (every QEMU, dnsmasq and helper a preloaded libvirt daemon starts) maps no
//! D-Bus client. Where libdbus cannot be loaded, logind is unavailable with that reason.
//!
//! Only the few functions the logind backend calls are resolved, each declared here with
//! the C prototype of `<dbus/dbus.h>` (libdbus's ABI has been stable under the SONAME
//! `libdbus-1.so.3` since 1.0). The wrappers own what they point to: a [`Connection`]
//! closes and releases its private connection, a [`Message`] releases its reference, and a
//! [`BusError`] is a copy of libdbus's `DBusError`, freed at once.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::ptr;
use std::sync::OnceLock;
use std::time::Duration;

/// The library's SONAME (Debian's libdbus-1-3).
pub const LIBDBUS: &CStr = c"libdbus-1.so.3";

type Conn = c_void;
type Msg = c_void;
type DBusBool = u32;

/// `DBusError` (dbus-errors.h): filled by libdbus, freed with `dbus_error_free`.
#[repr(C)]
struct RawError {
    name: *const c_char,
    message: *const c_char,
    dummy: c_uint,
    padding1: *const c_void,
}

/// `DBusMessageIter` (dbus-message.h), which the caller allocates and libdbus fills: 72
/// bytes on LP64. Room for 16 pointers, pointer-aligned, is more than libdbus writes.
#[repr(C)]
struct RawIter([*mut c_void; 16]);

impl RawIter {
    fn new() -> RawIter {
        RawIter([ptr::null_mut(); 16])
    }
}

/// `DBUS_MESSAGE_TYPE_SIGNAL` (dbus-protocol.h).
pub const SIGNAL: c_int = 4;

// `DBUS_TYPE_*` (dbus-protocol.h): the argument types the backend reads or writes.
const TYPE_INVALID: c_int = 0;
const TYPE_STRING: c_int = b's' as c_int;
const TYPE_BOOLEAN: c_int = b'b' as c_int;
const TYPE_ARRAY: c_int = b'a' as c_int;

/// Declares the functions resolved from libdbus: a struct of function pointers, and the
/// `dlsym` of each, so that every prototype is written once.
macro_rules! functions {
    ($($name:ident: fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// libdbus's functions, resolved from the loaded library.
        pub struct Lib {
            $($name: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        impl Lib {
            /// # Safety
            /// `handle` is a live `dlopen` handle of libdbus-1, so that each symbol found
            /// has the prototype declared above.
            unsafe fn resolve(handle: *mut c_void, library: &CStr) -> Result<Lib, String> {
                Ok(Lib {
                    $($name: {
                        let name = concat!(stringify!($name), "\0");
                        // SAFETY: a live handle and a NUL-terminated name.
                        let symbol = unsafe { libc::dlsym(handle, name.as_ptr().cast()) };
                        if symbol.is_null() {
                            return Err(format!(
                                "{} has no {}",
                                library.to_string_lossy(),
                                stringify!($name)
                            ));
                        }
                        // SAFETY: libdbus's function of that name has this prototype.
                        unsafe {
                            std::mem::transmute::<
                                *mut c_void,
                                unsafe extern "C" fn($($arg),*) $(-> $ret)?,
                            >(symbol)
                        }
                    },)*
                })
            }
        }
    };
}

functions! {
    dbus_threads_init_default: fn() -> DBusBool;
    dbus_error_init: fn(*mut RawError);
    dbus_error_free: fn(*mut RawError);
    dbus_set_error_from_message: fn(*mut RawError, *mut Msg) -> DBusBool;
    dbus_connection_open_private: fn(*const c_char, *mut RawError) -> *mut Conn;
    dbus_connection_set_exit_on_disconnect: fn(*mut Conn, DBusBool);
    dbus_connection_close: fn(*mut Conn);
    dbus_connection_unref: fn(*mut Conn);
    dbus_connection_send: fn(*mut Conn, *mut Msg, *mut u32) -> DBusBool;
    dbus_connection_read_write: fn(*mut Conn, c_int) -> DBusBool;
    dbus_connection_pop_message: fn(*mut Conn) -> *mut Msg;
    dbus_message_new_method_call:
        fn(*const c_char, *const c_char, *const c_char, *const c_char) -> *mut Msg;
    dbus_message_unref: fn(*mut Msg);
    dbus_message_set_auto_start: fn(*mut Msg, DBusBool);
    dbus_message_get_type: fn(*mut Msg) -> c_int;
    dbus_message_get_reply_serial: fn(*mut Msg) -> u32;
    dbus_message_get_sender: fn(*mut Msg) -> *const c_char;
    dbus_message_get_member: fn(*mut Msg) -> *const c_char;
    dbus_message_iter_init: fn(*mut Msg, *mut RawIter) -> DBusBool;
    dbus_message_iter_init_append: fn(*mut Msg, *mut RawIter);
    dbus_message_iter_append_basic: fn(*mut RawIter, c_int, *const c_void) -> DBusBool;
    dbus_message_iter_get_arg_type: fn(*mut RawIter) -> c_int;
    dbus_message_iter_get_element_type: fn(*mut RawIter) -> c_int;
    dbus_message_iter_get_basic: fn(*mut RawIter, *mut c_void);
    dbus_message_iter_recurse: fn(*mut RawIter, *mut RawIter);
    dbus_message_iter_next: fn(*mut RawIter) -> DBusBool;
}

/// libdbus from `library`, loaded and resolved once per process for [`LIBDBUS`] (a failure
/// too: the host's libraries do not change under a running process); another name (the
/// tests') is loaded anew each time. The library is never unloaded.
pub fn load(library: &CStr) -> Result<&'static Lib, String> {
    static SYSTEM: OnceLock<Result<&'static Lib, String>> = OnceLock::new();
    if library == LIBDBUS {
        SYSTEM.get_or_init(|| open(library)).clone()
    } else {
        open(library)
    }
}

fn open(library: &CStr) -> Result<&'static Lib, String> {
    // SAFETY: a NUL-terminated name. RTLD_LOCAL: libdbus's symbols stay out of the
    // process's global scope, where they could take the place of another copy's.
    let handle = unsafe { libc::dlopen(library.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror's text is valid until the next dl* call of this thread.
        let why = unsafe { libc::dlerror() };
        let why = if why.is_null() {
            format!("{}: not loaded", library.to_string_lossy())
        } else {
            // SAFETY: as above.
            unsafe { CStr::from_ptr(why) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(format!("cannot load the D-Bus library: {why}"));
    }
    // SAFETY: the handle is libdbus-1's, which is never unloaded.
    let lib = unsafe { Lib::resolve(handle, library) };
    let lib: &'static Lib = Box::leak(Box::new(
        lib.map_err(|why| format!("cannot use the D-Bus library: {why}"))?,
    ));
    // A connection of libdbus's is used from the thread that owns the request, and the
    // process may hold others: libdbus's locks must be on (they are by default since 1.7;
    // the call makes it so for any version).
    // SAFETY: no argument; callable any number of times from any thread.
    if unsafe { (lib.dbus_threads_init_default)() } == 0 {
        return Err("cannot use the D-Bus library: out of memory".into());
    }
    Ok(lib)
}

/// An error as libdbus names one (`org.freedesktop.DBus.Error.NoReply`) and says it; either
/// part may be missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusError {
    name: Option<String>,
    message: Option<String>,
}

impl BusError {
    pub fn new(name: &str, message: &str) -> BusError {
        BusError {
            name: Some(name.to_owned()),
            message: Some(message.to_owned()),
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Takes the contents of a `DBusError` libdbus has set, and frees it.
    fn take(lib: &Lib, raw: &mut RawError) -> BusError {
        let text = |p: *const c_char| {
            // SAFETY: libdbus's strings are NUL-terminated, valid until dbus_error_free.
            (!p.is_null())
                .then(|| {
                    unsafe { CStr::from_ptr(p) }
                        .to_str()
                        .ok()
                        .map(str::to_owned)
                })
                .flatten()
        };
        let error = BusError {
            name: text(raw.name),
            message: text(raw.message),
        };
        // SAFETY: an initialised DBusError.
        unsafe { (lib.dbus_error_free)(raw) };
        error
    }

    /// A reply's arguments are not what was expected (the dbus crate's text, which the
    /// backend has always reported).
    fn mismatch(expected: c_int, found: c_int) -> BusError {
        let kind = |t: c_int| match u8::try_from(t).unwrap_or(0) {
            b'v' => "Variant",
            b'a' => "Array/Dict",
            b'r' | b'(' => "Struct",
            b's' => "String",
            b'e' | b'{' => "Dict entry",
            b'o' => "Path",
            b'g' => "Signature",
            b'h' => "File",
            b'b' => "bool",
            b'y' => "u8",
            b'n' => "i16",
            b'i' => "i32",
            b'x' => "i64",
            b'q' => "u16",
            b'u' => "u32",
            b't' => "u64",
            b'd' => "f64",
            _ => "nothing",
        };
        let found = if expected == found {
            "same but still different somehow"
        } else {
            kind(found)
        };
        BusError::new(
            "org.freedesktop.DBus.Error.Failed",
            &format!(
                "D-Bus argument type mismatch at position 0: expected {}, found {found}",
                kind(expected)
            ),
        )
    }
}

fn raw_error(lib: &Lib) -> RawError {
    let mut raw = RawError {
        name: ptr::null(),
        message: ptr::null(),
        dummy: 0,
        padding1: ptr::null(),
    };
    // SAFETY: a DBusError to initialise.
    unsafe { (lib.dbus_error_init)(&mut raw) };
    raw
}

/// A private connection (`dbus_connection_open_private`): never shared with other users of
/// libdbus in the process, closed when dropped.
pub struct Connection {
    lib: &'static Lib,
    conn: *mut Conn,
}

impl Connection {
    /// Connects to `address`, not yet authenticated: that happens as the first exchange
    /// runs. A bus that goes away does not end the process (libdbus's default would).
    pub fn open_private(lib: &'static Lib, address: &str) -> Result<Connection, BusError> {
        let address = CString::new(address)
            .map_err(|_| BusError::new("org.freedesktop.DBus.Error.BadAddress", address))?;
        let mut raw = raw_error(lib);
        // SAFETY: a NUL-terminated address and an initialised DBusError.
        let conn = unsafe { (lib.dbus_connection_open_private)(address.as_ptr(), &mut raw) };
        if conn.is_null() {
            return Err(BusError::take(lib, &mut raw));
        }
        // SAFETY: a live connection.
        unsafe { (lib.dbus_connection_set_exit_on_disconnect)(conn, 0) };
        Ok(Connection { lib, conn })
    }

    /// Queues `message` and sends what it can; its serial, for matching the reply.
    pub fn send(&self, message: Message) -> Result<u32, ()> {
        let mut serial = 0;
        // SAFETY: a live connection and message; libdbus takes its own reference.
        match unsafe { (self.lib.dbus_connection_send)(self.conn, message.msg, &mut serial) } {
            0 => Err(()),
            _ => Ok(serial),
        }
    }

    /// Reads and writes, blocking up to `timeout` (without limit for `None`); `Err` when
    /// the connection is closed.
    pub fn read_write(&self, timeout: Option<Duration>) -> Result<(), ()> {
        let millis = timeout.map_or(-1, |t| t.as_millis().min(c_int::MAX as u128) as c_int);
        // SAFETY: a live connection.
        match unsafe { (self.lib.dbus_connection_read_write)(self.conn, millis) } {
            0 => Err(()),
            _ => Ok(()),
        }
    }

    /// The next message read, if any.
    pub fn pop_message(&self) -> Option<Message> {
        // SAFETY: a live connection; the message returned is ours to release.
        let msg = unsafe { (self.lib.dbus_connection_pop_message)(self.conn) };
        (!msg.is_null()).then(|| Message { lib: self.lib, msg })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: a private connection must be closed before its last reference goes.
        unsafe {
            (self.lib.dbus_connection_close)(self.conn);
            (self.lib.dbus_connection_unref)(self.conn);
        }
    }
}

/// One reference to a message of libdbus's.
pub struct Message {
    lib: &'static Lib,
    msg: *mut Msg,
}

fn c_text(text: &str) -> CString {
    CString::new(text).expect("D-Bus names and arguments have no NUL")
}

impl Message {
    /// A method call; panics only when libdbus is out of memory.
    pub fn method_call(
        lib: &'static Lib,
        destination: &str,
        path: &str,
        interface: &str,
        method: &str,
    ) -> Message {
        let [destination, path, interface, method] =
            [destination, path, interface, method].map(c_text);
        // SAFETY: NUL-terminated, valid names (libdbus checks them).
        let msg = unsafe {
            (lib.dbus_message_new_method_call)(
                destination.as_ptr(),
                path.as_ptr(),
                interface.as_ptr(),
                method.as_ptr(),
            )
        };
        assert!(!msg.is_null(), "dbus_message_new_method_call failed");
        Message { lib, msg }
    }

    /// Whether the bus may start the destination to deliver this call.
    pub fn set_auto_start(&mut self, auto_start: bool) {
        // SAFETY: a live message.
        unsafe { (self.lib.dbus_message_set_auto_start)(self.msg, auto_start.into()) }
    }

    fn append(self, kind: c_int, value: *const c_void) -> Message {
        let mut iter = RawIter::new();
        // SAFETY: a live message not yet sent, and a value of `kind`'s C type.
        let appended = unsafe {
            (self.lib.dbus_message_iter_init_append)(self.msg, &mut iter);
            (self.lib.dbus_message_iter_append_basic)(&mut iter, kind, value)
        };
        assert!(appended != 0, "dbus_message_iter_append_basic failed");
        self
    }

    /// The message with `text` appended, as a string.
    pub fn append_str(self, text: &str) -> Message {
        let text = c_text(text);
        let pointer = text.as_ptr();
        // A string is passed as a pointer to its `const char *`; libdbus copies it.
        self.append(TYPE_STRING, (&pointer as *const *const c_char).cast())
    }

    /// The message with `value` appended, as a boolean.
    pub fn append_bool(self, value: bool) -> Message {
        let value: DBusBool = value.into();
        self.append(TYPE_BOOLEAN, (&value as *const DBusBool).cast())
    }

    /// `DBUS_MESSAGE_TYPE_*`: a method call (1), return (2), error (3) or [`SIGNAL`].
    pub fn msg_type(&self) -> c_int {
        // SAFETY: a live message.
        unsafe { (self.lib.dbus_message_get_type)(self.msg) }
    }

    /// The serial of the call this message answers.
    pub fn reply_serial(&self) -> Option<u32> {
        // SAFETY: a live message.
        let serial = unsafe { (self.lib.dbus_message_get_reply_serial)(self.msg) };
        (serial != 0).then_some(serial)
    }

    fn text(&self, field: *const c_char) -> Option<&str> {
        // SAFETY: libdbus's header field, NUL-terminated, lives as long as the message.
        (!field.is_null())
            .then(|| unsafe { CStr::from_ptr(field) }.to_str().ok())
            .flatten()
    }

    /// The unique name of the sender.
    pub fn sender(&self) -> Option<&str> {
        // SAFETY: a live message.
        self.text(unsafe { (self.lib.dbus_message_get_sender)(self.msg) })
    }

    pub fn member(&self) -> Option<&str> {
        // SAFETY: a live message.
        self.text(unsafe { (self.lib.dbus_message_get_member)(self.msg) })
    }

    /// The error this message is, if it is an error reply.
    pub fn as_result(&self) -> Result<(), BusError> {
        let mut raw = raw_error(self.lib);
        // SAFETY: an initialised DBusError and a live message.
        match unsafe { (self.lib.dbus_set_error_from_message)(&mut raw, self.msg) } {
            0 => Ok(()),
            _ => Err(BusError::take(self.lib, &mut raw)),
        }
    }

    /// An iterator on the first argument, and its type (`TYPE_INVALID` for none).
    fn first(&self) -> (RawIter, c_int) {
        let mut iter = RawIter::new();
        // SAFETY: a live message; the iterator is read only if it has an argument.
        let kind = match unsafe { (self.lib.dbus_message_iter_init)(self.msg, &mut iter) } {
            0 => TYPE_INVALID,
            // SAFETY: an iterator on an argument.
            _ => unsafe { (self.lib.dbus_message_iter_get_arg_type)(&mut iter) },
        };
        (iter, kind)
    }

    /// The string at `iter`, whose type is a string.
    fn string_at(&self, iter: &mut RawIter) -> String {
        let mut value: *const c_char = ptr::null();
        // SAFETY: a string argument: libdbus stores a pointer into the message, which
        // libdbus validated as UTF-8.
        unsafe {
            (self.lib.dbus_message_iter_get_basic)(iter, (&mut value as *mut *const c_char).cast());
            CStr::from_ptr(value)
        }
        .to_string_lossy()
        .into_owned()
    }

    /// The first argument, a string.
    pub fn read_string(&self) -> Result<String, BusError> {
        match self.first() {
            (mut iter, TYPE_STRING) => Ok(self.string_at(&mut iter)),
            (_, found) => Err(BusError::mismatch(TYPE_STRING, found)),
        }
    }

    /// The first argument, a boolean.
    pub fn read_bool(&self) -> Result<bool, BusError> {
        match self.first() {
            (mut iter, TYPE_BOOLEAN) => {
                let mut value: DBusBool = 0;
                // SAFETY: a boolean argument, stored as a dbus_bool_t.
                unsafe {
                    (self.lib.dbus_message_iter_get_basic)(
                        &mut iter,
                        (&mut value as *mut DBusBool).cast(),
                    )
                };
                Ok(value != 0)
            }
            (_, found) => Err(BusError::mismatch(TYPE_BOOLEAN, found)),
        }
    }

    /// The first argument, an array of strings.
    pub fn read_strings(&self) -> Result<Vec<String>, BusError> {
        let (mut iter, found) = self.first();
        // SAFETY: an iterator on an array argument.
        if found != TYPE_ARRAY
            || unsafe { (self.lib.dbus_message_iter_get_element_type)(&mut iter) } != TYPE_STRING
        {
            return Err(BusError::mismatch(TYPE_ARRAY, found));
        }
        let mut element = RawIter::new();
        // SAFETY: an array argument; `element` walks its strings.
        unsafe { (self.lib.dbus_message_iter_recurse)(&mut iter, &mut element) };
        let mut strings = vec![];
        // SAFETY: an iterator within the array.
        while unsafe { (self.lib.dbus_message_iter_get_arg_type)(&mut element) } == TYPE_STRING {
            strings.push(self.string_at(&mut element));
            // SAFETY: as above.
            unsafe { (self.lib.dbus_message_iter_next)(&mut element) };
        }
        Ok(strings)
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        // SAFETY: this wrapper's reference.
        unsafe { (self.lib.dbus_message_unref)(self.msg) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    #[test]
    fn a_library_that_cannot_be_loaded_is_named_with_the_loaders_reason() {
        let Err(why) = load(c"libdbus-1-missing-for-the-test.so.3") else {
            panic!("a library that does not exist was loaded");
        };
        assert_eq!(
            why,
            "cannot load the D-Bus library: libdbus-1-missing-for-the-test.so.3: cannot open shared object file: No such file or directory"
        );
    }

    #[test]
    fn a_library_without_libdbus_functions_is_refused() {
        let Err(why) = load(c"libc.so.6") else {
            panic!("libc was taken for libdbus");
        };
        assert_eq!(
            why,
            "cannot use the D-Bus library: libc.so.6 has no dbus_threads_init_default"
        );
    }

    #[test]
    fn the_system_library_is_loaded_once() {
        let first = load(LIBDBUS).unwrap();
        assert!(std::ptr::eq(first, load(LIBDBUS).unwrap()));
    }

    #[test]
    fn arguments_of_another_type_are_reported_as_the_dbus_crate_did() {
        let lib = load(LIBDBUS).unwrap();
        let call = || Message::method_call(lib, "org.example", "/", "org.example", "M");
        assert_eq!(call().append_bool(true).read_bool(), Ok(true));
        assert_eq!(call().append_str("yes").read_string().unwrap(), "yes");
        let error = call().append_bool(true).read_string().unwrap_err();
        assert_eq!(error.name(), Some("org.freedesktop.DBus.Error.Failed"));
        assert_eq!(
            error.message(),
            Some("D-Bus argument type mismatch at position 0: expected String, found bool")
        );
        assert_eq!(
            call().read_strings().unwrap_err().message(),
            Some("D-Bus argument type mismatch at position 0: expected Array/Dict, found nothing")
        );
    }

    /// The shared library `cargo build` left beside this test's executable.
    fn shared_library() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let built = exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("libvirnodesuspend.so");
        assert!(built.exists(), "{} (cargo build first)", built.display());
        built
    }

    /// The shared objects a process maps, by file name.
    fn objects(maps: &str) -> std::collections::BTreeSet<String> {
        maps.lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .filter(|path| path.contains(".so"))
            .map(|path| path.rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    /// The environment is left as it is (README, "Using it inside libvirt"): a child of
    /// a preloading process inherits `LD_PRELOAD` and maps the library, and nothing more
    /// than the library: no D-Bus client, no unwinder of its own.
    #[test]
    fn a_child_of_a_preloading_process_maps_the_library_and_no_dbus_client() {
        let library = shared_library();
        // The shell preloads the library, as the daemon does; cat is its child.
        let out = Command::new("/bin/sh")
            .args(["-c", "cat /proc/$$/maps; echo --; cat /proc/self/maps"])
            .env("LD_PRELOAD", &library)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let (parent, child) = text.split_once("--\n").unwrap();
        for maps in [parent, child] {
            let objects = objects(maps);
            assert!(objects.contains("libvirnodesuspend.so"), "{objects:?}");
            let others: Vec<&String> = objects
                .iter()
                .filter(|o| !o.starts_with("libvirnodesuspend.so"))
                .filter(|o| !o.starts_with("libc.so") && !o.starts_with("ld-linux"))
                .collect();
            assert!(others.is_empty(), "the library brought {others:?}");
        }
    }
}
