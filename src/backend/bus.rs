//! A D-Bus client for the few exchanges the logind backend has with the system bus, in the
//! library itself (the D-Bus Specification: its wire format, and SASL `EXTERNAL`
//! authentication over a Unix socket). A process that maps this library maps no D-Bus
//! client library: every QEMU, dnsmasq and helper a preloaded libvirt daemon starts, and
//! the daemon itself until logind is asked.
//!
//! It knows what the backend needs and nothing more: method calls with no argument, a
//! string or a boolean; replies, errors and signals, of which only the first argument is
//! read, when it is a string, a boolean or an array of strings. The authentication and the
//! first messages go out in one write, without waiting for the bus's `OK` (as the
//! specification allows a client to pipeline), so that a question to logind costs one round
//! trip. Nothing here waits without the caller's deadline, and a bus that sends what is not
//! D-Bus fails the connection.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{send, socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use super::errno_of;
use crate::error::strerror;

/// The longest message the specification allows (128 MiB): a longer one is not D-Bus.
const MAX_MESSAGE: usize = 1 << 27;

/// The longest line the bus may answer the authentication with before `OK`.
const MAX_AUTH_LINE: usize = 16 * 1024;

/// How a D-Bus exchange failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusError {
    /// The connection itself failed (no error reply from anyone): what happened, said as
    /// GLib says it where GLib has words for it ("Timeout was reached").
    Local(String),
    /// An error reply, or a reply whose argument is not what was asked for: the D-Bus
    /// error's name and its message (empty where the reply had none).
    Named { name: String, message: String },
}

impl BusError {
    fn failed(message: String) -> BusError {
        BusError::Named {
            name: "org.freedesktop.DBus.Error.Failed".into(),
            message,
        }
    }

    fn malformed() -> BusError {
        BusError::Local("The bus sent what is not a D-Bus message".into())
    }

    /// What happened: the text of a local failure, the message of a named error.
    pub fn message(&self) -> &str {
        match self {
            BusError::Local(what) => what,
            BusError::Named { message, .. } => message,
        }
    }

    pub fn closed() -> BusError {
        BusError::Local("The connection is closed".into())
    }

    pub fn timed_out() -> BusError {
        BusError::Local("Timeout was reached".into())
    }

    /// A reply's first argument is not of the type expected (the dbus crate's text, which
    /// the backend has always reported).
    fn mismatch(expected: u8, found: u8) -> BusError {
        let kind = |t: u8| match t {
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
        BusError::failed(format!(
            "D-Bus argument type mismatch at position 0: expected {}, found {found}",
            kind(expected)
        ))
    }
}

/// Where a bus address (`unix:path=/run/dbus/system_bus_socket`, alternatives separated by
/// `;`) says a Unix socket is.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

/// The Unix sockets `address` names, in its order; other transports are passed over.
fn endpoints(address: &str) -> Vec<Endpoint> {
    address
        .split(';')
        .filter_map(|entry| entry.strip_prefix("unix:"))
        .filter_map(|keys| {
            keys.split(',')
                .find_map(|pair| match pair.split_once('=')? {
                    ("path", value) => Some(Endpoint::Path(PathBuf::from(OsString::from_vec(
                        unescape(value)?,
                    )))),
                    ("abstract", value) => Some(Endpoint::Abstract(unescape(value)?)),
                    _ => None,
                })
        })
        .collect()
}

/// An address value with its `%XX` escapes undone; `None` for a broken escape.
fn unescape(value: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(after.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &after[2..];
        } else {
            bytes.push(byte);
            rest = after;
        }
    }
    Some(bytes)
}

