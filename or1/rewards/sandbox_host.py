"""Host side of the sandbox (or1/rewards/sandbox.py): the client of one sandbox init
(`_boot.py`, "the zygote"), which runs programs as two throwaway uids
(`sandbox_uids.py`), and reading a run's output under caps and a deadline. Linux only.

One `Zygote` runs one program (or one judge + candidate pair) at a time; `acquire` /
`release` keep idle ones per backend and process, so a reward worker pays the init's
start (~0.2 s: interpreter plus the preloaded modules) once, and each program then costs
a few forks. A zygote belongs to the process that started it (a forked child starts its
own) and dies with it (bubblewrap --die-with-parent, or the parent-death signal).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from or1.rewards import sandbox_uids as uids
from or1.rewards import sandbox_view as view

logger = logging.getLogger("or1.rewards")

START_TIMEOUT_S = 60.0
KILL_GRACE_S = 5.0  # after a kill, how long the init may take to report the exit
_RUN_IDS = itertools.count(1)


@dataclass
class Proc:
    """One process of a run: its kind (main, judge, candidate), job and limits.

    ``uid`` is the index (0 or 1) of the zygote's throwaway uid it runs as.
    """

    kind: str
    job: dict
    limits: dict
    guard: bool = True
    uid: int = 1


@dataclass
class Outcome:
    """What a run did: status (exited, timeout, output_limit, stopped), and per proc
    (exit code, signal) and (stdout, stderr)."""

    status: str
    exits: list[tuple[int | None, int | None]]
    outputs: list[tuple[bytes, bytes]]
    wall_s: float


@dataclass
class _Reading:
    """Output of one run being read: caps, the line callback of the first proc."""

    stdout_bytes: int
    stderr_bytes: int
    on_line: Callable[[bytes], bool] | None
    bufs: dict[int, bytearray] = field(default_factory=dict)
    line_start: int = 0


class ZygoteError(RuntimeError):
    """The sandbox init could not start or stopped answering."""


class Zygote:
    """A running sandbox init (see the module docstring)."""

    def __init__(self, isolation: str, *, seccomp: bool) -> None:
        self.isolation, self.seccomp = isolation, seccomp
        self.python = view.interpreter()
        self.pid_owner = os.getpid()
        self.leases = self._lease_uids() if isolation != "none" and os.geteuid() == 0 else []
        self.uids = [uid for uid, _ in self.leases] or [None, None]
        self.root_dir = tempfile.mkdtemp(prefix="or1-sbx-root-")
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (the init's stderr, closed in close)
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cfg = self._config(theirs.fileno(), seccomp=seccomp)
        try:
            self.proc = subprocess.Popen(
                self._argv(cfg),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.log,
                start_new_session=True,
                env={"PATH": view.ENV["PATH"]},
            )
        except OSError:
            self.close()
            raise
        finally:
            theirs.close()
        self._wait_ready()

    @staticmethod
    def _lease_uids() -> list[tuple[int, int]]:
        """Two throwaway uids (judge, candidate), spread by process and zygote."""
        try:
            return uids.lease_uids(2, spread=os.getpid() * 7919 + next(_RUN_IDS))
        except uids.UidsExhausted as err:
            raise ZygoteError(str(err)) from None

    def _config(self, fd: int, *, seccomp: bool) -> dict:
        from or1.rewards.code_tests import IMPORT_PREFIX

        strong = self.isolation != "none"
        code = view.code_dir()
        return {
            "ctl_fd": fd,
            "isolation": self.isolation,
            # not root: the "unshare" box in a user namespace (see _box.enter_box)
            "userns": self.isolation == "unshare" and os.geteuid() != 0,
            "root_dir": self.root_dir,
            "view": view.view_spec(code) if self.isolation == "unshare" else [],
            "code_dir": view.CODE_MOUNT if strong else code,
            "site_dirs": view.site_dirs(),
            "preload": view.preload_modules(IMPORT_PREFIX),
            "seccomp": seccomp,
            "deny_syscalls": list(view.DENY_SYSCALLS),
            "readable": view.readable(),
            "env": dict(view.ENV, HOME="/sandbox", TMPDIR="/tmp") if strong else dict(view.ENV),
        }

    def _argv(self, cfg: dict) -> list[str]:
        python = [view.interpreter(), "-I", "-S", "-B"]
        if self.isolation == "bwrap":
            boot = f"{view.CODE_MOUNT}/_boot.py"
            return [*view.bwrap_args(view.code_dir()), *python, boot, json.dumps(cfg)]
        return [*python, f"{view.code_dir()}/_boot.py", json.dumps(cfg)]

    def _wait_ready(self) -> None:
        self.sock.settimeout(START_TIMEOUT_S)
        try:
            msg = json.loads(self.sock.recv(1 << 16) or b"{}")
        except (OSError, ValueError):
            msg = {}
        finally:
            self.sock.settimeout(None)
        if msg.get("op") != "ready":
            detail = msg.get("message") or self._log_tail() or "no answer"
            self.close()
            raise ZygoteError(f"the sandbox init did not start ({self.isolation}): {detail}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.log.seek(0)
            lines = self.log.read().decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else ""
        return ""

    @property
    def alive(self) -> bool:
        """True while the init runs (and belongs to this process)."""
        return self.proc.poll() is None and os.getpid() == self.pid_owner

    def run(
        self,
        procs: Sequence[Proc],
        *,
        wall_s: float,
        stdout_bytes: int,
        stderr_bytes: int,
        on_line: Callable[[bytes], bool] | None = None,
    ) -> Outcome:
        """Run the procs (the first one decides when the run ends); never raises for
        anything a program does, ZygoteError if the init fails."""
        run_id = next(_RUN_IDS)
        start = time.monotonic()
        reads, sent, workdirs = [], [], []
        try:
            for p in procs:
                job = dict(p.job)
                if self.isolation == "none":  # the weak mode has no private tmpfs
                    workdirs.append(tempfile.mkdtemp(prefix="or1-sbx-"))
                    job["workdir"] = workdirs[-1]
                sent.append(_memfd(json.dumps(job).encode()))
                for _ in range(2):
                    r, w = os.pipe2(os.O_CLOEXEC)
                    reads.append(r)
                    sent.append(w)
            specs = [
                {"kind": p.kind, "uid": self.uids[p.uid], "limits": p.limits, "guard": p.guard}
                for p in procs
            ]
            msg = json.dumps({"op": "run", "id": run_id, "procs": specs}).encode()
            try:
                socket.send_fds(self.sock, [msg], sent)
            except OSError as err:
                raise ZygoteError(f"the sandbox init is gone: {err}") from None
            for fd in sent:
                os.close(fd)
            sent = []
            reading = _Reading(stdout_bytes, stderr_bytes, on_line)
            status, exits = self._pump(run_id, reads, reading, start + wall_s)
        finally:
            for fd in sent + reads:
                with contextlib.suppress(OSError):
                    os.close(fd)
            for d in workdirs:
                shutil.rmtree(d, ignore_errors=True)
        outputs = [
            (
                bytes(reading.bufs.get(reads[2 * k], b"")),
                bytes(reading.bufs.get(reads[2 * k + 1], b"")),
            )
            for k in range(len(procs))
        ]
        return Outcome(status, exits, outputs, time.monotonic() - start)

    def _pump(
        self, run_id: int, reads: list[int], reading: _Reading, deadline: float
    ) -> tuple[str, list]:
        sel = selectors.DefaultSelector()
        for fd in reads:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
            reading.bufs[fd] = bytearray()
        sel.register(self.sock, selectors.EVENT_READ)
        status, exits, exited_at = "exited", None, 0.0
        try:
            while exits is None or len(sel.get_map()) > 0:
                now = time.monotonic()
                if exits is not None and now - exited_at > 0.2:
                    break  # (weak mode) an escaped process holds a pipe open
                if status == "exited" and now >= deadline:
                    status = "timeout"
                if status != "exited":
                    return status, exits if exits is not None else self._kill(run_id)
                for key, _ in sel.select(min(deadline - now, 0.2)):
                    if key.fileobj is self.sock:
                        exits = self._message(run_id, exits)
                        if exits is not None:
                            exited_at = time.monotonic()
                            sel.unregister(self.sock)
                    else:
                        status = _read_one(key.fd, reads, reading, sel, status)
            return status, exits
        finally:
            sel.close()

    def _message(self, run_id: int, exits: list | None) -> list | None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ZygoteError("the sandbox init died")
        msg = json.loads(data)
        if msg.get("op") == "exit" and msg.get("id") == run_id:
            return [tuple(s) for s in msg["status"]]
        return exits

    def _kill(self, run_id: int) -> list:
        try:
            self.sock.send(json.dumps({"op": "kill", "id": run_id}).encode())
            self.sock.settimeout(KILL_GRACE_S)
            while True:
                exits = self._message(run_id, None)
                if exits is not None:
                    return exits
        except (OSError, ValueError, ZygoteError):
            self.close()
            raise ZygoteError("the sandbox init did not stop a program") from None
        finally:
            if self.sock.fileno() >= 0:
                self.sock.settimeout(None)

    def close(self) -> None:
        """Stop the init (everything it started dies with it)."""
        with contextlib.suppress(OSError):
            self.sock.send(b'{"op": "quit"}')
        proc = getattr(self, "proc", None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)  # a clean exit (its children's CPU time is accounted)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.sock.close()
        self.log.close()
        shutil.rmtree(self.root_dir, ignore_errors=True)
        for _, fd in self.leases:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.leases = []


def _read_one(fd: int, reads: list[int], reading: _Reading, sel, status: str) -> str:
    """Read what one pipe has; returns the run's status (output_limit, stopped, ...)."""
    try:
        chunk = os.read(fd, 1 << 16)
    except BlockingIOError:
        return status
    if not chunk:
        sel.unregister(fd)
        return status
    buf = reading.bufs[fd]
    if fd == reads[0]:  # the first proc's stdout: complete, capped, fed to on_line
        buf += chunk
        if len(buf) > reading.stdout_bytes:
            return "output_limit"
        if reading.on_line is not None:
            while (end := buf.find(b"\n", reading.line_start)) >= 0:
                line, reading.line_start = bytes(buf[reading.line_start : end]), end + 1
                if not reading.on_line(line):
                    return "stopped"
        return status
    buf += chunk[: max(0, reading.stderr_bytes - len(buf))]
    return status


