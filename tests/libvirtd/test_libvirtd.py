"""The library in libvirt's own daemon: Debian's libvirtd 9.0 with its QEMU driver, the
preload shim preloaded as the drop-in does it (the driver imports virNodeSuspend and
virNodeSuspendGetTargetMask from libvirt.so.0, so it calls the shim's, which load the
library and forward to it), driven by the real virsh. The stock daemon runs in the same
host states for comparison.

No daemon reaches this machine's power state: ours works on fake roots, every daemon's
system bus is private (or absent), and its PATH holds only stand-ins that record their
calls, and QEMU. The QEMU driver asks for the mask once per process, so each host state
gets a fresh daemon.
"""

import json
import pathlib
import os
import re
import subprocess
import time
from xml.etree import ElementTree

import pytest

from conftest import library_mask
from fakes import NOW, read_fifo

# The <power_management> elements of `virsh capabilities`, by target number.
TARGETS = ["suspend_mem", "suspend_disk", "suspend_hybrid"]

WAKEALARM = "sys/class/rtc/rtc0/wakealarm"

TOO_SHORT = "invalid argument: Suspend duration is too short, must be at least 60 seconds"
IN_PROGRESS = "Requested operation is not valid: Suspend operation already in progress"


def refused(message):
    """What virsh nodesuspend prints on standard error when the daemon refuses."""
    return f"error: The host was not suspended\nerror: {message}\n"


def power_management(daemon):
    """The <power_management> element of DAEMON's capabilities as virsh prints it, and the
    targets in it."""
    capabilities = daemon.virsh("capabilities")
    assert capabilities.returncode == 0, capabilities.stderr
    [text] = re.findall(r"<power_management/>|<power_management>.*?</power_management>", capabilities.stdout, re.S)
    return text, [child.tag for child in ElementTree.fromstring(text)]


def targets(mask):
    return [name for bit, name in enumerate(TARGETS) if mask & (1 << bit)]


def wait_until(holds):
    deadline = time.monotonic() + 30
    while not holds():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def accepted_once_free(daemon, *command):
    """Runs the virsh command until the daemon no longer refuses it as in progress (30 s
    at most): a request's record and alarm tell it over a moment before the daemon has let
    go of it."""
    deadline = time.monotonic() + 30
    while True:
        result = daemon.virsh(*command)
        if result.stderr != refused(IN_PROGRESS) or time.monotonic() > deadline:
            assert (result.returncode, result.stderr) == (0, ""), command
            return result
        time.sleep(0.05)


def kernel_with_everything(fake_root, fake_bin):
    fake_root.host()


def kernel_without_swap(fake_root, fake_bin):
    fake_root.host(swap=False)


def pm_utils_with_hibernation_only(fake_root, fake_bin):
    fake_root.rtc()
    (fake_bin / "pm-is-supported").write_text('#!/bin/sh\n[ "$1" = --hibernate ]\n')
    (fake_bin / "pm-is-supported").chmod(0o755)


def nothing_available(fake_root, fake_bin):
    # No system bus, no pm-is-supported on PATH, no /sys/power: only an RTC.
    fake_root.rtc()


@pytest.mark.parametrize(
    "host, expected",
    [
        pytest.param(kernel_with_everything, ["suspend_mem", "suspend_disk", "suspend_hybrid"], id="kernel"),
        pytest.param(kernel_without_swap, ["suspend_mem"], id="kernel-without-swap"),
        pytest.param(pm_utils_with_hibernation_only, ["suspend_disk"], id="pm-utils"),
        pytest.param(nothing_available, [], id="nothing"),
    ],
)
def test_capabilities_show_the_targets_the_library_reports(
    libvirtd, library, fake_root, fake_bin, no_bus, host, expected
):
    host(fake_root, fake_bin)
    daemon = libvirtd(no_bus, library, VIRNODESUSPEND_ROOT=str(fake_root.path))
    text, shown = power_management(daemon)
    assert shown == targets(library_mask(library, daemon)) == expected
    if not expected:
        assert text == "<power_management/>"
    # The answers in the daemon's log are ours: stock libvirt logs none.
    answers = [r for r in daemon.log() if r.function == "virNodeSuspendGetTargetMask"]
    assert [r.level for r in answers] == ["info"] * 3, answers


# The same virsh commands against the stock daemon and ours, in order.
COMMANDS = [
    ["nodesuspend", "mem", "30"],  # too short, where mem is supported
    ["nodesuspend", "disk", "60"],
    ["nodesuspend", "hybrid", "60"],
    ["nodesuspend", "foo", "60"],  # unknown: virsh refuses it itself
    ["nodesuspend", "mem", "60"],  # accepted where mem is supported (stock: the rtcwake stand-in)
    ["nodesuspend", "mem", "60"],  # then "already in progress"
]


def suspend_errors(daemon):
    return [r for r in daemon.log() if r.level == "error" and r.function.startswith("virNodeSuspend")]


