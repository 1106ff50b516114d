"""Boots the QEMU guest that scripts/qemu/run assembled, watches it sleep, and checks it.

    runner.py --kernel VMLINUZ --initramfs CPIO --workdir DIR TARGET...

Two witnesses are read side by side: the guest's serial console (the guest program's
"EVENT" lines, see guest.c, and the kernel's own power-management lines) and QEMU's QMP
events (SUSPEND when the guest enters ACPI S3, WAKEUP when the RTC alarm brings it back,
SUSPEND_DISK and SHUTDOWN when it hibernates). Everything is timed on this machine's wall
clock: a console line when it is read here, a QMP event by the timestamp QEMU gives it
(QEMU takes it from the same clock). The guest's own clocks are not used for timing: its
wall clock was set from the CMOS clock's whole second at boot, and its monotonic clock
stands still while it sleeps.

A Suspend-to-Disk powers the guest off; it is then booted again from the same disk with
resume=, and the same guest program carries on. Hybrid writes the image and then sleeps in
S3, woken by the alarm as Suspend-to-RAM is.

The timeline is printed as it happens, then a summary per target and the checks; the exit
status is 0 when every check passed.
"""

import argparse
import collections
import contextlib
import itertools
import os
import queue
import re
import sys
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from qemu_machine import Machine  # noqa: E402  (scripts/lib: the QEMU suites' one driver)

# What guest.c asks for, and the library's default delay it runs with.
DURATION_S = 60
DELAY_S = 10
# A console line is timed when it is read here, a moment after the guest wrote it; QMP
# events are timed by QEMU as they happen. Early/late checks allow for that much.
CONSOLE_ALLOWANCE_S = 0.5
# The alarm rings 60 to 61 s after the call (the RTC counts whole seconds, the library
# arms it one tick late). Later than this means something is wrong, not just a busy machine.
WAKE_LATE_BOUND_S = 10.0
# Freezing tasks and suspending devices take a fraction of a second; writing a hibernation
# image under TCG takes seconds. Whatever it takes must be over well before the alarm.
ENTRY_LATE_BOUND_S = {"mem": 10.0, "hybrid": 40.0, "disk": 40.0}
# The guest's clocks stop and restart close to, not exactly at, QEMU's SUSPEND and WAKEUP.
SLEPT_AGREEMENT_S = 2.0
# Booting, and then per target: the delay, the sleep and the way back, with room to spare.
BOOT_BUDGET_S = 60
TARGET_BUDGET_S = 120

# The console on the first serial port; a panic powers off (-no-reboot) instead of hanging;
# the guest's EVENT lines go through the kernel's log (see guest.c), never rate-limited.
KERNEL_ARGS = "console=ttyS0 panic=-1 printk.devkmsg=on"
SWAP_BYTES = 256 << 20
# The end of the last console shown when a check failed.
CONSOLE_TAIL_LINES = 40
NAMES = {"mem": "Suspend-to-RAM", "disk": "Suspend-to-Disk", "hybrid": "Hybrid-Suspend"}
# virNodeSuspendGetTargetMask's bit for each target: 1 << virNodeSuspendTarget.
MASK_BITS = {"mem": 1 << 0, "disk": 1 << 1, "hybrid": 1 << 2}

GUEST_EVENT = re.compile(r"EVENT (\w+)(.*)")
FIELD = re.compile(r'(\w+)=("[^"]*"|\S*)')
# The kernel's lines worth a place in the timeline: printed while the console is live (what
# the kernel prints after suspending its console comes out only when it is back).
KERNEL_LINES = re.compile(
    r"\]\s+(PM: suspend (?:entry|exit).*"
    r"|PM: hibernation: (?:hibernation (?:entry|exit)|Wrote .*|Read .*))$"
)
# The kernel's line once it has written the image: "PM: hibernation: Wrote N kbytes in ...".
IMAGE_WRITTEN = "PM: hibernation: Wrote "


@dataclass
class Record:
    """One thing that happened, on this machine's clock."""

    at: float
    source: str  # "host", "guest", "kernel" or "qemu"
    name: str
    fields: dict = field(default_factory=dict)
    boot: int = 0  # which boot of the guest (a Suspend-to-Disk makes a second one)


