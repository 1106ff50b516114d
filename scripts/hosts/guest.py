"""One guest of the hosts suite: a Debian image booted under QEMU (TCG), its QMP events and
its command channel, all timed on this machine's clock.

QEMU is started with ACPI S3 and S4 offered (as scripts/qemu/runner.py does), the RTC
following this machine's clock (-rtc base=utc,clock=host: the guest's alarm rings on it),
the console on the first serial port into a file, QMP on a Unix socket, and a virtio-serial
port (org.virnodesuspend.hosts) on another, where scripts/hosts/agent runs the suite's
commands as root in the guest. No network device: nothing leaves the guest but those two
sockets. One thread reads both sockets; callers wait on what it has seen.
"""

import base64
import json
import os
import selectors
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

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


@dataclass
class Event:
    """A QMP event, timed by QEMU (on this machine's clock)."""

    at: float
    name: str
    data: dict
    boot: int


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
        self.ready = None
        self.condition = threading.Condition()
        self.next_id = 0
        self.qemu = None
        self.consoles = []

    def prepare(self, swap_mib=1024):
        """A fresh overlay on the cached image (the image stays as built) and a new swap disk."""
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        os.path.join(self.image, "root.img"), self.disk], check=True)
        with open(self.swap, "wb") as swap:
            swap.truncate(swap_mib << 20)
        subprocess.run(["mkswap", "-q", "-L", "swap", self.swap], check=True)

    def command_line(self, console):
        return [
            "qemu-system-x86_64",
            "-accel", "tcg",  # no /dev/kvm on these machines
            # One vCPU: a second one is taken offline and brought back at every S3, and
            # under TCG, beside another guest, the Debian 13 kernel then did not always come
            # back (scripts/hosts/run).
            "-m", self.memory, "-smp", "1",
            "-nodefaults", "-display", "none", "-no-reboot",
            "-serial", f"file:{console}",
            "-kernel", os.path.join(self.image, "vmlinuz"),
            "-initrd", os.path.join(self.image, "initrd.img"),
            "-append", self.append,
            "-rtc", "base=utc,clock=host",
            "-global", "PIIX4_PM.disable_s3=0", "-global", "PIIX4_PM.disable_s4=0",
            "-drive", f"file={self.disk},format=qcow2,if=virtio",
            "-drive", f"file={self.swap},format=raw,if=virtio",
            "-device", "virtio-rng-pci",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off",
            "-device", f"virtserialport,chardev=agent,name={AGENT_PORT}",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
        ] + (["-nic", self.nic] if self.nic else [])

    def start(self):
        """Boots the guest (again, after a Suspend-to-Disk: from the same disks)."""
        self.boot += 1
        console = os.path.join(self.workdir, f"console-{self.boot}.log")
        self.consoles.append(console)
        for path in (self.qmp_path, self.agent_path):
            if os.path.exists(path):
                os.unlink(path)
        with self.condition:
            self.ready = None
        self.qemu = subprocess.Popen(self.command_line(console), stdin=subprocess.DEVNULL)
        self.started_at = time.time()
        self.timeline.add(self.started_at, "host",
                          f"{self.name} boot {self.boot}: QEMU started (TCG, {self.memory}, "
                          f"root and swap on virtio disks)")
        qmp = self._connect(self.qmp_path)
        qmp.sendall(b'{"execute": "qmp_capabilities"}\n')
        self.agent = self._connect(self.agent_path)
        self.reader = threading.Thread(target=self._read, args=(qmp, self.agent, self.boot),
                                       daemon=True)
        self.reader.start()

    def _connect(self, path):
        for _ in range(200):
            if self.qemu.poll() is not None:
                raise RuntimeError(f"QEMU exited with status {self.qemu.returncode} at start")
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.connect(path)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                time.sleep(0.05)
        raise RuntimeError(f"QEMU's socket {path} never answered")

    def _read(self, qmp, agent, boot):
        selector = selectors.DefaultSelector()
        selector.register(qmp, selectors.EVENT_READ, "qmp")
        selector.register(agent, selectors.EVENT_READ, "agent")
        pending = {"qmp": b"", "agent": b""}
        while selector.get_map():
            for key, _ in selector.select(timeout=1):
                try:
                    chunk = key.fileobj.recv(1 << 20)
                except OSError:
                    chunk = b""
                received = time.time()
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                *lines, pending[key.data] = (pending[key.data] + chunk).split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace").strip()
                    if not text:
                        continue
                    if key.data == "qmp":
                        self._qmp(text, boot)
                    else:
                        self._agent(text, received)
        with self.condition:
            self.condition.notify_all()

    def _qmp(self, text, boot):
        message = json.loads(text)
        if "event" not in message:
            return
        stamp = message["timestamp"]
        event = Event(stamp["seconds"] + stamp["microseconds"] / 1e6, message["event"],
                      message.get("data", {}), boot)
        if event.name in QMP_WORDS:
            reason = f" ({event.data['reason']})" if "reason" in event.data else ""
            self.timeline.add(event.at, "qemu", QMP_WORDS[event.name] + reason)
        with self.condition:
            self.events.append(event)
            self.condition.notify_all()

    def _agent(self, text, received):
        words = text.split(" ")
        with self.condition:
            if words[0] == "READY":
                self.ready = received
            elif words[0] == "RESULT" and len(words) >= 3:
                output = (base64.b64decode(words[3]).decode(errors="replace")
                          if len(words) > 3 else "")
                self.results[words[1]] = (int(words[2]), output, received)
            self.condition.notify_all()

    def send(self, command):
        """Sends a command without waiting; returns its id and when it was sent."""
        with self.condition:
            self.next_id += 1
            ident = str(self.next_id)
        sent = time.time()
        self.agent.sendall(f"{ident} {base64.b64encode(command.encode()).decode()}\n".encode())
        return ident, sent

    def collect(self, ident, command, sent, timeout):
        deadline = time.time() + timeout
        with self.condition:
            while ident not in self.results:
                left = deadline - time.time()
                if left <= 0 or not self.reader.is_alive():
                    raise TimeoutError(f"no answer to {command!r} within {timeout} s")
                self.condition.wait(min(left, 1))
            status, output, received = self.results.pop(ident)
        return Result(command, status, output, sent, received)

    def sh(self, command, timeout=60, show=False):
        """Runs a shell command in the guest; returns its Result."""
        ident, sent = self.send(command)
        result = self.collect(ident, command, sent, timeout)
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

    def events_between(self, names, start, end):
        with self.condition:
            return [e for e in self.events if e.name in names and start <= e.at <= end]

    def wait_exit(self, timeout):
        try:
            self.qemu.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.reader.join(timeout=5)
        self.timeline.add(time.time(), "host", f"QEMU exited (status {self.qemu.returncode})")
        return self.qemu.returncode

    def stop(self):
        """Ends QEMU if it still runs. Nothing of the guest is kept but its console and the
        overlay, so it is not shut down cleanly (that takes systemd 30 s under TCG)."""
        if self.qemu is None or self.qemu.poll() is not None:
            return
        self.qemu.terminate()
        if self.wait_exit(30) is None:
            self.qemu.kill()
            self.qemu.wait()

    def clock_offset(self):
        """The guest's wall clock minus this machine's, from one exchange (± its latency)."""
        result = self.sh("date +%s.%N")
        return float(result.output) - (result.sent + result.received) / 2
