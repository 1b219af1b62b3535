"""The learning curve of a study task: held-out avg@k, training accuracy and entropy of
one or more on-policy runs, in one PNG (docs/study.md "The task").

``python -m or1.study.curve RUN_DIR [RUN_DIR ...] --out docs/study/task_curve.png``
reads each run's ``eval.jsonl`` and ``metrics.jsonl`` (``or1 train`` with ``eval.every``)
and prints the held-out points as a table (step, avg@k per run).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from or1.study.report import PANELS, _smooth
from or1.study.stats import eval_points, finite
from or1.study.variants import ENTROPY_COLUMN
from or1.tracking import EVAL_FILE, METRICS_FILE, read_jsonl


def heldout_table(run_dirs: Sequence[Path]) -> list[tuple[int, list[float | None]]]:
    """Per evaluated step, each run's held-out avg@k (None where it has no eval there)."""
    points = [eval_points(read_jsonl(Path(d) / EVAL_FILE)) for d in run_dirs]
    steps = sorted({s for p in points for s in p})
    return [(s, [p.get(s) for p in points]) for s in steps]


def plot_learning_curve(run_dirs: Sequence[Path], path: Path, title: str = "") -> Path:
    """Held-out avg@k (points), training accuracy and entropy (smoothed) per run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13.5, 3.6), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for run_dir in map(Path, run_dirs):
        rows = read_jsonl(run_dir / METRICS_FILE)
        held = eval_points(read_jsonl(run_dir / EVAL_FILE))
        axes[0].plot(list(held), list(held.values()), marker="o", label=run_dir.name)
        for ax, column in zip(axes[1:], ("accuracy", ENTROPY_COLUMN), strict=True):
            pairs = [(r["step"], r.get(column)) for r in rows if finite([r.get(column)])]
            if len(pairs) >= 10:
                xs, ys = zip(*pairs, strict=True)
                (raw,) = ax.plot(xs, ys, alpha=0.25, linewidth=0.8)
                ax.plot(xs, _smooth(list(ys)), color=raw.get_color(), label=run_dir.name)
    labels = (PANELS["heldout"][0], PANELS["accuracy"][0], PANELS[ENTROPY_COLUMN][0])
    for ax, label in zip(axes, labels, strict=True):
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m or1.study.curve", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    missing = [d for d in args.runs if not (d / METRICS_FILE).is_file()]
    if missing:
        parser.error(f"no {METRICS_FILE} in {', '.join(map(str, missing))} (not a run directory)")
    plot_learning_curve(args.runs, args.out, args.title)
    print("| step | " + " | ".join(d.name for d in args.runs) + " |")
    print("|---|" + "---|" * len(args.runs))
    for step, values in heldout_table(args.runs):
        cells = ["-" if v is None else f"{v:.3f}" for v in values]
        print(f"| {step} | " + " | ".join(cells) + " |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
