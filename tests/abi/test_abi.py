"""The C ABI as a ctypes caller sees it: the error API, its thread-locality, the pending
flag across threads, and a whole request on a fake root."""

import ctypes
import threading
import time

import pytest

from conftest import NO_HOST, run
from fakes import NOW, read_fifo
from driver import Error


@pytest.fixture
def load(library, monkeypatch):
    """Loads a private copy of the library configured with the given knobs: the knobs are
    read once per process, so each test gets its own copy of the .so."""
    copies = []

    def load_with(tmp_path, **knobs):
        for name, value in {**NO_HOST, **knobs}.items():
            monkeypatch.setenv(name, value)
        copy = tmp_path / f"libvirnodesuspend-{len(copies)}.so"
        copy.write_bytes(open(library, "rb").read())
        lib = ctypes.CDLL(str(copy))
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


def wait_for(predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if predicate():
                return
        except FileNotFoundError:
            pass
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_null_mask_pointer_is_invalid_argument(library):
    [result] = run({"library": library, "libvirt": "none", "calls": [["mask_null"]]}, {})
    assert result["ret"] == -1
    assert result["error"] == {
        "code": 8,
        "domain": 0,
        "level": 2,
        "message": "bitmask in virNodeSuspendGetTargetMask must not be NULL",
        "str1": "virNodeSuspendGetTargetMask",
        "str2": "bitmask",
        "str3": None,
        "int1": 0,
        "int2": 0,
    }


def test_no_error_before_any_call(tmp_path, load, fake_root):
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path))
    assert not lib.virNodeSuspendGetLastError()
    assert lib.virNodeSuspendGetLastErrorCode() == 0
    assert lib.virNodeSuspendGetLastErrorMessage() == b"no error"


def test_error_is_reset_on_entry_and_by_reset(tmp_path, load, fake_root):
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path))
    mask = ctypes.c_uint(7)
    assert lib.virNodeSuspend(0, 60, 1) == -1
    assert lib.virNodeSuspendGetLastErrorCode() == 8
    assert lib.virNodeSuspendGetTargetMask(ctypes.byref(mask)) == 0
    assert mask.value == 0
    assert not lib.virNodeSuspendGetLastError()
    assert lib.virNodeSuspend(0, 60, 1) == -1
    lib.virNodeSuspendResetLastError()
    assert lib.virNodeSuspendGetLastErrorMessage() == b"no error"


def test_errors_are_thread_local(tmp_path, load, fake_root):
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path))
    assert lib.virNodeSuspend(0, 60, 1) == -1
    seen = {}

    def other_thread():
        seen["before"] = lib.virNodeSuspendGetLastErrorCode()
        lib.virNodeSuspend(5, 60, 0)
        seen["after"] = lib.virNodeSuspendGetLastErrorMessage()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == {"before": 0, "after": b"invalid argument: Invalid suspend target"}
    assert lib.virNodeSuspendGetLastErrorMessage() == b"unsupported flags (0x1) in function virNodeSuspend"


def test_bad_knob_is_a_configuration_error(tmp_path, load, fake_root):
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path), VIRNODESUSPEND_DELAY="soon")
    mask = ctypes.c_uint()
    assert lib.virNodeSuspendGetTargetMask(ctypes.byref(mask)) == -1
    assert lib.virNodeSuspendGetLastErrorCode() == 67
    assert lib.virNodeSuspendGetLastErrorMessage() == (
        b"unsupported configuration: VIRNODESUSPEND_DELAY must be a whole number of seconds up to 3600, not 'soon'"
    )
    # libvirt checks the flags before anything else; the configuration comes after them.
    assert lib.virNodeSuspend(0, 60, 1) == -1
    assert lib.virNodeSuspendGetLastErrorMessage() == b"unsupported flags (0x1) in function virNodeSuspend"
    assert lib.virNodeSuspend(0, 60, 0) == -1
    assert lib.virNodeSuspendGetLastErrorCode() == 67


def test_request_reaches_the_kernel_files_and_the_next_is_accepted(tmp_path, load, fake_root):
    fake_root.host()
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path), VIRNODESUSPEND_DELAY="0")
    assert lib.virNodeSuspend(0, 60, 0) == 0, lib.virNodeSuspendGetLastErrorMessage()
    wait_for(lambda: fake_root.read("sys/power/state") == "mem")
    # Accepted again once the first request is over (its alarm disarmed).
    wait_for(lambda: lib.virNodeSuspend(1, 120, 0) == 0)
    wait_for(lambda: fake_root.read("sys/power/state") == "disk")
    wait_for(lambda: fake_root.read("sys/class/rtc/rtc0/wakealarm") == "0")


