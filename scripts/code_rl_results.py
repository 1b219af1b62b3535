"""Base -> final held-out accuracy per ability over seeds, and the per-ability plot, from
finished tiny-mix runs (docs/code-rl.md).

    .venv/bin/python scripts/code_rl_results.py RUN_DIR [RUN_DIR ...] --plot PNG

Each RUN_DIR is an ``or1 train --preset tiny-mix train.seed=N`` run. Printed: a markdown
table with one row per seed (avg@k on the run's held-out test split, per ability, before
and after RL; the train-step accuracy of the first and last 5 steps; the run's wall time,
and the warm-up's from the run that computed it, 0 when disabled) and the
mean over seeds; the last line is the same as JSON. The plot shows, per ability, the
train-step accuracy (each seed faint, their mean solid, smoothed over 5 steps) and the
held-out avg@k of the base and final evaluations (dashed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from or1.report.data import load_run

ABILITIES = ("math", "code")
EDGE_STEPS = 5  # steps averaged at the start and end of training
SMOOTH_STEPS = 5  # centred moving average of the plotted mean


def moving_average(values: list[float], window: int) -> list[float]:
    """Centred moving average; the window shrinks at the ends instead of padding."""
    half = window // 2
    return [statistics.fmean(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def run_row(run_dir: Path) -> dict[str, Any]:
    """One run's numbers: held-out avg@k per ability (base, final), train accuracy."""
    run = load_run(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    evals = {
        label: json.loads((run_dir / "eval" / f"{label}_summary.json").read_text())
        for label in ("base", "final")
    }
    row: dict[str, Any] = {"seed": summary["seed"], "k": summary["k"]}
    for ability in ABILITIES:
        for label, ev in evals.items():
            row[f"{label}/{ability}"] = ev[f"avg_at_k/{ability}"]
        _, acc = run.series(f"accuracy/{ability}")
        row[f"train_first/{ability}"] = float(acc[:EDGE_STEPS].mean())
        row[f"train_last/{ability}"] = float(acc[-EDGE_STEPS:].mean())
    row["base/all"], row["final/all"] = summary["base_avg_at_k"], summary["final_avg_at_k"]
    row["steps"] = summary["steps"]
    row["minutes"] = summary["wall_seconds"] / 60  # from the start: setup and warm-up included
    row["warmup_minutes"] = summary["model"].get("warmup_seconds", 0.0) / 60
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """The seed table plus a mean (and sample sd) row."""
    cols = [f"{w}/{a}" for a in ABILITIES for w in ("base", "final")]
    head = ["seed", *(c.replace("/", " ") for c in cols), "train math 1st->last 5 steps"]
    head += ["train code 1st->last 5 steps", "run minutes", "warm-up minutes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["seed"]), *(f"{r[c]:.3f}" for c in cols)]
        cells += [f"{r[f'train_first/{a}']:.2f} -> {r[f'train_last/{a}']:.2f}" for a in ABILITIES]
        cells += [f"{r['minutes']:.1f}", f"{r['warmup_minutes']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    mean = ["mean +- sd"]
    for c in cols:
        values = [r[c] for r in rows]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        mean.append(f"{statistics.fmean(values):.3f} +- {sd:.3f}")
    mean += [""] * (len(head) - len(mean))
    lines.append("| " + " | ".join(mean) + " |")
    return "\n".join(lines)


def plot(run_dirs: list[Path], rows: list[dict[str, Any]], path: Path) -> Path:
    """Per ability (one colour each): train-step accuracy of each seed (faint) and their
    mean (solid), and the held-out avg@k of the base and final evaluations (dashed)."""
    fig = Figure(figsize=(7.0, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    runs = [load_run(d) for d in run_dirs]
    last = max(r["steps"] for r in rows)
    for ability, colour in zip(ABILITIES, ("tab:blue", "tab:orange"), strict=True):
        by_step: dict[float, list[float]] = {}
        for run in runs:
            steps, acc = run.series(f"accuracy/{ability}")
            ax.plot(steps, acc, color=colour, alpha=0.25, linewidth=0.8)
            for s, a in zip(steps.tolist(), acc.tolist(), strict=True):
                by_step.setdefault(s, []).append(a)
        xs = sorted(by_step)
        mean = moving_average([statistics.fmean(by_step[x]) for x in xs], SMOOTH_STEPS)
        label = f"{ability}: train-step accuracy, mean of {len(runs)} seeds"
        label += f" ({SMOOTH_STEPS}-step moving average)"
        ax.plot(xs, mean, color=colour, linewidth=1.8, label=label)
        held = [statistics.fmean(r[f"{w}/{ability}"] for r in rows) for w in ("base", "final")]
        label = f"{ability}: held-out avg@{rows[0]['k']}, base -> final"
        ax.plot([0, last], held, color=colour, linestyle="--", marker="o", label=label)
    ax.set(xlabel="step", ylabel="accuracy", title=f"tiny-mix, {len(runs)} seeds")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path, required=True)
    args = parser.parse_args()
    rows = [run_row(d) for d in args.runs]
    print(markdown(rows))
    print(f"plot: {plot(args.runs, rows, args.plot)}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
