"""Writing a checkpoint: finite values only, atomically, manifest last, then prune."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from or1.checkpoint.layout import CHECKPOINT_FORMAT, KILL_ENV, point_latest, step_dirs
from or1.checkpoint.manifest import fsync_dir, write_manifest
from or1.errors import TrainingError


def first_non_finite(tensors: Iterable[tuple[str, Any]]) -> str | None:
    """The name of the first floating-point tensor holding NaN or inf, else None."""
    for name, value in tensors:
        floating = isinstance(value, torch.Tensor) and value.is_floating_point()
        if floating and not bool(torch.isfinite(value).all()):
            return name
    return None


def non_finite_error(name: str, *, what: str, step: int) -> TrainingError:
    return TrainingError(
        f"step {step}: {what} {name} holds NaN or inf values; no checkpoint was written, "
        "the newest one is still the last good state.",
        hint="resume from it with `or1 train --resume <run dir>` after lowering optim.lr "
        "(or check the reward and loss settings).",
    )


def require_finite(tensors: Iterable[tuple[str, Any]], *, what: str, step: int) -> None:
    """Raise TrainingError (before anything is written) if a tensor is NaN/inf."""
    bad = first_non_finite(tensors)
    if bad is not None:
        raise non_finite_error(bad, what=what, step=step)


def _fault_injection(step: int) -> None:
    if os.environ.get(KILL_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGKILL)


def save_checkpoint(
    ckpt_root: Path,
    *,
    step: int,
    model: Any,
    tokenizer: Any,
    write_training_state: Callable[[Path], None],
    rng: dict[str, Any],
    state: dict[str, Any],
    config_text: str,
    keep: int,
) -> Path:
    """Write ``ckpt_root/step_{step}`` atomically, point ``latest`` at it, and prune.

    ``write_training_state(directory)`` writes the policy's optimizer state (it raises
    TrainingError on NaN/inf before writing); the weights are checked here first.
    """
    require_finite(model.state_dict().items(), what="weight", step=step)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final, tmp = ckpt_root / f"step_{step}", ckpt_root / f"step_{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        model.save_pretrained(tmp / "model", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "model")
        _fault_injection(step)
        write_training_state(tmp)
    except TrainingError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    torch.save(rng, tmp / "rng.pt")
    body = {**state, "step": step, "format": CHECKPOINT_FORMAT}
    (tmp / "state.json").write_text(json.dumps(body, indent=1))
    (tmp / "config.yaml").write_text(config_text)
    write_manifest(tmp, step=step)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    fsync_dir(ckpt_root)
    point_latest(ckpt_root, final.name)
    _prune(ckpt_root, keep=keep, newest=final)
    return final


def _prune(ckpt_root: Path, *, keep: int, newest: Path) -> None:
    """Keep the ``keep`` newest checkpoints and always ``newest`` (the one just written,
    verified by its manifest); drop leftovers of killed writes (``step_N.tmp``)."""
    for old in step_dirs(ckpt_root)[:-keep]:
        if old.name != newest.name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_root.glob("step_*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