def guest_fields(text):
    return {k: v.strip('"') for k, v in FIELD.findall(text)}


def selected_mode(disk):
    """The hibernation mode /sys/power/disk shows selected: "[platform] shutdown" -> "platform"."""
    return next((m.strip("[]") for m in disk.split() if m.startswith("[")), None)


class Guest:
    """One boot of the guest: yields its console lines and QMP events as Records as they come."""

    def __init__(self, kernel, initramfs, swap, workdir, boot):
        self.kernel, self.initramfs, self.swap = kernel, initramfs, swap
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        self.console_path = os.path.join(workdir, f"console-{boot}.log")
        self.boot = boot

    def run(self, append, deadline):
        """Yields Records until QEMU exits; stops it and raises TimeoutError at the deadline."""
        records = queue.Queue()
        machine = Machine(
            kernel=self.kernel, initramfs=self.initramfs, append=append, memory="256M",
            qmp_path=self.qmp_path, console_path=self.console_path,
            devices=["-drive", f"file={self.swap},format=raw,if=virtio"],
            on_console=lambda text, read_at: records.put(self._console_record(text, read_at)),
            on_event=lambda event: records.put(
                Record(event.at, "qemu", event.name, event.data, self.boot)),
            on_exit=lambda status: records.put(
                Record(time.time(), "host", "qemu_exited", {"status": status}, self.boot)))
        yield Record(time.time(), "host", "qemu_started", {}, self.boot)
        machine.start()
        try:
            while True:
                if time.time() > deadline:
                    raise TimeoutError
                with contextlib.suppress(queue.Empty):
                    if record := records.get(timeout=1):
                        yield record
                        if record.name == "qemu_exited":
                            return
        finally:
            machine.stop()

    def _console_record(self, text, read_at):
        if match := GUEST_EVENT.search(text):
            return Record(read_at, "guest", match[1], guest_fields(match[2]), self.boot)
        if match := KERNEL_LINES.search(text):
            return Record(read_at, "kernel", match[1], {}, self.boot)
        return None


def describe(record):
    """The timeline's words for a record."""
    f = record.fields
    match (record.source, record.name):
        case ("host", "qemu_started"):
            return f"boot {record.boot}: QEMU started (TCG, 256 MiB, virtio disk as swap)"
        case ("host", "qemu_exited"):
            return f"QEMU exited (status {f['status']})"
        case ("guest", "guest_ready"):
            return (f"Linux {f['kernel']} up; /sys/power/state \"{f['state']}\", "
                    f"mem_sleep \"{f['mem_sleep']}\", disk \"{f['disk'].strip()}\"")
        case ("guest", "mask"):
            mask = int(f["value"])
            names = [target for target, bit in MASK_BITS.items() if mask & bit]
            return (f"virNodeSuspendGetTargetMask: {mask:#x} ({' '.join(names) or 'nothing'}), "
                    f"answered by the {f['backend']} backend")
        case ("guest", "call_returned"):
            call = f"virNodeSuspend({f['target']}, {f['duration']}, 0) returned {f['rc']}"
            if f["rc"] == "0":
                return f"{call}: alarm armed, the library suspends in {DELAY_S} s"
            return call
        case ("guest", "unreachable_wakeup"):
            return f"virNodeSuspend(mem, 2 years, 0) returned {f['rc']}: {f['message']}"
        case ("guest", "resumed"):
            return f"guest program running again: it slept {float(f['slept']):.1f} s"
        case ("guest", "accepts_new_request"):
            alarm = "disarmed" if f["wakealarm"] == "" else f"still {f['wakealarm']}"
            return (f"virNodeSuspendWait: the request is over, it worked; the library accepts "
                    f"a new request; wake alarm {alarm}, "
                    f"hibernation mode {selected_mode(f['disk'])}")
        case ("guest", "error"):
            return f"guest program failed: {f['what']}: {f.get('message', '')}"
        case ("guest", "done"):
            return "guest program: every request carried out"
        case ("guest", "guest_exit"):
            return f"guest program exited with status {f['status']}"
        case ("guest", "no_image"):
            return "no hibernation image to resume from"
        case ("qemu", "SUSPEND"):
            return "QMP SUSPEND: the guest entered ACPI S3"
        case ("qemu", "WAKEUP"):
            return "QMP WAKEUP: the RTC alarm woke the guest"
        case ("qemu", "SUSPEND_DISK"):
            return "QMP SUSPEND_DISK: the guest entered ACPI S4 (image written)"
        case ("qemu", "SHUTDOWN"):
            return f"QMP SHUTDOWN: the guest powered off ({f.get('reason', '')})"
        case ("kernel", _):
            return record.name
    return f"{record.source} {record.name} {f}"


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def first(records, source, name, after=None):
    """The first record from source with that name (at or after the record after, if given)."""
    for record in records:
        if (record.source, record.name) == (source, name):
            if after is None or record.at >= after.at:
                return record
    return None


