//! The D-Bus Specification, "Message Protocol" over a Unix socket: a connection that
//! writes calls and reads messages by the caller's deadline, holding at most one message
//! of the largest size the specification allows and what one read brings besides.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{send, MsgFlags};

use super::address::{connect, endpoints};
use super::message::{declared_length, Call, Message};
use super::{auth, BusError};
use crate::backend::errno_of;
use crate::error::strerror;

/// How much one read takes from the socket at most.
const READ_SIZE: usize = 64 * 1024;

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
    /// Bytes read and not yet taken as a line of the authentication or a whole message: at
    /// most one message and one read.
    incoming: Vec<u8>,
    received: VecDeque<Message>,
    last_serial: u32,
}

impl Connection {
    /// Connects to the bus at `address` (its first Unix socket that accepts) and queues
    /// the authentication.
    pub fn open(address: &str) -> Result<Connection, BusError> {
        let mut failure = BusError::Named {
            name: "org.freedesktop.DBus.Error.BadAddress".into(),
            message: format!("No Unix socket in the bus address \"{address}\""),
        };
        for endpoint in endpoints(address) {
            match connect(&endpoint) {
                Ok(socket) => return Ok(Connection::over(socket, auth::request())),
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
        // Serials are never 0; a client would need 4 billion calls to wrap.
        self.last_serial = self.last_serial.checked_add(1).unwrap_or(1);
        self.outgoing.extend(call.marshal(self.last_serial));
        self.last_serial
    }

    /// Writes what it can and reads what there is, waiting up to `timeout` for the bus when
    /// nothing has come, and returning by then even when the bus never stops writing; what
    /// was read is then taken by [`Connection::pop_message`].
    pub fn read_write(&mut self, timeout: Duration) -> Result<(), BusError> {
        let deadline = Instant::now().checked_add(timeout);
        if self.transfer(deadline)? {
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
        self.transfer(deadline).map(drop)
    }

    /// The next message read, if any.
    pub fn pop_message(&mut self) -> Option<Message> {
        self.received.pop_front()
    }

    /// Writes what the socket takes, then reads until the socket has nothing more, a
    /// message has come whole, or `deadline` (`None`: never) has passed: whether anything
    /// was read.
    fn transfer(&mut self, deadline: Option<Instant>) -> Result<bool, BusError> {
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
        let waiting = self.received.len();
        let mut buffer = vec![0; READ_SIZE];
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
                    self.take_incoming()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(BusError::closed())
                }
                Err(e) => return Err(lost(errno_of(&e))),
            }
            // The caller takes what came before more is read (a bus that keeps sending
            // messages is not held in memory), and has its deadline kept (a bus that
            // keeps sending bytes does not keep it reading).
            let late = deadline.is_some_and(|deadline| Instant::now() >= deadline);
            if self.received.len() > waiting || late {
                break;
            }
        }
        Ok(read)
    }

    /// Takes the bus's answer to the authentication, then each whole message; what is
    /// taken leaves the buffer at once, in one move of what remains.
    fn take_incoming(&mut self) -> Result<(), BusError> {
        let mut taken = 0;
        if let Phase::Authenticating = self.phase {
            let Some(line) = auth::accepted(&self.incoming)? else {
                return Ok(());
            };
            taken = line;
            self.phase = Phase::Running;
        }
        let malformed = |_| BusError::malformed();
        while let Some(length) = declared_length(&self.incoming[taken..]).map_err(malformed)? {
            let missing = length.saturating_sub(self.incoming.len() - taken);
            if missing > 0 {
                // Room for the rest of the message, reserved once (the length is within
                // the specification's limit): not doubled as it comes.
                self.incoming.reserve_exact(missing);
                break;
            }
            let message = if length > READ_SIZE {
                // A large message is moved out of the buffer, not copied: the connection
                // holds it once. What came before it is dropped first, which costs less
                // than the message.
                self.incoming.drain(..taken);
                taken = 0;
                let rest = self.incoming.split_off(length);
                std::mem::replace(&mut self.incoming, rest)
            } else {
                let message = self.incoming[taken..taken + length].to_vec();
                taken += length;
                message
            };
            self.received
                .push_back(Message::parse(message).map_err(malformed)?);
        }
        self.incoming.drain(..taken);
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

    fn call() -> Call {
        Call::new("org.example", "/", "org.example", "M")
    }

    #[test]
    fn an_address_without_a_unix_socket_is_refused() {
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
            .transfer(None)
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
        signal[1] = 4; // SIGNAL
        let answer = [&b"OK 0123\r\n"[..], &signal, &signal[..20]].concat();
        let (_, result) = against(&answer, &[]);
        let messages = result.unwrap();
        assert_eq!(messages.len(), 1, "the second is not whole");
        assert!(
            matches!(&messages[0].kind, super::super::message::Kind::Signal { member, .. } if member == "M")
        );
    }

    /// A bus that writes without end: each `read_write` returns by its deadline, having
    /// read no more than one read's worth past a whole message, and the connection's buffer
    /// stays within one read.
    #[test]
    fn read_write_keeps_its_deadline_while_the_bus_keeps_writing() {
        let (client, mut bus) = UnixStream::pair().unwrap();
        client.set_nonblocking(true).unwrap();
        let mut connection = Connection::over(client, vec![]);
        let signals: Vec<u8> = (1..1000).flat_map(super::super::forge::signal).collect();
        let writer = std::thread::spawn(move || {
            std::io::Write::write_all(&mut bus, b"OK 0123\r\n").unwrap();
            while std::io::Write::write_all(&mut bus, &signals).is_ok() {}
        });
        let deadline = Duration::from_millis(200);
        let began = Instant::now();
        let mut taken = 0;
        while began.elapsed() < Duration::from_secs(1) {
            let call = Instant::now();
            connection.read_write(deadline).unwrap();
            assert!(call.elapsed() < deadline + Duration::from_millis(500));
            assert!(connection.incoming.len() <= READ_SIZE);
            assert!(connection.received.len() <= READ_SIZE);
            taken += std::iter::from_fn(|| connection.pop_message()).count();
        }
        assert!(taken > 0);
        drop(connection);
        writer.join().unwrap();
    }

    /// The old client copied what remained of its buffer after each message: 8 MiB of small
    /// messages in one burst cost it minutes. Taken in one pass, they cost a few seconds at
    /// most even unoptimised (under 20 s, on a loaded machine).
    #[test]
    fn a_burst_of_small_messages_is_taken_in_linear_time() {
        let (client, mut bus) = UnixStream::pair().unwrap();
        client.set_nonblocking(true).unwrap();
        let mut connection = Connection::over(client, vec![]);
        let mut burst = b"OK 0123\r\n".to_vec();
        let mut sent = 0;
        while burst.len() < 8 << 20 {
            sent += 1;
            burst.extend(super::super::forge::signal(u32::try_from(sent).unwrap()));
        }
        // The bus stays connected until all is taken: its hanging up is no part of this.
        let writer =
            std::thread::spawn(move || std::io::Write::write_all(&mut bus, &burst).map(|()| bus));
        let began = Instant::now();
        let mut taken = 0;
        while taken < sent && began.elapsed() < Duration::from_secs(30) {
            connection.read_write(Duration::from_secs(1)).unwrap();
            taken += std::iter::from_fn(|| connection.pop_message()).count();
        }
        assert_eq!(taken, sent);
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "{:?}",
            began.elapsed()
        );
        writer.join().unwrap().unwrap();
    }
}