/// A socket connected to `endpoint`, non-blocking. The connection is non-blocking too: a
/// bus whose queue of connections is full refuses at once ("Resource temporarily
/// unavailable") rather than holding the caller without a deadline.
fn connect(endpoint: &Endpoint) -> Result<UnixStream, BusError> {
    let (address, shown) = match endpoint {
        Endpoint::Path(path) => (UnixAddr::new(path), path.display().to_string()),
        Endpoint::Abstract(name) => (
            UnixAddr::new_abstract(name),
            format!("(abstract) {}", String::from_utf8_lossy(name)),
        ),
    };
    let connected = address.and_then(|address| {
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let socket = socket(AddressFamily::Unix, SockType::Stream, flags, None)?;
        nix::sys::socket::connect(socket.as_raw_fd(), &address)?;
        Ok(UnixStream::from(socket))
    });
    // libdbus's words, which the backend has always reported.
    connected.map_err(|e| {
        BusError::Local(format!(
            "Failed to connect to socket {shown}: {}",
            strerror(e as i32)
        ))
    })
}

// Message types and header fields (the specification's "Message Format").
const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;
const NO_AUTO_START: u8 = 0x2;
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SENDER: u8 = 7;
const FIELD_SIGNATURE: u8 = 8;

/// An argument of a call.
#[derive(Debug)]
enum Arg {
    Str(String),
    Bool(bool),
}

/// A method call to send.
#[derive(Debug)]
pub struct Call {
    destination: &'static str,
    path: &'static str,
    interface: &'static str,
    member: &'static str,
    auto_start: bool,
    args: Vec<Arg>,
}

impl Call {
    pub fn new(
        destination: &'static str,
        path: &'static str,
        interface: &'static str,
        member: &'static str,
    ) -> Call {
        Call {
            destination,
            path,
            interface,
            member,
            auto_start: true,
            args: vec![],
        }
    }

    /// The call, delivered only if its destination is running: the bus starts nothing.
    pub fn without_auto_start(self) -> Call {
        Call {
            auto_start: false,
            ..self
        }
    }

    pub fn with_str(mut self, text: &str) -> Call {
        self.args.push(Arg::Str(text.to_owned()));
        self
    }

    pub fn with_bool(mut self, value: bool) -> Call {
        self.args.push(Arg::Bool(value));
        self
    }

    /// The call as bytes on the wire, little-endian, numbered `serial`.
    fn marshal(&self, serial: u32) -> Vec<u8> {
        let mut body = Writer::default();
        let mut signature = String::new();
        for arg in &self.args {
            match arg {
                Arg::Str(text) => {
                    body.string(text);
                    signature.push('s');
                }
                Arg::Bool(value) => {
                    body.u32(u32::from(*value));
                    signature.push('b');
                }
            }
        }
        let flags = if self.auto_start { 0 } else { NO_AUTO_START };
        let mut message = Writer::default();
        message.0.extend([b'l', METHOD_CALL, flags, 1]);
        message.u32(body.0.len() as u32);
        message.u32(serial);
        message.u32(0); // the length of the header fields, known once they are written
        message.field(FIELD_PATH, b'o', self.path);
        message.field(FIELD_INTERFACE, b's', self.interface);
        message.field(FIELD_MEMBER, b's', self.member);
        message.field(FIELD_DESTINATION, b's', self.destination);
        if !signature.is_empty() {
            message.field(FIELD_SIGNATURE, b'g', &signature);
        }
        let fields = (message.0.len() - 16) as u32;
        message.0[12..16].copy_from_slice(&fields.to_le_bytes());
        message.pad(8);
        message.0.extend(body.0);
        message.0
    }
}

/// Little-endian D-Bus values, each aligned from the start of the buffer.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn pad(&mut self, alignment: usize) {
        let aligned = self.0.len().next_multiple_of(alignment);
        self.0.resize(aligned, 0);
    }

    fn u32(&mut self, value: u32) {
        self.pad(4);
        self.0.extend(value.to_le_bytes());
    }

    fn string(&mut self, text: &str) {
        self.u32(text.len() as u32);
        self.0.extend(text.as_bytes());
        self.0.push(0);
    }

    fn signature(&mut self, signature: &str) {
        self.0.push(signature.len() as u8);
        self.0.extend(signature.as_bytes());
        self.0.push(0);
    }

    /// A header field: its code, and its value as a variant of type `kind` (s, o or g).
    fn field(&mut self, code: u8, kind: u8, value: &str) {
        self.pad(8);
        self.0.extend([code, 1, kind, 0]);
        match kind {
            b'g' => self.signature(value),
            _ => self.string(value),
        }
    }
}

