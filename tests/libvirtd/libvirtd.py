"""Debian's libvirtd 9.0 (with its QEMU driver), started by hand for one test, and the real
virsh talking to it.

Each daemon runs in a mount namespace of its own. There /etc/libvirt is the daemon's own
directory (its libvirtd.conf and qemu.conf), and /run/libvirt, /var/lib/libvirt and
/var/log/libvirt are empty tmpfs. So a libvirtd already running on this machine keeps its
sockets, pid file and state, and its domains, networks and autostart links are never seen
(a daemon reading them would start them a second time). Refusing to start next to a
running libvirtd would make the suite fail on exactly the machines that have libvirt in
use. /var/cache/libvirt is shared by all the daemons of a run, so that QEMU's capabilities
are probed once, not once per daemon. (On this machine, only the empty mount points are
created where they are missing.)

The daemon's sockets are in its own directory (unix_sock_dir), and virsh names that
socket in its URI: it reaches this daemon or none, never the default socket, where this
machine's libvirtd may listen. virsh runs in the daemon's namespace and root (nsenter
--mount --root: a mount namespace alone would put it at the namespace's root, outside the
chroot the tests may run in), where it reads the daemon's /etc/libvirt, not this machine's.

The daemon is always stopped by its PID (unshare execs sh, which execs libvirtd, so the
PID that Popen started is libvirtd's), and gets SIGTERM should the test process die first.
"""

import collections
import os
import re
import signal
import subprocess
import time
import urllib.parse

from lifetime import terminate_with_parent

# The private namespace, then the daemon. Arguments: the daemon's /etc/libvirt, the shared
# cache, the pid file. Absolute paths: PATH is the daemon's (stand-ins and QEMU only).
NAMESPACE_SETUP = r"""
for directory in /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
    /usr/bin/mkdir -p "$directory"
done
/usr/bin/mount --bind "$1" /etc/libvirt
for directory in /run/libvirt /var/lib/libvirt /var/log/libvirt; do
    /usr/bin/mount -t tmpfs tmpfs "$directory"
done
/usr/bin/mount --bind "$2" /var/cache/libvirt
exec /usr/sbin/libvirtd --config /etc/libvirt/libvirtd.conf --pid-file "$3"
"""

# Our library's answers are logged at info (util.nodesuspend), everything else from warning.
LIBVIRTD_CONF = """log_outputs = "2:file:{log}"
log_filters = "2:util.nodesuspend"
unix_sock_dir = "{sockets}"
"""

# A socket's path must fit sockaddr_un's sun_path, with its terminating NUL.
SUN_PATH = 108

# QEMU runs (and is probed) as root. As Debian's libvirt-qemu, on a machine whose /dev/kvm
# only root may open (as here), libvirt's capability cache never validates ("KVM was
# enabled when probing, but it is not available now") and QEMU is probed again on every
# lookup: the suite takes three minutes instead of ten seconds. No guest is ever started.
QEMU_CONF = """user = "root"
group = "root"
"""

# "2026-11-22 00:33:47.230+0000: 3822: error : virNodeSuspend:123 : message"
LOG_LINE = re.compile(r"^\S+ \S+: \d+: (\w+) : (\w+):\d+ : (.*)$")
LogRecord = collections.namedtuple("LogRecord", "level function message")

# Where a real system bus listens: no daemon of this suite may ever reach it.
SYSTEM_BUS_SOCKETS = ["/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket"]


class Libvirtd:
    """One libvirtd: stock (PRELOADED None), or with PRELOADED = (shim, library): the shim
    preloaded as the drop-in does it, the library in LD_LIBRARY_PATH for the shim to load
    by its SONAME, and the KNOBS (the VIRNODESUSPEND_* variables) set. Its PATH is the
    given one (stand-ins and QEMU only); its system bus is BUS_ADDRESS (a private bus, or a
    socket that does not exist)."""

    def __init__(self, directory, qemu_cache, path, bus_address, preloaded, knobs):
        assert not any(socket in bus_address for socket in SYSTEM_BUS_SOCKETS), bus_address
        if preloaded:
            root = knobs.get("VIRNODESUSPEND_ROOT", "/")
            assert os.path.isabs(root) and os.path.realpath(root) != "/", "the library needs a fake root"
        self.directory = directory
        self.qemu_cache = qemu_cache
        self.log_file = directory / "libvirtd.log"
        # libvirtd's longest socket name is libvirt-admin-sock.
        self.socket = directory / "libvirt-sock"
        assert len(f"{directory}/libvirt-admin-sock") < SUN_PATH, f"{directory}: too long for a socket's path"
        self.uri = f"qemu+unix:///system?socket={urllib.parse.quote(str(self.socket))}"
        self.transcript = []
        self.environment = {"PATH": path, "DBUS_SYSTEM_BUS_ADDRESS": bus_address, "LC_ALL": "C"}
        if preloaded:
            shim, library = preloaded
            self.environment.update(knobs, LD_PRELOAD=str(shim), LD_LIBRARY_PATH=str(library.parent))
        self.process = None

    def start(self):
        """Starts the daemon and returns once virsh gets an answer from it."""
        etc = self.directory / "etc"
        etc.mkdir()
        (etc / "libvirtd.conf").write_text(LIBVIRTD_CONF.format(log=self.log_file, sockets=self.directory))
        (etc / "qemu.conf").write_text(QEMU_CONF)
        with open(self.directory / "libvirtd.stderr", "w") as stderr:
            self.process = subprocess.Popen(
                ["/usr/bin/unshare", "--mount", "--propagation", "private", "--",
                 "/bin/sh", "-euc", NAMESPACE_SETUP, "sh",
                 str(etc), str(self.qemu_cache), str(self.directory / "libvirtd.pid")],
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                preexec_fn=terminate_with_parent,
            )
        # `virsh uri` asks the QEMU driver nothing: the daemon's first capability query (and
        # the probe of QEMU, a few seconds for the first daemon of a run) is the test's own.
        deadline = time.monotonic() + 90
        while self.process.poll() is None and time.monotonic() < deadline:
            if self.run_virsh(["uri"]).returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"libvirtd did not answer virsh (exit status {self.process.poll()}):\n{self.diagnostics()}")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def run_virsh(self, arguments):
        return subprocess.run(
            ["/usr/bin/nsenter", f"--target={self.process.pid}", "--mount", "--root", "--",
             "/usr/bin/virsh", "--connect", self.uri, *arguments],
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def virsh(self, *arguments):
        """Runs virsh against this daemon; the command and its output join the transcript."""
        result = self.run_virsh(arguments)
        self.transcript.append(f"# virsh {' '.join(arguments)}\n{result.stdout}{result.stderr}")
        return result

    def log(self):
        """The daemon's log, one LogRecord per message."""
        matches = (LOG_LINE.match(line) for line in self.log_file.read_text().splitlines())
        return [LogRecord(*m.groups()) for m in matches if m]

    def diagnostics(self):
        texts = [self.directory / "libvirtd.stderr", self.log_file]
        return "\n".join(f"--- {t}\n{t.read_text()}" for t in texts if t.exists())