# A delay of an hour: a request stays pending until the test aborts it, however slow the
# machine (the shortest duration is then 3650 s).
HOUR = "3600"


def test_alarm_is_call_time_plus_duration(tmp_path, load, fake_root):
    fake_root.host()
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path), VIRNODESUSPEND_DELAY=HOUR)
    assert lib.virNodeSuspend(0, 86400, 0) == 0
    # The RTC read NOW at the call; one more tick makes sure the full duration passes.
    assert fake_root.read("sys/class/rtc/rtc0/wakealarm") == str(NOW + 86400 + 1)
    assert fake_root.request()["state"] == "pending"
    assert fake_root.read("sys/power/state") == "freeze mem disk"  # not before the delay
    assert lib.virNodeSuspendAbort(0) == 0
    assert fake_root.read("sys/class/rtc/rtc0/wakealarm") == "0"


@pytest.mark.parametrize("duration", [10_000_000_000, 2**64 - 1])
def test_duration_beyond_the_rtc_is_refused_before_anything_changes(tmp_path, load, fake_root, duration):
    fake_root.host()
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path))
    assert lib.virNodeSuspend(0, duration, 0) == -1
    error = lib.virNodeSuspendGetLastError().contents
    assert (error.code, error.domain, error.level) == (8, 0, 2)
    assert error.message.decode() == (
        f"invalid argument: Suspend duration {duration} is too long, "
        "the RTC cannot wake the host after 2099-12-31 23:59:59 UTC"
    )
    assert fake_root.read("sys/class/rtc/rtc0/wakealarm") == ""
    assert lib.virNodeSuspend(0, 60, 0) == 0  # not left "in progress"


def test_32_racing_threads_get_one_success(tmp_path, load, fake_root):
    fake_root.host()
    # The winner's request is pending until the end, however slowly the others come.
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path), VIRNODESUSPEND_DELAY=HOUR)
    mask = ctypes.c_uint()
    assert lib.virNodeSuspendGetTargetMask(ctypes.byref(mask)) == 0
    start = threading.Barrier(32)
    results = []

    def racer():
        start.wait()
        ret = lib.virNodeSuspend(0, 3650, 0)
        results.append((ret, lib.virNodeSuspendGetLastErrorMessage()))

    threads = [threading.Thread(target=racer) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [(-1, b"Requested operation is not valid: Suspend operation already in progress")] * 31 + [
        (0, b"no error")
    ]


def test_no_rtc_fails_and_leaves_nothing_in_progress(tmp_path, load, fake_root):
    fake_root.host()
    (fake_root.path / "sys/class/rtc/rtc0/wakealarm").unlink()
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path))
    for _ in range(2):
        assert lib.virNodeSuspend(0, 60, 0) == -1
        assert lib.virNodeSuspendGetLastErrorCode() == 84
        assert lib.virNodeSuspendGetLastErrorMessage().startswith(b"Operation not supported: no real-time clock")


def test_failing_suspend_write_disarms_and_frees_the_request(tmp_path, load, fake_root):
    fake_root.host()
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path), VIRNODESUSPEND_DELAY="0")
    mask = ctypes.c_uint()
    assert lib.virNodeSuspendGetTargetMask(ctypes.byref(mask)) == 0
    state = fake_root.path / "sys/power/state"
    state.unlink()
    state.symlink_to("/dev/full")
    assert lib.virNodeSuspend(0, 60, 0) == 0
    wait_for(lambda: fake_root.read("sys/class/rtc/rtc0/wakealarm") == "0")
    wait_for(lambda: lib.virNodeSuspend(0, 60, 0) == 0)


def test_error_raised_through_libvirt_that_nothing_initialized_yet(library):
    """A program linked with libvirt that has not called it yet: libvirt 9.0 needs
    virInitialize before an error can be raised through it."""
    [result] = run({"library": library, "libvirt": "uninitialized", "calls": [["suspend", 0, 60, 1]]}, {})
    assert result["ret"] == -1
    assert result["error"]["message"] == "unsupported flags (0x1) in function virNodeSuspend"
    assert result["libvirt_error"] == result["error"]


