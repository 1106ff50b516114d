"""A private system bus (a real dbus-daemon) with a stand-in logind on it.

As a module: PrivateBus(directory), then .start_logind(config). As a program (for the
benchmark and the Rust tests): private_bus.py DIRECTORY CONFIG_JSON prints the bus
address, then keeps both running until its standard input closes. CONFIG_JSON configures
the stand-in (see logind_standin.py); with "daemon": "dbus-broker" the bus is dbus-broker
(see broker_launch.py) instead of Debian's dbus-daemon; with "activatable": false the bus has no service
file for logind, with "running": false no stand-in is started, with "warm": true the
stand-in answers each Can* call once before the address is printed (so that a benchmark
does not charge its first, slow answers to whoever asks first).

Both processes end with whoever started them (lifetime.terminate_with_parent).
"""

import json
import os
import pathlib
import subprocess
import sys
import time

from lifetime import terminate_with_parent

HERE = pathlib.Path(__file__).resolve().parent

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={directory}/bus.socket</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{directory}/services</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
"""


class PrivateBus:
    """WAKE, a path: the stand-in's host sleeps until something is written to the FIFO
    there (see logind_standin.py), unless its answers say otherwise."""

    def __init__(self, directory, activatable=True, wake=None, daemon="dbus-daemon"):
        self.directory = pathlib.Path(directory)
        self.wake = wake
        services = self.directory / "services"
        services.mkdir(parents=True, exist_ok=True)
        if activatable:
            # libvirt requires logind to be activatable as well as running.
            (services / "org.freedesktop.login1.service").write_text(
                "[D-BUS Service]\nName=org.freedesktop.login1\nExec=/bin/false\n"
            )
        config = self.directory / "bus.conf"
        config.write_text(CONFIG.format(directory=self.directory))
        log = open(self.directory / "bus.log", "w")
        if daemon == "dbus-broker":
            socket_path = self.directory / "bus.socket"
            self.daemon = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "/usr/bin/python3",
                 str(HERE / "broker_launch.py"), str(socket_path), str(config)],
                stdout=log,
                stderr=log,
                preexec_fn=terminate_with_parent,
            )
            self.children = [self.daemon]
            # The socket is bound before the broker starts: connections wait in its queue.
            deadline = time.monotonic() + 10
            while not socket_path.exists() and self.daemon.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            self.address = f"unix:path={socket_path}" if socket_path.exists() else ""
        else:
            self.daemon = subprocess.Popen(
                ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=terminate_with_parent,
            )
            self.address = self.daemon.stdout.readline().strip()
            self.children = [self.daemon]
        if not self.address:
            self.stop()
            raise RuntimeError(f"{daemon} did not start: {(self.directory / 'bus.log').read_text()}")

    def start_logind(self, answers):
        """Puts a stand-in logind with the given Can* answers on the bus; its calls are
        recorded in logind.log."""
        if self.wake and "asleep_ms" not in answers:
            answers = {"wake": str(self.wake), **answers}
        standin = subprocess.Popen(
            [
                "/usr/bin/python3",
                str(HERE / "logind_standin.py"),
                json.dumps(answers),
                str(self.directory / "logind.log"),
            ],
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address},
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=terminate_with_parent,
        )
        self.children.append(standin)
        assert standin.stdout.readline().strip() == "ready"

    def stop(self):
        for child in reversed(self.children):
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def warm(address):
    import dbus

    manager = dbus.bus.BusConnection(address).get_object("org.freedesktop.login1", "/org/freedesktop/login1")
    for method in ["CanSuspend", "CanHibernate", "CanHybridSleep"]:
        manager.get_dbus_method(method, "org.freedesktop.login1.Manager")()


def main():
    config = json.loads(sys.argv[2])
    bus = PrivateBus(
        sys.argv[1],
        activatable=config.get("activatable", True),
        daemon=config.get("daemon", "dbus-daemon"),
    )
    try:
        if config.get("running", True):
            bus.start_logind(config)
        if config.get("warm", False):
            warm(bus.address)
        print(bus.address, flush=True)
        sys.stdin.read()
    finally:
        bus.stop()


if __name__ == "__main__":
    main()
