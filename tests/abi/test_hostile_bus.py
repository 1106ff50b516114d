"""The capability query through the C ABI, with DBUS_SYSTEM_BUS_ADDRESS naming a bus that
sends what the D-Bus specification forbids or more than a client should hold (issue 21):
logind is found unavailable by the query's deadline (10 s) and a second, and the query goes
on to the other backends. The Rust tests (backend::logind::tests::hostile) show the same
at the backend, with the memory each costs."""

import socket
import struct
import threading
import time

import pytest

from conftest import run

# The library's deadline for an exchange with the bus (logind.rs, CALL_TIMEOUT), and what
# starting the driver's process may add.
DEADLINE = 10
GRACE = 1 + 2


def message(message_type, serial, fields, body=b""):
    """A little-endian message; FIELDS are laid out already (from an 8-aligned start)."""
    header = struct.pack("<cBBBIII", b"l", message_type, 0, 1, len(body), serial, len(fields)) + fields
    return header + b"\0" * (-len(header) % 8) + body


def string_field(code, kind, text):
    data = text.encode()
    return bytes([code, 1, ord(kind), 0]) + struct.pack("<I", len(data)) + data + b"\0"


def signal(serial):
    fields = [string_field(1, "o", "/a"), string_field(2, "s", "a.b"), string_field(3, "s", "M")]
    laid_out = b""
    for field in fields:
        laid_out += b"\0" * (-len(laid_out) % 8) + field
    return message(4, serial, laid_out)


# The audit's 40 bytes: a reply whose one header field (code 42) is an array of empty
# structures, which held the old client in place for ever.
EMPTY_STRUCTURES = message(2, 1, bytes([42, 3]) + b"a()\0" + b"\0\0" + struct.pack("<I", 8) + b"\0" * 12)
assert len(EMPTY_STRUCTURES) == 40

SIGNALS = b"".join(signal(serial) for serial in range(1, 1000))


class HostileBus:
    """A socket at PATH that takes one connection, answers its authentication with OK,
    then sends PAYLOAD once, or, with endless, again and again until stopped."""

    def __init__(self, path, payload, endless=False):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.address = f"unix:path={path}"
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.serve, args=(payload, endless), daemon=True)
        self.thread.start()

    def serve(self, payload, endless):
        connection, _ = self.server.accept()
        connection.settimeout(1)
        said = b""
        try:
            while b"BEGIN\r\n" not in said:
                said += connection.recv(4096)
            connection.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n" + payload)
            while endless and not self.stopped.is_set():
                try:
                    connection.sendall(payload)
                except socket.timeout:
                    pass
            self.stopped.wait()
        except OSError:
            pass  # the client hung up: what a hostile bus must expect
        finally:
            connection.close()

    def stop(self):
        self.stopped.set()
        self.thread.join()
        self.server.close()


@pytest.mark.parametrize(
    "payload, endless",
    [(EMPTY_STRUCTURES, False), (SIGNALS, True)],
    ids=["empty-structures", "endless-signals"],
)
def test_a_hostile_bus_leaves_logind_unavailable_by_the_deadline(tmp_path, library, payload, endless):
    bus = HostileBus(tmp_path / "bus.socket", payload, endless)
    try:
        began = time.monotonic()
        [result] = run(
            {"library": library, "libvirt": "none", "calls": [["mask"]]},
            {"DBUS_SYSTEM_BUS_ADDRESS": bus.address},
        )
        took = time.monotonic() - began
    finally:
        bus.stop()
    assert took < DEADLINE + GRACE, took
    # No logind, an empty root: nothing is supported.
    assert (result["ret"], result["mask"]) == (0, 0), result
