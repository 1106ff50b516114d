//! The error model: libvirt's `virError` as libvirt 9.0 fills it in.
//!
//! Every field is reproduced as libvirt's own reporting macros set it, because callers
//! (virsh, the daemon's log, Python bindings) read more than the message:
//!
//! | libvirt macro               | message            | str1                  | str2     | int1  | int2 |
//! |-----------------------------|--------------------|-----------------------|----------|-------|------|
//! | `virReportError`            | `"<prefix>: info"` | `"<prefix>: %s"`      | info     | -1    | -1   |
//! | `virReportSystemError`      | `"info: strerror"` | `"%s"`                | message  | errno | -1   |
//! | `virCheckFlags`, `virCheckNonNullArgReturn` | as formatted, no prefix | function | argument | 0 | 0 |
//!
//! (measured against Debian's libvirt.so.0 9.0.0; the differential tests keep it so).

use std::fmt;
use std::io;
use std::panic::Location;

/// `virErrorDomain::VIR_FROM_NONE`: libvirt's node-suspend code reports under no domain.
pub const DOMAIN_NONE: i32 = 0;
/// `virErrorDomain::VIR_FROM_DBUS`: libvirt's D-Bus calls report under this one.
pub const DOMAIN_DBUS: i32 = 47;
/// `virErrorLevel::VIR_ERR_ERROR`.
pub const LEVEL_ERROR: i32 = 2;

/// The `virErrorNumber` values this library raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InternalError = 1,
    InvalidArg = 8,
    OperationFailed = 9,
    SystemError = 38,
    OperationInvalid = 55,
    ConfigUnsupported = 67,
    ArgumentUnsupported = 74,
    OperationAborted = 78,
    OperationUnsupported = 84,
    DbusService = 89,
}

impl ErrorCode {
    const ALL: [ErrorCode; 10] = [
        ErrorCode::InternalError,
        ErrorCode::InvalidArg,
        ErrorCode::OperationFailed,
        ErrorCode::SystemError,
        ErrorCode::OperationInvalid,
        ErrorCode::ConfigUnsupported,
        ErrorCode::ArgumentUnsupported,
        ErrorCode::OperationAborted,
        ErrorCode::OperationUnsupported,
        ErrorCode::DbusService,
    ];

    /// The code with this `virErrorNumber`, if this library raises it.
    pub fn from_number(number: i32) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| *code as i32 == number)
    }

    /// libvirt's `virErrorMsg()` text for the code when it is given an info string.
    fn prefix_format(self) -> &'static str {
        match self {
            ErrorCode::InternalError => "internal error: %s",
            ErrorCode::InvalidArg => "invalid argument: %s",
            ErrorCode::OperationFailed => "operation failed: %s",
            ErrorCode::SystemError => "%s",
            ErrorCode::OperationInvalid => "Requested operation is not valid: %s",
            ErrorCode::ConfigUnsupported => "unsupported configuration: %s",
            ErrorCode::ArgumentUnsupported => "argument unsupported: %s",
            ErrorCode::OperationAborted => "operation aborted: %s",
            ErrorCode::OperationUnsupported => "Operation not supported: %s",
            ErrorCode::DbusService => "error from service: %s",
        }
    }
}

/// One error. Boxed, so that a `Result` is a pointer wide and the lock-free fast paths
/// carry no error-sized frames; the constructors are `#[cold]` for the same reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(Box<ErrorFields>);

/// Every field libvirt's `virError` carries for an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFields {
    pub code: ErrorCode,
    /// A `virErrorDomain`.
    pub domain: i32,
    pub message: String,
    pub str1: String,
    pub str2: String,
    pub int1: i32,
    pub int2: i32,
    /// The function libvirt names in its log line (`virNodeSuspend:NN : message`).
    pub function: &'static str,
    pub file: &'static str,
    pub line: u32,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// As `virReportError(code, "%s", info)`.
    #[cold]
    #[track_caller]
    pub fn new(code: ErrorCode, function: &'static str, info: impl Into<String>) -> Error {
        let info = info.into();
        let format = code.prefix_format();
        Error::raw(
            code,
            function,
            format.replacen("%s", &info, 1),
            format.to_owned(),
            info,
            (-1, -1),
        )
    }

    /// As `virReportSystemError(errno, "%s", info)`: the C library's text for errno is appended.
    #[cold]
    #[track_caller]
    pub fn system(function: &'static str, err: &io::Error, info: impl fmt::Display) -> Error {
        let errno = err.raw_os_error().unwrap_or(libc::EIO);
        let message = format!("{info}: {}", strerror(errno));
        Error::raw(
            ErrorCode::SystemError,
            function,
            message.clone(),
            "%s".to_owned(),
            message,
            (errno, -1),
        )
    }

    /// As `virCheckFlags(0, -1)` in `function`.
    #[cold]
    #[track_caller]
    pub fn unsupported_flags(function: &'static str, flags: u32) -> Error {
        let message = format!("unsupported flags (0x{flags:x}) in function {function}");
        Error::invalid_argument_unprefixed(function, "flags", message)
    }

    /// As `virCheckNonNullArgReturn(argument, -1)` in `function`.
    #[cold]
    #[track_caller]
    pub fn null_argument(function: &'static str, argument: &'static str) -> Error {
        let message = format!("{argument} in {function} must not be NULL");
        Error::invalid_argument_unprefixed(function, argument, message)
    }

    #[cold]
    #[track_caller]
    fn invalid_argument_unprefixed(
        function: &'static str,
        argument: &'static str,
        message: String,
    ) -> Error {
        Error::raw(
            ErrorCode::InvalidArg,
            function,
            message,
            function.to_owned(),
            argument.to_owned(),
            (0, 0),
        )
    }

    #[cold]
    #[track_caller]
    fn raw(
        code: ErrorCode,
        function: &'static str,
        message: String,
        str1: String,
        str2: String,
        (int1, int2): (i32, i32),
    ) -> Error {
        let caller = Location::caller();
        Error(Box::new(ErrorFields {
            code,
            domain: DOMAIN_NONE,
            message,
            str1,
            str2,
            int1,
            int2,
            function,
            file: caller.file(),
            line: caller.line(),
        }))
    }
}

