"""How the tests' helper processes end with the test process, whatever ends it; for both
suites (tests/abi and tests/libvirtd).

- A helper that may outlive a call (a private dbus-daemon, the stand-in logind, a libvirtd,
  the command-line tool left waiting, a driver) is started with terminate_with_parent as
  its preexec_fn: the kernel sends it SIGTERM when the process that started it dies, even
  of SIGKILL, when no finalizer runs.
- A SIGTERM to pytest ends the session as Ctrl-C does (end_session_on_sigterm, from each
  suite's pytest_configure): pytest then runs the finalizers of every fixture set up, which
  stop the helpers they started and remove what they made.

And what the tests of this need: the processes a process has started, waiting until a
process (not a child of the caller's) has exited, and a pytest session run to be ended.
"""

import collections
import ctypes
import os
import select
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl

# The process that imports this module is the one that starts the helpers.
_STARTER = os.getpid()


def terminate_with_parent():
    """In the child, before exec (preexec_fn): SIGTERM when the parent dies, whatever the
    cause; at once if it died before the prctl took effect."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != _STARTER:
        os.kill(os.getpid(), signal.SIGTERM)


def end_session_on_sigterm():
    """A SIGTERM raises KeyboardInterrupt in pytest: the session ends as interrupted, its
    finalizers run. A second SIGTERM ends pytest at once (its helpers still get theirs from
    the kernel)."""

    def interrupted(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt(f"pytest got {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, interrupted)


def descendants(pid):
    """The processes PID started, and theirs, as read from /proc (parent of each)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def exited(pidfd, timeout):
    """Whether the process of PIDFD (os.pidfd_open) has exited, waiting up to TIMEOUT
    seconds for it: a pidfd turns readable when its process exits, parent or not."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


Ended = collections.namedtuple("Ended", "returncode output helpers left_running temporary_files")


def pytest_session(test_source, conftest_directory, directory, ending, environment=None, timeout=300):
    """Runs pytest in a process of its own on the test module TEST_SOURCE, with the
    fixtures of CONFTEST_DIRECTORY's conftest.py (as a plugin), its TMPDIR and basetemp in
    DIRECTORY, ENVIRONMENT added to its environment. The test creates the file $READY once its helpers run, then reads the FIFO
    $GO. ENDING is a signal sent to pytest then, or None: the FIFO is written to, and the
    test ends by itself. Returns how pytest ended, the helpers it had started, those still
    running 10 s after it ended (then killed), and what was left in its TMPDIR."""
    tests, temporary = directory / "tests", directory / "tmp"
    tests.mkdir()
    temporary.mkdir()
    (tests / "test_session.py").write_text(test_source)
    ready, go = directory / "ready", directory / "go"
    os.mkfifo(go)
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
         "--rootdir", str(tests), "--basetemp", str(directory / "b"), str(tests)],
        env={**os.environ, "PYTHONPATH": str(conftest_directory), "TMPDIR": str(temporary),
             "READY": str(ready), "GO": str(go), **(environment or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=terminate_with_parent,
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if session.poll() is not None or time.monotonic() > deadline:
                session.kill()
                raise AssertionError(f"the test never got ready:\n{session.communicate()[0]}")
            time.sleep(0.05)
        helpers = {}
        for pid in descendants(session.pid):
            try:
                helpers[pid] = (os.pidfd_open(pid), open(f"/proc/{pid}/cmdline").read().replace("\0", " "))
            except (ProcessLookupError, FileNotFoundError):
                pass  # a short-lived one, gone already
        if ending is None:
            with open(go, "w") as f:
                f.write("go")
        else:
            session.send_signal(ending)
        output = session.communicate(timeout=timeout)[0]
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    left_running = []
    for pid, (pidfd, command) in helpers.items():
        if not exited(pidfd, 10):
            left_running.append(command)
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.close(pidfd)
    return Ended(session.returncode, output, [c for _, c in helpers.values()], left_running, os.listdir(temporary))
