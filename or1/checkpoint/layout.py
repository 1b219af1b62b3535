"""Where the parts of a checkpoint live, and which directories are complete checkpoints."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from or1.checkpoint.manifest import atomic_write_text, fsync_dir

LATEST = "latest"
CHECKPOINT_FORMAT = 2  # 2: manifest.json + config.yaml (2026-12); 1 (no "format"): before
FALLBACK_FLAG = "--fallback-to-verified"
OPTIMIZER_FILE = "optimizer.pt"  # a local policy's AdamW state (torch.optim layout)
SHARDED_DIR = "sharded"  # a sharded policy's weights + AdamW (torch.distributed.checkpoint)
# ``OR1_KILL_DURING_CHECKPOINT=N`` SIGKILLs the process while step_N is half written
# (after its model, before its training state and manifest): the crash tests' hook.
KILL_ENV = "OR1_KILL_DURING_CHECKPOINT"


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


def step_number(path: Path) -> int:
    """N of a ``step_N`` directory (0 for any other name)."""
    suffix = path.name.removeprefix("step_")
    return int(suffix) if suffix.isdigit() else 0


def step_dirs(ckpt_root: Path) -> list[Path]:
    """The complete checkpoints (``step_N`` with a state.json) under ``ckpt_root``, by step."""
    found = [
        path
        for path in Path(ckpt_root).glob("step_*")
        if path.name.removeprefix("step_").isdigit() and (path / "state.json").is_file()
    ]
    return sorted(found, key=step_number)


def point_latest(ckpt_root: Path, name: str) -> None:
    """Replace ``ckpt_root/latest`` atomically by a relative symlink to ``name`` (a text
    file holding ``name`` where the filesystem has no symlinks)."""
    tmp, latest = ckpt_root / f"{LATEST}.tmp", ckpt_root / LATEST
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    if latest.is_dir() and not latest.is_symlink():  # a copy that followed the link
        shutil.rmtree(latest)
    try:
        os.symlink(name, tmp, target_is_directory=True)
    except OSError:
        atomic_write_text(ckpt_root / LATEST, name + "\n")
        return
    os.replace(tmp, latest)
    fsync_dir(ckpt_root)


def latest_target(base: Path) -> Path | None:
    """Where ``base/latest`` points (symlink or text file), or None if there is none."""
    latest = base / LATEST
    if latest.is_symlink():
        return base / os.readlink(latest)
    if latest.is_file():
        return base / latest.read_text().strip()
    return None
