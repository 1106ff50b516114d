"""Runs a private dbus-broker as a test bus: broker_launch.py SOCKET CONFIG, started in a
mount namespace of its own (`unshare --mount --propagation private`, as root).

dbus-broker takes its listening socket the way systemd hands it over (socket activation:
the socket at file descriptor 3, LISTEN_FDS and LISTEN_PID), from its launcher,
dbus-broker-launch, which also insists on logging to the journal's socket. Neither is there
on a test machine, and the machine's own must not be used: so this binds SOCKET itself and
passes it on as systemd would, and puts a tmpfs over /run, in this namespace only, with a
stand-in journal socket that discards what is logged. The tmpfs also hides the machine's
own system bus from the broker and its launcher.
"""

import os
import socket
import subprocess
import sys

from lifetime import terminate_with_parent

JOURNAL = "/run/systemd/journal/socket"


def main():
    path, config = sys.argv[1], sys.argv[2]
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
    os.makedirs(os.path.dirname(JOURNAL))
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(JOURNAL)
    if os.fork() == 0:
        # The journal's stand-in: reads what is logged, so that the launcher never waits
        # on a full queue, until the launcher (its parent after the exec) ends.
        terminate_with_parent()
        while True:
            journal.recv(65536)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    os.dup2(listener.fileno(), 3)
    os.set_inheritable(3, True)
    # The launcher also connects to the bus it launches, as a client, at the address the
    # environment gives for its scope.
    address = f"unix:path={path}"
    os.environ.update(
        LISTEN_FDS="1",
        LISTEN_PID=str(os.getpid()),
        DBUS_SESSION_BUS_ADDRESS=address,
        DBUS_SYSTEM_BUS_ADDRESS=address,
    )
    os.execvp("dbus-broker-launch", ["dbus-broker-launch", "--scope", "user", "--config-file", config])


if __name__ == "__main__":
    main()
