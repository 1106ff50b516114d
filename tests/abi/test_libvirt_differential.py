"""Differential tests: the same calls against Debian's libvirt 9.0 (libvirt.so.0's private
virNodeSuspend / virNodeSuspendGetTargetMask) and against this library, in the same host
state. Return values, masks and every field of the error must be equal, both as this
library reports them itself and as libvirt's virGetLastError() shows them when libvirt is
in the process.

libvirt 9.0 from Debian asks systemd-logind only (it is built without pm-utils). Both
libraries share the host state: the same stand-in logind on the same private bus (or no
bus at all). Ours gets a fake root with only an RTC, so that logind is what answers for
it too. rtcwake and pm-utils are stand-ins on PATH, so libvirt's success path touches
neither this machine's clock nor its power state.

An accepted request stays in progress for both, however slowly the calls come: libvirt's
runs pm-suspend after its delay, whose stand-in sleeps until the test reads it (it never
does), and ours asks the stand-in logind, whose host sleeps until the test wakes it (it
never does either).
"""

import pytest

from conftest import run
from fakes import NOW

# In any host state: flags are checked first, then (after the capability query) the
# target; for an unknown or unsupported target the duration is never looked at.
CHECK_ORDER = [
    ["mask"],
    ["suspend", 0, 60, 1],
    ["suspend", 0, 60, 0x80000000],
    ["suspend", 9, 1, 0x10],
    ["suspend", 3, 30, 0],
    ["suspend", 0xFFFFFFFF, 0, 0],
]

UNSUPPORTED_EVERYTHING = CHECK_ORDER + [
    ["suspend", 0, 60, 0],
    ["suspend", 1, 60, 0],
    ["suspend", 2, 60, 0],
    ["suspend", 0, 30, 0],
    ["mask"],
]

MEM_AND_DISK = CHECK_ORDER + [
    ["suspend", 2, 60, 0],
    ["suspend", 2, 10, 0],
    ["suspend", 0, 59, 0],
    ["suspend", 1, 0, 0],
    ["suspend", 7, 59, 0],
    ["suspend", 0, 60, 0],
    # A request is now pending: "in progress" comes before the target and the duration,
    # but after the flags.
    ["suspend", 0, 60, 0],
    ["suspend", 1, 60, 0],
    ["suspend", 7, 1, 0],
    ["suspend", 1, 60, 0x2],
    ["mask"],
]

EVERYTHING = CHECK_ORDER + [
    ["suspend", 2, 59, 0],
    ["suspend", 2, 60, 0],
    ["suspend", 0, 60, 0],
]


def compare(calls, libvirt_env, ours_env, library):
    """Runs CALLS in three processes and checks that all agree with libvirt."""
    expected = run({"library": None, "libvirt": "called", "calls": calls}, libvirt_env)
    alone = run({"library": library, "libvirt": "none", "calls": calls}, ours_env)
    beside = run({"library": library, "libvirt": "loaded", "calls": calls}, ours_env)
    for want, got_alone, got_beside in zip(expected, alone, beside):
        call = want["call"]
        assert got_alone["ret"] == want["ret"], call
        assert got_alone.get("mask") == want.get("mask"), call
        assert got_alone["error"] == want["error"], call
        assert got_beside["ret"] == want["ret"], call
        assert got_beside.get("mask") == want.get("mask"), call
        assert got_beside["error"] == want["error"], call
        assert got_beside["libvirt_error"] == want["error"], f"{call}: as libvirt sees ours"
    return expected


def same_host(address, fake_root, fake_bin):
    """The environments of libvirt and of this library for one host state."""
    libvirt = {"DBUS_SYSTEM_BUS_ADDRESS": address, "PATH": str(fake_bin)}
    return libvirt, {**libvirt, "VIRNODESUSPEND_ROOT": str(fake_root.path)}


def test_no_backend_available(tmp_path, fake_root, fake_bin, library):
    # No bus, no pm-is-supported on PATH, no /sys/power: nothing can answer.
    fake_root.rtc()
    results = compare(
        UNSUPPORTED_EVERYTHING,
        *same_host(f"unix:path={tmp_path}/no-bus", fake_root, fake_bin),
        library,
    )
    assert results[0]["mask"] == 0
    assert results[1]["error"]["message"] == "unsupported flags (0x1) in function virNodeSuspend"


def test_available_but_nothing_supported(system_bus, fake_root, fake_bin, library):
    address = system_bus({"CanSuspend": "no", "CanHibernate": "na", "CanHybridSleep": "no"})
    fake_root.rtc()
    compare(UNSUPPORTED_EVERYTHING, *same_host(address, fake_root, fake_bin), library)


def test_mem_and_disk_supported(tmp_path, system_bus, fake_root, fake_bin, library):
    address = system_bus({"CanSuspend": "yes", "CanHibernate": "challenge", "CanHybridSleep": "no"})
    fake_root.rtc()
    results = compare(MEM_AND_DISK, *same_host(address, fake_root, fake_bin), library)
    assert results[0]["mask"] == 0b011
    assert [r["ret"] for r in results].count(0) == 3  # two masks and one request
    # libvirt's success went through the rtcwake stand-in; ours armed the fake RTC.
    assert (tmp_path / "helpers.log").read_text().startswith("rtcwake -m no -s 60")
    assert fake_root.read("sys/class/rtc/rtc0/wakealarm") == str(NOW + 61)


