"""Panels of a mixed run: a metric per ability and per data source (the
``<metric>/<ability>`` and ``<metric>/src/<source>`` columns, or1/rewards/scoring.py).

One line per ability (solid) and per source (dashed), so a run training math and code
together shows which part learns. A run with one ability and one source draws two lines
that coincide with the overall curve.
"""

from __future__ import annotations

from collections.abc import Callable

from matplotlib.axes import Axes

from or1.report.data import RunData
from or1.report.draw import Panel, _plot_line, _stage_starts

SOURCE = "/src/"


def group_columns(run: RunData, metric: str) -> tuple[list[str], list[str]]:
    """(per-ability columns, per-source columns) of ``metric`` that the run logged."""
    prefix = f"{metric}/"
    found = sorted({k for row in run.rows for k in row if k.startswith(prefix)})
    return [c for c in found if SOURCE not in c], [c for c in found if SOURCE in c]


def _draw_groups(metric: str) -> Callable[[Axes, RunData], list[str]]:
    def draw(ax: Axes, run: RunData) -> list[str]:
        abilities, sources = group_columns(run, metric)
        breaks = [step for step, _ in _stage_starts(run.rows)]
        drawn = []
        for column in abilities + sources:
            steps, values = run.series(column)
            if not len(steps):
                continue
            label = column[len(metric) + 1 :]  # "math", "src/aime24"
            style = "--" if SOURCE in column else "-"
            _plot_line(ax, steps, values, label, breaks=breaks, linestyle=style)
            drawn.append(column)
        return [f"{metric}/<group>"] if drawn else []

    return draw


GROUP_PANELS: tuple[Panel, ...] = (
    Panel(
        "accuracy_by_group",
        "Accuracy by ability (solid) and data source (dashed)",
        "accuracy",
        ("accuracy/<group>",),
        _draw_groups("accuracy"),
    ),
    Panel(
        "response_length_by_group",
        "Response length by ability (solid) and data source (dashed)",
        "tokens",
        ("response_length_mean/<group>",),
        _draw_groups("response_length_mean"),
    ),
)
