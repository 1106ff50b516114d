"""Fixtures for the tests through the C ABI (ctypes, and the command-line tool): the built
library, fake roots, fake helper programs for libvirt, and a private system bus with a
stand-in logind."""

import json

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from fakes import fake_bin, fake_root  # noqa: F401 (fixtures)
from private_bus import PrivateBus

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent

# Nothing of this machine's: no system bus (a socket path that cannot exist), and a PATH
# with nothing in it (so no real pm-is-supported or pm-suspend is ever found). Tests that
# want a bus or helpers put their own stand-ins there.
NO_HOST = {
    "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/virnodesuspend-test-bus",
    "PATH": tempfile.mkdtemp(prefix="virnodesuspend-empty-path-"),
}


@pytest.fixture(scope="session")
def library():
    path = pathlib.Path(
        os.environ.get("VIRNODESUSPEND_LIBRARY", REPO / "target/debug/libvirnodesuspend.so")
    )
    assert path.exists(), f"{path} is not built (cargo build)"
    return str(path)


@pytest.fixture
def system_bus(tmp_path):
    """A private bus; calling it puts a stand-in logind with the given answers on the bus
    and returns the bus address."""
    bus = PrivateBus(tmp_path)

    def start_logind(answers):
        bus.start_logind(answers)
        return bus.address

    start_logind.stop = bus.stop
    start_logind.daemon_pid = bus.daemon.pid
    start_logind.calls = lambda: (tmp_path / "logind.log").read_text()
    yield start_logind
    bus.stop()


def run(spec, env):
    """Runs driver.py with SPEC in a fresh process with ENV added; returns its results.
    Unless ENV says otherwise, the library gets an empty root and no system bus: no test
    reaches this machine's /sys, RTC or bus."""
    empty_root = tempfile.mkdtemp(prefix="virnodesuspend-empty-root-")
    process = subprocess.run(
        [sys.executable, str(HERE / "driver.py"), json.dumps(spec)],
        env={**os.environ, **NO_HOST, "VIRNODESUSPEND_ROOT": empty_root, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    os.rmdir(empty_root)
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)
