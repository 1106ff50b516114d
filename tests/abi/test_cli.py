"""The command-line tool (tools/virnodesuspend.c), run as a person runs it, on fake roots:
what it prints, its exit status, and the libvirt error on failure. What the library does
with the request (its alarm, the kernel's files) is tested below this layer: in the Rust
unit tests and tests-c/."""

import datetime
import errno
import json
import os
import subprocess
import time

import pytest

from fakes import FakeRoot, environment
from lifetime import terminate_with_parent

CLI = os.environ.get("VIRNODESUSPEND_CLI")
pytestmark = pytest.mark.skipif(not CLI, reason="VIRNODESUSPEND_CLI is not set (meson sets it)")


def cli_environment(root, delay="0", backends="kernel"):
    return {**os.environ, **environment(root, VIRNODESUSPEND_DELAY=delay, VIRNODESUSPEND_BACKENDS=backends)}


def virnodesuspend(*args, root, delay="0", backends="kernel", timeout=60):
    environment = cli_environment(root, delay, backends)
    return subprocess.run([CLI, *args], env=environment, capture_output=True, text=True, timeout=timeout)


def test_caps_lists_each_target_and_the_backend(fake_root):
    fake_root.host(swap=False)
    result = virnodesuspend("caps", root=fake_root.path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "backend: kernel\nmem: supported\ndisk: unsupported\nhybrid: unsupported\n"


def test_caps_as_json(fake_root):
    fake_root.host()
    result = virnodesuspend("caps", "--json", root=fake_root.path)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"backend": "kernel", "targets": ["mem", "disk", "hybrid"]}


def test_caps_when_no_backend_is_available(fake_root):
    result = virnodesuspend("caps", "--json", root=fake_root.path)
    assert json.loads(result.stdout) == {"backend": None, "targets": []}
    assert virnodesuspend("caps", root=fake_root.path).stdout.startswith("backend: none\nmem: unsupported\n")


def test_suspend_waits_until_the_host_is_back(fake_root):
    fake_root.host()
    result = virnodesuspend("suspend", "mem", "60", root=fake_root.path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "suspend to mem requested; the RTC wakes the host 60 s from now\nthe host is back\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["disk", "60"], "argument unsupported: Suspend-to-Disk"),
        (["mem", "59"], "invalid argument: Suspend duration is too short, must be at least 60 seconds"),
        (
            ["mem", "10000000000"],
            "invalid argument: Suspend duration 10000000000 is too long, "
            "the RTC cannot wake the host after 2099-12-31 23:59:59 UTC",
        ),
    ],
)
def test_refused_suspend_prints_the_libvirt_error(fake_root, args, message):
    fake_root.host(swap=False)
    result = virnodesuspend("suspend", *args, root=fake_root.path)
    code = 74 if "unsupported" in message else 8
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"virnodesuspend: suspend refused: {message}\nvirnodesuspend: libvirt error code {code}, domain 0\n"


def test_failed_suspend_prints_why(fake_root):
    fake_root.host()
    state = fake_root.path / "sys/power/state"
    state_as_a_fifo(state)
    process = start("suspend", "mem", "60", root=fake_root.path, delay="0")
    # Accepted (the states were read through the FIFO), the file the suspend writes is a
    # full device.
    answer_the_probe(state, then=lambda: (state.unlink(), state.symlink_to("/dev/full")))
    assert finished(process) == (
        1,
        "suspend to mem requested; the RTC wakes the host 60 s from now\n",
        f"virnodesuspend: suspend failed: Unable to write 'mem' to '{state}': No space left on device\n"
        "virnodesuspend: libvirt error code 38, domain 0\n",
    )


@pytest.mark.parametrize(
    "args, problem",
    [
        ([], "expected a command"),
        (["sleep"], "unknown command: sleep"),
        (["caps", "--xml"], "unknown argument: --xml"),
        (["suspend", "mem"], "expected TARGET and DURATION"),
        (["suspend", "ram", "60"], "unknown target (mem, disk or hybrid): ram"),
        (["suspend", "mem", "-60"], "invalid duration (whole seconds): -60"),
        (["suspend", "mem", "60s"], "invalid duration (whole seconds): 60s"),
        (["suspend", "mem", "99999999999999999999"], "invalid duration (whole seconds): 99999999999999999999"),
        (["status", "--xml"], "unknown argument: --xml"),
        (["abort", "now"], "unknown argument: now"),
        (["wait", "--json"], "unknown argument: --json"),
    ],
)
def test_bad_usage_exits_2_with_the_usage(fake_root, args, problem):
    result = virnodesuspend(*args, root=fake_root.path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"virnodesuspend: {problem}\n\nUsage: virnodesuspend ")


