"""A pool of single-thread CPU worker processes that share the model's memory.

Why processes: decoding a small model on a CPU is bound by per-op overhead, not by
arithmetic, so a second intra-op thread barely helps (and two-thread OpenMP collapses
whenever another process holds a core), while a second process decoding other rows adds
1.3-1.6x (bench/rollout.py). The model's parameters are moved to shared memory
(``share_memory()``) once; spawned workers receive the very same storages, so the
policy's in-place optimizer updates reach them with no copy. Rollout decoding
(process_rollout) runs on such a pool.

The update is not split this way: its matmuls are large enough that two OpenMP threads
scale (1.7x over one here), and two single-thread processes computing half the
gradients each were measured at parity with one two-thread process (0.415 vs 0.438 s
per 256-row tiny-arith batch), before the cost of summing gradients.
"""

from __future__ import annotations

import atexit
import contextlib
import pickle
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import torch
import torch.multiprocessing as mp

STOP = "stop"


class WorkerDied(RuntimeError):
    """A worker process exited or failed; the message carries its traceback."""


def _send(conn: Connection, message: Any) -> None:
    # Plain pickle, not multiprocessing's ForkingPickler: a tensor in a message travels
    # as a copy of its bytes, instead of being moved into a new shared-memory segment
    # whose file descriptor is passed (torch's reduction); the messages here are small.
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _recv(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


def _serve(conn: Connection, make_handler: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A worker's loop: each message is a tuple of the handler's arguments; STOP ends it."""
    # Ctrl-C reaches the whole process group: the parent handles it and stops the
    # workers, which would otherwise each die with a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    handler = make_handler(*args)
    _send(conn, ("ready", None))
    while True:
        try:
            message = _recv(conn)
        except EOFError:  # the parent is gone
            return
        if message == STOP:
            return
        try:
            answer = ("ok", handler(*message))
        except BaseException:
            answer = ("error", traceback.format_exc())
        _send(conn, answer)


class WorkerPool:
    """Spawned workers (one per entry of ``args``), each with one torch thread, serving
    ``make_handler(*args[i])``.

    Args:
        what: names the workers in errors (e.g. "rollout").
        make_handler: a picklable callable (module-level) building the worker's handler
            in the worker; ``handler(*message)`` answers each message.
        args: one argument tuple per worker, passed at spawn: tensors in shared memory
            (the model's parameters) reach the worker as the same memory.
        hint: appended to errors (how to run the same work in-process).
    """

    def __init__(
        self,
        what: str,
        make_handler: Callable[..., Any],
        args: list[tuple[Any, ...]],
        *,
        hint: str,
    ) -> None:
        self.what, self.hint = what, hint
        # spawn, not fork: a forked child of a process that already ran OpenMP regions
        # can deadlock in libgomp; spawn passes the shared storages by file descriptor.
        ctx = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for worker_args in args:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, make_handler, worker_args), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        for i in range(len(args)):
            self.receive(i)  # "ready": fail here, not at the first call
        atexit.register(self.close)

    def __len__(self) -> int:
        return len(self._procs)

    def map(
        self,
        messages: list[tuple[Any, ...] | None],
        on_answer: Callable[[int], None] | None = None,
    ) -> list[Any]:
        """Send ``messages[i]`` to worker i (None: skip it), then collect the answers in
        order (None for skipped workers); the workers run concurrently.

        ``on_answer(i)`` is called as worker i's answer arrives. A worker's error is
        raised only after every other answer has been read, so none is left in a pipe
        to be mistaken for the answer to the next call.
        """
        sent: list[int] = []
        error: WorkerDied | None = None
        for i, message in enumerate(messages):
            if message is not None:
                try:
                    self.send(i, message)
                except WorkerDied as err:
                    error = err
                    break
                sent.append(i)
        answers: list[Any] = [None] * len(messages)
        for i in sent:
            try:
                answers[i] = self.receive(i)
            except WorkerDied as err:
                error = error or err
                continue
            if on_answer is not None:
                on_answer(i)
        if error is not None:
            raise error
        return answers

    def send(self, i: int, message: tuple[Any, ...]) -> None:
        try:
            _send(self._conns[i], message)
        except (BrokenPipeError, OSError):
            raise self._died(i, "") from None

    def receive(self, i: int) -> Any:
        try:
            status, payload = _recv(self._conns[i])
        except (EOFError, OSError):
            raise self._died(i, "") from None
        if status == "error":
            raise self._died(i, payload)
        return payload

    def close(self) -> None:
        """Stop the workers (idempotent; also run at interpreter exit)."""
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                _send(conn, STOP)
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()  # SIGKILL is not instant: close() returns with no worker alive
        self._conns, self._procs = [], []

    def _died(self, i: int, details: str) -> WorkerDied:
        code = self._procs[i].exitcode if i < len(self._procs) else None
        what = f"exited with code {code}" if code is not None else "failed"
        return WorkerDied(
            f"{self.what} process {i} of {len(self)} {what}"
            + (f":\n{details}" if details else "")
            + f"\nHint: {self.hint} A script that builds these workers must guard its entry"
            " point with `if __name__ == '__main__':` (workers are spawned and import it)."
        )
