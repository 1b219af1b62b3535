"""Fixtures for reward tests: sandbox backends and a stray-process check after each test."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from or1.errors import RewardError
from or1.rewards import sandbox

# Programs that start long-lived processes put this in their command line.
STRAY_MARKER = "or1-stray-marker"


def _cmdlines() -> dict[int, str]:
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                found[int(name)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found


def stray_processes(marker: str) -> list[int]:
    """Pids (other than ours) whose command line contains `marker`."""
    me = os.getpid()
    return [pid for pid, cmd in _cmdlines().items() if marker in cmd and pid != me]


def _ours() -> list[int]:
    """Sandboxed programs started by this process, plus marked long-lived processes."""
    mine = f'"ppid": {os.getpid()}'
    return [
        pid
        for pid, cmd in _cmdlines().items()
        if (sandbox.BOOT_NAME in cmd and mine in cmd) or STRAY_MARKER in cmd
    ]


@pytest.fixture(autouse=True)
def no_stray_processes():
    """After each test, nothing a sandboxed program started may still be running."""
    yield
    deadline = time.monotonic() + 3.0  # pid-namespace teardown is asynchronous
    while (left := _ours()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"stray processes left behind: {left}"


def _world_readable_python() -> str | None:
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(path):
            return path
    return None


@pytest.fixture(params=["bwrap", "rlimit", "rlimit-uid"])
def backend(request, monkeypatch) -> sandbox.Backend:
    """Each sandbox configuration in turn (also code_reward's default, via the env var).

    "rlimit-uid" is the rlimit backend with a throwaway uid: it needs root and a Python
    that other users can read (OR1_SANDBOX_PYTHON), since ours may live in /root.
    """
    name = request.param.split("-")[0]
    if request.param == "rlimit-uid":
        python = _world_readable_python()
        if os.geteuid() != 0 or python is None:
            pytest.skip("the throwaway-uid rlimit sandbox needs root and a system Python")
        monkeypatch.setenv("OR1_SANDBOX_PYTHON", python)
    try:
        chosen = sandbox.get_backend(name)
    except RewardError as err:
        pytest.skip(f"bubblewrap is not usable in this environment: {err}")
    if request.param == "rlimit-uid" and not chosen.drop_uid:
        pytest.skip("this kernel/container does not allow switching to a throwaway uid")
    monkeypatch.setenv("OR1_SANDBOX_BACKEND", name)
    return chosen
