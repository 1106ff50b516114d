"""Runs a list of node-suspend calls in this process and prints what each returned, as JSON.

Each host state needs a process of its own: both libvirt and this library query the host
once per process. Usage: driver.py SPEC, where SPEC is JSON:
  {"library": PATH or null, "libvirt": "none" | "loaded" | "uninitialized" | "called", "calls": [...]}
"none": libvirt is not in the process; "loaded": libvirt.so.0 is loaded (globally) and
initialized, so this library raises its errors through it too; "uninitialized": loaded,
but nothing has called virInitialize yet; "called": the calls go to libvirt's own
virNodeSuspend* instead of this library's.
Calls: ["mask"], ["mask_null"], ["suspend", target, duration, flags], ["wait"] (this
library's virNodeSuspendWait); and steps between them: ["link", path under
VIRNODESUSPEND_ROOT, target] replaces a kernel file by a symbolic link (to /dev/full, whose
writes fail), ["until", file, text] waits (30 s at most) until FILE contains TEXT,
["until_exactly", file, text] until it is TEXT, ["kill", pid] ends a process and waits
(30 s at most) until it has exited (a bus going away), ["write", file, text] writes TEXT to
FILE (a FIFO that wakes a stand-in); ["suspend_once_free", target, duration, flags] repeats
the request while it is refused as in progress (30 s at most) and records the last answer.
No step waits a fixed time: each waits for what it names.
"""

import ctypes
import json
import os
import pathlib
import signal
import sys
import time

from lifetime import exited

# The Python package's ctypes layout of the error (libvirt's virError, and this library's
# virNodeSuspendError: the same layout).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "python"))
from virnodesuspend import virNodeSuspendError as Error  # noqa: E402

FIELDS = ["code", "domain", "message", "level", "str1", "str2", "str3", "int1", "int2"]


def error_fields(pointer):
    if not pointer:
        return None
    error = pointer.contents
    values = {name: getattr(error, name) for name in FIELDS}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


def wait_until(file, holds):
    deadline = time.monotonic() + 30
    while True:
        try:
            with open(file) as f:
                if holds(f.read()):
                    return
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{file} never held what was waited for")
        time.sleep(0.01)


def suspend_once_free(suspend, own_error, arguments):
    deadline = time.monotonic() + 30
    while True:
        ret = suspend(*arguments)
        error = own_error()
        if ret == 0 or error.contents.code != 55 or time.monotonic() > deadline:
            return ret
        time.sleep(0.01)


def declare(library, prefix):
    suspend = getattr(library, prefix + "Suspend")
    suspend.argtypes = [ctypes.c_uint, ctypes.c_ulonglong, ctypes.c_uint]
    suspend.restype = ctypes.c_int
    mask = getattr(library, prefix + "SuspendGetTargetMask")
    mask.argtypes = [ctypes.POINTER(ctypes.c_uint)]
    mask.restype = ctypes.c_int
    return suspend, mask


def main():
    spec = json.loads(sys.argv[1])
    libvirt = None
    if spec["libvirt"] != "none":
        libvirt = ctypes.CDLL("libvirt.so.0", mode=os.RTLD_GLOBAL)
        libvirt.virGetLastError.restype = ctypes.POINTER(Error)
        if spec["libvirt"] != "uninitialized":
            assert libvirt.virInitialize() == 0
    if spec["libvirt"] == "called":
        suspend, mask = declare(libvirt, "virNode")
        own_error = libvirt.virGetLastError
    else:
        ours = ctypes.CDLL(spec["library"])
        suspend, mask = declare(ours, "virNode")
        ours.virNodeSuspendGetLastError.restype = ctypes.POINTER(Error)
        own_error = ours.virNodeSuspendGetLastError
        wait = ours.virNodeSuspendWait

    results = []
    for call in spec["calls"]:
        if call[0] == "link":
            path = os.path.join(os.environ["VIRNODESUSPEND_ROOT"], call[1])
            os.unlink(path)
            os.symlink(call[2], path)
            continue
        if call[0] == "write":
            with open(call[1], "w") as f:
                f.write(call[2])
            continue
        if call[0] == "until":
            wait_until(call[1], lambda content: call[2] in content)
            continue
        if call[0] == "until_exactly":
            wait_until(call[1], lambda content: content == call[2])
            continue
        if call[0] == "kill":
            # Not this process's child: its pidfd tells when it has exited (all its sockets
            # closed), however long that takes.
            process = os.pidfd_open(call[1])
            signal.pidfd_send_signal(process, signal.SIGTERM)
            assert exited(process, 30), f"process {call[1]} still runs 30 s after SIGTERM"
            os.close(process)
            continue
        if libvirt is not None and spec["libvirt"] != "uninitialized":
            # libvirt's public API resets the error on entry; its private functions don't.
            libvirt.virResetLastError()
        value = ctypes.c_uint(0xDEAD)
        if call[0] == "mask":
            ret = mask(ctypes.byref(value))
        elif call[0] == "mask_null":
            ret = mask(None)
        elif call[0] == "wait":
            ret = wait()
        elif call[0] == "suspend_once_free":
            ret = suspend_once_free(suspend, own_error, call[1:])
        else:
            ret = suspend(*call[1:])
        result = {"call": call, "ret": ret, "error": error_fields(own_error())}
        if call[0] == "mask":
            result["mask"] = value.value
        if libvirt is not None:
            result["libvirt_error"] = error_fields(libvirt.virGetLastError())
        results.append(result)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
