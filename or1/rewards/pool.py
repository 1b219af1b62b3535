"""A small process pool for rewards, with a hard per-item deadline.

Why not `concurrent.futures.ProcessPoolExecutor`: a reward can hang inside C code where
no signal-based timeout reaches it (e.g. a huge integer power inside sympy). The executor
cannot kill one stuck task; this pool can: each worker runs one item at a time and a
worker past the item's deadline is SIGKILLed, scored 0.0 and replaced.

- Workers are fresh interpreters (`python -m or1.rewards._worker`, like the "spawn"
  start method: the caller may have torch loaded or threads running, so no fork) talking
  over a socketpair with `multiprocessing.connection.Connection`. Unlike multiprocessing's
  spawn/forkserver they do not re-import the caller's `__main__`, so a script without an
  `if __name__ == "__main__":` guard works, and they can be started from daemonic
  processes. They get the caller's environment and `sys.path` (as PYTHONPATH).
- Each worker runs items in its main thread, so Math-Verify's SIGALRM timeouts work.
- One pool per process, created lazily by `get_pool`, resized on request, shut down at
  exit (`shutdown_pool`). A forked child does not reuse its parent's pool.
- `map` is thread-safe (calls are serialised).
- Reward functions travel by pickle (module-level functions and functools.partial of
  them); a function that cannot be pickled is run in the calling process instead.
- Every job's result is a `Verdict` (verdict.py): the reward function's own (reason,
  hack flag) when it returns one, else its number as a Verdict without a reason. A job
  past its deadline is Verdict(0.0, "timeout"); a worker that died on a job
  Verdict(0.0, "reward error: worker died").
- A `RewardError` raised by a reward (the caller's fault) is re-raised in the caller;
  any other exception scores Verdict(0.0, "reward error: <name>") and is logged with its
  traceback in the worker.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from or1.errors import RewardError
from or1.rewards.verdict import Verdict, as_verdict

logger = logging.getLogger("or1.rewards")

RewardFn = Callable[[Any, Any], "float | Verdict"]
# (fn, x, y, hard timeout s): the job is fn(x, y), e.g. (reward, problem, response)
Job = tuple[RewardFn, Any, Any, float]
TIMEOUT = Verdict(0.0, "timeout")
DIED = Verdict(0.0, "reward error: worker died")
_SHUTDOWN_S = 2.0


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False  # it has imported the rewards and waits for jobs
    job: int | None = None
    deadline: float = 0.0


class RewardPool:
    """`workers` spawned processes that score `Job`s."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise RewardError(f"a reward pool needs >= 1 worker, got {workers}")
        self._lock = threading.Lock()
        self._workers = [self._start() for _ in range(workers)]
        self._closed = False

    @property
    def size(self) -> int:
        """Number of worker processes."""
        return len(self._workers)

    def map(self, jobs: Sequence[Job]) -> list[Verdict]:
        """Score every job; Verdicts in order. A job past its timeout is `TIMEOUT`."""
        results = [TIMEOUT] * len(jobs)
        picklable = {id(fn): _picklable(fn) for fn, *_ in jobs}
        local = [i for i, job in enumerate(jobs) if not picklable[id(job[0])]]
        for i in local:
            fn, response, gold, _ = jobs[i]
            results[i] = as_verdict(fn(response, gold))
        skip = set(local)
        pending = deque(i for i in range(len(jobs)) if i not in skip)
        errors: list[RewardError] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the reward pool is shut down")
            try:
                while pending or any(w.job is not None for w in self._workers):
                    self._dispatch(pending, jobs)
                    self._collect(results, errors)
            except BaseException:  # e.g. Ctrl-C: no worker may keep a stale job
                self._terminate()
                raise
        if errors:  # raised after the loop so that no worker is left mid-job
            raise errors[0]
        return results

    @property
    def closed(self) -> bool:
        """True once shut down (then `get_pool` makes a new pool)."""
        return self._closed

    def _terminate(self) -> None:
        self._closed = True
        for w in self._workers:
            self._kill(w)

    def close(self) -> None:
        """Stop all workers (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for w in self._workers:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
            end = time.monotonic() + _SHUTDOWN_S
            for w in self._workers:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.proc.wait(max(0.0, end - time.monotonic()))
                self._kill(w)

    # ------------------------------------------------------------------ internals

    def _start(self) -> _Worker:
        mine, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
        with mine, theirs:
            proc = subprocess.Popen(
                [sys.executable, "-m", "or1.rewards._worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
            conn = Connection(os.dup(mine.fileno()))
        return _Worker(proc, conn)

    def _kill(self, w: _Worker) -> None:
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait()
        w.conn.close()

    def _replace(self, w: _Worker) -> None:
        self._kill(w)
        fresh = self._start()
        w.proc, w.conn, w.ready, w.job = fresh.proc, fresh.conn, False, None

    def _dispatch(self, pending: deque[int], jobs: Sequence[Job]) -> None:
        for w in self._workers:
            if not w.ready or w.job is not None or not pending:
                continue
            i = pending.popleft()
            fn, response, gold, timeout_s = jobs[i]
            try:
                w.conn.send((i, pickle.dumps((fn, response, gold))))
            except OSError:  # died while idle: replace it and retry the job
                self._replace(w)
                pending.appendleft(i)
                continue
            w.job, w.deadline = i, time.monotonic() + timeout_s

    def _collect(self, results: list[Verdict], errors: list[RewardError]) -> None:
        """Wait for a result, a worker becoming ready, or the next deadline."""
        watched = [w for w in self._workers if w.job is not None or not w.ready]
        if not watched:
            return
        deadlines = [w.deadline for w in watched if w.job is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready = set(wait([w.conn for w in watched], timeout=timeout))
        for w in watched:
            if w.conn in ready:
                self._receive(w, results, errors)
            elif w.job is not None and time.monotonic() >= w.deadline:
                logger.warning(
                    "reward pool: job %d exceeded its deadline; worker killed, reward 0", w.job
                )
                results[w.job] = TIMEOUT  # type: ignore[index]
                self._replace(w)

    def _receive(self, w: _Worker, results: list[Verdict], errors: list[RewardError]) -> None:
        try:
            i, status, value = w.conn.recv()
        except (EOFError, OSError):
            if not w.ready:  # it could not even start: every job would score 0
                self._kill(w)
                raise RuntimeError(
                    "reward pool: a worker process failed to start (see its traceback above)"
                ) from None
            logger.warning("reward pool: worker died on job %d; reward 0", w.job)
            results[w.job] = DIED  # type: ignore[index]
            self._replace(w)
            return
        if status == "ready":
            w.ready = True
            return
        w.job = None
        if status == "error":
            errors.append(value)
        else:
            results[i] = value


def worker_main(conn: Connection) -> None:
    """Serve jobs until the caller closes the connection (runs in the worker process).

    The entry point (`_worker.py`) imports the rewards first, so that their import time
    does not count against the first job's deadline.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    conn.send((-1, "ready", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the caller is gone
        if msg is None:
            return
        i, blob = msg
        try:
            fn, response, gold = pickle.loads(blob)
        except Exception as err:  # e.g. the function's module is not importable here
            conn.send((i, "error", RewardError(f"reward pool: cannot load the job: {err!r}")))
            continue
        try:
            reply = (i, "ok", as_verdict(fn(response, gold)))
        except RewardError as err:
            reply = (i, "error", err)
        except Exception as err:
            logger.exception("reward pool: reward function raised; reward 0")
            reply = (i, "ok", Verdict(0.0, f"reward error: {type(err).__name__}"))
        conn.send(reply)


