"""Fake kernel files and stand-in helper programs, for the C-ABI tests and the libvirtd
suite (tests/libvirtd); their fixtures are imported into both suites' conftest."""

import os
import stat

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

    def rtc(self):
        """Only a wake-up capable RTC reading NOW: no /sys/power, so the kernel backend
        is unavailable."""
        self.write("sys/class/rtc/rtc0/since_epoch", f"{NOW}\n")
        self.write("sys/class/rtc/rtc0/wakealarm", "")
        return self


def recording_helpers(directory, record):
    """rtcwake and pm-utils stand-ins in DIRECTORY that append their name and arguments to
    RECORD and succeed, so that libvirt's success path runs without touching this machine's
    clock or power state."""
    directory.mkdir(exist_ok=True)
    for name in ["rtcwake", "pm-suspend", "pm-hibernate", "pm-suspend-hybrid"]:
        script = directory / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{record}"\n')
        script.chmod(0o755)
    return directory


@pytest.fixture
def fake_root(tmp_path):
    (tmp_path / "root").mkdir()
    return FakeRoot(tmp_path / "root")


@pytest.fixture
def fake_bin(tmp_path):
    """rtcwake and pm-utils stand-ins recording into helpers.log (see recording_helpers)."""
    return recording_helpers(tmp_path / "bin", tmp_path / "helpers.log")
