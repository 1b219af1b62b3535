"""Fixtures for reward tests: sandbox backends and a leftover-process check after each test.

The `backend` fixture runs a test on every strong backend (bwrap, unshare), or only on
the one OR1_SANDBOX_BACKEND names. OR1_SANDBOX_BACKEND=rlimit runs them on the weak mode
(allowed here explicitly): a test of a guarantee the weak mode does not give marks itself
as an expected failure (`needs_isolation`), strict, so it must really fail there; tests
never skip a backend to look green.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from or1.rewards import sandbox, sandbox_host

WEAK_REASON = "the weak rlimit mode does not isolate programs (docs/sandbox.md)"


def backend_names() -> list[str]:
    """The backends the sandbox tests run on."""
    forced = os.environ.get("OR1_SANDBOX_BACKEND")
    return [forced] if forced else list(sandbox.STRONG)


def _cmdlines() -> dict[int, str]:
    """Command line of every process (used by test_batch.py)."""
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


def _zygote_uids() -> set[int]:
    with sandbox_host._LOCK:
        return {u for zs in sandbox_host._IDLE.values() for z in zs for u in z.uids if u}


def uid_processes(uids: set[int]) -> list[int]:
    """Pids of processes running as one of `uids`."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid in uids:
                    found.append(int(name))
    return found


@pytest.fixture(autouse=True)
def weak_mode_when_asked(monkeypatch):
    """OR1_SANDBOX_BACKEND=rlimit asks for the weak mode: allow it for these tests (the
    refusal without OR1_SANDBOX_INSECURE=1 has its own test in test_sandbox.py)."""
    if os.environ.get("OR1_SANDBOX_BACKEND") == "rlimit":
        monkeypatch.setenv(sandbox.INSECURE_ENV, "1")


def _leftovers(uids: set[int], judge_uids: set[int]) -> list[int]:
    """Processes of programs (any process of a program uid), and of judges beyond the
    one judge server an idle sandbox init may keep per judge uid (_judges.py)."""
    left = uid_processes(uids - judge_uids)
    for uid in judge_uids:
        judges = uid_processes({uid})
        left += judges if len(judges) > 1 else []
    return left


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """After each test, no process may run as a throwaway uid of this process's sandboxes
    (every program's processes die with its run), except one idle judge server per
    sandbox init."""
    yield
    uids = _zygote_uids()
    with sandbox_host._LOCK:
        judge_uids = {z.uids[0] for zs in sandbox_host._IDLE.values() for z in zs if z.uids[0]}
    deadline = time.monotonic() + 3.0
    while (left := _leftovers(uids, judge_uids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind by sandboxed programs: {left}"


@pytest.fixture(params=backend_names())
def backend(request, monkeypatch) -> sandbox.Backend:
    """Each sandbox backend in turn (also code_reward's default, via the env var)."""
    name = request.param
    if name == "rlimit":
        monkeypatch.setenv(sandbox.INSECURE_ENV, "1")
    chosen = sandbox.get_backend(name)  # a backend that does not work here is an error
    monkeypatch.setenv("OR1_SANDBOX_BACKEND", name)
    return chosen


def needs_isolation(request, backend: sandbox.Backend, *, unsafe: bool = False) -> None:
    """Mark the running test as a strict expected failure on the weak mode; an attack that
    would harm the host there (kill every process, fork-bomb root) is not run at all."""
    if backend.isolated:
        return
    if unsafe:
        pytest.xfail(f"{WEAK_REASON}; not run: on the weak mode this attack harms the host")
    request.applymarker(pytest.mark.xfail(strict=True, reason=WEAK_REASON))
