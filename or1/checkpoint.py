"""Atomic, complete checkpoints: a run resumed from one continues exactly.

Layout of ``ckpt/step_N/``: ``model/`` (HF ``save_pretrained`` + tokenizer, loadable by
transformers and by ``or1 eval``), ``optimizer.pt``, ``rng.pt`` (torch, numpy, python
and the rollout sampler's generator), ``state.json`` (step, stage, controller, sampler,
filter tables, elapsed wall time). A checkpoint is written to ``step_N.tmp`` and renamed
into place, then ``ckpt/latest`` (a one-line file) is replaced atomically; a run killed
mid-write leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from or1.errors import CheckpointError

LATEST = "latest"


@dataclass
class Checkpoint:
    path: Path
    state: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def step(self) -> int:
        return int(self.state["step"])


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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


def save_checkpoint(
    ckpt_root: Path,
    *,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer_state: dict[str, Any],
    rng: dict[str, Any],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``ckpt_root/step_{step}`` atomically and point ``latest`` at it."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step}"
    tmp = ckpt_root / f"step_{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_pretrained(tmp / "model", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "model")
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _atomic_write_text(ckpt_root / LATEST, final.name + "\n")
    _prune(ckpt_root, keep=keep, protect=final.name)
    return final


def _prune(ckpt_root: Path, *, keep: int, protect: str) -> None:
    steps = sorted(
        (p for p in ckpt_root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp")),
        key=lambda p: int(p.name.split("_")[1]),
    )
    for old in steps[:-keep]:
        if old.name != protect:
            shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(path: Path) -> Path:
    """Resolve a run dir, a ``ckpt`` dir, ``.../latest`` or a ``step_N`` dir to a checkpoint."""
    path = Path(path)
    candidates = [path, path / "ckpt"]
    for base in candidates:
        if (base / "state.json").is_file():
            return base
        if base.name == LATEST and (base.parent / LATEST).is_file():
            base = base.parent
        latest = base / LATEST
        if latest.is_file():
            target = base / latest.read_text().strip()
            if (target / "state.json").is_file():
                return target
            raise CheckpointError(
                f"{latest} points at {target.name}, which is missing or incomplete.",
                hint="pass an existing ckpt/step_N directory instead.",
            )
    raise CheckpointError(
        f"no checkpoint found at {path}.",
        hint="give a run directory (runs/<name>), its ckpt/latest, or a ckpt/step_N directory.",
    )


def load_checkpoint(path: Path) -> Checkpoint:
    ckpt = find_checkpoint(path)
    try:
        state = json.loads((ckpt / "state.json").read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{ckpt}/state.json is corrupt: {err}.") from None
    return Checkpoint(ckpt, state)


def load_training_state(ckpt: Checkpoint) -> tuple[dict[str, Any], dict[str, Any]]:
    """(optimizer state, rng state) of a checkpoint."""
    for name in ("optimizer.pt", "rng.pt"):
        if not (ckpt.path / name).is_file():
            raise CheckpointError(f"{ckpt.path} has no {name}; it cannot be resumed from.")
    optimizer = torch.load(ckpt.path / "optimizer.pt", weights_only=False)
    rng = torch.load(ckpt.path / "rng.pt", weights_only=False)
    return optimizer, rng
