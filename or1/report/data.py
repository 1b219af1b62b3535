"""What a report reads from a run directory: metrics, evals, summary and config."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from or1.errors import DataError
from or1.tracking import EVAL_FILE, METRICS_FILE, read_jsonl

Series = tuple[np.ndarray, np.ndarray]  # (steps, values), finite values only


@dataclass
class RunData:
    """Everything a report reads from one run directory."""

    run_dir: Path
    rows: list[dict[str, Any]]  # one per step, sorted by step (last row wins on repeats)
    eval_rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    config_text: str | None = None
    notes: list[str] = field(default_factory=list)  # problems worth showing the reader

    def series(self, column: str) -> Series:
        """The finite values of ``column`` and their steps (empty if never logged)."""
        points = [
            (float(r["step"]), float(r[column]))
            for r in self.rows
            if is_number(r.get(column)) and math.isfinite(r[column])
        ]
        if not points:
            return np.empty(0), np.empty(0)
        steps, values = zip(*points, strict=True)
        return np.asarray(steps), np.asarray(values)

    def config_get(self, dotted: str) -> Any:
        """A config value by dotted key (``"algo.entropy.target"``), or None."""
        node: Any = self.config
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def load_run(run_dir: Path) -> RunData:
    """Read a run directory's metrics, evals, summary and config.

    Args:
        run_dir: The run directory.

    Returns:
        The run's data; missing optional files are left empty.

    Raises:
        DataError: ``run_dir`` does not exist, or a JSONL file has a corrupt line.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(
            f"run directory {run_dir} does not exist.",
            hint="pass a directory under runs/, e.g. `or1 report runs/<name>`.",
        )
    by_step = {r["step"]: r for r in read_jsonl(run_dir / METRICS_FILE) if is_number(r.get("step"))}
    run = RunData(run_dir=run_dir, rows=[by_step[s] for s in sorted(by_step)])
    run.eval_rows = read_jsonl(run_dir / EVAL_FILE)
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        try:
            run.summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            run.notes.append(f"summary.json could not be parsed ({err.msg}).")
    config_path = run_dir / "config.yaml"
    if config_path.exists():
        run.config_text = config_path.read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(run.config_text)
            run.config = loaded if isinstance(loaded, dict) else None
        except yaml.YAMLError as err:
            run.notes.append(f"config.yaml could not be parsed ({type(err).__name__}).")
    return run
