"""The report's panels: one per group of ``metrics.jsonl`` columns (see ``PANELS``).

Every panel is drawn against the step, with dashed vertical lines where the ``stage``
column changes (``or1.report.draw``). Reusable plots (overlays, run comparisons) are in
``or1.report.overlay``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from or1.report.data import RunData, Series, is_number
from or1.report.draw import Panel, _plot_columns, _plot_line, _stage_starts


def _columns_panel(*columns: str) -> Callable[[Axes, RunData], list[str]]:
    """A panel that just draws the given columns."""
    return lambda ax, run: _plot_columns(ax, run, columns)


def _eval_label(row: dict[str, Any]) -> str:
    k = row.get("k")
    name = f"avg@{k}" if k is not None else "avg@k"
    return f"{name} {row['benchmark']}" if row.get("benchmark") else name


EVAL_COLUMN = "avg_at_k (eval.jsonl)"


def _draw_accuracy(ax: Axes, run: RunData) -> list[str]:
    drawn = _plot_columns(ax, run, ["accuracy"])
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in run.eval_rows:
        if is_number(row.get("avg_at_k")) and is_number(row.get("step")):
            groups.setdefault(_eval_label(row), []).append(row)
    markers = "DsP^v*"
    for i, (label, rows) in enumerate(sorted(groups.items())):
        ax.plot(
            [r["step"] for r in rows],
            [r["avg_at_k"] for r in rows],
            linestyle="none",
            marker=markers[i % len(markers)],
            markersize=7,
            label=f"held-out {label}",
        )
        for r in rows:
            if r.get("label"):
                ax.annotate(
                    str(r["label"]),
                    (r["step"], r["avg_at_k"]),
                    textcoords="offset points",
                    xytext=(0, 8),
                    ha="center",
                    fontsize=8,
                )
    if groups:
        drawn.append(EVAL_COLUMN)
    return drawn


def _draw_entropy(ax: Axes, run: RunData) -> list[str]:
    drawn = _plot_columns(ax, run, ["entropy_sampled", "entropy_full"])
    target = run.config_get("algo.entropy.target")
    mode = run.config_get("algo.entropy.mode")
    if target == "auto":  # measured at the start of the run: logged as entropy_target
        _, values = run.series("entropy_target")
        target = float(values[-1]) if len(values) else None
    # The target only steers the coefficient in adaptive mode; elsewhere it would mislead.
    if drawn and is_number(target) and mode in (None, "adaptive"):
        ax.axhline(target, color="crimson", linestyle=":", linewidth=1.2, label=f"target {target}")
    return drawn


def _stage_lengths(run: RunData) -> Series:
    """The max response length in force at each logged step, from config ``stages``."""
    stages = run.config_get("stages")
    if not isinstance(stages, list) or not run.rows:
        return np.empty(0), np.empty(0)
    lengths = [s.get("max_response_length") if isinstance(s, dict) else None for s in stages]
    if any("stage" in r for r in run.rows):
        stage_of_row = [r.get("stage") for r in run.rows]
    else:  # no stage column: count each stage's steps off in step order
        counts = [s.get("steps") if isinstance(s, dict) else None for s in stages]
        if not all(isinstance(c, int) for c in counts):
            return np.empty(0), np.empty(0)
        stage_of_row = [i for i, c in enumerate(counts) for _ in range(c)]
    points = [
        (row["step"], lengths[stage])
        for row, stage in zip(run.rows, stage_of_row, strict=False)
        if isinstance(stage, int) and 0 <= stage < len(lengths) and is_number(lengths[stage])
    ]
    if not points:
        return np.empty(0), np.empty(0)
    steps, values = zip(*points, strict=True)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _draw_lengths(ax: Axes, run: RunData) -> list[str]:
    drawn = _plot_columns(ax, run, ["response_length_mean", "response_length_max"])
    steps, limit = _stage_lengths(run)
    if drawn and len(steps):
        ax.step(steps, limit, where="post", color="black", linewidth=1.0, label="stage max length")
    return drawn


def _draw_clip_kl(ax: Axes, run: RunData) -> list[str]:
    drawn = _plot_columns(ax, run, ["clip_frac"])
    steps, kl = run.series("approx_kl")
    if len(steps):
        # approx KL is orders of magnitude below the clip fraction: give it its own axis.
        right = ax.twinx() if drawn else ax
        breaks = [step for step, _ in _stage_starts(run.rows)]
        _plot_line(right, steps, kl, "approx_kl", breaks=breaks, color="tab:red")
        right.set_ylabel("approx KL")
        drawn.append("approx_kl")
    return drawn


def _draw_truncation(ax: Axes, run: RunData) -> list[str]:
    """The ratio, and with the stage controller (or1/schedule.py) its windowed mean,
    each stage's advance_at_truncation and a marker where it moved the run on early."""
    drawn = _plot_columns(ax, run, ["truncation_ratio", "truncation_ratio_window"])
    stages = run.config_get("stages")
    thresholds = (
        [s.get("advance_at_truncation") if isinstance(s, dict) else None for s in stages]
        if isinstance(stages, list)
        else []
    )
    points = [
        (r["step"], thresholds[r["stage"]])
        for r in run.rows
        if isinstance(r.get("stage"), int)
        and 0 <= r["stage"] < len(thresholds)
        and is_number(thresholds[r["stage"]])
    ]
    if drawn and points:
        xs, ys = zip(*points, strict=True)
        ax.plot(
            xs, ys, color="crimson", linestyle=":", linewidth=1.2, label="advance_at_truncation"
        )
    early = [r["step"] for r in run.rows if r.get("stage_advanced_early")]
    for i, step in enumerate(early):
        label = "advanced early" if i == 0 else None
        ax.axvline(step, color="crimson", linewidth=1.4, label=label)
    return drawn


