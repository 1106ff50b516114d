"""Python binding for libvirnodesuspend (libvirt-compatible node suspend with RTC wake-up).

    import virnodesuspend
    if virnodesuspend.Target.MEM in virnodesuspend.target_mask():
        virnodesuspend.suspend(virnodesuspend.Target.MEM, 60)
        virnodesuspend.wait()      # the suspend runs in a thread of this process

    request = virnodesuspend.info()   # the host's request, whichever process made it
    if request.state is virnodesuspend.State.PENDING:
        virnodesuspend.abort()         # from any process on the host

The module-level functions use the library found through VIRNODESUSPEND_LIBRARY, or else
libvirnodesuspend.so.0 on the system's library path; Library(path) loads a given one.
Failures raise Error, with libvirt's code (an ErrorCode), domain and message; arguments of
the wrong type or out of C's range raise TypeError or ValueError before the library is
called.
"""

import ctypes
import dataclasses
import enum
import os
import threading
from typing import Any, Optional, Union

__all__ = [
    "VIR_NODE_SUSPEND_TARGET_DISK",
    "VIR_NODE_SUSPEND_TARGET_HYBRID",
    "VIR_NODE_SUSPEND_TARGET_MEM",
    "Error",
    "ErrorCode",
    "Info",
    "LastRequest",
    "Library",
    "Outcome",
    "State",
    "Target",
    "abort",
    "backend",
    "info",
    "suspend",
    "target_mask",
    "version",
    "virNodeSuspendError",
    "virNodeSuspendInfo",
    "wait",
]

SONAME = "libvirnodesuspend.so.0"


class Target(enum.IntEnum):
    """libvirt's virNodeSuspendTarget."""

    MEM = 0  # VIR_NODE_SUSPEND_TARGET_MEM: Suspend-to-RAM
    DISK = 1  # VIR_NODE_SUSPEND_TARGET_DISK: Suspend-to-Disk
    HYBRID = 2  # VIR_NODE_SUSPEND_TARGET_HYBRID: Hybrid-Suspend


# libvirt-python's names for them, so that code written for it reads the same.
VIR_NODE_SUSPEND_TARGET_MEM = Target.MEM
VIR_NODE_SUSPEND_TARGET_DISK = Target.DISK
VIR_NODE_SUSPEND_TARGET_HYBRID = Target.HYBRID


class State(str, enum.Enum):
    """The state of the host's request (virNodeSuspendState). The members are strings, the
    names `virnodesuspend status --json` prints: State.PENDING == "pending"."""

    IDLE = "idle"  # VIR_NODE_SUSPEND_STATE_IDLE: no request
    PENDING = "pending"  # accepted, the alarm armed; the suspend starts after the delay
    SUSPENDING = "suspending"  # the backend has been asked to suspend: too late to abort


class Outcome(str, enum.Enum):
    """How a request ended (virNodeSuspendOutcome), as strings like State."""

    BACK = "back"  # the backend reported the host back from its sleep
    FAILED = "failed"
    ABORTED = "aborted"  # cancelled by abort() before the suspend started
    ABANDONED = "abandoned"  # its process ended before the request did


# By their C values (virNodeSuspendState, virNodeSuspendOutcome; outcome 0 is "none").
_STATES = (State.IDLE, State.PENDING, State.SUSPENDING)
_OUTCOMES = (None, Outcome.BACK, Outcome.FAILED, Outcome.ABORTED, Outcome.ABANDONED)


@dataclasses.dataclass(frozen=True)
class LastRequest:
    """How the last finished request ended: its outcome, its target, and its error message
    (None when it ended with the host back)."""

    outcome: Outcome
    target: Optional[Target]
    error: Optional[str]


@dataclasses.dataclass(frozen=True)
class Info:
    """The host's suspend request, whichever process made it (virNodeSuspendGetInfo), with
    the fields of `virnodesuspend status --json`. When idle, every field but state and
    last is None. pid is the owner's getpid(); accepted_at and wake_at are seconds since
    the epoch, wake_at exactly the value written to the RTC's wakealarm; backend is
    "logind", "pm-utils" or "kernel"; last is None when no request has ended since boot."""

    state: State
    target: Optional[Target]
    pid: Optional[int]
    backend: Optional[str]
    accepted_at: Optional[int]
    wake_at: Optional[int]
    last: Optional[LastRequest]


class ErrorCode(enum.IntEnum):
    """The virErrorNumber values the library raises, named as libvirt-python's constants
    without their VIR_ERR_ prefix (ErrorCode.INVALID_ARG is VIR_ERR_INVALID_ARG, 8).
    include/virnodesuspend.h defines the same under libvirt's names; python/tests checks
    that the two agree."""

    INTERNAL_ERROR = 1
    INVALID_ARG = 8
    OPERATION_FAILED = 9
    SYSTEM_ERROR = 38
    OPERATION_INVALID = 55
    CONFIG_UNSUPPORTED = 67
    ARGUMENT_UNSUPPORTED = 74
    OPERATION_ABORTED = 78
    OPERATION_UNSUPPORTED = 84
    DBUS_SERVICE = 89


