"""Host-side plumbing of the sandbox (or1/rewards/sandbox.py): reading a program's
output under caps and a deadline, killing everything a run started (its process group,
its throwaway uid, or processes that escaped the group), throwaway uid slots and
the temporary workspace. Linux only: processes are found by scanning /proc.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import logging
import os
import pwd
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("or1.rewards")

# Throwaway uids (root only): UID_BASE .. UID_BASE + UID_SLOTS - 1, one per concurrent run.
UID_BASE = int(os.environ.get("OR1_SANDBOX_UID_BASE", "62000"))
UID_SLOTS = 1000
SLOT_COUNTER = itertools.count()
KILL_ROUNDS = 200  # sweeps of /proc before giving up on a (pathological) process storm


def pump(
    proc: subprocess.Popen[bytes],
    deadline: float,
    *,
    stdout_bytes: int,
    stderr_bytes: int,
    on_line: Callable[[bytes], bool] | None,
) -> tuple[bytes, bytes, str]:
    """Read stdout/stderr until both close, the deadline passes, or a cap is hit.

    Returns (stdout, stderr, status), status one of exited, timeout, output_limit,
    stopped (``on_line`` returned False for a complete stdout line).
    """
    assert proc.stdout is not None and proc.stderr is not None
    out, err, line_start = bytearray(), bytearray(), 0
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    exited_at: float | None = None
    status = "exited"
    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                return bytes(out), bytes(err), "timeout"
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.2:
                break  # an escaped child holds the pipes open; it is killed in reap
            for key, _ in sel.select(min(deadline - now, 0.05)):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.data == "err":
                    err += chunk[: max(0, stderr_bytes - len(err))]
                else:
                    out += chunk
                    if len(out) > stdout_bytes:
                        return bytes(out), bytes(err), "output_limit"
                    if on_line is not None:
                        line_start, keep_going = feed_lines(out, line_start, on_line)
                        if not keep_going:
                            return bytes(out), bytes(err), "stopped"
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            status = "timeout"
        return bytes(out), bytes(err), status
    finally:
        sel.close()


def feed_lines(buf: bytearray, start: int, on_line: Callable[[bytes], bool]) -> tuple[int, bool]:
    while (end := buf.find(b"\n", start)) >= 0:
        line, start = bytes(buf[start:end]), end + 1
        if not on_line(line):
            return start, False
    return start, True


def reap(
    proc: subprocess.Popen[bytes],
    *,
    uid: int | None,
    token: str,
    start_ticks: int,
    hunt_escapees: bool,
) -> None:
    """Kill everything the run started and reap the direct child.

    ``uid``: the run's throwaway uid (every process of it dies); otherwise, with
    ``hunt_escapees``, processes that left the group (same session or the run's token).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # pgid == pid (start_new_session)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - uninterruptible sleep
        logger.error("sandbox: child %d did not die after SIGKILL", proc.pid)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    if uid is not None:
        kill_matching(lambda st: st.uid == uid)
    elif hunt_escapees:
        kill_matching(escapee_test(proc.pid, token, start_ticks))


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Proc:
    pid: int
    uid: int
    state: str
    pgrp: int
    sid: int
    start_ticks: int


def processes() -> Iterator[Proc]:
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            uid = os.stat(f"/proc/{name}").st_uid
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        rest = stat[stat.rfind(b")") + 2 :].split()
        yield Proc(int(name), uid, rest[0].decode(), int(rest[2]), int(rest[3]), int(rest[19]))


def escapee_test(sid: int, token: str, start_ticks: int) -> Callable[[Proc], bool]:
    needle = f"OR1_SANDBOX_TOKEN={token}".encode()
    uid = os.getuid()

    def test(p: Proc) -> bool:
        if p.sid == sid or p.pgrp == sid:
            return True
        if p.uid != uid or p.start_ticks < start_ticks:
            return False
        try:
            with open(f"/proc/{p.pid}/environ", "rb") as f:
                return needle in f.read()
        except OSError:
            return False

    return test


def kill_matching(test: Callable[[Proc], bool]) -> None:
    for _ in range(KILL_ROUNDS):
        victims = [p.pid for p in processes() if p.state != "Z" and test(p)]
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
    logger.error("sandbox: processes survived %d kill rounds", KILL_ROUNDS)


def count_tasks(uid: int) -> int:
    total = 0
    for p in processes():
        if p.uid == uid:
            with contextlib.suppress(OSError):
                total += len(os.listdir(f"/proc/{p.pid}/task"))
    return total + 1


def now_ticks() -> int:
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return int(uptime * os.sysconf("SC_CLK_TCK")) - 1


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def uid_slot(enabled: bool) -> Iterator[int | None]:
    """Reserve a throwaway uid (root only) with a lock file, so concurrent runs differ."""
    if not enabled:
        yield None
        return
    lock_dir = Path(tempfile.gettempdir()) / "or1-sandbox-uids"
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    first = (os.getpid() * 7919 + next(SLOT_COUNTER)) % UID_SLOTS
    for k in range(UID_SLOTS):
        slot = (first + k) % UID_SLOTS
        uid = UID_BASE + slot
        if has_account(uid):
            continue
        fd = os.open(lock_dir / f"{slot}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            kill_matching(lambda st, u=uid: st.uid == u)  # leftovers of a crashed caller
            yield uid
        finally:
            os.close(fd)
        return
    raise RuntimeError("sandbox: all throwaway uids are in use")


@functools.cache
def has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def workspace(uid: int | None) -> Iterator[tuple[Path, Path]]:
    root = Path(tempfile.mkdtemp(prefix="or1-sbx-"))
    try:
        work = root / "work"
        work.mkdir(mode=0o700)
        if uid is not None:
            os.chmod(root, 0o711)
            os.chown(work, uid, uid)
        yield root, work
    finally:
        remove_tree(root)


def remove_tree(path: Path) -> None:
    def retry(func: Callable[[str], object], failed: str, _exc: object) -> None:
        with contextlib.suppress(OSError):  # a program may chmod 000 its own directories
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
            func(failed)

    kwargs = {"onexc": retry} if sys.version_info >= (3, 12) else {"onerror": retry}
    shutil.rmtree(path, **kwargs)  # type: ignore[arg-type]


def write_file(path: Path, content: str | bytes) -> None:
    data = content.encode("utf-8") if isinstance(content, str) else content
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
