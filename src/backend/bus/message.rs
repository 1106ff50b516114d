//! The D-Bus Specification, "Message Format": the calls this client sends, and the
//! messages it receives, checked as the specification says a valid message must be before
//! anything is taken from them.

use super::marshal::{Malformed, Reader, Writer, MAX_ARRAY, MAX_MESSAGE};
use super::signature::{self, Type};
use super::BusError;

// Message types.
const INVALID: u8 = 0;
const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

const NO_AUTO_START: u8 = 0x2;

/// The only major protocol version.
const VERSION: u8 = 1;

/// The fixed part of the header: byte order, type, flags, version, the body's length, the
/// serial, and the length of the header fields' array.
const FIXED_HEADER: usize = 16;

// Header fields, by code.
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SENDER: u8 = 7;
const FIELD_SIGNATURE: u8 = 8;
const FIELD_UNIX_FDS: u8 = 9;

/// The type each header field the specification defines must have, by its code (0 is
/// INVALID, which no message may carry); other codes are passed over.
const FIELD_TYPES: [Option<u8>; 10] = [
    None,
    Some(b'o'),
    Some(b's'),
    Some(b's'),
    Some(b's'),
    Some(b'u'),
    Some(b's'),
    Some(b's'),
    Some(b'g'),
    Some(b'u'),
];

/// Where the header fields are in a message: inside its array (1), its structure (2), and
/// the variant (3).
const FIELD_VALUE_DEPTH: u32 = 3;

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
    pub fn marshal(&self, serial: u32) -> Vec<u8> {
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
        message.0.extend([b'l', METHOD_CALL, flags, VERSION]);
        message.u32(length_of(&body.0));
        message.u32(serial);
        message.u32(0); // the length of the header fields, known once they are written
        field(&mut message, FIELD_PATH, b'o', self.path);
        field(&mut message, FIELD_INTERFACE, b's', self.interface);
        field(&mut message, FIELD_MEMBER, b's', self.member);
        field(&mut message, FIELD_DESTINATION, b's', self.destination);
        if !signature.is_empty() {
            field(&mut message, FIELD_SIGNATURE, b'g', &signature);
        }
        let fields = length_of(&message.0[FIXED_HEADER..]);
        message.0[12..FIXED_HEADER].copy_from_slice(&fields.to_le_bytes());
        message.pad(8);
        message.0.extend(body.0);
        message.0
    }
}

/// The length of what this client writes: its own short texts.
fn length_of(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).expect("a call under 4 GiB")
}

/// A header field: its code, and its value as a variant of type `kind` (s, o or g).
fn field(message: &mut Writer, code: u8, kind: u8, value: &str) {
    message.pad(8);
    message.0.extend([code, 1, kind, 0]);
    match kind {
        b'g' => message.signature(value),
        _ => message.string(value),
    }
}

/// The length of a message whose header fields take `fields` bytes and body `body`
/// bytes, if that is within the specification's limits. In `u32`: the arithmetic that
/// would wrap in a 32-bit `usize` is checked instead.
fn message_length(fields: u32, body: u32) -> Option<u32> {
    if fields > MAX_ARRAY {
        return None;
    }
    let header = u32::try_from(FIXED_HEADER).ok()?.checked_add(fields)?;
    let length = header.checked_next_multiple_of(8)?.checked_add(body)?;
    (length <= MAX_MESSAGE).then_some(length)
}

