//! The D-Bus Specification, "Authentication Protocol": SASL `EXTERNAL` over a Unix socket,
//! sent at once with `BEGIN` (a client may pipeline them), and the bus's one answer.

use super::BusError;

/// The longest line the bus may answer the authentication with before `OK`.
const MAX_LINE: usize = 16 * 1024;

/// What this client says first: a nul byte (where credentials could be passed), then
/// `EXTERNAL` as the effective user, which the bus learns from the socket.
pub fn request() -> Vec<u8> {
    let uid = nix::unistd::geteuid().as_raw().to_string();
    let uid: String = uid.bytes().map(|digit| format!("{digit:02x}")).collect();
    format!("\0AUTH EXTERNAL {uid}\r\nBEGIN\r\n").into_bytes()
}

/// How many bytes at the start of `incoming` are the bus's `OK` line, once it is whole;
/// an error for any other answer, or for a line too long to be one.
pub fn accepted(incoming: &[u8]) -> Result<Option<usize>, BusError> {
    let Some(end) = incoming.windows(2).position(|w| w == b"\r\n") else {
        if incoming.len() > MAX_LINE {
            return Err(BusError::malformed());
        }
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&incoming[..end]);
    if !line.starts_with("OK ") {
        return Err(BusError::Local(format!(
            "The bus refused this client's authentication: {line}"
        )));
    }
    Ok(Some(end + 2))
}
