"""A stand-in for systemd-logind on a private bus.

It answers CanSuspend, CanHibernate and CanHybridSleep as configured ("error": with an
error). It carries out
Suspend, Hibernate and HybridSleep as configured:
- "ok": reply, emit PrepareForSleep(true), then after "asleep_ms" PrepareForSleep(false),
  or, with "wake": FIFO, once something is written to FIFO (the host sleeps until the test
  wakes it, however long that takes; the stand-in makes the FIFO if there is none);
- "signal first": emit PrepareForSleep(true) before replying, as systemd-logind does;
- "error": reply with an org.freedesktop.login1 error;
- "hang": never reply.
It records every call (name and arguments) in RECORD_FILE, and exits on SIGTERM.

Usage: logind_standin.py CONFIG_JSON RECORD_FILE, for example
{"CanSuspend": "yes", "CanHibernate": "challenge", "CanHybridSleep": "no",
 "Suspend": "ok", "asleep_ms": 200}.
Needs Debian's python3-dbus and python3-gi (run it with /usr/bin/python3).
"""

import json
import os
import signal
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

MANAGER = "org.freedesktop.login1.Manager"


class Refused(dbus.DBusException):
    _dbus_error_name = "org.freedesktop.login1.SleepVerbNotSupported"


class Manager(dbus.service.Object):
    def __init__(self, bus, config, record):
        super().__init__(bus, "/org/freedesktop/login1")
        self.config = config
        self.record = record
        self.asleep = False
        if "wake" in config:
            if not os.path.exists(config["wake"]):
                os.mkfifo(config["wake"])
            # Held open for writing too: a writer's open never waits, and the FIFO never
            # reads as ended.
            self.wake_fifo = os.open(config["wake"], os.O_RDWR | os.O_NONBLOCK)
            GLib.unix_fd_add_full(GLib.PRIORITY_DEFAULT, self.wake_fifo, GLib.IOCondition.IN, self.woken)

    def log(self, *words):
        with open(self.record, "a") as f:
            f.write(" ".join(str(w) for w in words) + "\n")

    def can(self, method):
        self.log(method)
        answer = self.config.get(method, "na")
        if answer == "error":
            raise Refused(f"{method} is refused by the stand-in")
        return answer

    def fall_asleep(self):
        if "wake" in self.config:
            self.asleep = True
        else:
            GLib.timeout_add(self.config.get("asleep_ms", 200), self.PrepareForSleep, False)

    def woken(self, fd, condition):
        os.read(fd, 4096)
        if self.asleep:
            self.asleep = False
            self.PrepareForSleep(False)
        return True  # keep watching

    def sleep(self, method, interactive, reply, error):
        self.log(method, bool(interactive))
        behaviour = self.config.get(method, self.config.get("Suspend", "ok"))
        if behaviour == "error":
            error(Refused(f"{method} is refused by the stand-in"))
        elif behaviour == "ok":
            reply()
            self.PrepareForSleep(True)
            self.fall_asleep()
        elif behaviour == "signal first":
            self.PrepareForSleep(True)
            reply()
            self.fall_asleep()
        # "hang": neither reply nor error.

    @dbus.service.method(MANAGER, in_signature="", out_signature="s")
    def CanSuspend(self):
        return self.can("CanSuspend")

    @dbus.service.method(MANAGER, in_signature="", out_signature="s")
    def CanHibernate(self):
        return self.can("CanHibernate")

    @dbus.service.method(MANAGER, in_signature="", out_signature="s")
    def CanHybridSleep(self):
        return self.can("CanHybridSleep")

    @dbus.service.method(MANAGER, in_signature="b", out_signature="", async_callbacks=("reply", "error"))
    def Suspend(self, interactive, reply, error):
        self.sleep("Suspend", interactive, reply, error)

    @dbus.service.method(MANAGER, in_signature="b", out_signature="", async_callbacks=("reply", "error"))
    def Hibernate(self, interactive, reply, error):
        self.sleep("Hibernate", interactive, reply, error)

    @dbus.service.method(MANAGER, in_signature="b", out_signature="", async_callbacks=("reply", "error"))
    def HybridSleep(self, interactive, reply, error):
        self.sleep("HybridSleep", interactive, reply, error)

    @dbus.service.signal(MANAGER, signature="b")
    def PrepareForSleep(self, start):
        self.log("PrepareForSleep", bool(start))
        return False  # as a GLib source: run once


def main():
    config, record = json.loads(sys.argv[1]), sys.argv[2]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    name = dbus.service.BusName("org.freedesktop.login1", bus)
    manager = Manager(bus, config, record)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()
    del manager, name


if __name__ == "__main__":
    main()
