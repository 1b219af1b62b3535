"""One run of the study: its data (``RunData``) and its descriptive statistics."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from or1.study.variants import ENTROPY_COLUMN, TAIL_FRACTION

# -- statistics of one run ----------------------------------------------------------------


def finite(values: Iterable[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def tail_size(n: int) -> int:
    return max(1, math.ceil(TAIL_FRACTION * n))


def window_steps(series: Mapping[int, float], which: str) -> list[int]:
    """The steps of ``series`` in its ``final`` or ``initial`` window (``TAIL_FRACTION`` of
    the steps that have a value, at least one)."""
    steps = sorted(series)
    k = tail_size(len(steps))
    if which == "final":
        return steps[-k:] if steps else []
    if which == "initial":
        return steps[:k]
    raise ValueError(f"unknown window {which!r}")


def _peak(values: list[float], window: int) -> float | None:
    if not values:
        return None
    csum = np.concatenate([[0.0], np.cumsum(values)])
    window = min(window, len(values))
    return float(np.max((csum[window:] - csum[:-window]) / window))


def eval_points(eval_rows: list[dict[str, Any]]) -> dict[int, float]:
    """Held-out avg@k by step on the run's test split (benchmark rows are not it; the
    last row wins when a step was evaluated twice)."""
    points = {}
    for row in eval_rows:
        if row.get("benchmark"):
            continue
        if finite([row.get("avg_at_k")]) and isinstance(row.get("step"), int):
            points[row["step"]] = float(row["avg_at_k"])
    return dict(sorted(points.items()))


def run_stats(rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The study's statistics of one run (see the module docstring).

    Args:
        rows: ``metrics.jsonl`` rows (one per step, with ``step``).
        eval_rows: ``eval.jsonl`` rows (``step``, ``avg_at_k``); step 0 is the base.

    Returns:
        A flat dict of floats (None where the run did not measure it).

    Example:
        >>> rows = [{"step": i, "entropy_full": h} for i, h in enumerate([0.2, 0.1], 1)]
        >>> run_stats(rows, [])["entropy_auc"]
        0.15000000000000002
    """
    rows = sorted(rows, key=lambda r: r["step"])
    entropy = finite(r.get(ENTROPY_COLUMN) for r in rows)
    sampled = finite(r.get("entropy_sampled") for r in rows)
    k = tail_size(len(entropy))
    tail_rows = rows[-tail_size(len(rows)) :] if rows else []
    points = eval_points(eval_rows)
    base = points.get(0)
    final = points[max(points)] if points and max(points) > 0 else None
    return {
        "steps": len(rows),
        "initial_entropy": _mean(entropy[:k]),
        "final_entropy": _mean(entropy[-k:]),
        "entropy_auc": _mean(entropy),
        "peak_entropy": _peak(entropy, k),
        "final_entropy_sampled": _mean(sampled[-tail_size(len(sampled)) :]),
        "mean_entropy_coef": _mean(finite(r.get("entropy_coef") for r in rows)),
        "base_accuracy": base,
        "final_accuracy": final,
        "accuracy_gain": None if base is None or final is None else final - base,
        "final_train_accuracy": _mean(finite(r.get("accuracy") for r in tail_rows)),
        "initial_truncation": _mean(finite(r.get("truncation_ratio") for r in rows[:k])),
        "final_truncation": _mean(finite(r.get("truncation_ratio") for r in tail_rows)),
    }


def mean_stats(per_seed: Mapping[Any, Mapping[str, Any]]) -> dict[str, Any]:
    """Seed means of every statistic (over the seeds that measured it)."""
    keys = {k for stats in per_seed.values() for k in stats}
    return {k: _mean(finite(s.get(k) for s in per_seed.values())) for k in sorted(keys)}


# -- the data of one run ------------------------------------------------------------------


def read_problems(path: Path) -> dict[str, float]:
    """``{uid: accuracy}`` of an evaluation's ``<label>_problems.csv`` (avg@k per problem)."""
    with open(path, newline="") as fh:
        return {row["uid"]: float(row["accuracy"]) for row in csv.DictReader(fh)}


@dataclass
class RunData:
    """What the study keeps of one finished run.

    ``rows``: metrics.jsonl rows (one per step); ``evals``: eval.jsonl rows; ``problems``:
    per evaluated step, the held-out avg@k of each problem ``{step: {uid: accuracy}}``.
    """

    rows: list[dict[str, Any]]
    evals: list[dict[str, Any]] = field(default_factory=list)
    problems: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: float | None = None

    def series(self, column: str) -> dict[int, float]:
        """``{step: value}`` of a metrics column (steps without a finite value left out)."""
        return {r["step"]: float(r[column]) for r in self.rows if finite([r.get(column)])}

    def final_problems(self) -> dict[str, float]:
        """Per-problem held-out accuracy at the last evaluated step (not the base's)."""
        steps = [s for s in self.problems if s > 0]
        return self.problems[max(steps)] if steps else {}

    def stats(self) -> dict[str, Any]:
        return {**run_stats(self.rows, self.evals), "run_seconds": self.seconds}
