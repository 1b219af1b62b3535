"""The throwaway uids sandboxed programs run as (root only), and counting a uid's tasks.

A zygote leases two uids (one for the judge, one for the candidate) for its lifetime: a
lock file per uid slot, held by an open descriptor, so concurrent reward workers and
crashed ones (the kernel drops their locks) never share a uid. Host side (sandbox_host).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import pwd
import tempfile
from pathlib import Path

# UID_BASE .. UID_BASE + UID_SLOTS - 1; a slot whose uid has an account is never used.
UID_BASE = int(os.environ.get("OR1_SANDBOX_UID_BASE", "62000"))
UID_SLOTS = 1000


class UidsExhausted(RuntimeError):
    """Every throwaway uid slot is leased (or belongs to an account)."""


def lease_uids(n: int, spread: int) -> list[tuple[int, int]]:
    """Reserve ``n`` throwaway uids; returns ``(uid, lock fd)`` pairs, each uid held until
    its descriptor closes. ``spread`` picks the first slot tried (callers pass a value that
    differs per process and call, so concurrent leases rarely contend for a slot)."""
    lock_dir = Path(tempfile.gettempdir()) / "or1-sandbox-uids"
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    leases: list[tuple[int, int]] = []
    first = spread % UID_SLOTS
    for k in range(UID_SLOTS):
        slot = (first + k) % UID_SLOTS
        if has_account(UID_BASE + slot):
            continue
        fd = os.open(lock_dir / f"{slot}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        leases.append((UID_BASE + slot, fd))
        if len(leases) == n:
            return leases
    for _, fd in leases:
        os.close(fd)
    raise UidsExhausted("sandbox: all throwaway uids are in use")


@functools.cache
def has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def count_tasks(uid: int) -> int:
    """Tasks of a uid (RLIMIT_NPROC counts them all): for the weak mode as non-root."""
    total = 1
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid:
                    total += len(os.listdir(f"/proc/{name}/task"))
    return total
