"""The fake host (tests/fake-host/), its environment, private copies of the library, and
stand-in helper programs: for the C-ABI and CLI tests, the binding's (python/tests) and the
libvirtd suite (tests/libvirtd), whose conftest imports the fixtures."""

import errno
import os
import pathlib
import select
import shutil
import stat
import time

import pytest

# The one description of the fake host, which the Rust and C tests copy too (its README).
FAKE_HOST = pathlib.Path(__file__).resolve().parents[1] / "fake-host"
# What its RTC reads.
NOW = int((FAKE_HOST / "root/sys/class/rtc/rtc0/since_epoch").read_text())


def environment(root, **overrides):
    """The fake host's environment (FAKE_HOST/environment) for the library on ROOT, with
    OVERRIDES on top; an override of None leaves that variable out (the library's default)."""
    lines = (FAKE_HOST / "environment").read_text().splitlines()
    variables = dict(line.split("=", 1) for line in lines)
    variables = {**variables, "VIRNODESUSPEND_ROOT": str(root), **overrides}
    return {name: value for name, value in variables.items() if value is not None}


def private_library(built, directory, monkeypatch, root, **overrides):
    """A private copy of the library BUILT in DIRECTORY, configured for ROOT: the fake host's
    environment with OVERRIDES (see environment) set in this process. The library reads its
    configuration once, at its first call, so each copy gets its own in this one process.
    Returns the copy's path."""
    for name, value in environment(root, **overrides).items():
        monkeypatch.setenv(name, value)
    for name in [name for name, value in overrides.items() if value is None]:
        monkeypatch.delenv(name, raising=False)
    copies = sorted(directory.glob("libvirnodesuspend-*.so"))
    copy = directory / f"libvirnodesuspend-{len(copies)}.so"
    shutil.copyfile(built, copy)
    return str(copy)


class FakeRoot:
    """A directory laid out like / with the kernel files a test needs."""

    def __init__(self, path):
        self.path = path

    def write(self, relative, content):
        file = self.path / relative
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content)
        return self

    def read(self, relative):
        return (self.path / relative).read_text()

    def host(self, states=None, disk_modes=None, swap=True):
        """The fake host (FAKE_HOST), with STATES in /sys/power/state and DISK_MODES in
        /sys/power/disk instead of its own when given, and without its swap area unless
        SWAP (then no block device is made, which needs root)."""
        shutil.copytree(FAKE_HOST / "root", self.path, dirs_exist_ok=True)
        if swap:
            for line in (FAKE_HOST / "block-devices").read_text().splitlines():
                relative, major, minor = line.split()
                self.block_device(relative, int(major), int(minor))
        else:
            swaps = self.read("proc/swaps")
            self.write("proc/swaps", swaps[: swaps.index("\n") + 1])
        if states is not None:
            self.write("sys/power/state", states)
        if disk_modes is not None:
            self.write("sys/power/disk", disk_modes)
        return self

    def block_device(self, relative, major, minor):
        node = self.path / relative
        node.parent.mkdir(parents=True, exist_ok=True)
        node.unlink(missing_ok=True)
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(major, minor))
        return self

    def request(self):
        """The host's request record (run/virnodesuspend/request, one key=value a line), as
        a dict; {} before any request."""
        try:
            text = self.read("run/virnodesuspend/request")
        except FileNotFoundError:
            return {}
        return dict(line.split("=", 1) for line in text.splitlines())

    def rtc(self):
        """Only the fake host's RTC: no /sys/power, so the kernel backend is unavailable."""
        rtc = "sys/class/rtc/rtc0"
        shutil.copytree(FAKE_HOST / "root" / rtc, self.path / rtc, dirs_exist_ok=True)
        return self


def recording_helpers(directory, record, asleep=None):
    """rtcwake and pm-utils stand-ins in DIRECTORY that append their name and arguments to
    RECORD and succeed, so that libvirt's success path runs without touching this machine's
    clock or power state. With ASLEEP (the path of a FIFO), pm-suspend, pm-hibernate and
    pm-suspend-hybrid then write the same line to it, and so "sleep" until the test reads
    it (read_fifo), however long that takes: whoever ran them is in its suspend until then."""
    directory.mkdir(exist_ok=True)
    for name in ["rtcwake", "pm-suspend", "pm-hibernate", "pm-suspend-hybrid"]:
        sleeps = asleep and name != "rtcwake"
        script = directory / name
        script.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{record}"\n'
            + (f'if [ -p "{asleep}" ]; then echo "{name} $*" > "{asleep}"; fi\n' if sleeps else "")
        )
        script.chmod(0o755)
    return directory


def read_fifo(path, timeout=60):
    """Reads the FIFO at PATH until its writer closes it (at most TIMEOUT seconds): a writer
    waiting to open it goes on, one that comes later does not wait."""
    fifo = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fifo, select.POLLIN)
        deadline = time.monotonic() + timeout
        data = b""
        while True:
            left = deadline - time.monotonic()
            assert left > 0 and poller.poll(left * 1000), f"nothing written to {path} ({data!r} so far)"
            try:
                chunk = os.read(fifo, 4096)
            except OSError as e:
                assert e.errno == errno.EAGAIN, e
                continue
            if not chunk:  # end of file: the writer closed it
                return data.decode()
            data += chunk
    finally:
        os.close(fifo)


def release_fifo(path):
    """Lets go whoever waits to write to the FIFO at PATH, and removes it so that nobody
    waits on it later (a stand-in whose caller is gone)."""
    try:
        fifo = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return
    os.unlink(path)
    os.close(fifo)


@pytest.fixture
def fake_root(tmp_path):
    (tmp_path / "root").mkdir()
    return FakeRoot(tmp_path / "root")


@pytest.fixture
def fake_bin(tmp_path):
    """rtcwake and pm-utils stand-ins recording into helpers.log; the pm-utils ones sleep
    until the test reads the FIFO pm-utils.fifo beside it (see recording_helpers). When the
    test ends, any still asleep is let go."""
    asleep = tmp_path / "pm-utils.fifo"
    os.mkfifo(asleep)
    directory = recording_helpers(tmp_path / "bin", tmp_path / "helpers.log", asleep)
    yield directory
    release_fifo(asleep)