@pytest.mark.parametrize(
    "logind",
    [{"CanSuspend": "yes", "CanHibernate": "no", "CanHybridSleep": "na"}, None],
    ids=["logind-suspend-only", "no-logind"],
)
def test_virsh_shows_what_it_shows_with_stock_libvirtd(
    libvirtd, library, fake_root, private_bus, tmp_path, logind
):
    """Same host state for both daemons: the same stand-in logind on the same private bus
    (or a bus without logind), and for ours a fake root with only an RTC, so that logind
    answers for ours too (stock Debian libvirt asks logind only).

    The accepted request stays in progress for both, however slowly the next command
    comes: stock's runs pm-suspend after libvirt's delay, whose stand-in sleeps until the
    test reads it (it never does); ours asks the stand-in logind, whose host sleeps until
    the test wakes it (it never does either)."""
    fake_root.rtc()
    if logind:
        private_bus.start_logind(logind)

    stock = libvirtd(private_bus.address)
    expected = [stock.virsh(*command) for command in COMMANDS]
    expected_power_management = power_management(stock)
    expected_errors = suspend_errors(stock)
    stock.stop()

    ours = libvirtd(private_bus.address, library, VIRNODESUSPEND_ROOT=str(fake_root.path))
    for command, want, got in zip(COMMANDS, expected, [ours.virsh(*command) for command in COMMANDS]):
        assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr), command
    assert power_management(ours) == expected_power_management
    assert suspend_errors(ours) == expected_errors

    # What stock libvirtd says, which ours has just said too.
    assert expected[3].stderr == "error: Invalid target\n"  # virsh's own: "foo" never reaches a daemon
    helpers_log = tmp_path / "helpers.log"
    if logind:
        assert expected_power_management[1] == ["suspend_mem"]
        assert [e.stderr for e in expected] == [
            refused(TOO_SHORT),
            refused("argument unsupported: Suspend-to-Disk"),
            refused("argument unsupported: Hybrid-Suspend"),
            "error: Invalid target\n",
            "",
            refused(IN_PROGRESS),
        ]
        # The refusals are logged; "already in progress" is not (libvirtd logs that error
        # code at debug level only).
        assert [(r.function, r.message) for r in expected_errors] == [
            ("virNodeSuspendSetNodeWakeup", TOO_SHORT),
            ("virNodeSuspend", "argument unsupported: Suspend-to-Disk"),
            ("virNodeSuspend", "argument unsupported: Hybrid-Suspend"),
        ]
        # Both daemons asked the stand-in; stock's accepted request ran the rtcwake
        # stand-in, ours armed the fake RTC.
        assert (tmp_path / "bus/logind.log").read_text().count("CanSuspend") == 2
        assert helpers_log.read_text().startswith("rtcwake -m no -s 60\n")
        assert fake_root.read(WAKEALARM) == str(NOW + 61)
    else:
        assert expected_power_management == ("<power_management/>", [])
        assert [e.stderr for e in expected] == [
            refused("argument unsupported: Suspend-to-RAM"),
            refused("argument unsupported: Suspend-to-Disk"),
            refused("argument unsupported: Hybrid-Suspend"),
            "error: Invalid target\n",
            refused("argument unsupported: Suspend-to-RAM"),
            refused("argument unsupported: Suspend-to-RAM"),
        ]
        assert [r.function for r in expected_errors] == ["virNodeSuspend"] * 5
        assert not helpers_log.exists()


# Short, for a quick suite: nothing hangs on it. The request is in progress until the test
# reads the FIFO the suspend writes to, however long the delay.
DELAY = 1

# docs/differences.md, difference 4.
TOO_LONG = (
    "invalid argument: Suspend duration 10000000000 is too long, "
    "the RTC cannot wake the host after 2099-12-31 23:59:59 UTC"
)


def kernel_daemon(libvirtd, library, fake_root, no_bus, delay):
    """A daemon with the library preloaded, on a fake host that can do everything through
    the kernel backend, with `delay` seconds before a suspend."""
    fake_root.host()
    return libvirtd(
        no_bus,
        library,
        VIRNODESUSPEND_ROOT=str(fake_root.path),
        VIRNODESUSPEND_BACKENDS="kernel",
        VIRNODESUSPEND_DELAY=str(delay),
    )


