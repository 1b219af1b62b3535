"""Per-step metrics logging: ``metrics.jsonl`` always, tensorboard and wandb on request.

A run directory gets one JSON line per training step in ``metrics.jsonl`` and one per
evaluation in ``eval.jsonl``. Every line is flushed and fsynced as it is written, so a
killed run keeps everything it logged; at worst the last line is cut short, which
:func:`read_jsonl` skips and :class:`MetricsLogger` removes before appending again.

Values that JSON cannot carry (None, NaN, +-inf) are written as ``null`` and are not
sent to tensorboard or wandb. ``inf`` is nulled as well as NaN because ``json.dumps``
would otherwise write the non-standard token ``Infinity`` that other readers reject.

Resuming from a checkpoint at step ``s``: call :meth:`MetricsLogger.truncate_after`
with ``s`` before logging step ``s + 1``. It drops later rows from both JSONL files and
reopens tensorboard with ``purge_step=s + 1``, so tensorboard hides the stale events of
the killed run. wandb cannot rewrite history; a resumed run starts a new wandb run.

Example:
    >>> with MetricsLogger(Path("runs/demo"), tensorboard=False) as logger:  # doctest: +SKIP
    ...     logger.log(1, {"reward_mean": 0.25, "accuracy": 0.25})
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from or1.errors import ConfigError, DataError

METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
TB_DIR = "tb"

log = logging.getLogger("or1.tracking")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file written by :class:`MetricsLogger`.

    Blank lines are skipped. An unparsable *last* line that has no trailing newline is
    the mark of a writer killed mid-line and is dropped; any other bad line is an error.

    Args:
        path: The ``.jsonl`` file. A missing file reads as no rows.

    Returns:
        The rows, in file order.

    Raises:
        DataError: A line before the last, or a complete last line, is not a JSON object.

    Example:
        >>> read_jsonl(Path("runs/demo/metrics.jsonl"))[0]["step"]  # doctest: +SKIP
        1
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")  # the last element is "" when the file ends with a newline
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:  # no newline after it: a partial line from a killed run
                break
            raise DataError(
                f"{path}: line {i + 1} is not valid JSON ({err.msg}).",
                hint="the file was edited or written by another tool; fix or delete that line.",
            ) from err
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {i + 1} is a JSON {type(row).__name__}, not an object.")
        rows.append(row)
    return rows


def _clean_value(key: str, value: Any) -> int | float | None:
    """One metric value as JSON-safe int/float, or None for missing and non-finite."""
    if value is None:
        return None
    if isinstance(value, str | bytes):
        raise TypeError(f"metric {key!r} must be a number or None, got the string {value!r}")
    if isinstance(value, numbers.Integral):  # includes bool and numpy integers
        return int(value)
    number = float(value)  # numpy floats, 0-d tensors; TypeError for anything else
    return number if math.isfinite(number) else None


def _clean_tree(value: Any) -> Any:
    """A JSON-safe copy of a nested eval result: non-finite floats become None."""
    if isinstance(value, Mapping):
        return {str(k): _clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_tree(v) for v in value]
    if isinstance(value, str | bool) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) or hasattr(value, "__float__"):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _drop_partial_tail(path: Path) -> None:
    """Cut a trailing partial line (no newline) so that appended rows stay parseable."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        f.truncate(f.read().rfind(b"\n") + 1)  # rfind is -1 when there is no newline at all
        f.flush()
        os.fsync(f.fileno())


