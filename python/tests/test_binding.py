"""The ctypes binding against the built library (VIRNODESUSPEND_LIBRARY) on fake roots: its
own translation of the C API (types, exceptions, dataclasses, finding the library).

What the library does (one request at a time, abort from another process, a failed
suspend recorded) is tested once, below this layer: in the Rust unit tests and tests-c/.
Each test loads a private copy of the library on the fake host (tests/fake-host/, through
tests/abi/fakes.py): nothing reaches this machine's /sys, RTC, system bus or pm-utils.
"""

import importlib.util
import os
import pathlib
import pickle
import re
import shutil
import subprocess
import sys
import threading
import tomllib
import time
import zipfile

import pytest

import virnodesuspend
from virnodesuspend import Error, ErrorCode, Info, LastRequest, Library, Outcome, State, Target

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = pathlib.Path(virnodesuspend.__file__).parent

# The fake host and the private copy of the library are the C-ABI tests' own (tests/abi/fakes.py).
sys.path.insert(0, str(REPOSITORY / "tests" / "abi"))
from fakes import FakeRoot, environment, private_library  # noqa: E402

BUILT = os.environ.get("VIRNODESUSPEND_LIBRARY")
pytestmark = pytest.mark.skipif(not BUILT, reason="VIRNODESUSPEND_LIBRARY is not set (meson sets it)")


class Host(FakeRoot):
    """The fake host on a fake root (FakeRoot.host, with its variants: states, disk_modes,
    swap)."""

    def __init__(self, root, **variant):
        super().__init__(root)
        self.host(**variant)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


@pytest.fixture
def load(tmp_path, monkeypatch, root):
    """A private copy of the library (fakes.private_library) configured for `root` with the
    given delay."""

    def load_with(delay="0"):
        return Library(private_library(BUILT, tmp_path, monkeypatch, root, VIRNODESUSPEND_DELAY=delay))

    return load_with


IDLE = dict(state=State.IDLE, target=None, pid=None, backend=None, accepted_at=None, wake_at=None)


def wait_for(predicate):
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_targets_have_libvirts_names_and_values():
    assert [(t.name, int(t)) for t in Target] == [("MEM", 0), ("DISK", 1), ("HYBRID", 2)]
    assert virnodesuspend.VIR_NODE_SUSPEND_TARGET_HYBRID is Target.HYBRID


def test_version_is_the_packages(load):
    pyproject = pathlib.Path(__file__).parents[1] / "pyproject.toml"
    assert load().version() == tomllib.loads(pyproject.read_text())["project"]["version"]


def test_mask_is_a_set_of_targets_and_the_backend_is_named(load, root):
    Host(root)
    library = load()
    assert library.target_mask() == {Target.MEM, Target.DISK, Target.HYBRID}
    assert library.backend() == "kernel"


def test_nothing_is_supported_when_no_backend_is_available(load):
    library = load()
    assert library.target_mask() == frozenset()
    assert library.backend() is None


def test_refused_suspend_raises_libvirts_error(load, root):
    Host(root, states="freeze mem", swap=False)
    library = load()
    with pytest.raises(Error) as refused:
        library.suspend(Target.DISK, 60)
    e = refused.value
    assert (e.code, e.domain, e.level) == (74, 0, 2)
    assert e.message == str(e) == "argument unsupported: Suspend-to-Disk"
    with pytest.raises(Error) as refused:
        library.suspend(3, 60)
    assert (refused.value.code, refused.value.message) == (8, "invalid argument: Invalid suspend target")


@pytest.mark.parametrize("duration", [-1, 2**64])
def test_duration_beyond_unsigned_long_long_is_a_value_error(load, root, duration):
    Host(root)
    with pytest.raises(ValueError):
        load().suspend(Target.MEM, duration)


# A wrong argument is refused before the library is called: no request is made (none is
# pending and none ended, so none will write sys/power/state later either), and the kernel
# file is as the fake host wrote it.


@pytest.mark.parametrize("target", [True, False, 1.9, 1.0, "mem", None])
def test_a_target_that_is_no_int_is_a_type_error_and_nothing_is_requested(load, root, target):
    host = Host(root)
    library = load()
    with pytest.raises(TypeError, match="^target must be a Target or an int, not "):
        library.suspend(target, 60)
    assert library.info() == Info(**IDLE, last=None)
    assert host.read("sys/power/state") == "freeze mem disk"


@pytest.mark.parametrize("target", [-1, 2**32, 2**64 + 1])
def test_a_target_beyond_unsigned_int_is_a_value_error_and_nothing_is_requested(load, root, target):
    host = Host(root)
    library = load()
    with pytest.raises(ValueError, match=r"^target must be from 0 to 2\*\*32 - 1, not "):
        library.suspend(target, 60)
    assert library.info() == Info(**IDLE, last=None)
    assert host.read("sys/power/state") == "freeze mem disk"


