"""The entropy-collapse panel: entropy over its start, the alarm's threshold and step,
and a caption naming the likely causes (or1/entropy_watch.py, the same words as the
run's warning), from ``metrics.jsonl`` and ``config.yaml`` alone."""

from __future__ import annotations

from matplotlib.axes import Axes

from or1.algo import likely_causes
from or1.entropy_watch import collapse_signals
from or1.report.data import RunData, is_number
from or1.report.draw import Panel, _plot_columns

ALARM_LINE = {"color": "crimson", "linestyle": ":", "linewidth": 1.2}


def alarm_step(run: RunData) -> float | None:
    """The first step whose ``entropy_collapse`` is 1 (None: the alarm did not fire)."""
    for row in run.rows:
        if is_number(row.get("entropy_collapse")) and row["entropy_collapse"] > 0:
            return float(row["step"])
    return None


def _draw_collapse(ax: Axes, run: RunData) -> list[str]:
    drawn = _plot_columns(ax, run, ["entropy_vs_start"])
    if not drawn:
        return drawn
    fraction = run.config_get("algo.entropy.alarm.fraction")
    if is_number(fraction):
        ax.axhline(fraction, **ALARM_LINE, label=f"alarm below {fraction:g} x start")
    step = alarm_step(run)
    if step is not None:
        ax.axvline(step, color="crimson", linewidth=1.4, label=f"collapse alarm, step {step:g}")
    return drawn


def collapse_note(run: RunData) -> str | None:
    """ "Entropy collapse at step k; likely causes: ..." (None: no alarm)."""
    step = alarm_step(run)
    if step is None:
        return None
    rows = [r for r in run.rows if is_number(r.get("step")) and r["step"] <= step]
    causes = likely_causes(collapse_signals(rows, run.config_get))
    named = "; ".join(text for _, text in causes) or (
        "none of the known signals (N_SGD 1, little clipping, temperature 1, no KL)"
    )
    return f"Entropy collapse alarm at step {step:g}. Likely causes: {named}."


ENTROPY_PANELS: tuple[Panel, ...] = (
    Panel(
        "entropy_collapse",
        "Entropy vs its start (collapse alarm)",
        "entropy / start",
        ("entropy_vs_start",),
        _draw_collapse,
        note=collapse_note,
    ),
)