def check_target(target, records, booted_mode, checks):
    """Checks one target's records (from its call to the next call) and prints its summary.
    booted_mode: the hibernation mode selected when the guest booted."""
    print(f"\n{NAMES[target]} ({target}):")
    call = first(records, "guest", "call_returned")
    if not checks.check(call is not None and call.fields["rc"] == "0", "virNodeSuspend returned 0"):
        return
    if target in ("hybrid", "disk"):
        wrote = [r.name.removeprefix(IMAGE_WRITTEN) for r in records
                 if r.source == "kernel" and r.name.startswith(IMAGE_WRITTEN)]
        checks.check(bool(wrote), "the kernel wrote a hibernation image"
                     + (f" ({wrote[0]})" if wrote else ""))
    event, state = ("SUSPEND_DISK", "S4") if target == "disk" else ("SUSPEND", "S3")
    entered = first(records, "qemu", event, call)
    if not checks.check(entered is not None, f"QEMU saw the guest enter {state}"):
        return
    entry = entered.at - call.at
    bound = DELAY_S + ENTRY_LATE_BOUND_S[target]
    print(f"  suspend entered {entry:.3f} s after the call (the delay is {DELAY_S} s)")
    checks.check(DELAY_S - CONSOLE_ALLOWANCE_S <= entry <= bound,
                 f"entered after the delay and within {bound:.0f} s of the call")

    if target == "disk":
        off = first(records, "qemu", "SHUTDOWN", entered)
        checks.check(off is not None, "QEMU saw the guest power off after the image")
        second_boot = first([r for r in records if r.boot > call.boot], "host", "qemu_started")
        resumed = first(records, "guest", "resumed", second_boot) if second_boot else None
        checks.check(resumed is not None and first(records, "guest", "no_image") is None,
                     "booted again with resume=, the same guest program carried on")
        if resumed:
            print(f"  powered off to running again: {resumed.at - entered.at:.1f} s; "
                  f"the guest reports {float(resumed.fields['slept']):.1f} s asleep")
    else:
        woke = first(records, "qemu", "WAKEUP", entered)
        if not checks.check(woke is not None, "QEMU saw the RTC alarm wake the guest"):
            return
        error = woke.at - (call.at + DURATION_S)
        print(f"  woke {woke.at - call.at:.3f} s after the call: error {error:+.3f} s "
              f"against the requested {DURATION_S} s (expected: 0 to +1 s)")
        checks.check(error >= -CONSOLE_ALLOWANCE_S, f"no earlier than the requested {DURATION_S} s")
        checks.check(error <= WAKE_LATE_BOUND_S, f"less than {WAKE_LATE_BOUND_S:.0f} s late")
        resumed = first(records, "guest", "resumed", woke)
        if checks.check(resumed is not None, "the guest program ran on after the wake-up"):
            slept = float(resumed.fields["slept"])
            asleep = woke.at - entered.at
            print(f"  asleep {asleep:.3f} s as QEMU saw it (SUSPEND to WAKEUP); "
                  f"the guest reports {slept:.3f} s (CLOCK_BOOTTIME - CLOCK_MONOTONIC)")
            checks.check(abs(slept - asleep) <= SLEPT_AGREEMENT_S,
                         f"the guest's own clocks agree within {SLEPT_AGREEMENT_S:.0f} s")
    idle = first(records, "guest", "accepts_new_request")
    checks.check(idle is not None,
                 "virNodeSuspendWait reports the request over and successful, "
                 "and the library accepts a new request")
    checks.check(idle is not None and idle.fields["wakealarm"] == "", "the wake alarm is disarmed")
    checks.check(idle is not None and selected_mode(idle.fields["disk"]) == booted_mode,
                 f"the hibernation mode is {booted_mode} again")