impl Error {
    /// An error as another process recorded it: its code, domain and whole message (the
    /// rest of libvirt's fields are not recorded; they read as for a message without
    /// prefix).
    #[cold]
    #[track_caller]
    pub fn recorded(
        code: ErrorCode,
        domain: i32,
        function: &'static str,
        message: String,
    ) -> Error {
        Error::raw(
            code,
            function,
            message.clone(),
            "%s".to_owned(),
            message,
            (-1, -1),
        )
        .in_domain(domain)
    }

    /// The same error, reported under `domain`.
    pub fn in_domain(mut self, domain: i32) -> Error {
        self.0.domain = domain;
        self
    }
}

impl std::ops::Deref for Error {
    type Target = ErrorFields;

    fn deref(&self) -> &ErrorFields {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The C library's description of `errno`, as libvirt's `g_strerror` shows it.
pub(crate) fn strerror(errno: i32) -> String {
    // std's text is strerror_r's with " (os error N)" appended; keep the C library's part.
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's error numbers, the ones C callers, the command-line tool and the
    /// Python binding use, are this enum's: each code by libvirt's name, and no other.
    #[test]
    fn header_names_every_code_domain_and_level_with_its_number() {
        let header = include_str!("../include/virnodesuspend.h");
        let defined: Vec<(&str, i32)> = header
            .lines()
            .filter_map(|line| {
                let (name, value) = line.trim().trim_end_matches(',').split_once(" = ")?;
                let number = value.parse().ok()?;
                (name.starts_with("VIR_ERR_") || name.starts_with("VIR_FROM_"))
                    .then_some((name, number))
            })
            .collect();
        let libvirt_name = |code| match code {
            ErrorCode::InternalError => "VIR_ERR_INTERNAL_ERROR",
            ErrorCode::InvalidArg => "VIR_ERR_INVALID_ARG",
            ErrorCode::OperationFailed => "VIR_ERR_OPERATION_FAILED",
            ErrorCode::SystemError => "VIR_ERR_SYSTEM_ERROR",
            ErrorCode::OperationInvalid => "VIR_ERR_OPERATION_INVALID",
            ErrorCode::ConfigUnsupported => "VIR_ERR_CONFIG_UNSUPPORTED",
            ErrorCode::ArgumentUnsupported => "VIR_ERR_ARGUMENT_UNSUPPORTED",
            ErrorCode::OperationAborted => "VIR_ERR_OPERATION_ABORTED",
            ErrorCode::OperationUnsupported => "VIR_ERR_OPERATION_UNSUPPORTED",
            ErrorCode::DbusService => "VIR_ERR_DBUS_SERVICE",
        };
        let mut expected: Vec<(&str, i32)> = ErrorCode::ALL
            .into_iter()
            .map(|code| (libvirt_name(code), code as i32))
            .collect();
        expected.extend([
            ("VIR_FROM_NONE", DOMAIN_NONE),
            ("VIR_FROM_DBUS", DOMAIN_DBUS),
            ("VIR_ERR_ERROR", LEVEL_ERROR),
        ]);
        let mut defined_sorted = defined;
        defined_sorted.sort();
        expected.sort();
        assert_eq!(defined_sorted, expected);
    }

    #[test]
    fn prefixed_error_keeps_format_in_str1_and_info_in_str2() {
        let e = Error::new(
            ErrorCode::InvalidArg,
            "virNodeSuspend",
            "Invalid suspend target",
        );
        assert_eq!(e.message, "invalid argument: Invalid suspend target");
        assert_eq!(e.str1, "invalid argument: %s");
        assert_eq!(e.str2, "Invalid suspend target");
        assert_eq!((e.int1, e.int2), (-1, -1));
    }

    #[test]
    fn system_error_has_no_prefix_and_carries_errno() {
        let err = io::Error::from_raw_os_error(libc::ENOENT);
        let e = Error::system("virNodeSuspend", &err, "Unable to read '/x'");
        assert_eq!(e.message, "Unable to read '/x': No such file or directory");
        assert_eq!(e.str1, "%s");
        assert_eq!(e.str2, e.message);
        assert_eq!((e.int1, e.int2), (libc::ENOENT, -1));
    }

    #[test]
    fn flags_error_has_no_prefix_and_names_function_and_argument() {
        let e = Error::unsupported_flags("virNodeSuspend", 0x80000000);
        assert_eq!(
            e.message,
            "unsupported flags (0x80000000) in function virNodeSuspend"
        );
        assert_eq!(
            (e.str1.as_str(), e.str2.as_str()),
            ("virNodeSuspend", "flags")
        );
        assert_eq!((e.int1, e.int2), (0, 0));
    }

    #[test]
    fn info_containing_percent_is_not_reformatted() {
        let e = Error::new(ErrorCode::InternalError, "f", "100%s sure");
        assert_eq!(e.message, "internal error: 100%s sure");
    }
}