def _error_code(number: int) -> int:
    """The ErrorCode with this number, or the number itself when it is none of them."""
    try:
        return ErrorCode(number)
    except ValueError:
        return number


class Error(Exception):
    """A libvirt error from the library: code (virErrorNumber: an ErrorCode, or a plain int
    for a number ErrorCode does not name; either compares equal to the number), domain
    (virErrorDomain), level (virErrorLevel), message, and libvirt's extra fields str1, str2,
    int1, int2. It survives pickling (multiprocessing) with all of them."""

    code: int
    domain: int
    level: int
    message: Optional[str]
    str1: Optional[str]
    str2: Optional[str]
    int1: int
    int2: int

    def __init__(
        self,
        code: int,
        domain: int,
        level: int,
        message: Optional[str],
        str1: Optional[str] = None,
        str2: Optional[str] = None,
        int1: int = 0,
        int2: int = 0,
    ) -> None:
        super().__init__(message)
        self.code = _error_code(code)
        self.domain = domain
        self.level = level
        self.message = message
        self.str1 = str1
        self.str2 = str2
        self.int1 = int1
        self.int2 = int2

    def __reduce__(self) -> "tuple[Any, ...]":
        # Exception's own pickling calls the class with self.args, the message alone.
        fields = (self.code, self.domain, self.level, self.message, self.str1, self.str2, self.int1, self.int2)
        return (type(self), fields, self.__dict__)


class virNodeSuspendError(ctypes.Structure):
    """The C struct virNodeSuspendError, laid out as libvirt's virError: for ctypes code
    that calls the library's (or libvirt's) functions directly."""

    code: int
    domain: int
    message: Optional[bytes]
    level: int
    str1: Optional[bytes]
    str2: Optional[bytes]
    int1: int
    int2: int

    _fields_ = [
        ("code", ctypes.c_int),
        ("domain", ctypes.c_int),
        ("message", ctypes.c_char_p),
        ("level", ctypes.c_int),
        ("conn", ctypes.c_void_p),
        ("dom", ctypes.c_void_p),
        ("str1", ctypes.c_char_p),
        ("str2", ctypes.c_char_p),
        ("str3", ctypes.c_char_p),
        ("int1", ctypes.c_int),
        ("int2", ctypes.c_int),
        ("net", ctypes.c_void_p),
    ]


class virNodeSuspendInfo(ctypes.Structure):
    """The C struct virNodeSuspendInfo, as the header lays it out."""

    state: int
    target: int
    pid: int
    backend: Optional[bytes]
    acceptedAt: int
    wakeAt: int
    lastOutcome: int
    lastTarget: int
    lastError: Optional[bytes]

    _fields_ = [
        ("state", ctypes.c_int),
        ("target", ctypes.c_int),
        ("pid", ctypes.c_int),
        ("backend", ctypes.c_char_p),
        ("acceptedAt", ctypes.c_longlong),
        ("wakeAt", ctypes.c_longlong),
        ("lastOutcome", ctypes.c_int),
        ("lastTarget", ctypes.c_int),
        ("lastError", ctypes.c_char_p),
    ]


def _target(value: int) -> Optional[Target]:
    """A Target from its C value; None for -1 (none)."""
    try:
        return Target(value)
    except ValueError:
        return None


def _text(value: Optional[bytes]) -> Optional[str]:
    return None if value is None else value.decode("utf-8", "replace")


