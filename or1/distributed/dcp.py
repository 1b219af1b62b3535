"""Sharded training state: weights and AdamW state with torch.distributed.checkpoint (DCP).

Each rank writes its own shard (``__<rank>_0.distcp``) and rank 0 the global metadata
(``.metadata``): nothing is gathered, so no rank ever holds the full optimizer state
(8 bytes per parameter: 56 GB for a 7B model). The directory must be on storage every
rank can reach (a shared filesystem on a multi-node cluster). DCP plans a load by global
tensor offsets, so a checkpoint written by W ranks loads into W' ranks (resharding), and
into one process without a process group (a local policy resuming a sharded run).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """{"model": weights, "optimizer": AdamW state}, keyed by parameter name (FQN), each
    tensor this rank's shard (a DTensor under FSDP2). A fresh optimizer's state is
    initialized first (a zero-learning-rate step), so it can be loaded into."""
    return {
        "model": get_model_state_dict(model),
        "optimizer": get_optimizer_state_dict(model, optimizer),
    }


def local_tensors(tree: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """(dotted name, this rank's local tensor) for every tensor in a nested state."""
    if isinstance(tree, DTensor):
        yield prefix, tree.to_local()
    elif isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from local_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, list | tuple):
        for i, value in enumerate(tree):
            yield from local_tensors(value, f"{prefix}.{i}")


@contextlib.contextmanager
def _single_process_quiet() -> Iterator[None]:
    """Without a process group DCP warns that it assumes one process: that is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        yield


def save_state(state: dict[str, Any], path: Path) -> None:
    """Write ``training_state(...)`` to ``path`` (a collective under a process group)."""
    with _single_process_quiet():
        dcp.save(state, checkpoint_id=str(path), no_dist=not dist.is_initialized())


def load_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Load the weights and AdamW state at ``path`` into ``model`` and ``optimizer``
    (a collective under a process group; any world size that wrote it)."""
    state = training_state(model, optimizer)
    with _single_process_quiet():
        dcp.load(state, checkpoint_id=str(path), no_dist=not dist.is_initialized())
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optimizer"])
