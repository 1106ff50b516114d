"""The hosts suite's flows: a Debian guest with systemd, logind and libvirt's daemon (the
library preloaded by its Debian package's drop-in; in the modular guest, libvirt's modular
daemons built linked against it) put to sleep by `virsh nodesuspend` and woken by the
library's RTC alarm, checked on this machine's clock.

    suite.py --image DIR --workdir DIR --release bookworm|trixie|modular [--flows FLOW,...]

FLOW: caps, domain, mem, hybrid, disk (virsh in the guest, 60 s), stock, daemon-vs-shell,
sigkill, sigkill-socket, remote-errors, remote-TARGET-DURATION (remote-mem-60,
remote-hybrid-120, ...: virsh on this machine, the guest then has QEMU's user networking with
libvirtd's TCP port forwarded; the same checks as the local sleeps, and a probe's downtime),
kernel-vs-logind (boots the image three more times). A disk sleep ends in a power-off (the
suite boots the guest again, and it resumes). Defaults (tp-libvirt's six remote cases shared
between the three guests, so that each Debian guest sleeps each way once with every check):
bookworm caps,domain,mem,stock,remote-errors,remote-mem-60,remote-hybrid-120,remote-disk-60;
trixie caps,domain,mem,daemon-vs-shell,sigkill,remote-mem-120,remote-disk-120,kernel-vs-logind;
modular caps,mem,sigkill-socket,remote-hybrid-60.

The modular guest (Debian 13 with libvirt 11.3 built by scripts/build-libvirt, linked against
the library, nothing preloaded) runs libvirt as Fedora and RHEL do: virtqemud, virtlxcd and
virtproxyd started by their sockets, no libvirtd. Its virsh names its URI (qemu:///system,
lxc:///system); its daemon is virtqemud (pids, journal, the SIGKILL); its caps also asks
virtlxcd and checks what the daemons map and their environment; its sleeps also have
virtlxcd, another process loading the library, refused while virtqemud's request is pending
and accepted after it; its remote flows reach virtproxyd (virtproxyd-tcp.socket), which
hands the call to virtqemud.

Witnesses: QEMU's QMP events (SUSPEND, WAKEUP, SUSPEND_DISK, SHUTDOWN: timed by QEMU on this
machine's clock), the answers of commands run in the guest (timed when sent and when their
answer is read here), the guest's journal (read after the fact; its times are the guest's
clock, mapped onto this machine's by one measured exchange), and the library's request
record (`virnodesuspend status --json`). Nothing waits a fixed time where an event can be
waited for; the stock daemon's "does not sleep within 90 s" is the one wait that has to run
out. Exit status 0 when every check passed.
"""

import argparse
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qemu"))
# scripts/qemu/runner.py: one check printer, and the library's default delay (which the
# drop-in leaves as it is).
from runner import DELAY_S, NAMES, Checks  # noqa: E402

from guest import KERNEL_ARGS, Guest, Result, Timeline  # noqa: E402