/// A D-Bus value that breaks the wire format.
#[derive(Debug)]
pub(crate) struct Malformed;

/// Reads D-Bus values from `data`, each aligned from its start (a message's, or its body's:
/// a body starts 8-aligned).
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn align(&mut self, alignment: usize) -> Result<(), Malformed> {
        self.take(self.at.next_multiple_of(alignment) - self.at)
            .map(drop)
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(count).ok_or(Malformed)?;
        let bytes = self.data.get(self.at..end).ok_or(Malformed)?;
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        self.align(4)?;
        let bytes: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
        Ok(match self.big_endian {
            true => u32::from_be_bytes(bytes),
            false => u32::from_le_bytes(bytes),
        })
    }

    /// The text of `length` bytes and the NUL after them, which must be UTF-8.
    fn text(&mut self, length: usize) -> Result<&'a str, Malformed> {
        let bytes = self.take(length)?;
        if self.u8()? != 0 {
            return Err(Malformed);
        }
        std::str::from_utf8(bytes).map_err(|_| Malformed)
    }

    /// A string or an object path.
    fn string(&mut self) -> Result<&'a str, Malformed> {
        let length = self.u32()? as usize;
        self.text(length)
    }

    fn signature(&mut self) -> Result<&'a str, Malformed> {
        let length = self.u8()? as usize;
        self.text(length)
    }

    /// An array of strings.
    fn strings(&mut self) -> Result<Vec<String>, Malformed> {
        let length = self.u32()? as usize;
        let end = self.at + length;
        let mut strings = vec![];
        while self.at < end {
            strings.push(self.string()?.to_owned());
        }
        match self.at == end {
            true => Ok(strings),
            false => Err(Malformed),
        }
    }

    fn boolean(&mut self) -> Result<bool, Malformed> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed),
        }
    }

    /// Passes over one value of the single complete type that begins `signature`; what
    /// follows that type in `signature`.
    fn skip<'s>(&mut self, signature: &'s [u8], depth: u32) -> Result<&'s [u8], Malformed> {
        // The specification's limit: 32 nested arrays and 32 nested structures.
        if depth > 64 {
            return Err(Malformed);
        }
        let after = after_type(signature)?;
        match signature[0] {
            b'y' => drop(self.take(1)?),
            b'n' | b'q' => {
                self.align(2)?;
                self.take(2)?;
            }
            b'b' | b'i' | b'u' | b'h' => drop(self.u32()?),
            b'x' | b't' | b'd' => {
                self.align(8)?;
                self.take(8)?;
            }
            b's' | b'o' => drop(self.string()?),
            b'g' => drop(self.signature()?),
            b'v' => {
                let inner = self.signature()?.as_bytes();
                if inner.is_empty() || !self.skip(inner, depth + 1)?.is_empty() {
                    return Err(Malformed);
                }
            }
            b'a' => {
                let element = &signature[1..signature.len() - after.len()];
                let length = self.u32()? as usize;
                self.align(alignment(element[0]))?;
                let end = self.at.checked_add(length).ok_or(Malformed)?;
                while self.at < end {
                    self.skip(element, depth + 1)?;
                }
                if self.at != end {
                    return Err(Malformed);
                }
            }
            _ => {
                // A structure or a dict entry: its members, between its brackets.
                self.align(8)?;
                let mut members = &signature[1..signature.len() - after.len() - 1];
                while !members.is_empty() {
                    members = self.skip(members, depth + 1)?;
                }
            }
        }
        Ok(after)
    }
}