# Through logind, each test runs in a process of its own: the library reads the system bus
# address once per process, with its knobs.


def logind_env(address, fake_root):
    fake_root.rtc()
    return {"VIRNODESUSPEND_ROOT": str(fake_root.path), "VIRNODESUSPEND_DELAY": "0", "DBUS_SYSTEM_BUS_ADDRESS": address}


def test_request_through_logind_is_in_progress_until_logind_reports_the_host_back(
    tmp_path, library, fake_root, system_bus
):
    # The stand-in's host sleeps until the test writes to system_bus.wake.
    address = system_bus({"CanSuspend": "yes", "Suspend": "ok"})
    log, alarm = str(tmp_path / "logind.log"), str(fake_root.path / "sys/class/rtc/rtc0/wakealarm")
    calls = [
        ["suspend", 0, 60, 0],
        ["until", log, "PrepareForSleep True"],
        ["suspend", 0, 60, 0],  # in progress while "asleep"
        ["write", system_bus.wake, "back"],
        ["wait"],  # returns once the request is over: the host back
        ["until_exactly", alarm, "0"],
        ["suspend", 0, 60, 0],
    ]
    results = run({"library": library, "libvirt": "none", "calls": calls}, logind_env(address, fake_root))
    assert [r["ret"] for r in results] == [0, -1, 0, 0]
    assert results[1]["error"]["code"] == 55
    assert system_bus.calls().startswith(
        "CanSuspend\nCanHibernate\nCanHybridSleep\nSuspend False\nPrepareForSleep True\nPrepareForSleep False\n"
    )


def test_bus_gone_between_query_and_suspend_frees_the_request(tmp_path, library, fake_root, system_bus):
    address = system_bus({"CanSuspend": "yes"})
    alarm = str(fake_root.path / "sys/class/rtc/rtc0/wakealarm")
    calls = [
        ["mask"],
        ["kill", system_bus.daemon_pid],  # returns once the bus has exited
        ["suspend", 0, 60, 0],
        ["until_exactly", alarm, "0"],
        ["suspend_once_free", 0, 60, 0],
    ]
    results = run({"library": library, "libvirt": "none", "calls": calls}, logind_env(address, fake_root))
    assert [(r["ret"], r.get("mask")) for r in results] == [(0, 1), (0, None), (0, None)]
    assert "Suspend" not in system_bus.calls().replace("CanSuspend", "")


def test_refused_by_logind_frees_the_request(tmp_path, library, fake_root, system_bus):
    address = system_bus({"CanSuspend": "yes", "Suspend": "error"})
    log, alarm = str(tmp_path / "logind.log"), str(fake_root.path / "sys/class/rtc/rtc0/wakealarm")
    calls = [
        ["suspend", 0, 60, 0],
        ["until", log, "Suspend False"],
        ["until_exactly", alarm, "0"],
        ["suspend_once_free", 0, 60, 0],
    ]
    results = run({"library": library, "libvirt": "none", "calls": calls}, logind_env(address, fake_root))
    assert [r["ret"] for r in results] == [0, 0]


def test_pm_utils_answers_and_carries_out_when_logind_is_unavailable(tmp_path, load, fake_root, fake_bin):
    (fake_bin / "pm-is-supported").write_text('#!/bin/sh\n[ "$1" = --hibernate ]\n')
    (fake_bin / "pm-is-supported").chmod(0o755)
    fake_root.host()  # the kernel would allow mem: pm-utils' "no" is final
    lib = load(tmp_path, VIRNODESUSPEND_ROOT=str(fake_root.path), VIRNODESUSPEND_DELAY="0", PATH=str(fake_bin))
    mask = ctypes.c_uint()
    assert lib.virNodeSuspendGetTargetMask(ctypes.byref(mask)) == 0 and mask.value == 0b010
    assert lib.virNodeSuspend(1, 60, 0) == 0
    # The stand-in "sleeps" until its line is read.
    assert read_fifo(tmp_path / "pm-utils.fifo") == "pm-hibernate \n"
    assert lib.virNodeSuspendWait() == 0, lib.virNodeSuspendGetLastErrorMessage()
    assert fake_root.read("sys/class/rtc/rtc0/wakealarm") == "0"
    assert fake_root.read("sys/power/state") == "freeze mem disk", "the kernel was not used"