DURATION_S = 60
# The bound: woken by the alarm less than 2 s after the requested 60 s.
WAKE_LATE_BOUND_S = 2.0
# Entering the sleep: logind and systemd-sleep take a moment after the delay; writing an
# image under TCG takes longer.
ENTRY_LATE_BOUND_S = {"mem": 15.0, "hybrid": 60.0, "disk": 60.0}
BOOT_BUDGET_S = 240
STOCK_WATCH_S = 90
LOGIND_METHODS = {"mem": "CanSuspend", "disk": "CanHibernate", "hybrid": "CanHybridSleep"}
DEFAULT_FLOWS = {
    "bookworm": ["caps", "domain", "mem", "stock", "remote-errors", "remote-mem-60",
                 "remote-hybrid-120", "remote-disk-60"],
    "trixie": ["caps", "domain", "mem", "daemon-vs-shell", "sigkill", "remote-mem-120",
               "remote-disk-120", "kernel-vs-logind"],
    "modular": ["caps", "mem", "sigkill-socket", "remote-hybrid-60"],
}
# The modular guest's daemons: the one that loads the library for each URI, and the proxy
# that serves the remote flows (virtproxyd-tcp.socket, libvirt's port 16509).
MODULAR_URIS = {"virtqemud": "qemu:///system", "virtlxcd": "lxc:///system"}
DROPIN_MASK = "/etc/systemd/system/libvirtd.service.d/virnodesuspend.conf"
# The domain flow's guest: QEMU (TCG) with no disk and no network, so SeaBIOS finds nothing
# to boot and waits; it only has to start, confined, with the daemon's environment.
TINY_DOMAIN = """<domain type='qemu'>
  <name>hosts-tiny</name>
  <memory unit='MiB'>32</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""
# What the loader says when it cannot map a preloaded object (ld.so's words), and what
# QEMU says when a library is missing.
LOADER_ERROR = re.compile(r"ld\.so|cannot be preloaded|error while loading shared libraries")
# The journal lines the timeline shows: logind's, systemd-sleep's, the kernel's PM lines and
# the library's (through the daemon's log).
JOURNAL_LINE = re.compile(
    r"^(\d+\.\d+) \S+ (systemd-logind|systemd-sleep|kernel|libvirtd|virtqemud|virtlxcd)"
    r"(?:\[\d+\])?: (.*)$")
JOURNAL_WORTH = re.compile(
    r"The system will|sleep state|sleep operation|PM: (suspend|hibernation)|[Ss]uspend|"
    r"[Hh]ibernat|System returned|Operation '")
# systemd-sleep's words: systemd 252 "Entering sleep state 'suspend'..." and "System returned
# from sleep state."; systemd 257 "Performing sleep operation 'suspend'..." and "System
# returned from sleep operation 'suspend'."
SLEEP_ENTERED = re.compile(r"systemd-sleep: (Entering sleep state|Performing sleep operation)")
SLEEP_RETURNED = re.compile(r"systemd-sleep: System returned from sleep (state|operation)")


class Probe(threading.Thread):
    """A reachability probe of the guest's libvirtd from this machine: every 0.5 s a new TCP
    connection to the forwarded port and one libvirt RPC call (REMOTE_PROC_AUTH_LIST, which
    needs no open connection); reachable when the reply comes within 1 s. QEMU's user
    networking accepts the connection itself, so the reply, not the connect, is the proof."""

    PROGRAM, VERSION, AUTH_LIST = 0x20008086, 1, 66

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.samples = []  # (time, reachable)
        self.stopping = threading.Event()

    def once(self, serial):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.settimeout(1)
                header = struct.pack(">IIiiIi", self.PROGRAM, self.VERSION, self.AUTH_LIST, 0,
                                     serial, 0)
                sock.sendall(struct.pack(">I", 4 + len(header)) + header)
                reply = sock.recv(28)
                return len(reply) >= 28 and struct.unpack(">I", reply[4:8])[0] == self.PROGRAM
        except OSError:
            return False

    def run(self):
        serial = 0
        while not self.stopping.is_set():
            serial += 1
            started = time.time()
            ok = self.once(serial)
            self.samples.append((started, ok))
            self.stopping.wait(max(0, 0.5 - (time.time() - started)))

    def first_down(self, after):
        return next((at for at, ok in list(self.samples) if at >= after and not ok), None)

    def wait_reachable(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline and not any(ok for _, ok in list(self.samples)):
            self.stopping.wait(0.1)

    def wait_back(self, after, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            down = self.first_down(after)
            if down is not None:
                back = next((at for at, ok in list(self.samples) if at > down and ok), None)
                if back is not None:
                    return back
            time.sleep(0.5)
        return None

    def stop(self):
        self.stopping.set()
        self.join(timeout=5)


class Suite:
    def __init__(self, args, flows):
        self.args = args
        self.checks = Checks()
        self.timeline = Timeline(time.time())
        nic = None
        if any(flow.startswith("remote") for flow in flows):
            # QEMU's user networking, restricted (the guest reaches nothing), with the guest's
            # libvirtd TCP port forwarded from a free port of this machine's loopback.
            with socket.socket() as free:
                free.bind(("127.0.0.1", 0))
                port = free.getsockname()[1]
            nic = (f"user,model=virtio-net-pci,restrict=on,"
                   f"hostfwd=tcp:127.0.0.1:{port}-10.0.2.15:16509")
        self.guest = Guest(args.release, args.image, args.workdir, self.timeline, nic=nic)
        self.guest.forward_port = port if nic else None
        self.summary = []
        # What the flows call the daemon that loads the library, and how virsh reaches it.
        self.linked = args.release == "modular"
        self.unit = "virtqemud" if self.linked else "libvirtd"
        self.local_virsh = "virsh -c qemu:///system" if self.linked else "virsh"

    # Small helpers around the guest.
    def sh(self, command, timeout=60, show=True):
        return self.guest.sh(command, timeout=timeout, show=show)

    def check(self, ok, what):
        return self.checks.check(ok, what)

    def daemon_pid(self, unit=None):
        """The main pid of unit (the daemon that loads the library: libvirtd, or virtqemud in
        the modular guest); 0 when it does not run."""
        unit = unit or self.unit
        return int(self.guest.sh(f"systemctl show -p MainPID --value {unit}").output.strip() or 0)

    def mapped(self, pid):
        """The files of this project that process PID (a shell word) maps: the drop-in's
        shim (LIBDIR/virnodesuspend/preload.so) and the library (libvirnodesuspend.so.0),
        which the shim loads at its first call."""
        maps = self.sh(f"grep -o '/[^ ]*virnodesuspend[^ ]*' /proc/{pid}/maps | sort -u",
                       show=False)
        return set(maps.output.split())

    @staticmethod
    def objects(paths):
        return {"shim": any(p.endswith("/virnodesuspend/preload.so") for p in paths),
                "library": any("/libvirnodesuspend.so" in p for p in paths)}

    def daemon_maps(self):
        """Whether libvirtd maps the shim (from its start) and the library (from its first
        capability query or suspend on)."""
        return self.objects(self.mapped(f"$(systemctl show -p MainPID --value {self.unit})"))

    def alarm(self):
        return self.guest.sh("cat /sys/class/rtc/rtc0/wakealarm").output.strip()

    def status(self):
        return self.guest.sh("virnodesuspend status --json").json()

    def journal(self, since_host, label):
        """The guest's journal lines worth showing since a time of this machine's clock, each
        put on this machine's clock; printed in the timeline and returned as texts."""
        offset = self.guest.clock_offset()
        since = int(since_host + offset) - 2
        result = self.guest.sh(f"journalctl -b -o short-unix --no-pager --since=@{since}")
        lines = []
        for line in result.output.splitlines():
            match = JOURNAL_LINE.match(line)
            # --since takes whole seconds: what came before the call is left out here.
            at = float(match[1]) - offset if match else 0
            if match and JOURNAL_WORTH.search(match[3]) and at >= since_host - 0.5:
                lines.append((at, match[2], match[3]))
        print(f"          journal of the guest since the call ({label}; guest clock "
              f"{offset:+.2f} s from this machine's, mapped back):")
        for at, who, text in lines:
            self.timeline.add(at, "journal", f"{who}: {text}")
        return [f"{who}: {text}" for _, who, text in lines]

    # The flows.
    def boot(self):
        self.guest.prepare()
        self.guest.start()
        self.guest.wait_ready(BOOT_BUDGET_S)
        self.boot_id = self.guest.sh("cat /proc/sys/kernel/random/boot_id").output.strip()
        # The modular guest: libvirt's version, and how its unit runs virtqemud (its idle
        # timeout, whether systemd restarts it).
        packages = ("systemd libvirnodesuspend0 virnodesuspend; virtqemud --version; "
                    "systemctl cat virtqemud.service | "
                    "grep -E '^(ExecStart|Environment|EnvironmentFile|Restart)='" if self.linked else
                    "libvirt-daemon systemd libvirnodesuspend0 libvirt-daemon-driver-nodesuspend")
        versions = self.sh(f"dpkg-query -W -f '${{Package}} ${{Version}}\\n' {packages}; uname -r")
        for line in versions.output.splitlines():
            print(f"          {line}")
        # Debian 13's packages are built offline with Debian's own crates (build-debs-offline),
        # which their Static-Built-Using names; Debian 12's with crates.io's (none named).
        crates = self.sh("dpkg-query -W -f '${Static-Built-Using}' libvirnodesuspend0",
                         show=False).output.strip()
        print(f"          libvirnodesuspend0 Static-Built-Using: {crates or '(none)'}")
        if self.args.release in ("trixie", "modular"):
            self.check("rust-nix (=" in crates and "rustc (=" in crates,
                       "the library is the one built offline with Debian 13's rustc and crates")

    def logind_mask(self):
        """The targets logind says this host can sleep to ("yes" or "challenge")."""
        logind = {}
        for target, method in LOGIND_METHODS.items():
            answer = self.sh("busctl call org.freedesktop.login1 /org/freedesktop/login1 "
                             f"org.freedesktop.login1.Manager {method}", show=False)
            logind[target] = answer.output.strip().removeprefix("s ").strip('"')
        answers = ", ".join(f"{LOGIND_METHODS[t]} {a}" for t, a in logind.items())
        print(f"          logind: {answers}")
        return {t for t, a in logind.items() if a in ("yes", "challenge")}

    def virsh_caps(self, virsh_command):
        """The targets <power_management> lists in `VIRSH_COMMAND capabilities`, and its Result."""
        caps = self.sh(f"{virsh_command} capabilities", show=False)
        listed = set(re.findall(r"<suspend_(mem|disk|hybrid)/>", caps.output))
        self.guest.show(caps, f"{virsh_command} capabilities: <power_management> lists "
                        f"{' '.join(sorted(listed)) or 'nothing'} (exit {caps.status})")
        return listed, caps

    def caps(self):
        if self.linked:
            return self.modular_caps()
        print(f"\n{self.args.release}: capabilities through libvirtd and the preloaded library")
        virsh, caps = self.virsh_caps("virsh")
        expected = self.logind_mask()
        self.check(caps.status == 0 and virsh == expected,
                   f"virsh capabilities shows logind's mask ({' '.join(sorted(expected))})")
        self.check(self.daemon_maps() == {"shim": True, "library": True},
                   "libvirtd maps the drop-in's shim, and the library it loaded")
        backend = self.sh("virnodesuspend caps --json")
        self.check('"backend": "logind"' in backend.output, "the library's backend is logind")

    def modular_caps(self):
        """The modular guest: virtqemud and virtlxcd, started by their sockets, each answer the
        capabilities with logind's mask through the library they link; no libvirtd, no
        drop-in, no LD_PRELOAD anywhere."""
        print(f"\n{self.args.release}: capabilities through virtqemud and virtlxcd, linked "
              f"against the library (no libvirtd, nothing preloaded)")
        setup = self.sh("systemctl is-active virtqemud.socket virtlxcd.socket virtproxyd.socket "
                        "virtlogd.socket | tr '\\n' ' '; echo; "
                        "systemctl is-enabled libvirtd.service libvirtd.socket 2>&1 | "
                        "tr '\\n' ' '; echo; systemctl is-active libvirtd.service; "
                        "dpkg-query -W -f '${Package} ' 'libvirt*' 2>/dev/null; echo; "
                        "ls /etc/ld.so.preload /usr/lib/*/virnodesuspend/preload.so 2>&1 | "
                        "tr '\\n' ' '", show=False)
        lines = (setup.output.splitlines() + [""] * 5)[:5]
        print(f"          sockets virtqemud virtlxcd virtproxyd virtlogd: {lines[0].strip()}")
        print(f"          libvirtd.service, libvirtd.socket: {lines[1].strip()}; "
              f"running: {lines[2].strip()}")
        print(f"          Debian's libvirt packages installed: {lines[3].strip() or 'none'}")
        print(f"          {lines[4].strip()}")
        self.check(lines[0].split() == ["active"] * 4,
                   "virtqemud, virtlxcd, virtproxyd and virtlogd listen on their sockets")
        self.check(lines[2].strip() != "active" and "enabled" not in lines[1].split()
                   and lines[3].strip() == "",
                   "no libvirtd (neither enabled nor running), no Debian libvirt package "
                   "(the drop-in's package is not installed)")
        self.check(lines[4].count("No such file") == 2,
                   "no /etc/ld.so.preload, no preload.so on the host")
        expected = self.logind_mask()
        for unit, uri in MODULAR_URIS.items():
            listed, caps = self.virsh_caps(f"virsh -c {uri}")
            self.check(caps.status == 0 and listed == expected,
                       f"virsh -c {uri} capabilities ({unit}) shows logind's mask "
                       f"({' '.join(sorted(expected))})")
        for unit in list(MODULAR_URIS) + ["virtproxyd", "virtlogd"]:
            pid = self.daemon_pid(unit)
            if not pid:
                print(f"          {unit}: not running")
                if unit in MODULAR_URIS:
                    self.check(False, f"{unit} runs")
                continue
            env = self.sh(f"tr '\\0' '\\n' </proc/{pid}/environ | grep '^LD_PRELOAD=' ; "
                          "true", show=False).output.strip()
            paths = self.mapped(pid)
            print(f"          {unit} (pid {pid}): maps {' '.join(sorted(paths)) or 'nothing of ours'}"
                  f"; {env or 'no LD_PRELOAD'}")
            if unit in MODULAR_URIS:
                self.check(not self.objects(paths)["shim"]
                           and any("/libvirnodesuspend.so.0" in p for p in paths),
                           f"{unit} maps libvirnodesuspend.so.0 and no preload.so")
            self.check(env == "", f"{unit} has no LD_PRELOAD in its environment")
        backend = self.sh("virnodesuspend caps --json")
        self.check('"backend": "logind"' in backend.output, "the library's backend is logind")

    def virsh(self, command, remote, timeout=60):
        """virsh COMMAND in the guest, or (remote) from this machine through the forwarded
        port to the guest's libvirtd; a Result either way."""
        if not remote:
            return self.sh(f"{self.local_virsh} {command}", timeout=timeout)
        return self.host_virsh(command, timeout=timeout)

    def request(self, target, duration, remote):
        """virsh nodesuspend TARGET DURATION, and what the host shows while it is pending."""
        pid = self.daemon_pid()
        call = self.virsh(f"nodesuspend {target} {duration}", remote)
        if not self.check(call.status == 0, f"virsh nodesuspend {target} {duration} returns 0"):
            return None
        # virtqemud may have ended (--timeout 120) before the call started a new one.
        pid = self.daemon_pid() if self.linked else (pid or self.daemon_pid())
        during = self.virsh(f"nodesuspend mem {DURATION_S}", remote)
        self.check(during.status != 0 and "already in progress" in during.output,
                   "a second request while it is pending is refused (already in progress)")
        if self.linked:
            # Another daemon, another process loading the library: the host has one request.
            lxc = self.sh(f"virsh -c lxc:///system nodesuspend mem {DURATION_S}")
            refusal = next((l for l in lxc.output.splitlines() if l.startswith("error: ")
                            and "not valid" in l), "")
            print(f"          virtlxcd: {refusal or lxc.output.strip()}")
            self.check(lxc.status != 0 and refusal.startswith(
                "error: Requested operation is not valid: ") and "already in progress" in refusal,
                "virsh -c lxc:///system nodesuspend mem 60 (virtlxcd) is refused: error 55 "
                "(VIR_ERR_OPERATION_INVALID), already in progress")
            where = "remote" if remote else "local"
            self.summary.append({"note": f"virtlxcd during virtqemud's {target} {duration} "
                                 f"{where} request: {refusal or 'not refused'}"})
        status, alarm = self.status(), self.alarm()
        self.check(status["state"] == "pending" and status["target"] == target
                   and status["pid"] == pid and status["backend"] == "logind",
                   f"virnodesuspend status: pending {target}, {self.unit}'s pid {pid}, logind")
        self.check(alarm != "" and status["wake_at"] == int(alarm),
                   f"the RTC alarm holds the request's wake time ({alarm})")
        return call

    def sleep(self, target, duration=DURATION_S, remote=False):
        """A sleep through virsh, libvirtd, the library, logind and the kernel, and back. remote:
        virsh runs on this machine (tp-libvirt's virsh_nodesuspend cases), and a probe of the
        daemon from here measures how long the guest is unreachable."""
        how = (f"virsh -c qemu+tcp from this machine, probed through the forwarded port"
               if remote else "virsh in the guest")
        daemon = ("virtproxyd, virtqemud" if remote else "virtqemud") if self.linked else "libvirtd"
        print(f"\n{self.args.release}: {NAMES[target]} ({target}) for {duration} s through "
              f"{daemon}, the library, logind and the kernel ({how})")
        if remote and not self.remote_setup():
            return
        probe = Probe(self.guest.forward_port) if remote else None
        if probe:
            probe.start()
            probe.wait_reachable(timeout=10)
        try:
            self.sleep_and_back(target, duration, remote, probe)
        finally:
            if probe:
                probe.stop()

    def sleep_and_back(self, target, duration, remote, probe):
        call = self.request(target, duration, remote)
        if call is None:
            return
        event = "SUSPEND_DISK" if target == "disk" else "SUSPEND"
        entered = self.guest.wait_event({event}, call.sent,
                                        DELAY_S + ENTRY_LATE_BOUND_S[target] + 30)
        state = "S4" if target == "disk" else "S3"
        if not self.check(entered is not None, f"QEMU saw the guest enter {state}"):
            return
        entry = entered.at - call.received
        bound = DELAY_S + ENTRY_LATE_BOUND_S[target]
        self.check(DELAY_S - 0.5 <= entry <= bound,
                   f"entered {entry:.3f} s after the call returned (delay {DELAY_S} s; "
                   f"bound {bound:.0f} s)")
        row = {"release": self.args.release, "target": target, "duration": duration,
               "remote": remote, "entry": entry}
        if target == "disk":
            boot_id = self.boot_id
            off = self.guest.wait_event({"SHUTDOWN"}, entered.at, 60)
            self.check(off is not None, "QEMU saw the guest power off after the image")
            self.check(self.guest.wait_exit(60) is not None, "QEMU exited")
            self.guest.start()
            back = self.guest.sh("cat /proc/sys/kernel/random/boot_id", timeout=BOOT_BUDGET_S)
            self.check(back.status == 0 and back.output.strip() == boot_id,
                       "booted again from the same disk, the guest resumed: the same boot "
                       f"({boot_id[:8]}...), its command agent answers from before the power-off")
            row["down"] = back.received - off.at if off else None
            print(f"          powered off to answering again: {row['down']:.1f} s")
        else:
            woke = self.guest.wait_event({"WAKEUP"}, entered.at, duration + 30)
            if not self.check(woke is not None, "QEMU saw the RTC alarm wake the guest"):
                return
            error = woke.at - (call.received + duration)
            print(f"          woke {woke.at - call.received:.3f} s after the call returned "
                  f"({woke.at - call.sent:.3f} s after it was sent): error {error:+.3f} s")
            self.check(woke.at - call.sent >= duration,
                       f"no earlier than {duration} s after the call")
            self.check(error < WAKE_LATE_BOUND_S, f"less than {WAKE_LATE_BOUND_S:.0f} s late")
            row["error"] = error
        if probe:
            self.downtime(probe, call, entered, target, duration, row)
        waited = self.sh("virnodesuspend wait", timeout=120)
        self.check(waited.status == 0, "virnodesuspend wait: the request ended with the host back")
        status = self.status()
        last = status.get("last") or {}
        self.check(status["state"] == "idle" and last.get("outcome") == "back"
                   and last.get("target") == target,
                   f"the library records the request as back (last: {last})")
        self.check(self.alarm() == "", "the wake alarm is disarmed")
        lines = self.journal(call.sent, f"{target}")
        verb = {"mem": "suspend", "disk": "hibernate", "hybrid": "hybrid"}[target]
        self.check(any("systemd-logind: The system will" in l and verb in l for l in lines),
                   f"logind's journal: \"The system will {verb}... now!\"")
        self.check(any(SLEEP_ENTERED.search(l) for l in lines)
                   and any(SLEEP_RETURNED.search(l) for l in lines),
                   "systemd-sleep's journal: entering the sleep state, returned from it")
        if self.linked:
            # virtlxcd this time: the record names it as the owner.
            after = self.sh(f"virsh -c lxc:///system nodesuspend mem {DURATION_S}")
            owner, lxcd = self.status()["pid"], self.daemon_pid("virtlxcd")
            accepted = self.check(after.status == 0 and owner == lxcd,
                                  f"virsh -c lxc:///system nodesuspend mem {DURATION_S} after it "
                                  f"is accepted (the record names virtlxcd, pid {owner})")
        else:
            after = self.virsh(f"nodesuspend mem {DURATION_S}", remote)
            accepted = self.check(after.status == 0, "a request after it is accepted")
        if accepted:
            aborted = self.sh("virnodesuspend abort")
            self.check(aborted.status == 0 and self.status()["state"] == "idle",
                       "... and aborted from the shell (virnodesuspend abort)")
        self.summary.append(row)

    def downtime(self, probe, call, entered, target, duration, row):
        """The probe's view: unreachable after the call, back within tp-libvirt's tolerance."""
        back = probe.wait_back(after=entered.at, timeout=duration + 120)
        down = probe.first_down(after=call.received)
        if not self.check(down is not None and back is not None,
                          "the probe saw the daemon unreachable, then back"):
            return
        row["gone"], row["back"] = down - call.received, back - call.received
        print(f"          unreachable {row['gone']:.1f} s after the call returned, back "
              f"{row['back']:.1f} s after it (tp-libvirt: back within ({duration}, "
              f"{duration + 8}) s)")
        if target == "disk":
            print("          (disk: the guest is booted again by this suite, not by the "
                  "alarm; no tolerance applies)")
        else:
            self.check(duration < row["back"] < duration + 8,
                       f"back within ({duration}, {duration + 8}) s of the call's return")

    def daemon_vs_shell(self):
        print(f"\n{self.args.release}: the daemon's pending request, seen and aborted from a shell")
        pid = self.daemon_pid()
        call = self.sh(f"virsh nodesuspend mem {DURATION_S}")
        if not self.check(call.status == 0, "virsh nodesuspend mem 60 returns 0"):
            return
        pid = pid or self.daemon_pid()
        shell = self.sh(f"virnodesuspend suspend mem {DURATION_S}")
        self.check(shell.status == 1 and "already in progress" in shell.output,
                   "virnodesuspend suspend mem 60 from a shell is refused (already in progress)")
        status, alarm = self.status(), self.alarm()
        self.check(status["state"] == "pending" and status["pid"] == pid
                   and status["wake_at"] == int(alarm or -1),
                   f"virnodesuspend status shows libvirtd's request (pid {status['pid']}, "
                   f"wakes at {status['wake_at']}; alarm {alarm})")
        aborted = self.sh("virnodesuspend abort")
        self.check(aborted.status == 0, "virnodesuspend abort cancels it")
        status = self.status()
        self.check(status["state"] == "idle" and (status["last"] or {}).get("outcome") == "aborted"
                   and self.alarm() == "", "the record says aborted, the alarm is disarmed")
        slept = self.guest.wait_event({"SUSPEND", "SUSPEND_DISK"}, call.sent, DELAY_S + 5)
        self.check(slept is None, f"the guest did not sleep ({DELAY_S + 5} s after the call)")
        log = self.sh(f"journalctl -b -u {self.unit} --no-pager -o cat --since=@"
                      f"{int(call.sent + self.guest.clock_offset()) - 2}", show=False)
        said = [l for l in log.output.splitlines() if "not carried out" in l]
        for line in said:
            print(f"          libvirtd: {line}")
        self.check(bool(said) and "abort" in said[0], "libvirtd's log says the request was aborted")

    def sigkill(self, through_socket):
        """The daemon (libvirtd; virtqemud in the modular guest) SIGKILLed during the delay; the
        next virsh call meets a new daemon. Debian's unit restarts a killed libvirtd itself
        (Restart=on-failure), and libvirt's virtqemud.service too; through_socket turns that
        off for the flow (a runtime drop-in), so that the new daemon is the one its socket
        starts for the next virsh call."""
        unit = self.unit
        how = "started through its socket" if through_socket else "restarted by systemd"
        print(f"\n{self.args.release}: {unit} killed (SIGKILL) during the delay, {how}")
        norestart = f"/run/systemd/system/{unit}.service.d/hosts-norestart.conf"
        if through_socket:
            self.sh(f"mkdir -p {os.path.dirname(norestart)} && "
                    f"printf '[Service]\\nRestart=no\\n' >{norestart} && systemctl daemon-reload")
        call = self.sh(f"{self.local_virsh} nodesuspend mem {DURATION_S}")
        if not self.check(call.status == 0, "virsh nodesuspend mem 60 returns 0"):
            return
        pid, alarm = self.daemon_pid(), self.alarm()
        self.check(alarm != "", f"the alarm is armed ({alarm})")
        self.sh(f"kill -KILL {pid}; while kill -0 {pid} 2>/dev/null; do sleep 0.1; done")
        left = self.alarm()
        self.check(left == alarm, "the killed daemon's alarm is still armed")
        if through_socket:
            state = self.sh(f"systemctl is-active {unit}; systemctl is-active {unit}.socket")
            self.check(state.output.split()[:1] != ["active"] and
                       state.output.split()[1:2] == ["active"],
                       f"no {unit} runs, its socket listens")
        # The modular guest has no QEMU, for which `virsh version` asks (virtqemud: "could not
        # find capabilities for arch=x86_64"); its capabilities need none, and ask the library
        # for the mask (virtqemud, unlike libvirtd, makes no call of the library until asked).
        nxt = self.sh(f"{self.local_virsh} {'capabilities' if self.linked else 'version'}",
                      show=False)
        self.guest.show(nxt, f"$ {self.local_virsh} "
                        f"{'capabilities' if self.linked else 'version'} -> {nxt.status}")
        new_pid = self.daemon_pid()
        self.check(nxt.status == 0 and new_pid not in (0, pid),
                   f"the next virsh call reaches a new {unit} (pid {new_pid})")
        log = self.sh(f"journalctl -b -u {unit} --no-pager -o cat --since=@"
                      f"{int(call.sent + self.guest.clock_offset()) - 2}", show=False)
        for line in log.output.splitlines():
            if re.search(r"Scheduled restart|Started|abandon|Main process exited|Failed with",
                         line):
                print(f"          journal: {line}")
        if through_socket:
            self.check("Scheduled restart" not in log.output, "systemd did not restart it itself")
        self.check(self.alarm() == "", "no alarm left once the new daemon has started")
        status = self.status()
        last = status.get("last") or {}
        abandoned = status["state"] == "idle" and last.get("outcome") == "abandoned"
        self.check(abandoned, f"the request is recorded abandoned ({last.get('error')})")
        slept = self.guest.wait_event({"SUSPEND", "SUSPEND_DISK"}, call.sent, DELAY_S + 5)
        self.check(slept is None, f"the guest did not sleep ({DELAY_S + 5} s after the call)")
        self.summary.append({"note": f"{unit} SIGKILLed during the delay, {how} (pid {pid} -> "
                             f"{new_pid}): {'abandoned' if abandoned else last.get('outcome')}, "
                             f"alarm {'left' if self.alarm() else 'disarmed'}, "
                             f"{'slept' if slept else 'did not sleep'}"})
        if through_socket:
            self.sh(f"rm -f {norestart} && systemctl daemon-reload && "
                    f"systemctl reset-failed {unit}.service")

    def stock(self):
        print(f"\n{self.args.release}: the stock daemon (drop-in masked), side by side")
        self.sh(f"mkdir -p {os.path.dirname(DROPIN_MASK)} && ln -sf /dev/null {DROPIN_MASK} && "
                "systemctl daemon-reload && systemctl restart libvirtd")
        self.check(self.daemon_maps() == {"shim": False, "library": False},
                   "the stock libvirtd maps neither the shim nor the library")
        caps = self.sh("virsh capabilities", show=False)
        print(f"          stock virsh capabilities: "
              f"{' '.join(re.findall(r'<suspend_(mem|disk|hybrid)/>', caps.output))}")
        call = self.sh(f"virsh nodesuspend mem {DURATION_S}")
        self.check(call.status == 0, "stock virsh nodesuspend mem 60 returns 0")
        slept = self.guest.wait_event({"SUSPEND", "SUSPEND_DISK"}, call.sent, STOCK_WATCH_S)
        self.timeline.add(time.time(), "host", f"{STOCK_WATCH_S} s watched: "
                          f"{'SUSPEND seen' if slept else 'no QMP SUSPEND'}")
        self.check(slept is None, f"the guest did not sleep within {STOCK_WATCH_S} s")
        log = self.sh(f"journalctl -b -u libvirtd --no-pager -o cat --since=@"
                      f"{int(call.sent + self.guest.clock_offset()) - 2}", show=False)
        for line in log.output.splitlines()[-5:]:
            print(f"          libvirtd: {line}")
        self.summary.append({"release": self.args.release, "target": "stock mem",
                             "slept": slept is not None})
        self.sh(f"rm -f {DROPIN_MASK} && systemctl daemon-reload && systemctl restart libvirtd")
        self.check(self.daemon_maps()["shim"], "drop-in back: libvirtd maps the shim")

    def domain(self):
        """A minimal domain defined, started and destroyed by the preloaded daemon, its QEMU
        confined by AppArmor as Debian ships it (libvirtd's profile, virt-aa-helper's profile
        for the domain): the QEMU inherits the drop-in's LD_PRELOAD and must be allowed to map
        it."""
        print(f"\n{self.args.release}: a domain started under the preloaded libvirtd, "
              f"AppArmor enforcing")
        aa = self.sh("cat /sys/module/apparmor/parameters/enabled; "
                     "grep -c . /sys/kernel/security/apparmor/profiles; "
                     "grep -E '^(/usr/sbin/)?libvirtd ' /sys/kernel/security/apparmor/profiles",
                     show=False)
        print(f"          AppArmor: {' | '.join(aa.output.split(chr(10))).strip(' |')}")
        self.check(aa.output.startswith("Y") and "libvirtd (enforce)" in aa.output,
                   "AppArmor is enabled and libvirtd's profile is enforced")
        self.sh(f"cat >/tmp/hosts-tiny.xml <<'XML'\n{TINY_DOMAIN}XML\n"
                "virsh define /tmp/hosts-tiny.xml")
        # The first start also makes libvirt probe QEMU (its capabilities), nested TCG.
        start = self.sh("virsh start hosts-tiny", timeout=300)
        if self.check(start.status == 0, f"virsh start hosts-tiny returns 0 (in "
                      f"{start.received - start.sent:.1f} s)"):
            pid = "$(cat /run/libvirt/qemu/hosts-tiny.pid)"
            qemu = self.sh(f"cat /proc/{pid}/attr/current; "
                           f"tr '\\0' '\\n' </proc/{pid}/environ | grep '^LD_PRELOAD='",
                           show=False)
            paths = self.mapped(pid)
            for line in qemu.output.strip().splitlines() + sorted(paths):
                print(f"          QEMU: {line}")
            confined = qemu.output.split("\n", 1)[0]
            self.check(confined.startswith("libvirt-") and "(enforce)" in confined,
                       f"its QEMU runs confined ({confined.strip()})")
            preload = re.search(r"^LD_PRELOAD=(\S+)", qemu.output, re.M)
            self.check(preload is not None and preload[1] in paths,
                       "its QEMU inherited the drop-in's LD_PRELOAD and maps it")
            self.check(not self.objects(paths)["library"],
                       "its QEMU, which never calls it, does not map the library")
            destroy = self.sh("virsh destroy hosts-tiny")
            self.check(destroy.status == 0, "virsh destroy hosts-tiny returns 0")
        log = self.sh("cat /var/log/libvirt/qemu/hosts-tiny.log", show=False)
        for line in log.output.strip().splitlines()[-3:]:
            print(f"          qemu log: {line[:160]}")
        self.check(log.status == 0 and not LOADER_ERROR.search(log.output),
                   "its QEMU log shows no loader error")
        denied = self.sh("journalctl -k -b --no-pager -o cat | grep 'apparmor=\"DENIED\"' | "
                         "grep -i -E 'qemu|libvirt' | tail -n 5", show=False)
        for line in denied.output.strip().splitlines():
            print(f"          kernel: {line[:200]}")
        self.check(denied.output.strip() == "", "AppArmor denied QEMU and libvirtd nothing")
        self.sh("virsh undefine hosts-tiny")

    def modular(self):
        """Does the release's libvirt ship the modular daemons (virtqemud, virtlxcd)? Asked of
        every installed libvirt package but this project's (whose drop-ins name them)."""
        found = self.sh("dpkg -L $(dpkg-query -W -f '${Package}\\n' 'libvirt*' | "
                        "grep -v nodesuspend) | grep -E '/virt(qemu|lxc)d([.@]|$)'; "
                        "dpkg-query -W -f '${Package} ' 'libvirt*'", show=False)
        lines = found.output.strip().splitlines()
        units = [l for l in lines[:-1] if "/virt" in l]
        print(f"          installed: {lines[-1] if lines else ''}")
        print(f"          modular daemons (virtqemud, virtlxcd) in them: "
              f"{' '.join(units) if units else 'none'}")
        self.summary.append({"release": self.args.release, "target": "modular daemons",
                             "files": units})

    # Remote: virsh on this machine, through QEMU's user networking, to the guest's libvirtd.
    def remote_setup(self):
        """The guest's network (QEMU's user networking, restrict=on: nothing but the forwarded
        port) and libvirtd listening on TCP through libvirtd-tcp.socket (auth_tcp none, as the
        image's libvirtd.conf has it); in the modular guest, virtproxyd through
        virtproxyd-tcp.socket (virtproxyd.conf), which hands qemu:///system to virtqemud."""
        if getattr(self, "uri", None):
            return True
        # A daemon started by its sockets is given the TCP one when it starts next.
        listen = ("systemctl stop virtproxyd.service && systemctl start virtproxyd-tcp.socket"
                  if self.linked else
                  "systemctl stop libvirtd.service && systemctl start libvirtd-tcp.socket && "
                  "systemctl start libvirtd.service")
        up = self.sh("dev=$(ls /sys/class/net | grep -v '^lo$' | head -n 1) && "
                     "ip link set \"$dev\" up && ip addr add 10.0.2.15/24 dev \"$dev\" && "
                     f"{listen}")
        self.uri = f"qemu+tcp://127.0.0.1:{self.guest.forward_port}/system"
        version = self.host_virsh("hostname", timeout=60)
        daemon = "virtproxyd (virtproxyd-tcp.socket)" if self.linked else "libvirtd"
        return self.check(up.status == 0 and version.status == 0,
                          f"virsh -c {self.uri} reaches the guest's {daemon}")

    def host_virsh(self, command, timeout=60):
        started = time.time()
        done = subprocess.run(["virsh", "-c", self.uri] + command.split(), capture_output=True,
                              text=True, timeout=timeout)
        result = Result(f"virsh {command}", done.returncode, done.stdout + done.stderr,
                        started, time.time())
        out = result.output.strip().splitlines()
        self.timeline.add(result.received, "host", f"$ virsh -c {self.uri} {command} -> "
                          f"{result.status}{': ' + out[-1] if out else ''}")
        return result

    def remote_errors(self):
        print(f"\n{self.args.release}: remote, tp-libvirt's failing cases")
        if not self.remote_setup():
            return
        for args in ("invalid 60", "mem 0", "mem 59", "mem -1", "mem 10000000000"):
            done = self.host_virsh(f"nodesuspend {args}")
            self.check(done.status != 0, f"virsh nodesuspend {args} fails")

    # The kernel backend against the real logind: the same guest in three configurations.
    # AppArmor off in these boots (apparmor=0): they start no domain, and loading its
    # profiles is a third of a boot under TCG (about 35 s of Debian 13's 85).
    KERNEL_CASES = [
        ("enough swap (1 GiB), resume=/dev/vdb", 1024, f"{KERNEL_ARGS} apparmor=0"),
        ("too little swap (4 MiB), resume=/dev/vdb", 4, f"{KERNEL_ARGS} apparmor=0"),
        ("no resume device (no resume=, noresume)", 1024,
         KERNEL_ARGS.replace("resume=/dev/vdb", "noresume") + " apparmor=0"),
    ]

    def kernel_vs_logind(self):
        """Boots the image in each configuration; logind's answers against the library's kernel
        backend (logind stopped, so the kernel backend answers)."""
        print(f"\n{self.args.release}: the kernel backend against the real logind")
        self.guest.stop()
        table = []
        for n, (label, swap_mib, append) in enumerate(self.KERNEL_CASES, 1):
            workdir = os.path.join(self.args.workdir, f"kernel-{n}")
            os.makedirs(workdir, exist_ok=True)
            guest = Guest(f"{self.args.release} ({label})", self.args.image, workdir,
                          self.timeline, append=append)
            guest.prepare(swap_mib=swap_mib)
            try:
                guest.start()
                guest.wait_ready(BOOT_BUDGET_S)
                logind = {}
                for target, method in LOGIND_METHODS.items():
                    answer = guest.sh("busctl call org.freedesktop.login1 /org/freedesktop/login1 "
                                      f"org.freedesktop.login1.Manager {method}")
                    logind[target] = answer.output.strip().removeprefix("s ").strip('"')
                expected = {t for t, a in logind.items() if a in ("yes", "challenge")}
                kernel = guest.sh("systemctl stop systemd-logind && virnodesuspend caps --json; "
                                  "systemctl start systemd-logind")
                answer = json.loads(kernel.output.splitlines()[0])
                why = guest.sh("cat /sys/power/resume; swapon --show=NAME,SIZE --noheadings; "
                               "grep Active.anon /proc/meminfo")
                print(f"          {label}: logind {logind}; kernel backend "
                      f"{answer['targets']} ({answer['backend']}); "
                      f"{' | '.join(why.output.split(chr(10)))}")
                self.check(answer["backend"] == "kernel", f"{label}: the kernel backend answers")
                self.check(set(answer["targets"]) == expected,
                           f"{label}: the kernel backend's mask equals logind's "
                           f"({' '.join(sorted(expected)) or 'nothing'})")
                table.append((label, logind, answer["targets"]))
            except (TimeoutError, RuntimeError, ValueError, KeyError, IndexError) as failure:
                self.check(False, f"{label}: ran ({type(failure).__name__}: {failure})")
            finally:
                guest.stop()
                for path in (guest.disk, guest.swap):
                    if os.path.exists(path):
                        os.unlink(path)
        self.summary.append({"release": self.args.release, "target": "kernel-vs-logind",
                             "table": table})

    def remote_flow(self, flow):
        """remote-TARGET-DURATION, e.g. remote-mem-60."""
        match = re.fullmatch(r"remote-(mem|disk|hybrid)-(\d+)", flow)
        if not match:
            raise ValueError(f"unknown flow {flow}")
        return lambda: self.sleep(match[1], int(match[2]), remote=True)

    def run(self, flows):
        start = time.time()
        try:
            self.boot()
            if self.args.release == "trixie":
                self.modular()
            for flow in flows:
                ({"caps": self.caps, "mem": lambda: self.sleep("mem"),
                 "hybrid": lambda: self.sleep("hybrid"), "disk": lambda: self.sleep("disk"),
                 "stock": self.stock, "daemon-vs-shell": self.daemon_vs_shell,
                 "sigkill": lambda: self.sigkill(False),
                 "sigkill-socket": lambda: self.sigkill(True),
                 "kernel-vs-logind": self.kernel_vs_logind, "domain": self.domain,
                 "remote-errors": self.remote_errors}.get(flow) or self.remote_flow(flow))()
        except (TimeoutError, RuntimeError, ValueError, KeyError) as failure:
            self.check(False, f"the flows ran to their end ({type(failure).__name__}: {failure})")
            if self.guest.consoles:
                with open(self.guest.consoles[-1], errors="replace") as console:
                    tail = console.read().splitlines()[-25:]
                print(f"          the end of {self.guest.consoles[-1]}:")
                for line in tail:
                    print(f"          | {line}")
        finally:
            self.guest.stop()
        print(f"\n{self.args.release}: summary")
        for row in self.summary:
            if "table" in row:
                print(f"  {row['target']}: (logind CanSuspend/CanHibernate/CanHybridSleep; "
                      f"kernel backend's targets)")
                for label, logind, targets in row["table"]:
                    print(f"    {label}: logind {'/'.join(logind.values())}; "
                          f"kernel {' '.join(targets) or 'nothing'}")
            elif "note" in row:
                print(f"  {row['note']}")
            elif "files" in row:
                print(f"  {row['target']}: {' '.join(row['files']) or 'not shipped'}")
            elif "entry" in row:
                rest = (f"wake error {row['error']:+.3f} s" if "error" in row
                        else f"powered off to running again {row.get('down') or 0:.1f} s")
                if "gone" in row:
                    rest += (f"; unreachable {row['gone']:.1f} s after the call, back after "
                             f"{row['back']:.1f} s")
                where = "remote" if row["remote"] else "local"
                print(f"  {row['target']:<7} {row['duration']:>3} s {where:<6} entry "
                      f"{row['entry']:.3f} s after the call, {rest}")
            else:
                print(f"  {row['target']}: {'slept' if row['slept'] else 'did not sleep'} "
                      f"within {STOCK_WATCH_S} s")
        print(f"  consoles: {' '.join(self.guest.consoles)}")
        print(f"{self.args.release}: {time.time() - start:.0f} s")
        print(f"hosts-{self.args.release}: {self.checks.passed} passed, "
              f"{self.checks.failed} failed")
        return 0 if self.checks.failed == 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--release", required=True, choices=sorted(DEFAULT_FLOWS))
    parser.add_argument("--flows")
    args = parser.parse_args()
    flows = args.flows.split(",") if args.flows else DEFAULT_FLOWS[args.release]
    return Suite(args, flows).run(flows)


if __name__ == "__main__":
    sys.exit(main())
