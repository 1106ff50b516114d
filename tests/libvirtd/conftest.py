"""Fixtures for the libvirtd suite: the library, fake roots, stand-in helpers, a private
system bus, and daemons that are stopped at the end of each test whatever happened (a
SIGTERM to pytest too: lifetime.py).

Fake roots, stand-ins and the private bus are the C-ABI tests' own (tests/abi)."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ABI = HERE.parent / "abi"
sys.path.insert(0, str(ABI))

# fakes and private_bus are found through ABI, put on the path above.
from fakes import fake_bin, fake_root  # noqa: F401 (fixtures)
from libvirtd import Libvirtd
from lifetime import end_session_on_sigterm
from private_bus import PrivateBus


def pytest_configure(config):
    end_session_on_sigterm()


def built(variable, what):
    path = os.environ.get(variable)
    assert path, f"{variable} must name {what} (scripts/test-libvirtd sets it)"
    path = pathlib.Path(path).resolve()
    assert path.is_file(), f"{path} is not built"
    return path


@pytest.fixture(scope="session")
def library():
    """The library. The shim finds it by its SONAME in its directory (LD_LIBRARY_PATH)."""
    path = built("VIRNODESUSPEND_LIBRARY", "the library")
    assert (path.parent / "libvirnodesuspend.so.0").resolve() == path, f"no SONAME link to {path}"
    return path


@pytest.fixture(scope="session")
def preload():
    """The preload shim: what the drop-in preloads."""
    return built("VIRNODESUSPEND_PRELOAD", "the preload shim")


@pytest.fixture(scope="session")
def qemu(tmp_path_factory):
    """A directory with only QEMU in it, which the QEMU driver looks for on PATH, and
    libvirt's /var/cache/libvirt, both for every daemon of the run: libvirt caches what
    QEMU can do by the path it found QEMU at, so QEMU is probed once per run."""
    directory = tmp_path_factory.mktemp("qemu")
    (directory / "bin").mkdir()
    (directory / "bin/qemu-system-x86_64").symlink_to(shutil.which("qemu-system-x86_64"))
    (directory / "cache").mkdir()
    return directory


@pytest.fixture
def no_bus(tmp_path):
    """A system bus address where nothing listens."""
    return f"unix:path={tmp_path}/no-system-bus"


@pytest.fixture
def private_bus(tmp_path):
    """A private system bus without logind; a test may put the stand-in logind on it. The
    stand-in's host sleeps until something is written to bus.wake (logind_standin.py)."""
    bus = PrivateBus(tmp_path / "bus", wake=tmp_path / "bus/logind-wake.fifo")
    yield bus
    bus.stop()


@pytest.fixture
def libvirtd(tmp_path, qemu, fake_bin, preload):
    """Starts a daemon: libvirtd(bus_address) is the stock one, libvirtd(bus_address,
    library, VIRNODESUSPEND_...=...) has the shim preloaded, which loads the library.
    Every daemon started is stopped by its PID when the test ends, passed or not."""
    daemons = []

    def start(bus_address, library=None, **knobs):
        directory = tmp_path / f"libvirtd-{len(daemons)}"
        directory.mkdir()
        path = f"{fake_bin}:{qemu / 'bin'}"
        daemon = Libvirtd(directory, qemu / "cache", path, bus_address,
                         (preload, library) if library else None, knobs)
        daemons.append(daemon)
        return daemon.start()

    yield start
    for daemon in daemons:
        daemon.stop()


def library_mask(library, daemon):
    """The target mask LIBRARY reports in DAEMON's environment, asked through its C ABI
    in a process of its own (tests/abi/driver.py)."""
    environment = {k: v for k, v in daemon.environment.items() if k not in ("LD_PRELOAD", "LD_LIBRARY_PATH")}
    spec = {"library": str(library), "libvirt": "none", "calls": [["mask"]]}
    process = subprocess.run(
        [sys.executable, str(ABI / "driver.py"), json.dumps(spec)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [result] = json.loads(process.stdout)
    assert result["ret"] == 0, result
    return result["mask"]