def _rewrite_keeping(path: Path, max_step: int) -> None:
    """Atomically rewrite ``path`` keeping only rows whose step is <= ``max_step``."""
    if not path.exists():
        return
    rows = [r for r in read_jsonl(path) if r.get("step") is not None and r["step"] <= max_step]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class MetricsLogger:
    """Append-only, crash-safe metrics for one run directory.

    Args:
        run_dir: The run directory; created if missing.
        tensorboard: Also write scalars to ``run_dir/tb`` (writer created on first use).
        wandb: Also log to Weights & Biases (needs the ``or1[wandb]`` extra).
        wandb_project: The wandb project name.
        config: The resolved run config, recorded as the wandb run config.

    Raises:
        ConfigError: ``wandb=True`` but the ``wandb`` package is not installed.

    Example:
        >>> logger = MetricsLogger(Path("runs/demo"))  # doctest: +SKIP
        >>> logger.log(3, {"reward_mean": 0.5, "entropy_full": float("nan")})  # doctest: +SKIP
        >>> logger.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        tensorboard: bool = True,
        wandb: bool = False,
        wandb_project: str = "or1",
        config: dict[str, Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.tensorboard = tensorboard
        self._files: dict[str, IO[str]] = {}
        self._tb: Any = None  # torch SummaryWriter, created on first use
        self._purge_step: int | None = None
        self._wandb_run: Any = None
        if wandb:
            self._wandb_run = _start_wandb(self.run_dir, wandb_project, config)

    # -- public API -------------------------------------------------------------------

    def log(self, step: int, metrics: Mapping[str, float | int | None]) -> None:
        """Record one training step.

        Args:
            step: The global step (the x axis of every plot).
            metrics: Scalar metrics by name. None, NaN and inf are written as null.

        Raises:
            ValueError: ``metrics`` has a key ``"step"``.
            TypeError: A value is not a number or None.
        """
        if "step" in metrics:
            raise ValueError("metrics must not contain 'step'; pass it as the step argument")
        clean = {k: _clean_value(k, v) for k, v in metrics.items()}
        self._append(METRICS_FILE, {"step": int(step), **clean})
        scalars = {k: v for k, v in clean.items() if v is not None}
        self._write_tb(step, scalars)
        if self._wandb_run is not None and scalars:
            self._wandb_run.log(scalars, step=int(step))

    def log_eval(self, step: int, result: Mapping[str, Any]) -> None:
        """Record one evaluation (e.g. the base model at step 0, the final policy).

        Args:
            step: The training step the evaluated weights come from.
            result: E.g. ``{"label": "base", "avg_at_k": 0.31, "k": 8,
                "pass_at_k": {"1": 0.31, "8": 0.7}}``; nested values are allowed. With a
                ``"benchmark"`` key its scalars go under ``eval/<benchmark>/``.
        """
        row = {"step": int(step), **_clean_tree(dict(result))}
        self._append(EVAL_FILE, row)
        scalars: dict[str, float] = {}
        # A benchmark's curves under eval/<benchmark>/, the run's test split under eval/.
        prefix = f"eval/{row['benchmark']}/" if row.get("benchmark") else "eval/"
        if isinstance(row.get("avg_at_k"), int | float):
            scalars[f"{prefix}avg_at_k"] = row["avg_at_k"]
        pass_at_k = row.get("pass_at_k")
        if isinstance(pass_at_k, dict):
            for k, v in pass_at_k.items():
                if isinstance(v, int | float):
                    scalars[f"{prefix}pass_at_{k}"] = v
        self._write_tb(step, scalars)
        if self._wandb_run is not None and scalars:
            self._wandb_run.log(scalars, step=int(step))

    def truncate_after(self, step: int) -> None:
        """Forget everything logged after ``step`` (resuming from a checkpoint at ``step``).

        Rewrites ``metrics.jsonl`` and ``eval.jsonl`` atomically (temp file, then
        ``os.replace``) keeping rows with ``row["step"] <= step``, and reopens tensorboard
        with ``purge_step=step + 1`` so that its readers drop the stale events.

        Args:
            step: The last step to keep.
        """
        self._close_files()
        for name in (METRICS_FILE, EVAL_FILE):
            _rewrite_keeping(self.run_dir / name, step)
        if self.tensorboard:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
            self._purge_step = step + 1
            self._writer()  # now, so the purge marker exists even if nothing follows

    def close(self) -> None:
        """Flush and close every file and backend. Safe to call twice."""
        self._close_files()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------

    def _append(self, name: str, row: dict[str, Any]) -> None:
        f = self._files.get(name)
        if f is None:
            path = self.run_dir / name
            _drop_partial_tail(path)
            f = self._files[name] = path.open("a", encoding="utf-8")
        f.write(json.dumps(row, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())

    def _writer(self) -> Any:
        """The SummaryWriter; None (and tensorboard off) when the package is missing."""
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter  # slow import, only if used
            except ImportError:  # tensorboard is the optional extra or1[tensorboard]
                log.warning(
                    "logging.tensorboard: the tensorboard package is not installed "
                    "(pip install 'or1[tensorboard]'); metrics go to metrics.jsonl only"
                )
                self.tensorboard = False
                return None
            self._tb = SummaryWriter(str(self.run_dir / TB_DIR), purge_step=self._purge_step)
            self._purge_step = None
        return self._tb

    def _write_tb(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.tensorboard or not scalars:
            return
        writer = self._writer()
        if writer is None:
            return
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=int(step))
        writer.flush()

    def _close_files(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def _start_wandb(run_dir: Path, project: str, config: dict[str, Any] | None) -> Any:
    """Import wandb and start a run, or explain how to install it."""
    try:
        import wandb  # optional extra
    except ImportError as err:
        raise ConfigError(
            "logging.wandb is on but the wandb package is not installed.",
            hint="pip install or1[wandb], or set logging.wandb=false.",
        ) from err
    return wandb.init(project=project, name=run_dir.name, dir=str(run_dir), config=config)
