"""The C ABI as only a ctypes caller in Python shows it: an error raised through a libvirt
nothing initialized yet, and the pm-utils backend's answer taken as final.

The error API, the request's life and its races are tested once, below this layer: in the
Rust unit tests (src/node.rs, src/host.rs) and, as a C caller sees them, in tests-c/."""

import ctypes

import pytest

from conftest import run
from driver import Error
from fakes import private_library, read_fifo


@pytest.fixture
def load(library, monkeypatch, tmp_path):
    """A private copy of the library (fakes.private_library) configured for the fake root
    with the given knobs, through ctypes."""
    copies = []

    def load_with(root, **knobs):
        lib = ctypes.CDLL(private_library(library, tmp_path, monkeypatch, root, **knobs))
        lib.virNodeSuspend.argtypes = [ctypes.c_uint, ctypes.c_ulonglong, ctypes.c_uint]
        lib.virNodeSuspendGetTargetMask.argtypes = [ctypes.POINTER(ctypes.c_uint)]
        lib.virNodeSuspendGetLastError.restype = ctypes.POINTER(Error)
        lib.virNodeSuspendGetLastErrorMessage.restype = ctypes.c_char_p
        copies.append(lib)
        return lib

    yield load_with
    # A request still pending (a long delay) is aborted: its worker never writes to a fake
    # root after its test.
    for lib in copies:
        lib.virNodeSuspendAbort(0)


def test_error_raised_through_libvirt_that_nothing_initialized_yet(library):
    """A program linked with libvirt that has not called it yet: libvirt 9.0 needs
    virInitialize before an error can be raised through it."""
    [result] = run({"library": library, "libvirt": "uninitialized", "calls": [["suspend", 0, 60, 1]]}, {})
    assert result["ret"] == -1
    assert result["error"]["message"] == "unsupported flags (0x1) in function virNodeSuspend"
    assert result["libvirt_error"] == result["error"]


def test_pm_utils_answers_and_carries_out_when_logind_is_unavailable(tmp_path, load, fake_root, fake_bin):
    # Not yet in the Rust tests: an available backend's "no" is final, the next not asked.
    (fake_bin / "pm-is-supported").write_text('#!/bin/sh\n[ "$1" = --hibernate ]\n')
    (fake_bin / "pm-is-supported").chmod(0o755)
    fake_root.host()  # the kernel would allow mem: pm-utils' "no" is final
    lib = load(fake_root.path, VIRNODESUSPEND_BACKENDS=None, PATH=str(fake_bin))
    mask = ctypes.c_uint()
    assert lib.virNodeSuspendGetTargetMask(ctypes.byref(mask)) == 0 and mask.value == 0b010
    assert lib.virNodeSuspend(1, 60, 0) == 0
    # The stand-in "sleeps" until its line is read.
    assert read_fifo(tmp_path / "pm-utils.fifo") == "pm-hibernate \n"
    assert lib.virNodeSuspendWait() == 0, lib.virNodeSuspendGetLastErrorMessage()
    assert fake_root.read("sys/class/rtc/rtc0/wakealarm") == "0"
    assert fake_root.read("sys/power/state") == "freeze mem disk", "the kernel was not used"