def _memfd(data: bytes) -> int:
    fd = os.memfd_create("or1-job", os.MFD_CLOEXEC)
    view_ = memoryview(data)
    while view_:
        view_ = view_[os.write(fd, view_) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# --------------------------------------------------------------------------- the pool

_IDLE: dict[tuple[str, str, bool], list[Zygote]] = {}
_LOCK = threading.Lock()


def acquire(isolation: str, *, seccomp: bool) -> Zygote:
    """An idle zygote of this kind, or a new one."""
    key = (isolation, view.interpreter(), seccomp)
    with _LOCK:
        idle = _IDLE.setdefault(key, [])
        while idle:
            z = idle.pop()
            if z.alive:
                return z
            if z.pid_owner == os.getpid():
                z.close()
    return Zygote(isolation, seccomp=seccomp)


def release(z: Zygote) -> None:
    """Give a zygote back for the next run (a dead one is closed)."""
    if not z.alive:
        if z.pid_owner == os.getpid():
            z.close()
        return
    key = (z.isolation, z.python, z.seccomp)
    with _LOCK:
        _IDLE.setdefault(key, []).append(z)


@atexit.register
def shutdown() -> None:
    """Stop every idle zygote of this process."""
    with _LOCK:
        zygotes = [z for zs in _IDLE.values() for z in zs]
        _IDLE.clear()
    for z in zygotes:
        if z.pid_owner == os.getpid():
            z.close()
