"""The report's panels and reusable plots (matplotlib ``Figure`` + Agg, never pyplot).

Every panel is drawn against the step, with dashed vertical lines where the ``stage``
column changes. With many points, the raw curve is drawn faint under a centred moving
average.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from or1.errors import DataError
from or1.report.data import RunData, Series, is_number, load_run

log = logging.getLogger(__name__)

DPI = 100
FIGSIZE = (7.0, 3.6)  # inches: 700 x 360 px at DPI
SMOOTH_MIN_POINTS = 30  # fewer points than this are drawn as they are
SMOOTH_FRACTION = 0.05  # moving-average window as a fraction of the points
STAGE_LINE = {"color": "0.45", "linestyle": "--", "linewidth": 0.9}


@dataclass(frozen=True)
class Panel:
    """One plot of the report. ``draw`` returns the names of the series it drew."""

    key: str  # file name stem in plots/
    title: str
    ylabel: str
    columns: tuple[str, ...]  # what the panel looks for, to say what was not logged
    draw: Callable[[Axes, RunData], list[str]]


# -- drawing helpers ----------------------------------------------------------------------


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average; the window shrinks at the ends instead of padding."""
    n = len(values)
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(n)
    lo = np.clip(idx - window // 2, 0, n)
    hi = np.clip(idx + window // 2 + 1, 0, n)
    return (csum[hi] - csum[lo]) / (hi - lo)


def _smooth(
    steps: np.ndarray, values: np.ndarray, window: int, breaks: Sequence[float]
) -> np.ndarray:
    """Moving average that does not reach across ``breaks`` (stage starts): a stage
    change (e.g. a longer response limit) is a real jump, not something to blur."""
    cuts = np.searchsorted(steps, np.asarray(breaks, dtype=float))
    parts = np.split(values, cuts)
    return np.concatenate([_moving_average(part, window) for part in parts if len(part)])


def _plot_line(
    ax: Axes,
    steps: np.ndarray,
    values: np.ndarray,
    label: str,
    *,
    breaks: Sequence[float] = (),
    **kw: Any,
) -> None:
    """One curve: as is when short, faint raw + moving average (per stage) when long."""
    n = len(values)
    if n < SMOOTH_MIN_POINTS:
        ax.plot(steps, values, marker=".", label=label, **kw)
        return
    window = max(3, int(n * SMOOTH_FRACTION) | 1)  # odd, so the average is centred
    (raw,) = ax.plot(steps, values, alpha=0.3, linewidth=0.8, **kw)
    ax.plot(
        steps,
        _smooth(steps, values, window, breaks),
        color=raw.get_color(),
        linewidth=1.6,
        label=f"{label} (avg of {window})",
    )


def _plot_columns(ax: Axes, run: RunData, columns: Sequence[str]) -> list[str]:
    drawn = []
    breaks = [step for step, _ in _stage_starts(run.rows)]
    for column in columns:
        steps, values = run.series(column)
        if len(steps):
            _plot_line(ax, steps, values, column, breaks=breaks)
            drawn.append(column)
    return drawn


def _stage_starts(rows: list[dict[str, Any]]) -> list[tuple[float, Any]]:
    """(first step, stage) for every stage after the first, from the ``stage`` column."""
    starts, previous = [], None
    for row in rows:
        stage = row.get("stage")
        if stage is None:
            continue
        if previous is not None and stage != previous:
            starts.append((float(row["step"]), stage))
        previous = stage
    return starts


def _mark_stages(ax: Axes, run: RunData) -> None:
    for step, stage in _stage_starts(run.rows):
        ax.axvline(step, **STAGE_LINE)
        ax.text(
            step,
            0.98,
            f" stage {stage}",
            transform=ax.get_xaxis_transform(),
            va="top",
            ha="left",
            fontsize=8,
            color="0.35",
        )


def _new_figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _finish(fig: Figure, *, title: str, ylabel: str, xlabel: str = "step") -> None:
    """Titles, grid, and one legend for the lines of every axis (twin axes included)."""
    ax = fig.axes[0]
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    handles, labels = [], []
    for each in fig.axes:
        more = each.get_legend_handles_labels()
        handles += more[0]
        labels += more[1]
    if handles:
        fig.axes[-1].legend(handles, labels, fontsize=8, loc="best")


# -- panels -------------------------------------------------------------------------------


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
        _columns_panel("truncation_ratio"),
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


@dataclass
class _Rendered:
    panel: Panel
    png: bytes
    missing: list[str]


def _render_panel(panel: Panel, run: RunData) -> _Rendered | None:
    fig, ax = _new_figure()
    drawn = panel.draw(ax, run)
    if not drawn:
        return None
    _mark_stages(ax, run)
    _finish(fig, title=panel.title, ylabel=panel.ylabel)
    missing = [c for c in panel.columns if c not in drawn]
    return _Rendered(panel, _png_bytes(fig), missing)


# -- reusable plots -----------------------------------------------------------------------


def plot_overlay(
    series: dict[str, list[tuple[float, float]]],
    *,
    title: str,
    ylabel: str,
    path: Path,
    xlabel: str = "step",
) -> Path:
    """Overlay curves, one line per label, and save a PNG atomically.

    Args:
        series: ``{label: [(x, y), ...]}``; non-finite points are dropped.
        title: Figure title.
        ylabel: Y-axis label.
        path: Where to write the PNG (parent directories are created).
        xlabel: X-axis label.

    Returns:
        ``path``.

    Raises:
        DataError: No label has a finite point.

    Example:
        >>> plot_overlay({"target 0.2": [(1, 0.5), (2, 0.3)]}, title="Entropy",
        ...              ylabel="nats", path=Path("entropy.png"))  # doctest: +SKIP
    """
    fig, ax = _new_figure()
    drawn = 0
    for label, points in series.items():
        finite = sorted((x, y) for x, y in points if math.isfinite(x) and math.isfinite(y))
        if finite:
            xs, ys = (np.asarray(v, dtype=float) for v in zip(*finite, strict=True))
            _plot_line(ax, xs, ys, label)
            drawn += 1
    if not drawn:
        raise DataError(f"nothing to plot for {title!r}: every series is empty.")
    _finish(fig, title=title, ylabel=ylabel, xlabel=xlabel)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, _png_bytes(fig))
    return path


def compare_runs(run_dirs: list[Path], metric: str, path: Path) -> Path:
    """Overlay one ``metrics.jsonl`` column across runs, one line per run.

    Args:
        run_dirs: Run directories; each is labelled by its directory name.
        metric: The column, e.g. ``"entropy_full"``.
        path: Where to write the PNG.

    Returns:
        ``path``.

    Raises:
        DataError: A run directory does not exist, or no run logged ``metric``.
    """
    series: dict[str, list[tuple[float, float]]] = {}
    for run_dir in run_dirs:
        run = load_run(run_dir)
        steps, values = run.series(metric)
        label = run.run_dir.resolve().name
        if label in series:  # two runs with the same name under different parents
            label = str(run.run_dir)
        if not len(steps):
            log.warning("%s: %s was not logged; left out of the comparison", run_dir, metric)
            continue
        series[label] = list(zip(steps.tolist(), values.tolist(), strict=True))
    if not series:
        raise DataError(
            f"no run logged {metric!r}.",
            hint="check the metric name against the keys in metrics.jsonl.",
        )
    return plot_overlay(series, title=metric, ylabel=metric, path=path)