/// What follows the single complete type that begins `signature`.
fn after_type(signature: &[u8]) -> Result<&[u8], Malformed> {
    match signature.split_first().ok_or(Malformed)? {
        (b'a', element) => after_type(element),
        (&open @ (b'(' | b'{'), mut members) => {
            let close = if open == b'(' { b')' } else { b'}' };
            loop {
                match members.split_first() {
                    Some((&c, rest)) if c == close => return Ok(rest),
                    Some(_) => members = after_type(members)?,
                    None => return Err(Malformed),
                }
            }
        }
        (c, rest) if b"ybnqiuxtdsoghv".contains(c) => Ok(rest),
        _ => Err(Malformed),
    }
}

/// How values of a type beginning with `code` are aligned.
fn alignment(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// The length of the message at the start of `data`, once all of it is there.
pub(crate) fn whole_message(data: &[u8]) -> Result<Option<usize>, Malformed> {
    if data.len() < 16 {
        return Ok(None);
    }
    let mut header = Reader {
        data: &data[..16],
        at: 4,
        big_endian: endianness(data[0])?,
    };
    let body = header.u32()? as usize;
    header.u32()?; // the serial
    let fields = header.u32()? as usize;
    let length = (16 + fields).next_multiple_of(8) + body;
    if length > MAX_MESSAGE {
        return Err(Malformed);
    }
    Ok((data.len() >= length).then_some(length))
}

fn endianness(mark: u8) -> Result<bool, Malformed> {
    match mark {
        b'l' => Ok(false),
        b'B' => Ok(true),
        _ => Err(Malformed),
    }
}

/// What a received message is, with the header fields that say so.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A method return, or an error reply named `error`, to the call numbered `reply_to`.
    Reply {
        reply_to: u32,
        error: Option<String>,
    },
    /// The signal `member`, sent by `sender` (the bus names every sender).
    Signal {
        sender: Option<String>,
        member: String,
    },
    /// A method call, or a type this client does not know: never answered here.
    Other,
}

/// A received message.
#[derive(Debug)]
pub struct Message {
    kind: Kind,
    /// The signature of the body.
    signature: String,
    body: Vec<u8>,
    big_endian: bool,
}

impl Message {
    /// The message that is the whole of `data`.
    pub(crate) fn parse(data: &[u8]) -> Result<Message, Malformed> {
        let big_endian = endianness(data[0])?;
        let mut header = Reader {
            data,
            at: 12,
            big_endian,
        };
        let (kind, version) = (data[1], data[3]);
        if version != 1 {
            return Err(Malformed);
        }
        let fields_end = header.u32()? as usize + 16;
        let (mut member, mut error, mut reply_to, mut sender) = (None, None, None, None);
        let mut signature = String::new();
        while header.at < fields_end {
            header.align(8)?;
            let code = header.u8()?;
            let value_type = header.signature()?;
            match (code, value_type) {
                (FIELD_MEMBER, "s") => member = Some(header.string()?.to_owned()),
                (FIELD_ERROR_NAME, "s") => error = Some(header.string()?.to_owned()),
                (FIELD_REPLY_SERIAL, "u") => reply_to = Some(header.u32()?),
                (FIELD_SENDER, "s") => sender = Some(header.string()?.to_owned()),
                (FIELD_SIGNATURE, "g") => signature = header.signature()?.to_owned(),
                (_, value_type) => {
                    if value_type.is_empty() || !header.skip(value_type.as_bytes(), 0)?.is_empty() {
                        return Err(Malformed);
                    }
                }
            }
        }
        if header.at != fields_end {
            return Err(Malformed);
        }
        header.align(8)?;
        let kind = match kind {
            METHOD_RETURN => Kind::Reply {
                reply_to: reply_to.ok_or(Malformed)?,
                error: None,
            },
            ERROR => Kind::Reply {
                reply_to: reply_to.ok_or(Malformed)?,
                error: Some(error.ok_or(Malformed)?),
            },
            SIGNAL => Kind::Signal {
                sender,
                member: member.ok_or(Malformed)?,
            },
            _ => Kind::Other,
        };
        Ok(Message {
            kind,
            signature,
            body: data[header.at..].to_vec(),
            big_endian,
        })
    }

