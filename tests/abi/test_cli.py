"""The command-line tool (tools/virnodesuspend.c), run as a person runs it, on fake roots:
what it prints, its exit status, and the libvirt error on failure."""

import json
import os
import subprocess

import pytest

from conftest import NO_HOST

CLI = os.environ.get("VIRNODESUSPEND_CLI")
pytestmark = pytest.mark.skipif(not CLI, reason="VIRNODESUSPEND_CLI is not set (meson sets it)")


def virnodesuspend(*args, root, delay="0", backends="kernel"):
    environment = {
        **os.environ,
        **NO_HOST,
        "VIRNODESUSPEND_ROOT": str(root),
        "VIRNODESUSPEND_DELAY": delay,
        "VIRNODESUSPEND_BACKENDS": backends,
    }
    return subprocess.run([CLI, *args], env=environment, capture_output=True, text=True, timeout=60)


def test_caps_lists_each_target_and_the_backend(fake_root):
    fake_root.host(states="freeze mem disk", swap=False)
    result = virnodesuspend("caps", root=fake_root.path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "backend: kernel\nmem: supported\ndisk: unsupported\nhybrid: unsupported\n"


def test_caps_as_json(fake_root):
    fake_root.host(disk_modes="[platform] shutdown reboot suspend")
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
    assert fake_root.read("sys/power/state") == "mem"
    assert fake_root.read("sys/class/rtc/rtc0/wakealarm") == "0"


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
    environment = {
        **os.environ,
        **NO_HOST,
        "VIRNODESUSPEND_ROOT": str(fake_root.path),
        "VIRNODESUSPEND_DELAY": "10",
        "VIRNODESUSPEND_BACKENDS": "kernel",
    }
    process = subprocess.Popen(
        [CLI, "suspend", "mem", "60"], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # Accepted (the states were read, the alarm armed): within the delay (10 s, ample on a
    # loaded machine), the file the suspend will write becomes a full device.
    assert process.stdout.readline().startswith("suspend to mem requested")
    state.unlink()
    state.symlink_to("/dev/full")
    stdout, stderr = process.communicate(timeout=60)
    assert (process.returncode, stdout) == (1, "")
    assert stderr == (
        f"virnodesuspend: suspend failed: Unable to write 'mem' to '{state}': No space left on device\n"
        "virnodesuspend: libvirt error code 38, domain 0\n"
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
    ],
)
def test_bad_usage_exits_2_with_the_usage(fake_root, args, problem):
    result = virnodesuspend(*args, root=fake_root.path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"virnodesuspend: {problem}\n\nUsage: virnodesuspend ")


@pytest.mark.parametrize("args", [["--help"], ["caps", "--help"], ["suspend", "--help"]])
def test_help(fake_root, args):
    result = virnodesuspend(*args, root=fake_root.path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("Usage: virnodesuspend ")
