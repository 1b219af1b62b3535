"""Drawing helpers shared by the report's panels and plots (matplotlib ``Figure`` + Agg,
never pyplot): a curve drawn faint under a centred moving average when long, dashed
vertical lines where the ``stage`` column changes, one legend per figure, PNG bytes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from or1.report.data import RunData

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
    # A sentence under the plot (e.g. the likely causes of an entropy collapse), or None.
    note: Callable[[RunData], str | None] | None = None


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


@dataclass
class _Rendered:
    panel: Panel
    png: bytes
    missing: list[str]
    note: str | None = None


def _render_panel(panel: Panel, run: RunData) -> _Rendered | None:
    fig, ax = _new_figure()
    drawn = panel.draw(ax, run)
    if not drawn:
        return None
    _mark_stages(ax, run)
    _finish(fig, title=panel.title, ylabel=panel.ylabel)
    missing = [c for c in panel.columns if c not in drawn]
    note = panel.note(run) if panel.note is not None else None
    return _Rendered(panel, _png_bytes(fig), missing, note)
