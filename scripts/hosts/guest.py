"""One guest of the hosts suite: a Debian image booted under QEMU (TCG), its QMP events and
its command channel, all timed on this machine's clock.

QEMU is started by the QEMU suites' driver (scripts/lib/qemu_machine.py: ACPI S3 and S4
offered, the console into a file, QMP) with the RTC following this machine's clock (-rtc
base=utc,clock=host: the guest's alarm rings on it), the image's root on a fresh overlay, a
swap disk, and a virtio-serial port (org.virnodesuspend.hosts) on a Unix socket, where
scripts/hosts/agent runs the suite's commands as root in the guest. No network device
unless a remote flow asks for one (QEMU's restricted user networking with one port of this
machine's loopback forwarded): nothing else leaves the guest but QMP and the agent's socket.
One thread reads the agent's answers, the driver's thread the QMP events; callers wait on
what they have seen.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from qemu_machine import Machine  # noqa: E402  (scripts/lib: the QEMU suites' one driver)

# no_console_suspend: the console keeps what the kernel prints while it suspends and resumes,
# where a guest that does not come back has said why (a failed run keeps its consoles).
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0 resume=/dev/vdb panic=-1 no_console_suspend"
AGENT_PORT = "org.virnodesuspend.hosts"


@dataclass
class Result:
    """A command's exit status and output, and when it was sent and its answer read (host clock)."""

    command: str
    status: int
    output: str
    sent: float
    received: float

    def json(self):
        return json.loads(self.output)


class Timeline:
    """Prints what happened, in seconds since the suite's guest started, as it happens."""

    def __init__(self, start):
        self.start = start
        self.lock = threading.Lock()

    def add(self, at, source, text):
        with self.lock:
            print(f"{at - self.start:8.3f}  {source:<7} {text}", flush=True)


QMP_WORDS = {
    "SUSPEND": "QMP SUSPEND: the guest entered ACPI S3",
    "WAKEUP": "QMP WAKEUP: the guest woke (RTC alarm)",
    "SUSPEND_DISK": "QMP SUSPEND_DISK: the guest entered ACPI S4 (image written)",
    "SHUTDOWN": "QMP SHUTDOWN: the guest powered off",
    "POWERDOWN": "QMP POWERDOWN",
    "RESET": "QMP RESET",
}


