"""The run directory ``runs_dir/<name>``: checked writable before the run's slow start,
never left behind empty by a failed start, and, for a run that never completed a
checkpoint (killed during its first one), cleared of or1's own outputs when it starts
again. ``name`` is a plain directory name (the config refuses ``../x`` and absolute
paths), so a run stays inside ``runs_dir``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import yaml

from or1.checkpoint import step_dirs
from or1.checkpoint.manifest import atomic_write_text
from or1.config import Config
from or1.errors import ConfigError

CONFIG_FILE = "config.yaml"
# What or1 writes into a run directory (a restart clears these, and only these).
OUTPUTS = (
    "metrics.jsonl",
    "eval.jsonl",
    "eval",
    "samples",
    "tb",
    "ckpt",
    "summary.json",
    "report.html",
    "resumes.jsonl",
    "wandb",
)


def run_dir_for(cfg: Config) -> Path:
    """``runs_dir/name``, or ``runs_dir/<preset>-<time>`` without a name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.runs_dir) / (cfg.name or f"{Path(cfg.preset).stem}-{stamp}")


def has_checkpoint(run_dir: Path) -> bool:
    """Does the run directory hold a complete checkpoint?"""
    return bool(step_dirs(Path(run_dir) / "ckpt"))


def refuse_existing(run_dir: Path) -> None:
    """A new run may not start in a directory that holds checkpoints."""
    if has_checkpoint(run_dir):
        raise ConfigError(
            f"run directory {run_dir} already holds checkpoints.",
            hint=f"continue it with `or1 train --resume {run_dir}` or choose another name=.",
        )


def _unwritable(run_dir: Path, err: OSError) -> ConfigError:
    return ConfigError(
        f"cannot write the run directory {run_dir} ({err.strerror or err}).",
        hint="set runs_dir= to a writable directory (or name= to another run).",
    )


def probe_writable(run_dir: Path) -> None:
    """Check that ``run_dir`` can be created and written, leaving nothing behind (the
    directories this creates are removed again): a run fails here, in its first second,
    instead of after its data, model and warm-up are ready."""
    run_dir = Path(run_dir)
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".or1-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise _unwritable(run_dir, err) from None
    finally:
        for path in created:  # deepest first
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def ensure_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (a ConfigError if it cannot be)."""
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(Path(run_dir), err) from None


def clear_outputs(run_dir: Path) -> None:
    """Remove what an earlier attempt of this run wrote (its config stays until the
    new one replaces it); files or1 did not write are left alone."""
    for name in OUTPUTS:
        path = Path(run_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def write_config(run_dir: Path, cfg: Config) -> None:
    """``run_dir/config.yaml``, replaced atomically (``or1 train --resume`` reads it)."""
    atomic_write_text(Path(run_dir) / CONFIG_FILE, config_text(cfg))


def config_text(cfg: Config) -> str:
    """The YAML of ``cfg`` as written to config.yaml (also saved in every checkpoint)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def writable_parent(path: Path) -> tuple[bool, Path]:
    """(writable, the nearest existing ancestor): could ``path`` be created and written?"""
    node = path.absolute()
    while not node.exists():
        node = node.parent
    return node.is_dir() and os.access(node, os.W_OK | os.X_OK), node


def require_writable(path: Path, what: str, setting: str) -> str:
    """How ``path`` would be written ("exists, writable" / "would be created in ..."), or a
    ConfigError naming ``what``, the blocking ancestor and the ``setting`` to change."""
    ok, node = writable_parent(path)
    if not ok:
        kind = "directory" if node.is_dir() else "file"
        raise ConfigError(
            f"{what} {path} cannot be written: {node} is a {kind} this user cannot write to.",
            hint=f"choose another {setting}, or fix the permissions of {node}.",
        )
    return "exists, writable" if node == path.absolute() else f"would be created in {node}"
