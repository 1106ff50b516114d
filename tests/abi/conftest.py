"""Fixtures for the tests through the C ABI (ctypes, and the command-line tool): the built
library, fake roots, fake helper programs for libvirt, and a private system bus with a
stand-in logind.

Whatever ends the run, nothing is left behind: every directory is pytest's (tmp_path,
tmp_path_factory) or removed on the way out, and every helper process ends with the run
(lifetime.py: a SIGTERM ends the session as Ctrl-C does, so the finalizers run)."""

import json

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from fakes import environment, fake_bin, fake_root  # noqa: F401 (fixtures)
from lifetime import end_session_on_sigterm, terminate_with_parent
from private_bus import PrivateBus

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent


def pytest_configure(config):
    end_session_on_sigterm()


@pytest.fixture(scope="session")
def library():
    path = pathlib.Path(
        os.environ.get("VIRNODESUSPEND_LIBRARY", REPO / "target/debug/libvirnodesuspend.so")
    )
    assert path.exists(), f"{path} is not built (cargo build)"
    return str(path)


@pytest.fixture(params=["dbus-daemon", "dbus-broker"])
def system_bus(request, tmp_path):
    """A private bus, of each daemon a host may have; calling it puts a stand-in logind with
    the given answers on the bus and returns the bus address."""
    bus = PrivateBus(tmp_path, wake=tmp_path / "logind-wake.fifo", daemon=request.param)

    def start_logind(answers):
        bus.start_logind(answers)
        return bus.address

    start_logind.stop = bus.stop
    start_logind.daemon_pid = bus.daemon.pid
    start_logind.calls = lambda: (tmp_path / "logind.log").read_text()
    # Unless the answers give "asleep_ms", the stand-in's host sleeps until this FIFO is
    # written to (logind_standin.py).
    start_logind.wake = str(bus.wake)
    yield start_logind
    bus.stop()


def run(spec, env):
    """Runs driver.py with SPEC in a fresh process with ENV added; returns its results.
    Unless ENV says otherwise, the library gets an empty root, no system bus and no PATH (the
    fake host's environment), and its own default backends and delay: no test reaches this
    machine's /sys, RTC or bus."""
    with tempfile.TemporaryDirectory(prefix="virnodesuspend-empty-root-") as empty_root:
        process = subprocess.run(
            [sys.executable, str(HERE / "driver.py"), json.dumps(spec)],
            env={
                **os.environ,
                **environment(empty_root, VIRNODESUSPEND_BACKENDS=None, VIRNODESUSPEND_DELAY=None),
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=terminate_with_parent,
        )
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)
