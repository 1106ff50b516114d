"""The run leaves nothing behind, however it ends: a pytest session using this suite's
fixtures (a private bus with the stand-in logind, a driver through the library) that ends
by itself, of a SIGTERM or of a SIGKILL leaves no helper running and nothing in its
temporary directory (lifetime.py)."""

import signal

import pytest

from conftest import HERE
from lifetime import pytest_session

SESSION = """
import os

import pytest

from conftest import run


@pytest.mark.parametrize("system_bus", ["{daemon}"], indirect=True)
def test_bus(system_bus, library):
    address = system_bus({"CanSuspend": "yes"})
    [result] = run({"library": library, "libvirt": "none", "calls": [["mask"]]}, {"DBUS_SYSTEM_BUS_ADDRESS": address})
    assert result["mask"] == 1
    open(os.environ["READY"], "w").close()
    with open(os.environ["GO"]) as go:
        go.read()
"""


@pytest.mark.parametrize(
    "ending, returncode",
    [(None, 0), (signal.SIGTERM, 2), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["finished", "SIGTERM", "SIGKILL"],
)
@pytest.mark.parametrize("daemon", ["dbus-daemon", "dbus-broker"])
def test_a_session_leaves_no_helper_running_and_no_temporary_file(tmp_path, ending, returncode, daemon):
    # One daemon for the session: its test waits for one go.
    ended = pytest_session(SESSION.replace("{daemon}", daemon), HERE, tmp_path, ending)
    # pytest ends a SIGTERM as an interrupted session (exit status 2), its finalizers run.
    assert ended.returncode == returncode, ended.output
    assert any(daemon in helper for helper in ended.helpers), ended.helpers
    assert any("logind_standin.py" in helper for helper in ended.helpers), ended.helpers
    assert ended.left_running == []
    assert ended.temporary_files == []
