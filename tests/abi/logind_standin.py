"""A stand-in for systemd-logind on a private bus: answers CanSuspend, CanHibernate and
CanHybridSleep as configured, records the calls it gets, and exits on SIGTERM.

Usage: logind_standin.py ANSWERS_JSON RECORD_FILE, with ANSWERS_JSON like
{"CanSuspend": "yes", "CanHibernate": "challenge", "CanHybridSleep": "no"}.
Needs Debian's python3-dbus and python3-gi (run it with /usr/bin/python3).
"""

import json
import signal
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

MANAGER = "org.freedesktop.login1.Manager"


class Manager(dbus.service.Object):
    def __init__(self, bus, answers, record):
        super().__init__(bus, "/org/freedesktop/login1")
        self.answers = answers
        self.record = record

    def answer(self, method):
        with open(self.record, "a") as f:
            f.write(method + "\n")
        return self.answers.get(method, "na")

    @dbus.service.method(MANAGER, in_signature="", out_signature="s")
    def CanSuspend(self):
        return self.answer("CanSuspend")

    @dbus.service.method(MANAGER, in_signature="", out_signature="s")
    def CanHibernate(self):
        return self.answer("CanHibernate")

    @dbus.service.method(MANAGER, in_signature="", out_signature="s")
    def CanHybridSleep(self):
        return self.answer("CanHybridSleep")


def main():
    answers, record = json.loads(sys.argv[1]), sys.argv[2]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    name = dbus.service.BusName("org.freedesktop.login1", bus)
    manager = Manager(bus, answers, record)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()
    del manager, name


if __name__ == "__main__":
    main()