    /// The serial of the call this message answers, if it is a reply.
    pub fn reply_to(&self) -> Option<u32> {
        match self.kind {
            Kind::Reply { reply_to, .. } => Some(reply_to),
            _ => None,
        }
    }

    /// Whether this message is the signal `name`, sent by `from`.
    pub fn is_signal(&self, from: &str, name: &str) -> bool {
        matches!(&self.kind, Kind::Signal { sender, member }
            if sender.as_deref() == Some(from) && member == name)
    }

    /// The error this message is, if it is an error reply; its message is the first
    /// argument where that is a string (as libdbus and GLib take it).
    pub fn as_result(&self) -> Result<(), BusError> {
        match &self.kind {
            Kind::Reply {
                error: Some(name), ..
            } => Err(BusError::Named {
                name: name.clone(),
                message: self.read_string().unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }

    fn body(&self) -> Reader<'_> {
        Reader {
            data: &self.body,
            at: 0,
            big_endian: self.big_endian,
        }
    }

    /// The type of the first argument (0 for none).
    fn first_type(&self) -> u8 {
        self.signature.bytes().next().unwrap_or(0)
    }

    /// The first argument, a string.
    pub fn read_string(&self) -> Result<String, BusError> {
        match self.first_type() {
            b's' => Ok(self
                .body()
                .string()
                .map_err(|Malformed| BusError::malformed())?
                .to_owned()),
            found => Err(BusError::mismatch(b's', found)),
        }
    }

    /// The first argument, a boolean.
    pub fn read_bool(&self) -> Result<bool, BusError> {
        match self.first_type() {
            b'b' => self
                .body()
                .boolean()
                .map_err(|Malformed| BusError::malformed()),
            found => Err(BusError::mismatch(b'b', found)),
        }
    }

    /// The first argument, an array of strings.
    pub fn read_strings(&self) -> Result<Vec<String>, BusError> {
        if !self.signature.starts_with("as") {
            return Err(BusError::mismatch(b'a', self.first_type()));
        }
        self.body()
            .strings()
            .map_err(|Malformed| BusError::malformed())
    }
}

/// Where a connection is in its life.
enum Phase {
    /// The authentication is sent; the bus's answer to it is awaited.
    Authenticating,
    /// Authenticated: the bus and this client exchange messages.
    Running,
}

/// A connection of this client's to a bus: private to one use of the backend, and closed
/// when dropped.
pub struct Connection {
    socket: UnixStream,
    phase: Phase,
    /// Bytes not written yet.
    outgoing: Vec<u8>,
    /// Bytes read and not yet taken as a line of the authentication or a whole message.
    incoming: Vec<u8>,
    received: VecDeque<Message>,
    last_serial: u32,
}

impl Connection {
    /// Connects to the bus at `address` (its first Unix socket that accepts) and queues
    /// the authentication: as the effective user, which the bus learns from the socket.
    pub fn open(address: &str) -> Result<Connection, BusError> {
        let mut failure = BusError::Named {
            name: "org.freedesktop.DBus.Error.BadAddress".into(),
            message: format!("No Unix socket in the bus address \"{address}\""),
        };
        for endpoint in endpoints(address) {
            match connect(&endpoint) {
                Ok(socket) => {
                    let uid = nix::unistd::geteuid().as_raw().to_string();
                    let uid: String = uid.bytes().map(|digit| format!("{digit:02x}")).collect();
                    let authentication = format!("\0AUTH EXTERNAL {uid}\r\nBEGIN\r\n");
                    return Ok(Connection::over(socket, authentication.into_bytes()));
                }
                Err(e) => failure = e,
            }
        }
        Err(failure)
    }

    /// A connection on `socket` (non-blocking) whose first bytes are `authentication`.
    pub(crate) fn over(socket: UnixStream, authentication: Vec<u8>) -> Connection {
        Connection {
            socket,
            phase: Phase::Authenticating,
            outgoing: authentication,
            incoming: vec![],
            received: VecDeque::new(),
            last_serial: 0,
        }
    }

    /// Queues `call`, to be written by the next [`Connection::read_write`]; its serial, for
    /// matching the reply.
    pub fn send(&mut self, call: &Call) -> u32 {
        self.last_serial += 1;
        self.outgoing.extend(call.marshal(self.last_serial));
        self.last_serial
    }

    /// Writes what it can and reads what there is, waiting up to `timeout` for the bus when
    /// nothing has come; what was read is then taken by [`Connection::pop_message`].
    pub fn read_write(&mut self, timeout: Duration) -> Result<(), BusError> {
        if self.transfer()? {
            return Ok(());
        }
        let mut events = PollFlags::POLLIN;
        if !self.outgoing.is_empty() {
            events |= PollFlags::POLLOUT;
        }
        // Rounded up, so that a wait for less than a millisecond waits.
        let millis = timeout.as_nanos().div_ceil(1_000_000);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        match poll(&mut [PollFd::new(self.socket.as_fd(), events)], timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(lost(e)),
        }
        self.transfer().map(drop)
    }

    /// The next message read, if any.
    pub fn pop_message(&mut self) -> Option<Message> {
        self.received.pop_front()
    }

    /// Writes what the socket takes, reads what it has, and takes the lines and messages
    /// that came whole: whether anything was read.
    fn transfer(&mut self) -> Result<bool, BusError> {
        while !self.outgoing.is_empty() {
            // MSG_NOSIGNAL: a bus that went away is an error here, not a SIGPIPE that
            // would end a caller that has not ignored it.
            match send(
                self.socket.as_raw_fd(),
                &self.outgoing,
                MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(written) => drop(self.outgoing.drain(..written)),
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(BusError::closed()),
                Err(e) => return Err(lost(e)),
            }
        }
        let mut read = false;
        let mut buffer = [0; 4096];
        loop {
            match (&self.socket).read(&mut buffer) {
                Ok(0) => {
                    // What came before the end is taken first: a bus that refused the
                    // authentication and hung up is reported as refusing it.
                    self.take_incoming()?;
                    return Err(BusError::closed());
                }
                Ok(count) => {
                    self.incoming.extend(&buffer[..count]);
                    read = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(BusError::closed())
                }
                Err(e) => return Err(lost(errno_of(&e))),
            }
        }
        self.take_incoming()?;
        Ok(read)
    }

    /// Takes the bus's answer to the authentication, then each whole message.
    fn take_incoming(&mut self) -> Result<(), BusError> {
        if let Phase::Authenticating = self.phase {
            let Some(end) = self.incoming.windows(2).position(|w| w == b"\r\n") else {
                if self.incoming.len() > MAX_AUTH_LINE {
                    return Err(BusError::malformed());
                }
                return Ok(());
            };
            let line = String::from_utf8_lossy(&self.incoming[..end]).into_owned();
            if !line.starts_with("OK ") {
                return Err(BusError::Local(format!(
                    "The bus refused this client's authentication: {line}"
                )));
            }
            self.incoming.drain(..end + 2);
            self.phase = Phase::Running;
        }
        while let Some(length) = whole_message(&self.incoming).map_err(|_| BusError::malformed())? {
            let message =
                Message::parse(&self.incoming[..length]).map_err(|_| BusError::malformed())?;
            self.received.push_back(message);
            self.incoming.drain(..length);
        }
        Ok(())
    }
}

fn lost(errno: Errno) -> BusError {
    BusError::Local(format!(
        "Lost the connection to the bus: {}",
        strerror(errno as i32)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    /// `call` as the bus would deliver it.
    fn delivered(call: &Call) -> Message {
        let data = call.marshal(7);
        assert_eq!(whole_message(&data).unwrap(), Some(data.len()));
        assert_eq!(whole_message(&data[..data.len() - 1]).unwrap(), None);
        Message::parse(&data).unwrap()
    }

    fn call() -> Call {
        Call::new("org.example", "/", "org.example", "M")
    }

    #[test]
    fn arguments_of_another_type_are_reported_as_the_dbus_crate_did() {
        assert_eq!(delivered(&call().with_bool(true)).read_bool(), Ok(true));
        assert_eq!(
            delivered(&call().with_str("yes")).read_string().unwrap(),
            "yes"
        );
        let error = delivered(&call().with_bool(true))
            .read_string()
            .unwrap_err();
        assert_eq!(
            error,
            BusError::Named {
                name: "org.freedesktop.DBus.Error.Failed".into(),
                message: "D-Bus argument type mismatch at position 0: expected String, found bool"
                    .into()
            }
        );
        assert!(matches!(
            delivered(&call()).read_strings().unwrap_err(),
            BusError::Named { message, .. }
                if message == "D-Bus argument type mismatch at position 0: expected Array/Dict, found nothing"
        ));
    }

    #[test]
    fn a_call_is_laid_out_as_the_specification_says() {
        let data = Call::new("a.b", "/o", "a.b", "M")
            .without_auto_start()
            .with_bool(false)
            .marshal(3);
        // Little-endian, a method call, NO_AUTO_START, version 1; a body of 4 bytes; serial 3.
        assert_eq!(data[..12], [b'l', 1, 2, 1, 4, 0, 0, 0, 3, 0, 0, 0]);
        // The first header field: the path, an object path ("o") of 2 bytes.
        assert_eq!(data[16..28], [1, 1, b'o', 0, 2, 0, 0, 0, b'/', b'o', 0, 0]);
        assert_eq!(data.len() % 8, 4, "an 8-aligned header, then the body");
        assert_eq!(data[data.len() - 4..], [0, 0, 0, 0]);
    }

    /// A message from another implementation: big-endian, a reply with a header field this
    /// client does not know (an array of structures), and an array of strings.
    #[test]
    fn a_big_endian_reply_with_an_unknown_field_is_read() {
        let mut data = vec![b'B', METHOD_RETURN, 0, 1];
        let body = [
            &[0, 0, 0, 16][..], // the array's length
            &[0, 0, 0, 3],
            b"one\0",
            &[0, 0, 0, 3],
            b"two\0",
        ]
        .concat();
        data.extend((body.len() as u32).to_be_bytes());
        data.extend(9u32.to_be_bytes());
        let fields = [
            // REPLY_SERIAL = 5
            &[FIELD_REPLY_SERIAL, 1, b'u', 0, 0, 0, 0, 5][..],
            // code 42: a(yu) holding one structure
            &[42, 5, b'a', b'(', b'y', b'u', b')', 0],
            &[0, 0, 0, 8, 0, 0, 0, 0], // length 8, padded to the structure
            &[1, 0, 0, 0, 0, 0, 0, 2],
            // SIGNATURE = "as"
            &[FIELD_SIGNATURE, 1, b'g', 0, 2, b'a', b's', 0],
        ]
        .concat();
        data.extend((fields.len() as u32).to_be_bytes());
        data.extend(fields);
        data.extend(body);
        assert_eq!(whole_message(&data).unwrap(), Some(data.len()));
        let message = Message::parse(&data).unwrap();
        assert_eq!(message.reply_to(), Some(5));
        assert_eq!(message.as_result(), Ok(()));
        assert_eq!(message.read_strings().unwrap(), ["one", "two"]);
    }

    #[test]
    fn what_is_not_dbus_is_refused() {
        let good = call().with_str("yes").marshal(1);
        let mut not_utf8 = good.clone();
        let at = not_utf8.len() - 3;
        not_utf8[at] = 0xff;
        let message = Message::parse(&not_utf8).unwrap();
        assert_eq!(message.read_string(), Err(BusError::malformed()));
        let mut version_2 = good.clone();
        version_2[3] = 2;
        assert!(Message::parse(&version_2).is_err());
        let mut huge = good;
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(whole_message(&huge).is_err());
        assert!(whole_message(b"GET / HTTP/1.1\r\n").is_err());
    }

    #[test]
    fn addresses_name_their_unix_sockets_in_order() {
        assert_eq!(
            endpoints("tcp:host=localhost,port=1;unix:guid=00,path=/run/a%20b;unix:abstract=x%2fy"),
            [
                Endpoint::Path("/run/a b".into()),
                Endpoint::Abstract(b"x/y".to_vec())
            ]
        );
        assert_eq!(endpoints("unix:path=/run/%4"), []);
        assert!(matches!(
            Connection::open("tcp:host=localhost,port=1"),
            Err(BusError::Named { name, .. }) if name == "org.freedesktop.DBus.Error.BadAddress"
        ));
        assert!(matches!(
            Connection::open("unix:path=/nonexistent/bus"),
            Err(BusError::Local(why))
                if why == "Failed to connect to socket /nonexistent/bus: No such file or directory"
        ));
    }

    #[test]
    fn a_bus_that_takes_no_more_connections_refuses_at_once() {
        let dir = crate::testing::FakeRoot::new();
        let path = dir.path().join("full");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // Room for one connection waiting to be accepted, which the first takes.
        let backlog = nix::sys::socket::Backlog::new(0).unwrap();
        nix::sys::socket::listen(&listener, backlog).unwrap();
        let address = format!("unix:path={}", path.display());
        let _first = Connection::open(&address).unwrap();
        let Err(BusError::Local(why)) = Connection::open(&address) else {
            panic!("a second connection was queued");
        };
        assert_eq!(
            why,
            format!(
                "Failed to connect to socket {}: Resource temporarily unavailable",
                path.display()
            )
        );
    }

    /// A bus on a socket pair: what the client wrote, and what `answer` has the bus say.
    fn against(answer: &[u8], calls: &[Call]) -> (Vec<u8>, Result<Vec<Message>, BusError>) {
        let (client, mut bus) = UnixStream::pair().unwrap();
        client.set_nonblocking(true).unwrap();
        let mut connection = Connection::over(client, b"AUTH\r\n".to_vec());
        for call in calls {
            connection.send(call);
        }
        std::io::Write::write_all(&mut bus, answer).unwrap();
        // One transfer: it writes, and reads what the bus has said, without waiting.
        let result = connection
            .transfer()
            .map(|_| std::iter::from_fn(|| connection.pop_message()).collect());
        drop(connection);
        let mut written = vec![];
        bus.read_to_end(&mut written).unwrap();
        (written, result)
    }

    #[test]
    fn the_authentication_and_the_calls_go_out_together() {
        let (written, result) = against(b"", &[call(), call().with_bool(true)]);
        let first = call().marshal(1);
        let second = call().with_bool(true).marshal(2);
        assert_eq!(written, [&b"AUTH\r\n"[..], &first, &second].concat());
        assert!(result.unwrap().is_empty(), "nothing before the bus's OK");
    }

    #[test]
    fn a_refused_authentication_fails_the_connection() {
        let (_, result) = against(b"REJECTED EXTERNAL\r\n", &[]);
        assert_eq!(
            result.unwrap_err(),
            BusError::Local(
                "The bus refused this client's authentication: REJECTED EXTERNAL".into()
            )
        );
    }

    #[test]
    fn messages_after_ok_are_taken_whole() {
        let mut signal = call().with_bool(true).marshal(1);
        signal[1] = SIGNAL;
        let answer = [&b"OK 0123\r\n"[..], &signal, &signal[..20]].concat();
        let (_, result) = against(&answer, &[]);
        let messages = result.unwrap();
        assert_eq!(messages.len(), 1, "the second is not whole");
        assert!(matches!(&messages[0].kind, Kind::Signal { member, .. } if member == "M"));
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
