"""Reusable plots: curves overlaid on one figure, one metric across runs."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from or1.errors import DataError
from or1.report.data import load_run
from or1.report.draw import _atomic_write, _finish, _new_figure, _plot_line, _png_bytes

log = logging.getLogger(__name__)


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