class Guest:
    def __init__(self, name, image, workdir, timeline, memory="768M", append=KERNEL_ARGS,
                 nic=None):
        self.name, self.image, self.workdir, self.timeline = name, image, workdir, timeline
        self.memory, self.append, self.nic = memory, append, nic
        self.disk = os.path.join(workdir, "root.qcow2")
        self.swap = os.path.join(workdir, "swap.img")
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        self.agent_path = os.path.join(workdir, "agent.sock")
        self.boot = 0
        self.events = []
        self.results = {}
        self.condition = threading.Condition()
        self.next_id = 0
        self.machine = None
        self.consoles = []

    def prepare(self, swap_mib=1024):
        """A fresh overlay on the cached image (the image stays as built) and a new swap disk."""
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        os.path.join(self.image, "root.img"), self.disk], check=True)
        with open(self.swap, "wb") as swap:
            swap.truncate(swap_mib << 20)
        subprocess.run(["mkswap", "-q", "-L", "swap", self.swap], check=True)

    def devices(self):
        return [
            "-rtc", "base=utc,clock=host",
            "-drive", f"file={self.disk},format=qcow2,if=virtio",
            "-drive", f"file={self.swap},format=raw,if=virtio",
            "-device", "virtio-rng-pci",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off",
            "-device", f"virtserialport,chardev=agent,name={AGENT_PORT}",
        ] + (["-nic", self.nic] if self.nic else [])

    def start(self):
        """Boots the guest (again, after a Suspend-to-Disk: from the same disks)."""
        self.boot += 1
        console = os.path.join(self.workdir, f"console-{self.boot}.log")
        self.consoles.append(console)
        for path in (self.qmp_path, self.agent_path):
            if os.path.exists(path):
                os.unlink(path)
        self.machine = Machine(
            kernel=os.path.join(self.image, "vmlinuz"),
            initramfs=os.path.join(self.image, "initrd.img"), append=self.append,
            memory=self.memory, qmp_path=self.qmp_path, console_path=console,
            devices=self.devices(), on_event=self._qmp)
        self.started_at = time.time()
        self.timeline.add(self.started_at, "host",
                          f"{self.name} boot {self.boot}: QEMU started (TCG, {self.memory}, "
                          f"root and swap on virtio disks)")
        self.machine.start()
        # QEMU listens on the agent's socket from the time its QMP socket answers.
        self.agent = socket.socket(socket.AF_UNIX)
        self.agent.connect(self.agent_path)
        self.reader = threading.Thread(target=self._read_agent, args=(self.agent,), daemon=True)
        self.reader.start()

    def _read_agent(self, agent):
        with agent.makefile("rb") as lines:
            for line in lines:
                received = time.time()
                words = line.decode(errors="replace").strip().split(" ")
                if words[0] == "RESULT" and len(words) >= 3:
                    output = (base64.b64decode(words[3]).decode(errors="replace")
                              if len(words) > 3 else "")
                    with self.condition:
                        self.results[words[1]] = (int(words[2]), output, received)
                        self.condition.notify_all()
        with self.condition:
            self.condition.notify_all()

    def _qmp(self, event):
        if event.name in QMP_WORDS:
            reason = f" ({event.data['reason']})" if "reason" in event.data else ""
            self.timeline.add(event.at, "qemu", QMP_WORDS[event.name] + reason)
        with self.condition:
            self.events.append(event)
            self.condition.notify_all()

    def sh(self, command, timeout=60, show=False):
        """Runs a shell command in the guest; returns its Result."""
        with self.condition:
            self.next_id += 1
            ident = str(self.next_id)
        sent = time.time()
        self.agent.sendall(f"{ident} {base64.b64encode(command.encode()).decode()}\n".encode())
        deadline = sent + timeout
        with self.condition:
            while ident not in self.results:
                left = deadline - time.time()
                if left <= 0 or not self.reader.is_alive():
                    raise TimeoutError(f"no answer to {command!r} within {timeout} s")
                self.condition.wait(min(left, 1))
            status, output, received = self.results.pop(ident)
        result = Result(command, status, output, sent, received)
        if show:
            self.show(result)
        return result

    def show(self, result, words=None):
        out = result.output.strip().splitlines()
        tail = f": {out[-1]}" if out else ""
        self.timeline.add(result.received, "guest",
                          words or f"$ {result.command} -> {result.status}{tail}")

    def wait_ready(self, timeout):
        """Waits until the agent answers, then until systemd has finished booting."""
        deadline = time.time() + timeout
        while True:
            try:
                result = self.sh("true", timeout=5)
                break
            except TimeoutError:
                if time.time() > deadline:
                    raise
        up = self.sh("systemctl is-system-running --wait", timeout=max(5, deadline - time.time()))
        self.timeline.add(up.received, "guest",
                          f"systemd: the system is {up.output.strip()} "
                          f"({up.received - self.started_at:.1f} s after QEMU started)")
        return result

    def wait_event(self, names, after, timeout):
        """The first QMP event among names at or after the time after, or None."""
        deadline = time.time() + timeout
        with self.condition:
            while True:
                for event in self.events:
                    if event.name in names and event.at >= after:
                        return event
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.condition.wait(min(left, 1))

    def wait_exit(self, timeout):
        status = self.machine.wait(timeout)
        if status is None:
            return None
        self.reader.join(timeout=5)
        self.timeline.add(time.time(), "host", f"QEMU exited (status {status})")
        return status

    def stop(self):
        """Ends QEMU if it still runs. Nothing of the guest is kept but its console and the
        overlay, so it is not shut down cleanly (that takes systemd 30 s under TCG)."""
        if self.machine is None or self.machine.wait(0) is not None:
            return
        self.machine.stop()
        self.wait_exit(0)

    def clock_offset(self):
        """The guest's wall clock minus this machine's, from one exchange (± its latency)."""
        result = self.sh("date +%s.%N")
        return float(result.output) - (result.sent + result.received) / 2
