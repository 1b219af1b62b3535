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
from or1.study.stats import eval_points, finite, tail_size
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


def _column(rows: list[dict[str, Any]], column: str) -> dict[int, float]:
    return {r["step"]: float(r[column]) for r in rows if finite([r.get(column)])}


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


def plot_finding(finding: Finding, curves: Mapping[str, Any], path: Path) -> Path:
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
            runs = curves.get(key, {})
            per_seed = {
                seed: eval_points(c["eval"]) if column == "heldout" else _column(c["rows"], column)
                for seed, c in runs.items()
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


def findings_markdown(doc: Mapping[str, Any]) -> str:
    """The measured table (seed means) and the checks, as Markdown."""
    lines = [
        "| finding | variant | " + " | ".join(TABLE_STATS) + " |",
        "|---|---|" + "---|" * len(TABLE_STATS),
    ]
    for key, entry in doc["findings"].items():
        for variant in entry["variants"].values():
            cells = [_fmt(variant["mean"].get(s)) for s in TABLE_STATS]
            lines.append(f"| {key} | {variant['label']} | " + " | ".join(cells) + " |")
    lines += ["", "| finding | reproduced | seeds | checks (seed means) |", "|---|---|---|---|"]
    for key, entry in doc["findings"].items():
        checks = "; ".join(
            f"{c['rule']}: {_fmt(c['left'])} vs {_fmt(c['right'])} "
            f"{'ok' if c['passed'] else 'FAILS'}"
            for c in entry["checks"]
        )
        yes = "yes" if entry["reproduced"] else "no"
        lines.append(f"| {key} | {yes} | {entry['reproduced_seeds']} | {checks} |")
    return "\n".join(lines)


def write_report(study: Study, doc: Mapping[str, Any]) -> Path:
    """``report.html``: the checks, the per-variant table and the plots (embedded)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>or1 entropy study</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
        ".no{color:#a00}.yes{color:#070}img{max-width:100%}</style></head><body>",
        f"<h1>Entropy study ({html.escape(doc['mode'])}, preset {html.escape(doc['preset'])})</h1>",
        f"<p>Wall time {doc['wall_seconds']:.0f} s. Seeds {doc['settings']['seeds']}.</p>",
    ]
    for key, entry in doc["findings"].items():
        cls = "yes" if entry["reproduced"] else "no"
        parts.append(
            f"<h2>{html.escape(key)}: <span class='{cls}'>"
            f"{'reproduced' if entry['reproduced'] else 'not reproduced'}</span> "
            f"(seeds {entry['reproduced_seeds']})</h2><p>{html.escape(entry['claim'])}</p>"
        )
        if entry["note"]:
            parts.append(f"<p><i>{html.escape(entry['note'])}</i></p>")
        rows = "".join(
            f"<tr><td>{html.escape(c['rule'])}</td><td>{_fmt(c['left'])}</td>"
            f"<td>{_fmt(c['right'])}</td><td>{'ok' if c['passed'] else 'fails'}</td></tr>"
            for c in entry["checks"]
        )
        parts.append(f"<table><tr><th>check</th><th>left</th><th>right</th><th></th></tr>{rows}")
        parts.append("</table><br><table><tr><th>variant</th>")
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