@pytest.mark.parametrize("args", [["--help"]] + [[command, "--help"] for command in ["caps", "suspend", "status", "abort", "wait"]])
def test_help(fake_root, args):
    result = virnodesuspend(*args, root=fake_root.path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("Usage: virnodesuspend ")


# The host's request, seen and cancelled from other processes (virNodeSuspendGetInfo,
# virNodeSuspendAbort, virNodeSuspendWait).

IDLE = {"state": "idle", "target": None, "pid": None, "backend": None, "accepted_at": None, "wake_at": None}
MEM_3650 = "suspend to mem requested; the RTC wakes the host 3650 s from now\n"


def start(*args, root, delay="0"):
    """The tool running in the background, its output read by the test."""
    return subprocess.Popen(
        [CLI, *args],
        env=cli_environment(root, delay),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=terminate_with_parent,
    )


def finished(process, timeout=60):
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def status(root):
    result = virnodesuspend("status", "--json", root=root)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return json.loads(result.stdout)


def wait_until(condition, what):
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def waiting_for_the_record(pid):
    """Whether process PID is asleep in poll(2), as its wchan shows: the library polls in
    one place only, a wait watching the record of another process's request."""
    with open(f"/proc/{pid}/wchan") as wchan:
        return "poll" in wchan.read()


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_as_a_fifo(state):
    """Makes STATE (sys/power/state) a FIFO, before the tool starts: its capability query
    then waits for answer_the_probe."""
    state.unlink()
    os.mkfifo(state)


def answer_the_probe(state, then):
    """Once a process opens the FIFO at STATE for reading (the kernel backend's capability
    query), gives it "freeze mem disk"; before that reader sees the end of it, runs THEN,
    which puts something else at STATE for the suspend's write."""
    deadline = time.monotonic() + 30
    while True:
        try:
            fifo = os.open(state, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            assert e.errno == errno.ENXIO, e  # no reader yet
            assert time.monotonic() < deadline, "the capability query never read sys/power/state"
            time.sleep(0.01)
    try:
        os.write(fifo, b"freeze mem disk")
        then()
    finally:
        os.close(fifo)


@pytest.fixture
def pending(fake_root):
    """A request made by another process (`suspend mem 3650`, delay 3600), in its delay:
    the process, blocked in its wait."""
    fake_root.host()
    owner = start("suspend", "mem", "3650", root=fake_root.path, delay="3600")
    assert owner.stdout.readline() == MEM_3650
    yield owner
    if owner.poll() is None:
        owner.kill()
    owner.communicate()


def test_status_on_a_host_that_never_had_a_request(fake_root):
    result = virnodesuspend("status", "--json", root=fake_root.path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        '{"state": "idle", "target": null, "pid": null, "backend": null, '
        '"accepted_at": null, "wake_at": null, "last": null}\n'
    )
    result = virnodesuspend("status", root=fake_root.path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "state: idle\ntarget: none\npid: none\nbackend: none\naccepted at: none\nwakes at: none\nlast: none\n"
    )


def test_status_shows_a_request_made_by_another_process(fake_root):
    fake_root.host()
    before = int(time.time())
    owner = start("suspend", "mem", "3650", root=fake_root.path, delay="3600")
    try:
        assert owner.stdout.readline() == MEM_3650
        after = time.time()
        seen = status(fake_root.path)
        wake_at = int(fake_root.read("sys/class/rtc/rtc0/wakealarm"))
        assert before <= seen["accepted_at"] <= after
        assert seen == {
            "state": "pending",
            "target": "mem",
            "pid": owner.pid,
            "backend": "kernel",
            "accepted_at": seen["accepted_at"],
            "wake_at": wake_at,
            "last": None,
        }
        text = virnodesuspend("status", root=fake_root.path)
        assert (text.returncode, text.stderr) == (0, "")
        accepted_at = seen["accepted_at"]
        assert text.stdout == (
            f"state: pending\ntarget: mem\npid: {owner.pid}\nbackend: kernel\n"
            f"accepted at: {accepted_at} ({utc(accepted_at)})\nwakes at: {wake_at} ({utc(wake_at)})\n"
            "last: none\n"
        )
        assert owner.poll() is None  # still in its wait
    finally:
        owner.kill()
        owner.communicate()


def test_abort_from_another_process_cancels_the_pending_request(fake_root, pending):
    aborter = start("abort", root=fake_root.path)
    assert finished(aborter) == (0, "the pending suspend request was aborted\n", "")
    error = f"operation aborted: the suspend request was aborted by process {aborter.pid}"
    assert status(fake_root.path) == {**IDLE, "last": {"outcome": "aborted", "target": "mem", "error": error}}
    assert finished(pending) == (
        1,
        "",
        f"virnodesuspend: suspend failed: {error}\nvirnodesuspend: libvirt error code 78, domain 0\n",
    )


def test_status_and_abort_never_read_the_kernel_files(fake_root, pending):
    # Opening the FIFO for reading would block: the capability query would hang them.
    state = fake_root.path / "sys/power/state"
    state.unlink()
    os.mkfifo(state)
    assert virnodesuspend("status", root=fake_root.path, timeout=20).stdout.startswith("state: pending\n")
    assert json.loads(virnodesuspend("status", "--json", root=fake_root.path, timeout=20).stdout)["pid"] == pending.pid
    assert virnodesuspend("abort", root=fake_root.path, timeout=20).returncode == 0
    assert finished(pending)[0] == 1


def test_abort_with_nothing_in_progress_exits_1(fake_root):
    fake_root.host()
    for _ in range(2):  # a host that never had a request, then one whose request is over
        result = virnodesuspend("abort", root=fake_root.path)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            "virnodesuspend: abort refused: Requested operation is not valid: no suspend request is in progress\n"
            "virnodesuspend: libvirt error code 55, domain 0\n"
        )
        assert virnodesuspend("suspend", "mem", "60", root=fake_root.path).returncode == 0


def test_wait_in_another_process_returns_when_the_host_is_back(fake_root):
    fake_root.host()
    state = fake_root.path / "sys/power/state"
    state_as_a_fifo(state)
    owner = start("suspend", "mem", "60", root=fake_root.path, delay="0")
    try:
        # The suspend's write to the FIFO blocks until the test reads it: the host "sleeps".
        answer_the_probe(state, then=lambda: (state.unlink(), os.mkfifo(state)))
        assert owner.stdout.readline() == "suspend to mem requested; the RTC wakes the host 60 s from now\n"
        wait_until(lambda: status(fake_root.path)["state"] == "suspending", "the suspend started")
        # Too late to abort, and nothing changes.
        result = virnodesuspend("abort", root=fake_root.path)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            "virnodesuspend: abort refused: Requested operation is not valid: "
            "the suspend has already started, it can no longer be aborted\n"
            "virnodesuspend: libvirt error code 55, domain 0\n"
        )
        assert status(fake_root.path)["state"] == "suspending"
        waiter = start("wait", root=fake_root.path)
        wait_until(lambda: waiting_for_the_record(waiter.pid), "the wait watches the record")
        assert waiter.poll() is None
        with open(state) as fifo:
            assert fifo.read() == "mem"
        assert finished(waiter) == (0, "the host is back\n", "")
        assert finished(owner) == (0, "the host is back\n", "")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.communicate()
    assert status(fake_root.path) == {**IDLE, "last": {"outcome": "back", "target": "mem", "error": None}}
    # Over: wait tells how the host's last request ended, at once.
    assert finished(start("wait", root=fake_root.path)) == (0, "the host is back\n", "")