TIME_COLUMNS = ("rollout_seconds", "reward_seconds", "update_seconds")


def _draw_time(ax: Axes, run: RunData) -> list[str]:
    present = [c for c in TIME_COLUMNS if len(run.series(c)[0])]
    rows = [r for r in run.rows if any(is_number(r.get(c)) for c in present)]
    if not rows:
        return []
    steps = np.asarray([r["step"] for r in rows], dtype=float)
    stack = [
        [r[c] if is_number(r.get(c)) and math.isfinite(r[c]) else 0.0 for r in rows]
        for c in present
    ]
    if len(rows) == 1:
        bottom = 0.0
        for column, (value,) in zip(present, stack, strict=True):
            ax.bar(steps, [value], bottom=bottom, width=0.6, label=column)
            bottom += value
    else:
        ax.stackplot(steps, *stack, labels=present, alpha=0.85)
    return present


PANELS: tuple[Panel, ...] = (
    Panel("reward", "Reward", "mean reward", ("reward_mean",), _columns_panel("reward_mean")),
    Panel("accuracy", "Accuracy", "accuracy", ("accuracy", EVAL_COLUMN), _draw_accuracy),
    Panel("entropy", "Entropy", "nats / token", ("entropy_sampled", "entropy_full"), _draw_entropy),
    Panel(
        "entropy_coef",
        "Entropy coefficient",
        "alpha",
        ("entropy_coef",),
        _columns_panel("entropy_coef"),
    ),
    Panel(
        "response_length",
        "Response length",
        "tokens",
        ("response_length_mean", "response_length_max"),
        _draw_lengths,
    ),
    Panel(
        "truncation",
        "Truncation ratio",
        "fraction truncated",
        ("truncation_ratio",),
        _draw_truncation,
    ),
    Panel(
        "kept_groups",
        "Kept-group fraction",
        "fraction of groups kept",
        ("kept_group_fraction",),
        _columns_panel("kept_group_fraction"),
    ),
    Panel(
        "clip_kl",
        "Clip fraction & approx KL",
        "clip fraction",
        ("clip_frac", "approx_kl"),
        _draw_clip_kl,
    ),
    Panel("time", "Time per step", "seconds", TIME_COLUMNS, _draw_time),
)