def boot_and_watch(args, start):
    """Boots the guest (again after each Suspend-to-Disk) and prints the timeline as it
    happens. Returns the records and the console logs."""
    swap = os.path.join(args.workdir, "swap.img")
    with open(swap, "wb") as image:
        image.truncate(SWAP_BYTES)
    deadline = start + BOOT_BUDGET_S + TARGET_BUDGET_S * len(args.targets)
    append = f"{KERNEL_ARGS} virnodesuspend.targets={','.join(args.targets)}"
    records, consoles = [], []
    try:
        for boot in itertools.count(1):
            guest = Guest(args.kernel, args.initramfs, swap, args.workdir, boot)
            consoles.append(guest.console_path)
            for record in guest.run(append, deadline):
                records.append(record)
                print(f"{record.at - start:8.3f}  {record.source:<6}  {describe(record)}",
                      flush=True)
            if not first([r for r in records if r.boot == boot], "qemu", "SUSPEND_DISK"):
                break
            # Hibernated: boot again and let the guest's init hand the disk to the kernel.
            append = f"{KERNEL_ARGS} resume=/dev/vda"
    except TimeoutError:
        print(f"QEMU stopped: the run took longer than {deadline - start:.0f} s")
    except RuntimeError as failure:  # QEMU did not start, or its QMP socket never answered
        print(f"QEMU stopped: {failure}")
    return records, consoles


def check_run(records, targets, checks):
    print("\nThe guest:")
    ready = first(records, "guest", "guest_ready")
    if not checks.check(ready is not None, "booted and ready"):
        return
    checks.check("[deep]" in ready.fields["mem_sleep"],
                 "the kernel suspends to RAM in ACPI S3 ([deep])")
    checks.check(ready.fields["wakealarm"] == "yes", "rtc0 can wake the guest (it has wakealarm)")
    mask = first(records, "guest", "mask")
    wanted = sum(MASK_BITS[target] for target in targets)
    checks.check(mask is not None and int(mask.fields["value"]) & wanted == wanted,
                 "the library supports every target asked for")
    checks.check(mask is not None and mask.fields["backend"] == "kernel",
                 "the kernel backend answers (no system bus, no pm-utils in the guest)")
    far = first(records, "guest", "unreachable_wakeup")
    checks.check(far is not None and far.fields["code"] == "8" and far.fields["wakealarm"] == ""
                 and far.fields["message"].endswith("cannot hold a wake-up that far ahead"),
                 "a wake-up the RTC cannot hold is refused as invalid argument, no alarm left")
    calls = [i for i, r in enumerate(records) if r.source == "guest" and r.name == "call_returned"]
    for n, target in enumerate(targets):
        if n >= len(calls):
            checks.check(False, f"{target}: the guest program asked for it")
            continue
        end = calls[n + 1] if n + 1 < len(calls) else len(records)
        check_target(target, records[calls[n]:end], selected_mode(ready.fields["disk"]), checks)
    print()
    exited = first(records, "guest", "guest_exit")
    checks.check(first(records, "guest", "done") is not None and exited is not None
                 and exited.fields["status"] == "0", "the guest program finished every request")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--initramfs", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("targets", nargs="+", choices=sorted(NAMES))
    args = parser.parse_args()

    print(f"Debian's kernel in QEMU; the guest program asks the library to suspend it for "
          f"{DURATION_S} s: {', then '.join(args.targets)}. Seconds since QEMU started:")
    start = time.time()
    records, consoles = boot_and_watch(args, start)
    checks = Checks()
    check_run(records, args.targets, checks)
    print(f"\nconsole: {' '.join(consoles)}")
    if checks.failed:
        with open(consoles[-1], errors="replace") as console:
            print("".join(collections.deque(console, CONSOLE_TAIL_LINES)), end="")
    print(f"{time.time() - start:.0f} s since QEMU started")
    print(f"qemu: {checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