/// The length the message at the start of `data` says it has, once its fixed header is
/// there.
pub fn declared_length(data: &[u8]) -> Result<Option<usize>, Malformed> {
    let Some(fixed) = data.get(..FIXED_HEADER) else {
        return Ok(None);
    };
    let mut header = Reader::new(fixed, endianness(fixed[0])?);
    header.take(4)?;
    let body = header.u32()?;
    header.u32()?; // the serial
    let fields = header.u32()?;
    let length = message_length(fields, body).ok_or(Malformed)?;
    usize::try_from(length).map(Some).map_err(|_| Malformed)
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
pub enum Kind {
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
    /// A method call, or a type this client does not know (which the specification says to
    /// ignore): never answered here.
    Other,
}

/// The header fields this client takes, as a message carries them.
#[derive(Default)]
struct Fields {
    path: bool,
    interface: bool,
    member: Option<String>,
    error_name: Option<String>,
    reply_serial: Option<u32>,
    sender: Option<String>,
    signature: Option<String>,
}

impl Fields {
    /// Reads the header fields (`a(yv)`), from the length of their array to the padding
    /// after it.
    fn read(header: &mut Reader) -> Result<Fields, Malformed> {
        let mut fields = Fields::default();
        let mut seen = [false; FIELD_TYPES.len()];
        let end = header.array(&Type::Struct(vec![Type::Basic(b'y'), Type::Variant]))?;
        while header.at() < end {
            header.align(8)?;
            let code = header.u8()?;
            let value_type = header.variant_type()?;
            let Some(&expected) = FIELD_TYPES.get(usize::from(code)) else {
                header.skip_variant_value(&value_type, FIELD_VALUE_DEPTH)?;
                continue;
            };
            // INVALID (code 0), a field of the wrong type, or one that comes twice.
            let index = usize::from(code);
            if expected.map(Type::Basic) != Some(value_type) || seen[index] {
                return Err(Malformed);
            }
            seen[index] = true;
            match code {
                FIELD_PATH => fields.path = header.object_path().map(|_| true)?,
                FIELD_INTERFACE => fields.interface = header.string().map(|_| true)?,
                FIELD_MEMBER => fields.member = Some(header.string()?.to_owned()),
                FIELD_ERROR_NAME => fields.error_name = Some(header.string()?.to_owned()),
                FIELD_REPLY_SERIAL => match header.u32()? {
                    0 => return Err(Malformed),
                    serial => fields.reply_serial = Some(serial),
                },
                FIELD_DESTINATION => drop(header.string()?),
                FIELD_SENDER => fields.sender = Some(header.string()?.to_owned()),
                FIELD_SIGNATURE => fields.signature = Some(header.signature()?.to_owned()),
                FIELD_UNIX_FDS => drop(header.u32()?),
                _ => unreachable!("every code below {} has a type", FIELD_TYPES.len()),
            }
        }
        if header.at() != end {
            return Err(Malformed);
        }
        header.align(8)?;
        Ok(fields)
    }

    /// What the message is, if it has the fields its type requires.
    fn kind(self, message_type: u8) -> Result<Kind, Malformed> {
        match message_type {
            INVALID => Err(Malformed),
            METHOD_CALL if self.path && self.member.is_some() => Ok(Kind::Other),
            METHOD_RETURN => Ok(Kind::Reply {
                reply_to: self.reply_serial.ok_or(Malformed)?,
                error: None,
            }),
            ERROR => Ok(Kind::Reply {
                reply_to: self.reply_serial.ok_or(Malformed)?,
                error: Some(self.error_name.ok_or(Malformed)?),
            }),
            SIGNAL if self.path && self.interface => Ok(Kind::Signal {
                sender: self.sender,
                member: self.member.ok_or(Malformed)?,
            }),
            METHOD_CALL | SIGNAL => Err(Malformed),
            _ => Ok(Kind::Other),
        }
    }
}

/// A received message.
#[derive(Debug)]
pub struct Message {
    pub kind: Kind,
    /// The signature of the body.
    signature: String,
    /// The whole message, kept as it came (not copied again to take the body out).
    data: Vec<u8>,
    body_at: usize,
    big_endian: bool,
}

impl Message {
    /// The message that is the whole of `data`, if it is valid throughout.
    pub fn parse(data: Vec<u8>) -> Result<Message, Malformed> {
        let length = declared_length(&data)?.ok_or(Malformed)?;
        if length != data.len() {
            return Err(Malformed);
        }
        let big_endian = endianness(data[0])?;
        let mut header = Reader::new(&data, big_endian);
        let [_, message_type, _, version] =
            <[u8; 4]>::try_from(header.take(4)?).map_err(|_| Malformed)?;
        if version != VERSION {
            return Err(Malformed);
        }
        let body_length = header.u32()?;
        if header.u32()? == 0 {
            return Err(Malformed); // a serial is never 0
        }
        let mut fields = Fields::read(&mut header)?;
        let body_at = header.at();
        let body = &data[body_at..];
        if usize::try_from(body_length) != Ok(body.len()) {
            return Err(Malformed);
        }
        // No SIGNATURE field: an empty body.
        let signature = fields.signature.take().unwrap_or_default();
        let mut reader = Reader::new(body, big_endian);
        for value_type in signature::parse(signature.as_bytes())? {
            reader.skip(&value_type, 0)?;
        }
        if !reader.is_at_end() {
            return Err(Malformed);
        }
        Ok(Message {
            kind: fields.kind(message_type)?,
            signature,
            data,
            body_at,
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
        Reader::new(&self.data[self.body_at..], self.big_endian)
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

#[cfg(test)]
mod tests {
    use super::super::forge::{field, message, number_field, signature_field, string_field};
    use super::*;
    use crate::backend::bus::signature::nested;

    /// `call` as the bus would deliver it.
    fn delivered(call: &Call) -> Message {
        let data = call.marshal(7);
        assert_eq!(declared_length(&data).unwrap(), Some(data.len()));
        Message::parse(data.clone()).unwrap()
    }

    fn call() -> Call {
        Call::new("org.example", "/", "org.example", "M")
    }

    fn reply(serial: u32, fields: &[Vec<u8>], body: &[u8]) -> Vec<u8> {
        let mut all = vec![number_field(FIELD_REPLY_SERIAL, 1)];
        all.extend_from_slice(fields);
        message(METHOD_RETURN, serial, &all, body)
    }

    fn signal_fields() -> Vec<Vec<u8>> {
        vec![
            string_field(FIELD_PATH, b'o', "/a"),
            string_field(FIELD_INTERFACE, b's', "a.b"),
            string_field(FIELD_MEMBER, b's', "M"),
        ]
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
        data.extend(u32::try_from(body.len()).unwrap().to_be_bytes());
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
        data.extend(u32::try_from(fields.len()).unwrap().to_be_bytes());
        data.extend(fields);
        data.extend(body);
        assert_eq!(declared_length(&data).unwrap(), Some(data.len()));
        let message = Message::parse(data.clone()).unwrap();
        assert_eq!(message.reply_to(), Some(5));
        assert_eq!(message.as_result(), Ok(()));
        assert_eq!(message.read_strings().unwrap(), ["one", "two"]);
    }

    #[test]
    fn what_is_not_dbus_is_refused() {
        let good = call().with_str("yes").marshal(1);
        assert!(Message::parse(good.clone()).is_ok());
        let mut not_utf8 = good.clone();
        let at = not_utf8.len() - 3;
        not_utf8[at] = 0xff;
        assert!(Message::parse(not_utf8.clone()).is_err());
        let mut version_2 = good.clone();
        version_2[3] = 2;
        assert!(Message::parse(version_2.clone()).is_err());
        let mut huge = good;
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(declared_length(&huge).is_err());
        assert!(declared_length(b"GET / HTTP/1.1\r\n").is_err());
        assert!(Message::parse(vec![]).is_err());
    }

    /// The audit's 40 bytes: a header field holding an array of empty structures, which
    /// once held the reader in place for ever.
    #[test]
    fn an_array_of_empty_structures_is_refused() {
        for kind in ["a()", "a{}", "aa()"] {
            let field = field(42, kind, &[0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            let data = reply(1, &[field], b"");
            assert_eq!(
                Message::parse(data.clone()).unwrap_err(),
                Malformed,
                "{kind}"
            );
        }
    }

    #[test]
    fn message_type_0_is_invalid_and_unknown_types_are_ignored() {
        assert!(Message::parse(message(INVALID, 1, &signal_fields(), b"")).is_err());
        let unknown = Message::parse(message(5, 1, &signal_fields(), b"")).unwrap();
        assert_eq!(unknown.kind, Kind::Other);
    }

    #[test]
    fn serial_0_is_refused() {
        assert!(Message::parse(reply(1, &[], b"")).is_ok());
        assert!(Message::parse(reply(0, &[], b"")).is_err());
        let to_0 = message(
            METHOD_RETURN,
            1,
            &[number_field(FIELD_REPLY_SERIAL, 0)],
            b"",
        );
        assert!(Message::parse(to_0.clone()).is_err());
    }

    #[test]
    fn required_header_fields_are_there() {
        let parse = |message_type, fields: &[&Vec<u8>]| {
            let fields: Vec<Vec<u8>> = fields.iter().map(|&field| field.clone()).collect();
            Message::parse(message(message_type, 1, &fields, b""))
        };
        let [path, interface, member] = <[Vec<u8>; 3]>::try_from(signal_fields()).unwrap();
        let error_name = string_field(FIELD_ERROR_NAME, b's', "a.E");
        let reply_serial = number_field(FIELD_REPLY_SERIAL, 1);
        assert!(parse(METHOD_RETURN, &[]).is_err());
        assert!(parse(ERROR, &[&reply_serial]).is_err());
        assert!(parse(ERROR, &[&error_name]).is_err());
        assert!(parse(ERROR, &[&reply_serial, &error_name]).is_ok());
        assert!(parse(METHOD_CALL, &[&path]).is_err());
        assert!(parse(METHOD_CALL, &[&member]).is_err());
        assert!(parse(METHOD_CALL, &[&path, &member]).is_ok());
        assert!(parse(SIGNAL, &[&path, &member]).is_err());
        assert!(parse(SIGNAL, &[&interface, &member]).is_err());
        assert!(parse(SIGNAL, &[&path, &interface]).is_err());
        assert!(parse(SIGNAL, &[&path, &interface, &member]).is_ok());
    }

    #[test]
    fn header_fields_have_their_types_once_and_code_0_never() {
        let parse = |fields: &[Vec<u8>]| Message::parse(reply(1, fields, b""));
        assert!(parse(&[string_field(FIELD_SENDER, b's', ":1.1")]).is_ok());
        assert!(parse(&[string_field(FIELD_SENDER, b'o', "/a")]).is_err());
        assert!(parse(&[string_field(FIELD_PATH, b's', "/a")]).is_err());
        assert!(
            parse(&[string_field(FIELD_PATH, b'o', "a")]).is_err(),
            "not a path"
        );
        assert!(parse(&[number_field(FIELD_SIGNATURE, 1)]).is_err());
        assert!(parse(&[number_field(0, 1)]).is_err());
        assert!(parse(&[
            number_field(FIELD_UNIX_FDS, 0),
            number_field(FIELD_UNIX_FDS, 0)
        ])
        .is_err());
        // A code the specification does not define is passed over, whatever its type.
        assert!(parse(&[number_field(200, 1)]).is_ok());
    }

    #[test]
    fn the_signature_field_is_a_valid_signature_and_matches_the_body() {
        let parse = |signature: &str, body: &[u8]| {
            Message::parse(reply(1, &[signature_field(signature)], body))
        };
        assert!(parse("u", &[1, 0, 0, 0]).is_ok());
        assert!(parse("()", &[]).is_err());
        assert!(parse("a", &[0, 0, 0, 0]).is_err());
        assert!(parse("u", &[1, 0, 0, 0, 0]).is_err(), "a byte more");
        assert!(parse("uu", &[1, 0, 0, 0]).is_err(), "a value less");
        assert!(parse("b", &[2, 0, 0, 0]).is_err(), "not a boolean");
        // No SIGNATURE field: no body.
        assert!(Message::parse(reply(1, &[], &[0])).is_err());
    }

    #[test]
    fn padding_and_strings_are_checked() {
        let parse = |signature: &str, body: &[u8]| {
            Message::parse(reply(1, &[signature_field(signature)], body))
        };
        assert!(parse("yu", &[1, 0, 0, 0, 2, 0, 0, 0]).is_ok());
        assert!(parse("yu", &[1, 0, 9, 0, 2, 0, 0, 0]).is_err());
        assert!(parse("s", b"\x03\0\0\0a\0b\0").is_err(), "a nul inside");
        assert!(parse("s", b"\x03\0\0\0a\xffb\0").is_err(), "not UTF-8");
        // The padding between the header and the body.
        let mut data = reply(1, &[signature_field("y")], &[1]);
        let body_at = data.len() - 1;
        assert_eq!(data[body_at - 1], 0);
        data[body_at - 1] = 1;
        assert!(Message::parse(data.clone()).is_err());
    }

    /// The limit is 32 arrays and 32 structures, 64 containers with the variants: reached,
    /// it is taken; passed, refused.
    #[test]
    fn nesting_at_the_limit_is_taken_and_past_it_refused() {
        // `arrays` arrays, each holding the next, the innermost empty (of structures),
        // starting at `start` in the body.
        let empty = |arrays: usize, start: usize| {
            let end = (start + 4 * arrays).next_multiple_of(8);
            let mut data = vec![0; start];
            for k in 1..arrays {
                data.extend(u32::try_from(end - (start + 4 * k)).unwrap().to_le_bytes());
            }
            data.extend([0; 4]);
            data.resize(end, 0);
            data.split_off(start)
        };
        let body = empty(32, 0);
        assert!(Message::parse(reply(1, &[signature_field(&nested(32, 32))], &body)).is_ok());
        let too_deep = reply(1, &[signature_field(&nested(33, 32))], &empty(33, 0));
        assert!(Message::parse(too_deep.clone()).is_err());
        // In a variant, the variant counts: 31 arrays and 32 structures are taken, 32 and
        // 32 refused.
        let in_variant = |arrays: usize| {
            let signature = nested(arrays, 32);
            let mut body = vec![u8::try_from(signature.len()).unwrap()];
            body.extend(signature.as_bytes());
            body.push(0);
            let start = body.len().next_multiple_of(4);
            body.resize(start, 0);
            body.extend(empty(arrays, start));
            Message::parse(reply(1, &[signature_field("v")], &body))
        };
        assert!(in_variant(31).is_ok());
        assert!(in_variant(32).is_err());
    }

    /// The arithmetic that wrapped where `usize` has 32 bits: header fields and a body that
    /// add up past 4 GiB are refused, not wrapped to a small length.
    #[test]
    fn lengths_near_4_gib_are_refused_without_wrapping() {
        assert_eq!(message_length(u32::MAX - 15, 16), None);
        assert_eq!(message_length(8, u32::MAX - 15), None);
        assert_eq!(message_length(MAX_ARRAY + 1, 0), None);
        assert_eq!(message_length(0, MAX_MESSAGE), None);
        assert_eq!(message_length(8, 8), Some(32));
        let mut header = reply(1, &[], b"");
        header[4..8].copy_from_slice(&16u32.to_le_bytes());
        header[12..16].copy_from_slice(&(u32::MAX - 15).to_le_bytes());
        assert_eq!(declared_length(&header), Err(Malformed));
        assert_eq!(Message::parse(header.clone()).unwrap_err(), Malformed);
        assert_eq!(
            Message::parse(header[..16].to_vec()).unwrap_err(),
            Malformed
        );
        // Header fields that end exactly at 4 GiB: a length of 0 where `usize` has 32 bits.
        header[4..8].copy_from_slice(&0u32.to_le_bytes());
        header[12..16].copy_from_slice(&(u32::MAX - 15).to_le_bytes());
        assert_eq!(declared_length(&header), Err(Malformed));
        assert_eq!(Message::parse(header.clone()).unwrap_err(), Malformed);
    }
}