@pytest.mark.parametrize("target", [3, 2**32 - 1])
def test_an_unknown_target_within_unsigned_int_gets_libvirts_error(load, root, target):
    Host(root)
    with pytest.raises(Error) as refused:
        load().suspend(target, 60)
    assert (refused.value.code, refused.value.message) == (8, "invalid argument: Invalid suspend target")


@pytest.mark.parametrize("duration", [True, 60.5, 60.0, "60", None])
def test_a_duration_that_is_no_int_is_a_type_error_and_nothing_is_requested(load, root, duration):
    host = Host(root)
    library = load()
    # TypeError is the binding's: ctypes' ArgumentError is no TypeError.
    with pytest.raises(TypeError, match="^duration must be an int"):
        library.suspend(Target.MEM, duration)
    assert library.info() == Info(**IDLE, last=None)
    assert host.read("sys/power/state") == "freeze mem disk"


def error_fields(e):
    return (e.code, type(e.code), e.domain, e.level, e.message, e.str1, e.str2, e.int1, e.int2, str(e))


def test_errors_survive_pickling(load, root):
    Host(root, states="freeze mem", swap=False)
    with pytest.raises(Error) as refused:
        load().suspend(Target.DISK, 60)
    for e in (refused.value, Error(1234, 47, 2, "text", "first", "second", 5, 6)):
        copy = pickle.loads(pickle.dumps(e))
        assert type(copy) is Error
        assert error_fields(copy) == error_fields(e)
    assert error_fields(refused.value)[2:] == (
        0, 2, "argument unsupported: Suspend-to-Disk", "argument unsupported: %s", "Suspend-to-Disk", -1, -1,
        "argument unsupported: Suspend-to-Disk",
    )


def test_error_codes_are_named_as_libvirt_python_names_them(load, root):
    Host(root, states="freeze mem", swap=False)
    with pytest.raises(Error) as refused:
        load().suspend(Target.DISK, 60)
    assert refused.value.code is ErrorCode.ARGUMENT_UNSUPPORTED
    assert refused.value.code == 74
    # A number ErrorCode does not name stays a plain int.
    assert type(Error(1234, 0, 2, "text").code) is int


# virErrorLevel's VIR_ERR_* names, and VIR_ERR_OK (no error): no Error's code.
NOT_ERROR_CODES = {"NONE": 0, "WARNING": 1, "ERROR": 2, "OK": 0}


# "    VIR_ERR_INVALID_ARG = 8," in an enum of the header (the last one without its comma).
ENUMERATOR = r"^\s+VIR_ERR_(?P<name>\w+) = (?P<value>\d+),?\s*(?:/\*.*)?$"


def test_error_codes_are_the_headers():
    header = (REPOSITORY / "include" / "virnodesuspend.h").read_text()
    defined = {m["name"]: int(m["value"]) for m in re.finditer(ENUMERATOR, header, re.M)}
    codes = {name: value for name, value in defined.items() if name not in NOT_ERROR_CODES}
    assert codes == {code.name: int(code) for code in ErrorCode}
    others = {name: value for name, value in defined.items() if name in NOT_ERROR_CODES}
    assert others.items() <= NOT_ERROR_CODES.items()


def test_wait_raises_why_the_suspend_failed(load, root):
    Host(root)
    library = load()
    library.target_mask()
    state = root / "sys/power/state"
    state.unlink()
    state.symlink_to("/dev/full")
    library.suspend(Target.MEM, 60)
    with pytest.raises(Error) as failed:
        library.wait()
    e = failed.value
    assert (e.code, e.domain, e.int1) == (38, 0, 28)  # VIR_ERR_SYSTEM_ERROR, ENOSPC
    assert e.message == f"Unable to write 'mem' to '{state}': No space left on device"


