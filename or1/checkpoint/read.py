"""Finding and loading a checkpoint: verified against its manifest, errors that name the
file, and the fallback to the newest verified checkpoint (only when asked)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from or1.checkpoint.layout import (
    FALLBACK_FLAG,
    LATEST,
    Checkpoint,
    latest_target,
    step_dirs,
    step_number,
)
from or1.checkpoint.manifest import MANIFEST, manifest_problem
from or1.errors import CheckpointError, Or1Error

log = logging.getLogger("or1.checkpoint")


def find_checkpoint(path: Path) -> Path:
    """Resolve a run dir, a ``ckpt`` dir, ``.../latest`` or a ``step_N`` dir to a
    checkpoint directory (not verified: see ``load_checkpoint``)."""
    path = Path(path)
    if path.name == LATEST and path.is_symlink():
        path = path.parent / os.readlink(path)
    elif path.name == LATEST and path.is_file():  # a text `latest` of an older run
        path = path.parent
    for base in (path, path / "ckpt"):
        if (base / "state.json").is_file():
            return base
        # The newest complete one: `latest` points at it, unless the run was killed
        # between renaming it into place and pointing `latest` at it.
        complete = step_dirs(base)
        if complete:
            return complete[-1]
        target = latest_target(base)
        if target is not None:
            raise CheckpointError(
                f"{base / LATEST} points at {target.name}, which is missing or incomplete.",
                hint="pass an existing ckpt/step_N directory instead.",
            )
    raise CheckpointError(
        f"no checkpoint found at {path}.",
        hint="give a run directory (runs/<name>), its ckpt/latest, or a ckpt/step_N directory.",
    )


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads((path / "state.json").read_text())
        int(state["step"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path / 'state.json'} is corrupt ({type(err).__name__}: {err})."
        ) from None
    return state


def checkpoint_problem(path: Path) -> str | None:
    """What is wrong with the checkpoint at ``path`` (None: verified, or written before
    manifests existed and so unverifiable)."""
    try:
        state = _read_state(path)
    except CheckpointError as err:
        return err.message
    if int(state.get("format", 1)) < 2 and not (path / MANIFEST).exists():
        log.warning("%s predates checksum manifests: it is loaded unverified", path)
        return None
    return manifest_problem(path)


def _newest_verified(ckpt_root: Path, *, before: int) -> Path | None:
    for candidate in reversed(step_dirs(ckpt_root)):
        if step_number(candidate) < before and checkpoint_problem(candidate) is None:
            return candidate
    return None


def load_checkpoint(path: Path, *, verify: bool = True, fallback: bool = False) -> Checkpoint:
    """The checkpoint at ``path`` (see ``find_checkpoint``), its manifest verified.

    Raises:
        CheckpointError: the checkpoint is damaged (naming the file); with ``fallback``
            the newest older verified checkpoint is returned instead, if there is one.
    """
    ckpt = find_checkpoint(path)
    problem = checkpoint_problem(ckpt) if verify else None
    if problem is not None:
        older = _newest_verified(ckpt.parent, before=step_number(ckpt))
        if fallback and older is not None:
            log.warning("checkpoint %s is damaged (%s); falling back to %s", ckpt, problem, older)
            ckpt = older
        elif older is not None:
            raise CheckpointError(
                f"checkpoint {ckpt} is damaged: {problem}.",
                hint=f"the newest verified checkpoint is {older}: resume from it with "
                f"`or1 train --resume <run dir> {FALLBACK_FLAG}`, or give its path to "
                "or1 eval --checkpoint / or1 export.",
            )
        else:
            raise CheckpointError(
                f"checkpoint {ckpt} is damaged: {problem}.",
                hint=f"no older checkpoint in {ckpt.parent} verifies; restart the run "
                "(or1 train with the same name=) or restore the file from a copy.",
            )
    return Checkpoint(ckpt, _read_state(ckpt))


def load_torch_file(path: Path) -> Any:
    """``torch.load`` of a checkpoint file, or a CheckpointError naming it."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; this checkpoint cannot be resumed from.")
    try:
        return torch.load(path, weights_only=False, map_location="cpu")
    except Exception as err:  # torch.load fails in many ways on a damaged file
        raise CheckpointError(
            f"{path} is unreadable ({type(err).__name__}: {str(err).splitlines()[0][:200]}).",
            hint=f"it is damaged; resume from an older checkpoint ({FALLBACK_FLAG}).",
        ) from None


def guarded_load(what: Path, load: Callable[[], Any]) -> Any:
    """``load()``, with any failure but an or1 error turned into a CheckpointError naming
    ``what`` (transformers and safetensors raise many kinds on a damaged file)."""
    try:
        return load()
    except Or1Error:
        raise
    except Exception as err:
        raise CheckpointError(
            f"{what} cannot be loaded ({type(err).__name__}: {str(err).splitlines()[0][:200]}).",
            hint=f"it is damaged or does not fit this run; resume from an older checkpoint "
            f"({FALLBACK_FLAG}) or check the overrides.",
        ) from None


def move_aside_newer(ckpt_root: Path, step: int, *, suffix: str) -> list[Path]:
    """Rename the checkpoints newer than ``step`` (a resume from ``step`` skipped them:
    damaged ones on a fallback) to ``step_N.<suffix>``: kept for inspection, never loaded
    or pruned. Returns their new paths."""
    moved = []
    for path in step_dirs(ckpt_root):
        if step_number(path) > step:
            target = path.with_name(f"{path.name}.{suffix}")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(path, target)
            moved.append(target)
    return moved
