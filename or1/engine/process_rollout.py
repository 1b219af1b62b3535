"""Rollouts decoded by several single-thread CPU processes that share the model's memory.

Why: decoding a small model on a CPU is bound by per-op overhead, not by arithmetic, so
a second intra-op thread barely helps (and two-thread OpenMP collapses whenever another
process holds a core), while a second process decoding other prompts doubles the
throughput. The model's parameters are moved to shared memory (``share_memory_``) once;
the workers receive the very same storage, so the policy's in-place optimizer updates
are visible to them at the next step and no weight sync is needed.

Each call splits the prompts into contiguous chunks of whole groups (one per worker),
draws one seed per worker from this engine's generator, and merges the results in
prompt order. The checkpointed random state is that one generator: a resumed run
samples exactly what the uninterrupted one would have (given the same worker count).
"""

from __future__ import annotations

import atexit
import contextlib
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

import torch
import torch.multiprocessing as mp
from transformers import PreTrainedModel

from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.rollout import Rollouts, SamplingParams, merge_rollouts, split_prompts

SEED_HIGH = 2**62  # worker seeds are drawn uniformly below this


class RolloutWorkerDied(RuntimeError):
    """A rollout process exited or failed; the message carries its traceback."""


def _serve(conn: Connection, model: PreTrainedModel, engine_kwargs: dict[str, Any]) -> None:
    """A worker's loop: ("generate", prompts, params, seed) -> Rollouts, until "stop"."""
    torch.set_num_threads(1)
    engine = HFRolloutEngine(model, **engine_kwargs)
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone
            return
        if message[0] == "stop":
            return
        _, prompts, params, seed = message
        try:
            engine.generator.manual_seed(seed)
            conn.send(("ok", engine.generate(prompts, params)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))


class ProcessRolloutEngine:
    """A `RolloutEngine` decoding in ``processes`` single-thread worker processes (CPU).

    Args:
        model: the policy model (CPU); its parameters and buffers are moved to shared
            memory in place, so the trainer's updates reach the workers for free.
        processes: worker processes (>= 2; one process is plain `HFRolloutEngine`).
        pad_id, stop_ids, max_batch_sequences: as for `HFRolloutEngine` (per worker).
        seed: seeds the generator that draws each call's per-worker seeds.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        processes: int,
        pad_id: int,
        stop_ids: list[int],
        max_batch_sequences: int = 256,
        seed: int = 0,
    ) -> None:
        if processes < 2:
            raise ValueError(f"processes must be >= 2, got {processes}")
        if next(model.parameters()).device.type != "cpu":
            raise ValueError("ProcessRolloutEngine decodes on the CPU; the model is not there")
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)
        model.share_memory()
        kwargs = {
            "pad_id": pad_id,
            "stop_ids": list(stop_ids),
            "max_batch_sequences": max_batch_sequences,
        }
        # spawn, not fork: a forked child of a process that already ran OpenMP regions
        # can deadlock in libgomp; spawn passes the shared storages by file descriptor.
        ctx = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, model, kwargs), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        for i in range(processes):
            self._receive(i)  # "ready": fail here, not at the first step
        atexit.register(self.close)

    @property
    def processes(self) -> int:
        return len(self._procs)

    def generate(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        progress: Callable[[int], None] | None = None,
    ) -> Rollouts:
        ranges = split_prompts(len(prompts), self.processes)
        seeds = torch.randint(SEED_HIGH, (len(ranges),), generator=self.generator).tolist()
        for i, ((start, end), seed) in enumerate(zip(ranges, seeds, strict=True)):
            self._send(i, ("generate", prompts[start:end], params, seed))
        parts = []
        for i, (start, end) in enumerate(ranges):
            parts.append(self._receive(i))
            if progress is not None:
                progress(end - start)
        return merge_rollouts(parts, [start for start, _ in ranges])

    def load_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Copy ``state_dict`` into the shared model (in place: the workers see it)."""
        with torch.no_grad():
            self.model.load_state_dict(state_dict)

    def rng_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_rng_state(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def close(self) -> None:
        """Stop the workers (idempotent; also run at interpreter exit)."""
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("stop",))
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        self._conns, self._procs = [], []

    def _send(self, i: int, message: tuple[Any, ...]) -> None:
        try:
            self._conns[i].send(message)
        except (BrokenPipeError, OSError):
            raise self._died(i, "") from None

    def _receive(self, i: int) -> Any:
        try:
            status, payload = self._conns[i].recv()
        except (EOFError, OSError):
            raise self._died(i, "") from None
        if status == "error":
            raise self._died(i, payload)
        return payload

    def _died(self, i: int, details: str) -> RolloutWorkerDied:
        code = self._procs[i].exitcode if i < len(self._procs) else None
        what = f"exited with code {code}" if code is not None else "failed"
        return RolloutWorkerDied(
            f"rollout process {i} of {self.processes} {what}"
            + (f":\n{details}" if details else "")
            + "\nHint: rerun with rollout.processes=1 to decode in this process and see the"
            " error directly. A script that builds the engine must guard its entry point"
            " with `if __name__ == '__main__':` (workers are spawned and import it)."
        )