def test_each_python_thread_sees_its_own_errors(load, root):
    Host(root, states="freeze mem", swap=False)
    library = load(delay="3600")
    rounds = 200
    start = threading.Barrier(2)
    seen = {"unsupported": [], "too short": []}

    def fail_repeatedly(kind, call):
        for _ in range(rounds):
            start.wait()
            try:
                call()
            except Error as e:
                seen[kind].append(e.message)

    threads = [
        threading.Thread(target=fail_repeatedly, args=("unsupported", lambda: library.suspend(Target.DISK, 60))),
        threading.Thread(target=fail_repeatedly, args=("too short", lambda: library.suspend(Target.MEM, 59))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["unsupported"] == ["argument unsupported: Suspend-to-Disk"] * rounds
    assert seen["too short"] == [
        "invalid argument: Suspend duration is too short, must be at least 3650 seconds"
    ] * rounds


def module_functions(tmp_path, root, library_environment):
    """Runs the module-level functions in a fresh interpreter with the given way of
    finding the library."""
    Host(root)
    script = "import virnodesuspend as v; print([t.name for t in sorted(v.target_mask())], v.backend())"
    variables = {
        **{k: v for k, v in os.environ.items() if k != "VIRNODESUSPEND_LIBRARY"},
        **environment(root),
        "PYTHONPATH": str(pathlib.Path(virnodesuspend.__file__).parent.parent),
        **library_environment,
    }
    result = subprocess.run([sys.executable, "-c", script], env=variables, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_module_functions_find_the_library_from_the_environment(tmp_path, root):
    output = module_functions(tmp_path, root, {"VIRNODESUSPEND_LIBRARY": BUILT})
    assert output == "['MEM', 'DISK', 'HYBRID'] kernel\n"


def test_module_functions_find_the_library_on_the_system_path(tmp_path, root):
    directory = tmp_path / "lib"
    directory.mkdir()
    (directory / virnodesuspend.SONAME).symlink_to(os.path.realpath(BUILT))
    output = module_functions(tmp_path, root, {"LD_LIBRARY_PATH": str(directory)})
    assert output == "['MEM', 'DISK', 'HYBRID'] kernel\n"


def test_info_on_a_host_that_never_had_a_request(load):
    info = load().info()
    assert info == Info(**IDLE, last=None)
    assert info.state == "idle"  # State members are the names status --json prints
    with pytest.raises(AttributeError):
        info.state = State.PENDING  # frozen


def test_info_tells_the_pending_request(load, root):
    host = Host(root)
    library = load(delay="3600")
    before = int(time.time())
    library.suspend(Target.MEM, 3650)
    after = time.time()
    info = library.info()
    assert before <= info.accepted_at <= after
    assert info == Info(
        state=State.PENDING,
        target=Target.MEM,
        pid=os.getpid(),
        backend="kernel",
        accepted_at=info.accepted_at,
        wake_at=int(host.read("sys/class/rtc/rtc0/wakealarm")),
        last=None,
    )
    library.abort()


def test_abort_cancels_the_pending_request(load, root):
    Host(root)
    library = load(delay="3600")
    library.suspend(Target.MEM, 3650)
    library.abort()
    error = f"operation aborted: the suspend request was aborted by process {os.getpid()}"
    assert library.info() == Info(**IDLE, last=LastRequest(Outcome.ABORTED, Target.MEM, error))
    with pytest.raises(Error) as aborted:
        library.wait()
    assert (aborted.value.code, aborted.value.domain, aborted.value.message) == (78, 0, error)


def test_info_after_the_host_is_back(load, root):
    Host(root)
    library = load()
    library.suspend(Target.MEM, 60)
    library.wait()
    assert library.info() == Info(**IDLE, last=LastRequest(Outcome.BACK, Target.MEM, None))


def test_abort_with_nothing_in_progress_raises_55(load, root):
    Host(root)
    library = load()
    with pytest.raises(Error) as refused:
        library.abort()
    e = refused.value
    assert (e.code, e.domain) == (55, 0)
    assert e.message == "Requested operation is not valid: no suspend request is in progress"


# The type hints, as a user's mypy sees them: through the package's py.typed marker (without
# it mypy refuses to read an installed package), checked with --strict.
TYPED_USE = """
import virnodesuspend
from virnodesuspend import Error, ErrorCode, Info, Library, State, Target


def request(library: Library, target: Target, seconds: int) -> bool:
    if target not in library.target_mask():
        return False
    try:
        library.suspend(target, seconds)
        virnodesuspend.wait()
    except Error as e:
        if e.code == ErrorCode.OPERATION_ABORTED:
            return False
        raise
    info: Info = virnodesuspend.info()
    return info.state is State.IDLE and virnodesuspend.backend() is not None
"""


def mypy(tmp_path, *arguments):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (Debian: mypy)")
    environment = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    environment.pop("MYPYPATH", None)
    command = [sys.executable, "-m", "mypy", "--strict", "--no-color-output", "--cache-dir", str(tmp_path / "cache")]
    return subprocess.run([*command, *arguments], env=environment, cwd=tmp_path, capture_output=True, text=True)


def test_the_package_passes_mypy_strict(tmp_path):
    result = mypy(tmp_path, str(PACKAGE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_reads_the_type_hints_of_the_api(tmp_path):
    (tmp_path / "use.py").write_text(TYPED_USE)
    result = mypy(tmp_path, "use.py")
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "misuse.py").write_text('import virnodesuspend\nvirnodesuspend.suspend("mem", 60.5)\n')
    result = mypy(tmp_path, "misuse.py")
    assert result.returncode == 1
    assert 'Argument 1 to "suspend" has incompatible type "str"' in result.stdout
    assert 'Argument 2 to "suspend" has incompatible type "float"; expected "int"' in result.stdout


def test_the_wheel_ships_the_py_typed_marker(tmp_path):
    for module in ("setuptools", "wheel"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (Debian: python3-{module})")
    source = tmp_path / "source"
    shutil.copytree(PACKAGE.parent, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    (tmp_path / "dist").mkdir()
    build = "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")], cwd=source, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    wheel = tmp_path / "dist" / result.stdout.split()[-1]
    with zipfile.ZipFile(wheel) as archive:
        assert "virnodesuspend/py.typed" in archive.namelist()
