"""The suite's way of starting a daemon and running virsh, from inside a chroot, on a
host where a libvirtd listens at the default socket (test_isolation.py runs this).

Run in a mount namespace of its own (unshare --mount --propagation private), as root:
in_a_chroot.py CONFIG_JSON, with "root" (an empty directory for the chroot), "inside" (a
directory that the chroot sees empty, where the daemon lives), "qemu" (the suite's qemu
fixture), "path" (the daemon's PATH) and "bus" (its system bus address).

Outside the chroot, the default socket directory /run/libvirt holds a decoy that counts
who connects (a tmpfs of this namespace: this machine's own /run/libvirt is not touched).
The chroot is this machine's / (a recursive bind), with an empty /run/libvirt and INSIDE
as an empty tmpfs: the paths a virsh resolves outside the chroot lead to the decoy, or
to nothing. Prints as JSON what `virsh version` printed through the daemon, and how many
connections the decoy got.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import threading

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "abi")]

from libvirtd import Libvirtd  # noqa: E402

DECOYS = ["/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock"]


def mount(*arguments):
    subprocess.run(["/usr/bin/mount", *arguments], check=True)


def decoy(path, connections):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()

    def accept():
        while True:
            connection, _ = listener.accept()
            connections.append(path)
            connection.close()

    threading.Thread(target=accept, daemon=True).start()


def main():
    config = json.loads(sys.argv[1])
    root, inside = pathlib.Path(config["root"]), pathlib.Path(config["inside"])
    pathlib.Path("/run/libvirt").mkdir(exist_ok=True)
    mount("-t", "tmpfs", "tmpfs", "/run/libvirt")
    connections = []
    for path in DECOYS:
        decoy(path, connections)
    mount("--rbind", "/", str(root))
    mount("-t", "tmpfs", "tmpfs", str(root / "run/libvirt"))
    mount("-t", "tmpfs", "tmpfs", str(root / inside.relative_to("/")))
    # This process, and all it starts, now sees ROOT as /.
    os.chroot(root)
    os.chdir("/")
    (inside / "libvirtd").mkdir()
    daemon = Libvirtd(inside / "libvirtd", pathlib.Path(config["qemu"]) / "cache", config["path"], config["bus"], None, {})
    result = {"decoy_connections": connections}
    try:
        daemon.start()
        version = daemon.virsh("version")
        result.update(returncode=version.returncode, stdout=version.stdout, stderr=version.stderr)
    except RuntimeError as e:
        result.update(returncode=None, stdout="", stderr=str(e))
    finally:
        daemon.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
