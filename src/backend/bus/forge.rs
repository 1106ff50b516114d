//! For the tests: D-Bus messages built byte by byte (little-endian), valid or not, as a
//! hostile or broken bus could send them. Nothing here goes through the client's own
//! writer, so that what the tests send does not share its mistakes.

const FIXED_HEADER: usize = 16;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_SIGNATURE: u8 = 8;

/// A code the specification gives no header field: its value is passed over.
const FIELD_UNKNOWN: u8 = 42;

fn length(bytes: &[u8]) -> [u8; 4] {
    u32::try_from(bytes.len()).unwrap().to_le_bytes()
}

fn pad(data: &mut Vec<u8>, alignment: usize) {
    data.resize(data.len().next_multiple_of(alignment), 0);
}

/// A message of `message_type` numbered `serial`, with the header `fields` (each made by
/// one of the functions below, so starting 8-aligned) and `body`.
pub fn message(message_type: u8, serial: u32, fields: &[Vec<u8>], body: &[u8]) -> Vec<u8> {
    let mut data = vec![b'l', message_type, 0, 1];
    data.extend(length(body));
    data.extend(serial.to_le_bytes());
    data.extend([0; 4]);
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            pad(&mut data, 8);
        }
        data.extend(field);
    }
    let fields = length(&data[FIXED_HEADER..]);
    data[12..FIXED_HEADER].copy_from_slice(&fields);
    pad(&mut data, 8);
    data.extend(body);
    data
}

/// A header field `code` holding a variant of type `kind` whose value is `value`, laid out
/// as from the byte after the variant's signature.
pub fn field(code: u8, kind: &str, value: &[u8]) -> Vec<u8> {
    let mut field = vec![code, u8::try_from(kind.len()).unwrap()];
    field.extend(kind.as_bytes());
    field.push(0);
    field.extend(value);
    field
}

pub fn string_field(code: u8, kind: u8, text: &str) -> Vec<u8> {
    let mut field = vec![code, 1, kind, 0];
    field.extend(length(text.as_bytes()));
    field.extend(text.as_bytes());
    field.push(0);
    field
}

pub fn number_field(code: u8, value: u32) -> Vec<u8> {
    let mut field = vec![code, 1, b'u', 0];
    field.extend(value.to_le_bytes());
    field
}

pub fn signature_field(signature: &str) -> Vec<u8> {
    let mut field = vec![FIELD_SIGNATURE, 1, b'g', 0];
    field.push(u8::try_from(signature.len()).unwrap());
    field.extend(signature.as_bytes());
    field.push(0);
    field
}

/// The signal `a.b.M` from `/a`, with no argument.
pub fn signal(serial: u32) -> Vec<u8> {
    signal_with(serial, vec![])
}

/// The signal `a.b.M` from `/a`, with no argument, and the header fields `more`.
pub fn signal_with(serial: u32, more: Vec<Vec<u8>>) -> Vec<u8> {
    let mut fields = vec![
        string_field(FIELD_PATH, b'o', "/a"),
        string_field(FIELD_INTERFACE, b's', "a.b"),
        string_field(FIELD_MEMBER, b's', "M"),
    ];
    fields.extend(more);
    message(SIGNAL, serial, &fields, b"")
}

/// An error reply `a.E` to the call numbered `reply_to`, with no argument.
pub fn error_reply(serial: u32, reply_to: u32) -> Vec<u8> {
    let fields = [
        number_field(FIELD_REPLY_SERIAL, reply_to),
        string_field(FIELD_ERROR_NAME, b's', "a.E"),
    ];
    message(ERROR, serial, &fields, b"")
}

/// The audit's 40 bytes: a reply whose one header field holds an array of empty
/// structures (a signature the specification forbids) of 8 bytes.
pub fn empty_structures() -> Vec<u8> {
    // The variant's signature ends at 6; the array's length at 8; its elements at 16.
    let value = [&[0, 0][..], &8u32.to_le_bytes(), &[0; 4], &[0; 8]].concat();
    message(
        METHOD_RETURN,
        1,
        &[field(FIELD_UNKNOWN, "a()", &value)],
        b"",
    )
}

/// A header field holding `arrays` nested arrays, the innermost of `structs` nested
/// structures around a byte, about `size` bytes of them: every outer array holds one
/// array, the innermost as many structures as fit.
pub fn nested_field(arrays: usize, structs: usize, size: usize) -> Vec<u8> {
    let signature = format!(
        "{}{}y{}",
        "a".repeat(arrays),
        "(".repeat(structs),
        ")".repeat(structs)
    );
    let mut data = field(FIELD_UNKNOWN, &signature, &[]);
    pad(&mut data, 4);
    let lengths_at = data.len();
    let elements_at = (lengths_at + 4 * arrays).next_multiple_of(8);
    // Each structure is a byte, then the padding to the next one.
    let count = (size / 8).max(1);
    let end = elements_at + (count - 1) * 8 + 1;
    for k in 0..arrays - 1 {
        let content = end - (lengths_at + 4 * (k + 1));
        data.extend(u32::try_from(content).unwrap().to_le_bytes());
    }
    data.extend(u32::try_from(end - elements_at).unwrap().to_le_bytes());
    data.resize(end, 0);
    data
}
