"""The suite's own isolation: virsh reaches the test's daemon and no other, even from a
chroot on a host where a libvirtd listens; and a pytest session ended by a signal leaves
no daemon or bus running."""

import json
import pathlib
import signal
import subprocess
import sys

import pytest

from lifetime import pytest_session, terminate_with_parent

HERE = pathlib.Path(__file__).resolve().parent


def test_virsh_in_a_chroot_reaches_the_tests_daemon_not_the_default_socket(tmp_path, qemu, fake_bin, no_bus):
    """In a chroot, nsenter --mount alone would put virsh at the namespace's root, outside
    the chroot, where `qemu:///system` is this machine's libvirtd (here a decoy), and the
    daemon's own paths are not the chroot's (in_a_chroot.py)."""
    (tmp_path / "root").mkdir()
    (tmp_path / "inside").mkdir()
    config = {
        "root": str(tmp_path / "root"),
        "inside": str(tmp_path / "inside"),
        "qemu": str(qemu),
        "path": f"{fake_bin}:{qemu / 'bin'}",
        "bus": no_bus,
    }
    process = subprocess.run(
        ["/usr/bin/unshare", "--mount", "--propagation", "private", "--",
         sys.executable, str(HERE / "in_a_chroot.py"), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=terminate_with_parent,
    )
    assert process.returncode == 0, process.stderr
    seen = json.loads(process.stdout)
    assert seen["decoy_connections"] == []
    assert seen["returncode"] == 0, seen["stderr"]
    assert "Running hypervisor: QEMU" in seen["stdout"]


SESSION = """
import os
import pathlib

import pytest


@pytest.fixture(scope="session")
def qemu():
    return pathlib.Path(os.environ["QEMU"])  # the suite's: QEMU is not probed again


def test_daemon(libvirtd, private_bus):
    private_bus.start_logind({"CanSuspend": "yes"})
    libvirtd(private_bus.address)
    open(os.environ["READY"], "w").close()
    with open(os.environ["GO"]) as go:
        go.read()
"""


@pytest.mark.parametrize(
    "ending, returncode",
    [(signal.SIGTERM, 2), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["SIGTERM", "SIGKILL"],
)
def test_a_session_ended_by_a_signal_leaves_no_daemon_or_bus_running(tmp_path, qemu, ending, returncode):
    ended = pytest_session(SESSION, HERE, tmp_path, ending, {"QEMU": str(qemu)})
    assert ended.returncode == returncode, ended.output
    assert any("libvirtd" in helper for helper in ended.helpers), ended.helpers
    assert any("dbus-daemon" in helper for helper in ended.helpers), ended.helpers
    assert ended.left_running == []
    assert ended.temporary_files == []
