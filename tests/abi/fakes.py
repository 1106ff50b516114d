"""Fake kernel files and stand-in helper programs, for the C-ABI tests and the libvirtd
suite (tests/libvirtd); their fixtures are imported into both suites' conftest."""

import errno
import os
import select
import stat
import time

import pytest

NOW = 1_800_000_000


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

    def host(self, states="freeze mem disk", disk_modes="[platform] shutdown reboot", swap=True):
        """/sys/power with STATES and DISK_MODES, a wake-capable RTC and, with SWAP, a swap
        partition the kernel can resume from: /dev/vda2 (a block device node 254:2, never
        opened; making it needs root) active in /proc/swaps, named by /sys/power/resume,
        with room for the image that /proc/meminfo's Active(anon) tells."""
        self.write("sys/power/state", states)
        self.write("sys/power/disk", disk_modes)
        if swap:
            self.write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/vda2\tpartition\t1048572\t0\t-2\n")
            self.block_device("dev/vda2", 254, 2)
            self.write("sys/power/resume", "254:2\n")
            self.write("proc/meminfo", "MemTotal:        8000000 kB\nActive(anon):     102400 kB\n")
        return self.rtc()

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
        """Only a wake-up capable RTC reading NOW: no /sys/power, so the kernel backend
        is unavailable."""
        self.write("sys/class/rtc/rtc0/since_epoch", f"{NOW}\n")
        self.write("sys/class/rtc/rtc0/wakealarm", "")
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