def _c_unsigned(name: str, value: object, bits: int, expected: str) -> int:
    """value as a C unsigned integer of that many bits. ctypes would take a bool or an
    IntEnum as it is, truncate a float, wrap a negative or too large int around, and raise
    its own ArgumentError for the rest; int() would make a number of a float or a str."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {expected}, not {type(value).__name__}")
    if not 0 <= value < 2**bits:
        raise ValueError(f"{name} must be from 0 to 2**{bits} - 1, not {value}")
    return int(value)


class Library:
    """One loaded libvirnodesuspend. The library reads its configuration (the
    VIRNODESUSPEND_* variables) at its first call; it is one per process unless loaded
    from several paths."""

    def __init__(self, path: Optional[str] = None) -> None:
        path = path or os.environ.get("VIRNODESUSPEND_LIBRARY") or SONAME
        self._lib = lib = ctypes.CDLL(path)
        lib.virNodeSuspend.argtypes = [ctypes.c_uint, ctypes.c_ulonglong, ctypes.c_uint]
        lib.virNodeSuspend.restype = ctypes.c_int
        lib.virNodeSuspendGetTargetMask.argtypes = [ctypes.POINTER(ctypes.c_uint)]
        lib.virNodeSuspendGetTargetMask.restype = ctypes.c_int
        lib.virNodeSuspendGetBackend.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.virNodeSuspendGetBackend.restype = ctypes.c_int
        lib.virNodeSuspendWait.argtypes = []
        lib.virNodeSuspendWait.restype = ctypes.c_int
        lib.virNodeSuspendGetInfo.argtypes = [ctypes.POINTER(virNodeSuspendInfo), ctypes.c_uint]
        lib.virNodeSuspendGetInfo.restype = ctypes.c_int
        lib.virNodeSuspendAbort.argtypes = [ctypes.c_uint]
        lib.virNodeSuspendAbort.restype = ctypes.c_int
        lib.virNodeSuspendGetVersion.argtypes = [ctypes.POINTER(ctypes.c_ulong)]
        lib.virNodeSuspendGetVersion.restype = ctypes.c_int
        lib.virNodeSuspendGetLastError.argtypes = []
        lib.virNodeSuspendGetLastError.restype = ctypes.POINTER(virNodeSuspendError)

    def _check(self, ret: int) -> None:
        """Raises this thread's last error when a call failed. ctypes calls the library on
        the calling thread, where the error is kept."""
        if ret == 0:
            return
        e: virNodeSuspendError = self._lib.virNodeSuspendGetLastError().contents
        raise Error(e.code, e.domain, e.level, _text(e.message), _text(e.str1), _text(e.str2), e.int1, e.int2)

    def version(self) -> str:
        """The version of the loaded library ("0.1.0"), from virNodeSuspendGetVersion."""
        number = ctypes.c_ulong()
        self._check(self._lib.virNodeSuspendGetVersion(ctypes.byref(number)))
        return f"{number.value // 1000000}.{number.value // 1000 % 1000}.{number.value % 1000}"

    def target_mask(self) -> "frozenset[Target]":
        """The targets this host supports, as a frozenset of Target."""
        mask = ctypes.c_uint()
        self._check(self._lib.virNodeSuspendGetTargetMask(ctypes.byref(mask)))
        return frozenset(target for target in Target if mask.value & (1 << target))

    def backend(self) -> Optional[str]:
        """The backend that answers for this host and would suspend it ("logind",
        "pm-utils" or "kernel"), or None when none is available."""
        name = ctypes.c_char_p()
        self._check(self._lib.virNodeSuspendGetBackend(ctypes.byref(name)))
        return _text(name.value)

    def suspend(self, target: Union[Target, int], duration: int) -> None:
        """Puts the host to sleep in target (a Target) and wakes it duration seconds later.
        Returns once the request is accepted; the sleep starts after the library's delay.

        target is a Target or an int; an int that is no Target but fits C's unsigned int
        reaches the library, which raises libvirt's Error (ErrorCode.INVALID_ARG). duration
        is an int from 0 to 2**64 - 1. Anything else (bool, float, str, None, an int beyond
        C's range) raises TypeError or ValueError, and the library is not called."""
        target = _c_unsigned("target", target, 32, "a Target or an int")
        duration = _c_unsigned("duration", duration, 64, "an int (seconds)")
        self._check(self._lib.virNodeSuspend(target, duration, 0))

    def wait(self) -> None:
        """Waits until the host's request in progress is over, whichever process made it;
        raises Error when it did not end with the host back (ErrorCode.OPERATION_ABORTED
        when it was aborted). With none in progress: how this process's last request
        ended, or else the host's last; Error when none was made."""
        self._check(self._lib.virNodeSuspendWait())

    def info(self) -> Info:
        """The host's suspend request, whichever process on the host made it, and how the
        last one ended, as an Info. Reads the host's request record only."""
        c = virNodeSuspendInfo()
        self._check(self._lib.virNodeSuspendGetInfo(ctypes.byref(c), 0))
        outcome = _OUTCOMES[c.lastOutcome] if 0 <= c.lastOutcome < len(_OUTCOMES) else None
        return Info(
            state=_STATES[c.state],
            target=_target(c.target),
            pid=c.pid if c.pid > 0 else None,
            backend=_text(c.backend),
            accepted_at=c.acceptedAt if c.acceptedAt >= 0 else None,
            wake_at=c.wakeAt if c.wakeAt >= 0 else None,
            last=None if outcome is None else LastRequest(outcome, _target(c.lastTarget), _text(c.lastError)),
        )

    def abort(self) -> None:
        """Cancels the host's pending request, whichever process on the host made it: the
        suspend never starts, its alarm is disarmed, and its owner's wait() raises Error
        with ErrorCode.OPERATION_ABORTED. Raises Error with ErrorCode.OPERATION_INVALID
        once the suspend has started, or when no request is in progress."""
        self._check(self._lib.virNodeSuspendAbort(0))


_default: Optional[Library] = None
_default_lock = threading.Lock()


def _library() -> Library:
    global _default
    with _default_lock:
        if _default is None:
            _default = Library()
        return _default


def target_mask() -> "frozenset[Target]":
    """Library.target_mask of the default library."""
    return _library().target_mask()


def backend() -> Optional[str]:
    """Library.backend of the default library."""
    return _library().backend()


def suspend(target: Union[Target, int], duration: int) -> None:
    """Library.suspend of the default library."""
    _library().suspend(target, duration)


def wait() -> None:
    """Library.wait of the default library."""
    _library().wait()


def info() -> Info:
    """Library.info of the default library."""
    return _library().info()


def abort() -> None:
    """Library.abort of the default library."""
    _library().abort()


def version() -> str:
    """Library.version of the default library."""
    return _library().version()
