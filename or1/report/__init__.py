"""Plots and a single-file HTML report of a run directory.

:func:`write_report` reads what the trainer left in ``runs/<name>/``: ``metrics.jsonl``
(one row per step), and if present ``eval.jsonl``, ``summary.json`` and ``config.yaml``.
It writes one PNG per panel to ``plots/`` and ``report.html``, a self-contained page
(the PNGs are embedded as base64 data URIs, so the one file can be mailed).

Every panel is drawn against the step, with dashed vertical lines where the ``stage``
column changes. With many points, the raw curve is drawn faint under a centred moving
average. A panel whose columns were never logged is left out and listed as "not logged";
a run with no metrics yet gets a report that says so.

``stage`` is read as a 0-based index into the config's ``stages`` list (for the
max-response-length line); without a ``stage`` column the stage lengths are counted
off in step order instead.

Matplotlib is used through ``Figure`` and the Agg canvas only, never ``pyplot``, so
making a report neither needs a display nor changes the caller's backend.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from or1.report.data import RunData, load_run
from or1.report.draw import Panel, _atomic_write, _render_panel, _Rendered
from or1.report.entropy import ENTROPY_PANELS
from or1.report.groups import GROUP_PANELS
from or1.report.overlay import compare_runs, plot_overlay
from or1.report.plots import PANELS as BASE_PANELS

# the entropy diagnosis after the base panels, the per-ability/per-source panels last
PANELS = (*BASE_PANELS, *ENTROPY_PANELS, *GROUP_PANELS)

__all__ = ["PANELS", "compare_runs", "load_run", "plot_overlay", "write_report"]


def write_report(run_dir: Path) -> Path:
    """Write ``plots/*.png`` and a self-contained ``report.html`` for a run.

    Args:
        run_dir: The run directory (``runs/<name>``).

    Returns:
        The path of ``report.html``.

    Raises:
        DataError: ``run_dir`` does not exist, or a JSONL file has a corrupt line.

    Example:
        >>> write_report(Path("runs/tiny-arith"))  # doctest: +SKIP
        PosixPath('runs/tiny-arith/report.html')
    """
    run = load_run(run_dir)
    plots_dir = run.run_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    rendered, not_logged = [], []
    for panel in PANELS:
        result = _render_panel(panel, run)
        png_path = plots_dir / f"{panel.key}.png"
        if result is None:
            not_logged.append(panel)
            png_path.unlink(missing_ok=True)  # a stale plot from an earlier report
            continue
        _atomic_write(png_path, result.png)
        rendered.append(result)
    out = run.run_dir / "report.html"
    _atomic_write(out, _html(run, rendered, not_logged).encode("utf-8"))
    return out


# -- HTML ---------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
td, th { border: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: left; }
figure { margin: 1rem 0 2rem; } img { max-width: 100%; }
.note { color: #8a5a00; } .missing { color: #777; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; }
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _eval_table(eval_rows: list[dict[str, Any]]) -> str:
    ks = sorted({str(k) for r in eval_rows for k in (r.get("pass_at_k") or {})}, key=_k_order)
    header = ["step", "label", "benchmark", "avg@k", "k", *(f"pass@{k}" for k in ks)]
    rows = [
        [
            r.get("step", ""),
            r.get("label", ""),
            r.get("benchmark", ""),
            r.get("avg_at_k", ""),
            r.get("k", ""),
            *((r.get("pass_at_k") or {}).get(k, "") for k in ks),
        ]
        for r in eval_rows
    ]
    return _table(header, rows)


def _k_order(k: str) -> tuple[int, str]:
    return (int(k), k) if k.isdigit() else (1 << 30, k)


def _html(run: RunData, rendered: list[_Rendered], not_logged: list[Panel]) -> str:
    name = html.escape(run.run_dir.resolve().name)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>or1 report: {name}</title>",
        f"<style>{_CSS}</style></head><body><h1>or1 run report: {name}</h1>",
    ]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in run.notes]
    if not run.rows:
        parts.append(
            "<p class='note'>No training metrics were logged: metrics.jsonl is missing or "
            "empty (the run may not have finished its first step).</p>"
        )
    else:
        steps = f"steps {_fmt(run.rows[0]['step'])} to {_fmt(run.rows[-1]['step'])}"
        parts.append(f"<p>{len(run.rows)} logged steps ({steps}).</p>")
    if run.summary:
        parts += ["<h2>Summary</h2>", _table(["key", "value"], _flatten(run.summary))]
    if run.eval_rows:
        parts += ["<h2>Evaluations</h2>", _eval_table(run.eval_rows)]
    if rendered:
        parts.append("<h2>Training curves</h2>")
    for item in rendered:
        data = base64.b64encode(item.png).decode("ascii")
        alt = html.escape(item.panel.title)
        parts.append(
            f"<figure id='{item.panel.key}'><img src=\"data:image/png;base64,{data}\" alt='{alt}'>"
        )
        if item.note:
            parts.append(f"<figcaption class='note'>{html.escape(item.note)}</figcaption>")
        if item.missing:
            parts.append(
                f"<figcaption class='missing'>not logged: "
                f"{html.escape(', '.join(item.missing))}</figcaption>"
            )
        parts.append("</figure>")
    if not_logged:
        parts.append("<h2>Not logged</h2><ul class='missing'>")
        parts += [
            f"<li>{html.escape(p.title)}: not logged ({html.escape(', '.join(p.columns))})</li>"
            for p in not_logged
        ]
        parts.append("</ul>")
    if run.config_text is not None:
        parts.append(
            "<h2>Config</h2><details><summary>config.yaml</summary>"
            f"<pre>{html.escape(run.config_text)}</pre></details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