def test_everything_supported(tmp_path, system_bus, fake_root, fake_bin, library):
    address = system_bus({"CanSuspend": "yes", "CanHibernate": "yes", "CanHybridSleep": "challenge"})
    fake_root.rtc()
    results = compare(EVERYTHING, *same_host(address, fake_root, fake_bin), library)
    assert results[0]["mask"] == 0b111
    # Both asked logind, once per process: libvirt, ours alone, ours beside libvirt.
    assert (tmp_path / "logind.log").read_text().count("CanSuspend") == 3


def logged(lines, level, function, message):
    """Whether libvirt's log LINES hold MESSAGE at LEVEL from FUNCTION."""
    return any(f": {level} : {function}:" in l and l.endswith(f" : {message}") for l in lines)


def test_errors_and_failed_suspend_reach_libvirts_log(tmp_path, fake_root, library):
    """With libvirt in the process, errors are logged by libvirt under libvirt's function
    names, the capability answers with their reasons, and a suspend that fails after the
    call returned as a warning (libvirt 9.0 logs only "Failed to suspend the host"; ours
    says why)."""
    fake_root.host(disk_modes="[platform] shutdown reboot")  # no hybrid, and a reason logged
    log = tmp_path / "libvirt.log"
    calls = [
        ["mask"],
        ["suspend", 0, 59, 0],
        ["suspend", 7, 60, 0],
        ["link", "sys/power/state", "/dev/full"],
        ["suspend", 0, 60, 0],
        ["wait"],  # returns once the suspend has failed (and the warning is logged)
    ]
    *_, failed = run(
        {"library": library, "libvirt": "loaded", "calls": calls},
        {
            "VIRNODESUSPEND_ROOT": str(fake_root.path),
            "VIRNODESUSPEND_DELAY": "0",
            "LIBVIRT_LOG_OUTPUTS": f"1:file:{log}",
            "LIBVIRT_DEBUG": "1",
        },
    )
    lines = log.read_text().splitlines()
    assert logged(
        lines,
        "error",
        "virNodeSuspendSetNodeWakeup",
        "invalid argument: Suspend duration is too short, must be at least 60 seconds",
    ), lines
    assert logged(lines, "error", "virNodeSuspend", "invalid argument: Invalid suspend target"), lines
    assert logged(lines, "info", "virNodeSuspendGetTargetMask", "Suspend-to-RAM: supported (kernel)"), lines
    disk = fake_root.path / "sys/power/disk"
    assert logged(
        lines,
        "info",
        "virNodeSuspendGetTargetMask",
        f"Hybrid-Suspend: unsupported (kernel): {disk} does not offer the 'suspend' mode",
    ), lines
    state = fake_root.path / "sys/power/state"
    why = f"Unable to write 'mem' to '{state}': No space left on device"
    assert (failed["ret"], failed["error"]["code"], failed["error"]["message"]) == (-1, 38, why)
    assert logged(lines, "warning", "virNodeSuspendHelper", f"Failed to suspend the host: {why}"), lines


def test_alarm_that_cannot_be_disarmed_once_the_host_is_back_reaches_libvirts_log(
    tmp_path, fake_root, library
):
    """A request whose host came back, but whose alarm could not then be disarmed, failed:
    it is logged as a warning as any failed suspend is (its reason: the alarm's)."""
    fake_root.rtc()
    wakealarm = fake_root.path / "sys/class/rtc/rtc0/wakealarm"
    helpers = tmp_path / "bin"
    helpers.mkdir()
    # pm-utils answers yes, and its pm-suspend "sleeps" and comes back with the alarm file
    # replaced by a directory: the disarm after it cannot read the alarm.
    for name, body in [
        ("pm-is-supported", "exit 0"),
        ("pm-suspend", f'/bin/rm -f "{wakealarm}" && /bin/mkdir "{wakealarm}"'),
    ]:
        (helpers / name).write_text(f"#!/bin/sh\n{body}\n")
        (helpers / name).chmod(0o755)
    log = tmp_path / "libvirt.log"
    *_, waited = run(
        {"library": library, "libvirt": "loaded", "calls": [["suspend", 0, 60, 0], ["wait"]]},
        {
            "VIRNODESUSPEND_ROOT": str(fake_root.path),
            "VIRNODESUSPEND_DELAY": "0",
            "VIRNODESUSPEND_BACKENDS": "pm-utils",
            "PATH": str(helpers),
            "LIBVIRT_LOG_OUTPUTS": f"1:file:{log}",
            "LIBVIRT_DEBUG": "1",
        },
    )
    assert waited["ret"] == -1, waited
    why = waited["error"]["message"]
    assert str(wakealarm) in why, why
    lines = log.read_text().splitlines()
    assert logged(lines, "warning", "virNodeSuspendHelper", f"Failed to suspend the host: {why}"), lines


def test_logind_answers_an_error(system_bus, fake_root, fake_bin, library):
    """The query fails (VIR_ERR_DBUS_SERVICE in the D-Bus domain, GLib's text), and is
    not cached: the next call asks again, and fails again."""
    address = system_bus({"CanSuspend": "error", "CanHibernate": "yes", "CanHybridSleep": "no"})
    fake_root.rtc()
    calls = [["mask"], ["mask"], ["suspend", 0, 60, 0], ["suspend", 0, 60, 1]]
    results = compare(calls, *same_host(address, fake_root, fake_bin), library)
    assert [r["ret"] for r in results] == [-1, -1, -1, -1]
    assert (results[0]["error"]["code"], results[0]["error"]["domain"]) == (89, 47)
    assert results[0]["error"]["message"] == (
        "error from service: GDBus.Error:org.freedesktop.login1.SleepVerbNotSupported: "
        "CanSuspend is refused by the stand-in"
    )
