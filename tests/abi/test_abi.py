"""The C ABI as only a ctypes caller in Python shows it: an error raised through a libvirt
nothing initialized yet.

The error API, the request's life and its races are tested once, below this layer: in the
Rust unit tests (src/node.rs, src/request.rs, src/host.rs) and, as a C caller sees them, in
tests-c/."""

from conftest import run


def test_error_raised_through_libvirt_that_nothing_initialized_yet(library):
    """A program linked with libvirt that has not called it yet: libvirt 9.0 needs
    virInitialize before an error can be raised through it."""
    [result] = run({"library": library, "libvirt": "uninitialized", "calls": [["suspend", 0, 60, 1]]}, {})
    assert result["ret"] == -1
    assert result["error"]["message"] == "unsupported flags (0x1) in function virNodeSuspend"
    assert result["libvirt_error"] == result["error"]
