"""One QEMU guest for the QEMU suites (scripts/qemu/runner.py, scripts/hosts/guest.py): starts
QEMU, passes on its console lines and QMP events as they come, sends QMP commands and stops
it. QMP is spoken by the QEMU project's own client, qemu.qmp (installed into the project's
venv by scripts/lib/qemu-qmp-python).

What both suites' guests have: TCG, one vCPU, ACPI S3 and S4 offered, a kernel and an
initramfs booted directly, the console on the first serial port, QMP on a Unix socket, and
-no-reboot (a panic or a Suspend-to-Disk powers off; the caller boots again if it wants).

Everything is timed on this machine's wall clock: a console line when it is read here, a QMP
event by the timestamp QEMU gives it (QEMU takes it from the same clock).

One thread runs an asyncio loop with QEMU, its console and its QMP client; the callbacks are
called from that thread, one at a time, and the rest of the API is for the caller's threads.
"""

import asyncio
import concurrent.futures
import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass

from qemu.qmp import ConnectError, QMPClient, Runstate

# With wait=off QEMU listens on its QMP socket before the guest starts, but only once it has
# set up: tries every CONNECT_INTERVAL_S, CONNECT_TRIES times.
CONNECT_TRIES = 200
CONNECT_INTERVAL_S = 0.05
# The longest console line read whole (a longer one would stop the reader).
CONSOLE_LINE_LIMIT = 1 << 20


@dataclass
class Event:
    """A QMP event, timed by QEMU."""

    at: float
    name: str
    data: dict


class Machine:
    """One QEMU process. on_console(text, read_at) gets each console line (also written to
    console_path), on_event(Event) each QMP event, and on_exit(status) QEMU's exit status
    after them."""

    def __init__(self, *, kernel, initramfs, append, memory, qmp_path, console_path,
                 devices, on_event, on_console=None, on_exit=None):
        self.command = [
            "qemu-system-x86_64",
            "-accel", "tcg",  # KVM is not reliable (or not there) on the machines this runs on
            # One vCPU: a second one is taken offline and brought back at every S3, and under
            # TCG, beside another guest, the Debian 13 kernel then did not always come back
            # (scripts/hosts/run).
            "-m", memory, "-smp", "1",
            "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", kernel, "-initrd", initramfs, "-append", append,
            # Offer ACPI S3 (Suspend-to-RAM) and S4 (the kernel's "platform" hibernation).
            "-global", "PIIX4_PM.disable_s3=0", "-global", "PIIX4_PM.disable_s4=0",
            "-qmp", f"unix:{qmp_path},server=on,wait=off",
        ] + devices
        self.qmp_path, self.console_path = qmp_path, console_path
        self.on_console, self.on_event, self.on_exit = on_console, on_event, on_exit
        self.returncode = None
        # Set once QEMU has exited and every line and event it left has been passed on.
        self.finished = threading.Event()

    def start(self):
        """Starts QEMU and returns once QMP is connected. Raises RuntimeError when QEMU exits
        or its QMP socket never answers."""
        connected = concurrent.futures.Future()
        threading.Thread(target=asyncio.run, args=(self._run(connected),), daemon=True).start()
        connected.result()

    def execute(self, command, arguments=None, timeout=30):
        """Sends a QMP command; returns its answer."""
        return asyncio.run_coroutine_threadsafe(self.qmp.execute(command, arguments),
                                                self.loop).result(timeout)

    def wait(self, timeout):
        """QEMU's exit status once it has exited (within timeout seconds), else None."""
        return self.returncode if self.finished.wait(timeout) else None

    def stop(self, timeout=30):
        """Ends QEMU if it still runs: QMP `quit`, and a kill when that does not end it."""
        if self.finished.is_set():
            return
        with contextlib.suppress(Exception):  # QMP may be gone already: the kill then
            self.execute("quit", timeout=timeout)
        if self.wait(timeout) is None:
            self.loop.call_soon_threadsafe(self.process.kill)
            self.finished.wait()

    async def _run(self, connected):
        self.loop = asyncio.get_running_loop()
        self.qmp = QMPClient()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                limit=CONSOLE_LINE_LIMIT)
            await self._connect()
        except (OSError, RuntimeError) as failure:  # QEMU did not start, or QMP never answered
            connected.set_exception(failure)
            self.finished.set()
            return
        connected.set_result(None)
        try:
            events = asyncio.create_task(self._pass_events())
            await self._pass_console()
            self.returncode = await self.process.wait()
            # QEMU closed QMP as it exited: once the client has read to its end, the events
            # not passed on yet are all in its queue.
            while self.qmp.runstate == Runstate.RUNNING:
                await self.qmp.runstate_changed()
            with contextlib.suppress(EOFError, OSError):
                await self.qmp.disconnect()
            events.cancel()
            for message in self.qmp.events.clear():
                self._pass_event(message)
            if self.on_exit:
                self.on_exit(self.returncode)
        finally:
            self.finished.set()

    async def _connect(self):
        for _ in range(CONNECT_TRIES):
            if self.process.returncode is not None:
                raise RuntimeError(f"QEMU exited with status {self.process.returncode} at start")
            try:
                await self.qmp.connect(self.qmp_path)
                return
            except ConnectError:
                await asyncio.sleep(CONNECT_INTERVAL_S)
        self.process.kill()
        await self.process.wait()
        raise RuntimeError(f"QEMU's QMP socket {self.qmp_path} never answered")

    async def _pass_console(self):
        with open(self.console_path, "wb") as console_log:
            while line := await self.process.stdout.readline():
                read_at = time.time()
                console_log.write(line)
                console_log.flush()
                if self.on_console:
                    self.on_console(line.decode(errors="replace").rstrip("\r\n"), read_at)

    async def _pass_events(self):
        while True:
            self._pass_event(await self.qmp.events.get())

    def _pass_event(self, message):
        stamp = message["timestamp"]
        self.on_event(Event(stamp["seconds"] + stamp["microseconds"] / 1e6, message["event"],
                            dict(message.get("data", {}))))
