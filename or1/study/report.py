"""findings.json, the per-finding plots and report.html of the study."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from or1.study.findings import Finding
from or1.study.runner import Study
from or1.study.stats import RunData, eval_points, tail_size
from or1.study.variants import ENTROPY_COLUMN

# -- plots and report ---------------------------------------------------------------------


def _seed_mean_curve(per_seed: Mapping[int, Mapping[str, float]]) -> tuple[list[float], ...]:
    """Per step, the mean over the seeds that have a value there."""
    steps = sorted({s for curve in per_seed.values() for s in curve})
    xs, ys = [], []
    for step in steps:
        values = [c[step] for c in per_seed.values() if step in c]
        xs.append(float(step))
        ys.append(float(np.mean(values)))
    return xs, ys


def _smooth(ys: list[float]) -> np.ndarray:
    window = max(1, tail_size(len(ys)) | 1)
    csum = np.concatenate([[0.0], np.cumsum(ys)])
    idx = np.arange(len(ys))
    lo = np.clip(idx - window // 2, 0, len(ys))
    hi = np.clip(idx + window // 2 + 1, 0, len(ys))
    return (csum[hi] - csum[lo]) / (hi - lo)


PANELS = {
    ENTROPY_COLUMN: ("entropy (nats/token)", True),
    "heldout": ("held-out avg@k", False),
    "accuracy": ("training accuracy", True),
    "truncation_ratio": ("truncation ratio", True),
}


def plot_finding(finding: Finding, runs: Mapping[str, Mapping[int, RunData]], path: Path) -> Path:
    """One PNG: entropy, held-out avg@k and a third column, seed means per variant."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13.5, 3.6), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    columns = [ENTROPY_COLUMN, "heldout", finding.third_panel]
    axes = fig.subplots(1, 3)
    for ax, column in zip(axes, columns, strict=True):
        ylabel, smooth = PANELS[column]
        for key, label in finding.variants:
            per_seed = {
                seed: eval_points(run.evals) if column == "heldout" else run.series(column)
                for seed, run in runs.get(key, {}).items()
            }
            xs, ys = _seed_mean_curve(per_seed)
            if not xs:
                continue
            if smooth and len(ys) >= 10:
                (raw,) = ax.plot(xs, ys, alpha=0.25, linewidth=0.8)
                ax.plot(xs, _smooth(ys), color=raw.get_color(), linewidth=1.6, label=label)
            else:
                ax.plot(xs, ys, marker="o", label=label)
        if column == ENTROPY_COLUMN and finding.target is not None:
            ax.axhline(finding.target, color="crimson", linestyle=":", label="target")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.suptitle(f"{finding.key}: {finding.claim}", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


TABLE_STATS = (
    "initial_entropy",
    "final_entropy",
    "entropy_auc",
    "peak_entropy",
    "base_accuracy",
    "final_accuracy",
    "final_truncation",
)


def interval_text(test: Mapping[str, Any]) -> str:
    """``0.123 [0.045, 0.201]`` (estimate and interval) or ``-`` when not measured."""
    if test.get("estimate") is None:
        return "-"
    return f"{test['estimate']:.3g} [{_fmt(test['low'])}, {_fmt(test['high'])}]"


def findings_markdown(doc: Mapping[str, Any]) -> str:
    """The measured table (seed means) and the tests (estimate, interval, verdict)."""
    lines = [
        "| finding | variant | " + " | ".join(TABLE_STATS) + " |",
        "|---|---|" + "---|" * len(TABLE_STATS),
    ]
    for key, entry in doc["findings"].items():
        for variant in entry["variants"].values():
            cells = [_fmt(variant["mean"].get(s)) for s in TABLE_STATS]
            lines.append(f"| {key} | {variant['label']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| finding | test | statistic | estimate [95% CI] | seeds x units | test verdict "
        "| finding |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, entry in doc["findings"].items():
        for i, t in enumerate(entry["tests"]):
            verdict = f"**{entry['verdict']}**" if i == 0 else ""
            size = f"{t['seeds']} x {t['units'] // max(t['seeds'], 1)}" if t["seeds"] else "-"
            lines.append(
                f"| {key if i == 0 else ''} | {t['test']} | {t['rule']} | {interval_text(t)} "
                f"| {size} | {t['verdict']} | {verdict} |"
            )
    return "\n".join(lines)


def _tests_html(entry: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(t['test'])}</td><td>{html.escape(t['rule'])}</td>"
        f"<td>{html.escape(interval_text(t))}</td><td>{t['seeds']}</td><td>{t['units']}</td>"
        f"<td>{html.escape(t['verdict'])}</td></tr>"
        for t in entry["tests"]
    )
    head = "<tr><th>test</th><th>statistic</th><th>estimate [95% CI]</th><th>seeds</th>"
    return f"<table>{head}<th>units</th><th>verdict</th></tr>{rows}</table>"


def write_report(study: Study, doc: Mapping[str, Any]) -> Path:
    """``report.html``: the tests, the per-variant table and the plots (embedded)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>or1 entropy study</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
        ".no{color:#a00}.yes{color:#070}img{max-width:100%}</style></head><body>",
        f"<h1>Entropy study ({html.escape(doc['mode'])}, preset {html.escape(doc['preset'])})</h1>",
        f"<p>Wall time {doc['wall_seconds']:.0f} s. Seeds {doc['settings']['seeds']}. "
        f"{html.escape(doc['tests']['bootstrap'])}: {doc['tests']['resamples']} resamples, "
        f"rng seed {doc['tests']['seed']}.</p>",
    ]
    for key, entry in doc["findings"].items():
        cls = "yes" if entry["reproduced"] else "no"
        parts.append(
            f"<h2>{html.escape(key)}: <span class='{cls}'>{html.escape(entry['verdict'])}"
            f"</span></h2><p>{html.escape(entry['claim'])}</p>"
        )
        if entry["note"]:
            parts.append(f"<p><i>{html.escape(entry['note'])}</i></p>")
        parts.append(_tests_html(entry))
        parts.append("<br><table><tr><th>variant</th>")
        parts += [f"<th>{s}</th>" for s in TABLE_STATS]
        parts.append("</tr>")
        for variant in entry["variants"].values():
            cells = "".join(f"<td>{_fmt(variant['mean'].get(s))}</td>" for s in TABLE_STATS)
            parts.append(f"<tr><td>{html.escape(variant['label'])}</td>{cells}</tr>")
        parts.append("</table>")
        png = study.out / entry["plot"]
        if png.is_file():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"<p><img src='data:image/png;base64,{data}' alt='{key}'></p>")
    parts.append("</body></html>")
    out = study.out / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