def test_suspend_reaches_the_fake_kernel_after_the_delay(libvirtd, library, fake_root, no_bus):
    daemon = kernel_daemon(libvirtd, library, fake_root, no_bus, DELAY)
    assert "Running hypervisor: QEMU" in daemon.virsh("version").stdout

    # tp-libvirt's virsh_nodesuspend negative case: a wake-up past the RTC's calendar.
    too_long = daemon.virsh("nodesuspend", "mem", "10000000000")
    assert too_long.returncode == 1
    assert too_long.stderr == refused(TOO_LONG)
    assert fake_root.read(WAKEALARM) == ""
    # Logged by the daemon under the function name libvirt's own log uses.
    assert ("error", "virNodeSuspendSetNodeWakeup", TOO_LONG) in daemon.log()

    # The capabilities are known (the duration is checked after the target): the suspend
    # now writes to a FIFO, and waits for the test to read it, as long as the host sleeps.
    state = fake_root.path / "sys/power/state"
    state.unlink()
    os.mkfifo(state)
    before = time.monotonic()
    accepted = daemon.virsh("nodesuspend", "mem", "60")
    assert (accepted.returncode, accepted.stderr) == (0, "")
    assert fake_root.read(WAKEALARM) == str(NOW + 61)

    busy = daemon.virsh("nodesuspend", "mem", "60")
    assert (busy.returncode, busy.stderr) == (1, refused(IN_PROGRESS))

    # The request reaches the kernel interface, not before the delay; once its write is
    # read, the host is back: the request is over, the alarm disarmed.
    assert read_fifo(state) == "mem"
    assert time.monotonic() - before >= DELAY
    wait_until(lambda: fake_root.request().get("last_outcome") == "back")
    assert fake_root.read(WAKEALARM) == "0"

    # The next request is accepted; the kernel refuses it this time (a write to /dev/full
    # fails), and the daemon's log says why (docs/differences.md, difference 8).
    state.unlink()
    state.symlink_to("/dev/full")
    accepted_once_free(daemon, "nodesuspend", "mem", "60")
    assert fake_root.read(WAKEALARM) == str(NOW + 61)
    failed = (
        "warning",
        "virNodeSuspendHelper",
        f"Failed to suspend the host: Unable to write 'mem' to '{state}': No space left on device",
    )
    wait_until(lambda: failed in daemon.log())
    wait_until(lambda: fake_root.read(WAKEALARM) == "0")
    print("".join(daemon.transcript))


CLI = os.environ.get("VIRNODESUSPEND_CLI")


def cli(fake_root, *arguments):
    """The command-line tool on the daemon's fake root, from a shell beside the daemon."""
    environment = {"PATH": "/usr/bin:/bin", "VIRNODESUSPEND_ROOT": str(fake_root.path)}
    return subprocess.run([CLI, *arguments], env=environment, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not CLI, reason="VIRNODESUSPEND_CLI is not set (meson sets it)")
def test_the_daemons_request_is_seen_and_aborted_from_a_shell(libvirtd, library, fake_root, no_bus):
    # A delay of an hour: the request stays pending until it is aborted.
    daemon = kernel_daemon(libvirtd, library, fake_root, no_bus, 3600)
    accepted = daemon.virsh("nodesuspend", "mem", "3650")
    assert (accepted.returncode, accepted.stderr) == (0, "")

    status = cli(fake_root, "status", "--json")
    assert status.returncode == 0, status.stderr
    pending = json.loads(status.stdout)
    print("status --json of the daemon's request:", status.stdout, end="")
    assert pending["state"] == "pending"
    assert (pending["target"], pending["backend"]) == ("mem", "kernel")
    assert pending["pid"] == daemon.process.pid
    assert pending["wake_at"] == int(fake_root.read(WAKEALARM)) == NOW + 3651
    assert pending["last"] is None

    aborted = cli(fake_root, "abort")
    assert aborted.returncode == 0, aborted.stderr
    # In effect when abort returns: the alarm disarmed, the request idle and aborted.
    assert fake_root.read(WAKEALARM) == "0"
    after = json.loads(cli(fake_root, "status", "--json").stdout)
    print("status --json after abort:", json.dumps(after))
    assert after["state"] == "idle"
    assert (after["last"]["outcome"], after["last"]["target"]) == ("aborted", "mem")
    assert after["last"]["error"].startswith("operation aborted: the suspend request was aborted by process ")

    # The daemon's log says so; the suspend never started; the next request is accepted.
    def logged_abort():
        return any(
            (level, function) == ("warning", "virNodeSuspendHelper")
            and message.startswith("Suspend request not carried out: operation aborted: ")
            for level, function, message in daemon.log()
        )

    wait_until(logged_abort)
    assert fake_root.read("sys/power/state") == "freeze mem disk"
    again = daemon.virsh("nodesuspend", "mem", "3650")
    assert (again.returncode, again.stderr) == (0, "")
    assert json.loads(cli(fake_root, "status", "--json").stdout)["state"] == "pending"
    assert cli(fake_root, "abort").returncode == 0



def mapped_files(daemon):
    """The files the daemon's process maps."""
    fields = (line.split(maxsplit=5) for line in pathlib.Path(f"/proc/{daemon.process.pid}/maps").open())
    return {f[5].strip() for f in fields if len(f) == 6}


def test_the_daemon_maps_the_shim_and_loads_the_library_at_its_first_query(
    libvirtd, library, preload, fake_root, no_bus
):
    """The drop-in preloads the shim, not the library. libvirt 9.0 asks for the mask at
    the first call that needs the host's capabilities, not when the daemon starts: until
    then the daemon maps the shim only."""
    daemon = kernel_daemon(libvirtd, library, fake_root, no_bus, DELAY)
    files = mapped_files(daemon)
    assert str(preload) in files
    assert not [file for file in files if "libvirnodesuspend" in file]
    assert power_management(daemon)[1] == targets(library_mask(library, daemon))
    assert str(library) in mapped_files(daemon)
