"""What a checkpoint restores besides the weights: every RNG, and the policy's training
state (``optimizer.pt`` of a local policy, ``sharded/`` of a sharded one)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from or1.checkpoint.layout import OPTIMIZER_FILE, SHARDED_DIR, Checkpoint
from or1.checkpoint.read import guarded_load, load_torch_file
from or1.checkpoint.write import require_finite


def global_rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


@runtime_checkable
class ShardedState(Protocol):
    """A policy whose ranks each write and read their own shard of the weights and the
    AdamW state (torch.distributed.checkpoint), with no gathering on one rank."""

    def save_sharded(self, path: Path, *, step: int) -> None: ...

    def load_sharded(self, path: Path) -> None: ...


def _optimizer_tensors(state: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    for index, values in state.get("state", {}).items():
        for key, value in values.items():
            yield f"{index}.{key}", value


def training_state_writer(policy: Any, *, step: int) -> Callable[[Path], None]:
    """The ``write_training_state`` of ``save_checkpoint`` for ``policy``."""

    def write(directory: Path) -> None:
        if isinstance(policy, ShardedState):
            policy.save_sharded(directory / SHARDED_DIR, step=step)
            return
        state = policy.optimizer_state()
        require_finite(_optimizer_tensors(state), what="optimizer state of parameter", step=step)
        torch.save(state, directory / OPTIMIZER_FILE)

    return write


def restore_training_state(policy: Any, ckpt: Checkpoint) -> bool:
    """Load the checkpoint's optimizer state into ``policy`` (from sharded files also the
    weights: then True). Either layout loads into either kind of policy."""
    sharded = ckpt.path / SHARDED_DIR
    if sharded.is_dir():
        if isinstance(policy, ShardedState):
            guarded_load(sharded, lambda: policy.load_sharded(sharded))
        else:  # a sharded run resumed in one process: DCP loads without a process group
            from or1.distributed.dcp import load_state

            guarded_load(sharded, lambda: load_state(policy.model, policy.optimizer, sharded))
        return True
    optimizer = load_torch_file(ckpt.path / OPTIMIZER_FILE)
    guarded_load(ckpt.path / OPTIMIZER_FILE, lambda: policy.load_optimizer_state(optimizer))
    return False