def _picklable(fn: RewardFn) -> bool:
    try:
        pickle.dumps(fn)
    except Exception:
        logger.info("reward %r cannot be pickled; it runs in the calling process", fn)
        return False
    return True


_POOL: RewardPool | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()
_ATEXIT = False


def get_pool(workers: int | None = None) -> RewardPool:
    """The process-wide pool with `workers` processes (None: the current one, or 1)."""
    global _POOL, _POOL_PID, _ATEXIT
    with _POOL_LOCK:
        if _POOL is not None and os.getpid() != _POOL_PID:
            _POOL = None  # inherited through fork: the workers belong to the parent
        if _POOL is not None and (_POOL.closed or workers not in (None, _POOL.size)):
            _POOL.close()
            _POOL = None
        if _POOL is None:
            _POOL, _POOL_PID = RewardPool(workers or 1), os.getpid()
            if not _ATEXIT:
                atexit.register(shutdown_pool)
                _ATEXIT = True
        return _POOL


def score_in_pool(jobs: Sequence[Job], *, workers: int | None) -> list[Verdict]:
    """Score jobs in the shared pool (see `get_pool`)."""
    return get_pool(workers).map(jobs)


def shutdown_pool() -> None:
    """Stop the shared pool, if any (registered with atexit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and os.getpid() == _POOL_PID:
            _POOL.close()
        _POOL = None