def test_wait_in_another_process_exits_1_when_the_request_is_aborted(fake_root, pending):
    waiter = start("wait", root=fake_root.path)
    wait_until(lambda: waiting_for_the_record(waiter.pid), "the wait watches the record")
    aborter = start("abort", root=fake_root.path)
    assert finished(aborter)[0] == 0
    error = f"operation aborted: the suspend request was aborted by process {aborter.pid}"
    assert finished(waiter) == (
        1,
        "",
        f"virnodesuspend: suspend request failed: {error}\nvirnodesuspend: libvirt error code 78, domain 0\n",
    )
    assert finished(pending)[0] == 1


def test_wait_with_no_request_ever_made_exits_1(fake_root):
    result = virnodesuspend("wait", root=fake_root.path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "virnodesuspend: suspend request failed: Requested operation is not valid: no suspend request was made\n"
        "virnodesuspend: libvirt error code 55, domain 0\n"
    )


def test_status_json_escapes_the_error(tmp_path):
    # A root whose name holds what JSON must escape: the failed write's error names it.
    root = FakeRoot(tmp_path / 'root "quoted" back\\slash\ttab\nnewline\x07bell')
    root.path.mkdir()
    root.host()
    state = root.path / "sys/power/state"
    state_as_a_fifo(state)
    owner = start("suspend", "mem", "60", root=root.path, delay="0")
    answer_the_probe(state, then=lambda: (state.unlink(), state.symlink_to("/dev/full")))
    code, _, stderr = finished(owner)
    assert code == 1 and stderr.endswith("libvirt error code 38, domain 0\n")
    error = f"Unable to write 'mem' to '{state}': No space left on device"
    result = virnodesuspend("status", "--json", root=root.path)
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {**IDLE, "last": {"outcome": "failed", "target": "mem", "error": error}}
    assert '\\"quoted\\" back\\\\slash\\u0009tab\\u000anewline\\u0007bell/' in result.stdout
    assert result.stdout.count("\n") == 1
