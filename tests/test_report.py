"""write_report, plot_overlay and compare_runs on synthetic run directories."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from or1.errors import DataError
from or1.report import PANELS, compare_runs, load_run, plot_overlay, write_report
from or1.report.draw import _smooth as smooth
from or1.report.plots import _stage_lengths as stage_lengths

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_COLUMNS = [
    "reward_mean",
    "accuracy",
    "entropy_sampled",
    "entropy_full",
    "entropy_coef",
    "response_length_mean",
    "response_length_max",
    "truncation_ratio",
    "kept_group_fraction",
    "clip_frac",
    "approx_kl",
    "entropy_vs_start",  # the entropy-collapse panel (or1/report/entropy.py)
    "rollout_seconds",
    "reward_seconds",
    "update_seconds",
    # a mixed run: by ability and by data source (or1/rewards/scoring.py)
    "accuracy/math",
    "accuracy/code",
    "accuracy/src/aime24",
    "response_length_mean/math",
    "response_length_mean/src/aime24",
]
CONFIG = """\
algo:
  entropy:
    mode: adaptive
    target: 0.2
stages:
  - {steps: 20, max_response_length: 64}
  - {steps: 20, max_response_length: 128}
"""


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _rows(columns: list[str], steps: int = 40) -> list[dict[str, Any]]:
    """One row per step, two stages of 20 steps, values a smooth function of the step."""
    return [
        {
            "step": s,
            "stage": (s - 1) // 20,
            **{c: 0.5 + 0.3 * math.sin(s / 7 + i) for i, c in enumerate(columns)},
        }
        for s in range(1, steps + 1)
    ]


def _run(tmp_path: Path, columns: list[str], name: str = "run") -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    _write_jsonl(run_dir / "metrics.jsonl", _rows(columns))
    return run_dir


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    run_dir = _run(tmp_path, ALL_COLUMNS)
    _write_jsonl(
        run_dir / "eval.jsonl",
        [
            {
                "step": 0,
                "label": "base",
                "avg_at_k": 0.31,
                "k": 8,
                "pass_at_k": {"1": 0.31, "8": 0.7},
            },
            {
                "step": 40,
                "label": "final",
                "avg_at_k": 0.52,
                "k": 8,
                "pass_at_k": {"1": 0.52, "8": 0.9},
            },
        ],
    )
    (run_dir / "summary.json").write_text(
        json.dumps({"steps": 40, "eval": {"final_avg_at_k": 0.52}})
    )
    (run_dir / "config.yaml").write_text(CONFIG + "note: a<b\n")
    return run_dir


def _embedded_pngs(html: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    ]


def test_report_embeds_one_valid_png_per_panel(full_run: Path) -> None:
    out = write_report(full_run)
    assert out == full_run / "report.html"
    html = out.read_text()
    embedded = _embedded_pngs(html)
    assert len(embedded) == len(PANELS)
    for panel, data in zip(PANELS, embedded, strict=True):
        path = full_run / "plots" / f"{panel.key}.png"
        assert path.read_bytes() == data  # the mailed page shows exactly the saved plot
        assert data.startswith(PNG_SIGNATURE)
        height, width, _ = imread(path).shape
        assert height > 200 and width > 500
    assert "not logged" not in html
    assert not list((full_run / "plots").glob("*.tmp"))


def test_report_has_summary_evals_and_config(full_run: Path) -> None:
    html = write_report(full_run).read_text()
    assert "<td>eval.final_avg_at_k</td><td>0.52</td>" in html
    assert "<td>base</td>" in html and "<th>pass@8</th>" in html
    assert re.search(r"<details>.*<pre>.*note: a&lt;b.*</pre></details>", html, re.S)


def test_missing_columns_are_listed_as_not_logged(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, ["reward_mean", "entropy_sampled"])
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "time.png").write_bytes(b"stale")
    html = write_report(run_dir).read_text()
    assert len(_embedded_pngs(html)) == 2  # reward, entropy
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == ["entropy.png", "reward.png"]
    assert "Time per step: not logged" in html and "Accuracy: not logged" in html
    assert "not logged: entropy_full" in html  # the entropy panel lacks one of its two series


def test_empty_or_missing_metrics_give_a_report_that_says_so(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    html = write_report(run_dir).read_text()
    assert "No training metrics were logged" in html and not _embedded_pngs(html)
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "reward_')  # killed mid-line
    assert "No training metrics were logged" in write_report(run_dir).read_text()


def test_missing_run_dir_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        write_report(tmp_path / "nope")


def _draw(key: str, run_dir: Path) -> Any:
    fig = Figure()
    ax = fig.add_subplot()
    panel = next(p for p in PANELS if p.key == key)
    drawn = panel.draw(ax, load_run(run_dir))
    return ax, drawn


def test_entropy_target_line_follows_the_config(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, ["entropy_sampled", "entropy_full"])
    (run_dir / "config.yaml").write_text(CONFIG)
    ax, drawn = _draw("entropy", run_dir)
    assert drawn == ["entropy_sampled", "entropy_full"]
    flat = [line for line in ax.lines if len(set(line.get_ydata())) == 1]
    assert [line.get_ydata()[0] for line in flat] == [0.2]
    (run_dir / "config.yaml").write_text(CONFIG.replace("adaptive", "off"))
    ax, _ = _draw("entropy", run_dir)
    assert not [line for line in ax.lines if len(set(line.get_ydata())) == 1]


def test_accuracy_panel_marks_eval_points(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, ["reward_mean"])  # no train accuracy: eval points alone suffice
    _write_jsonl(run_dir / "eval.jsonl", [{"step": 0, "label": "base", "avg_at_k": 0.3, "k": 4}])
    ax, drawn = _draw("accuracy", run_dir)
    assert drawn == ["avg_at_k (eval.jsonl)"]
    (points,) = ax.lines
    assert points.get_label() == "held-out avg@4"
    assert list(points.get_xdata()) == [0] and list(points.get_ydata()) == [0.3]


def test_stage_max_length_per_step(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, ["response_length_mean"])
    (run_dir / "config.yaml").write_text(CONFIG)
    steps, limit = stage_lengths(load_run(run_dir))
    assert steps.tolist() == list(range(1, 41))
    assert limit.tolist() == [64] * 20 + [128] * 20
    # Without a stage column the stage lengths are counted off in step order.
    rows = [{k: v for k, v in r.items() if k != "stage"} for r in _rows(["response_length_mean"])]
    _write_jsonl(run_dir / "metrics.jsonl", rows)
    assert stage_lengths(load_run(run_dir))[1].tolist() == [64] * 20 + [128] * 20


def test_smoothing_does_not_cross_stage_boundaries() -> None:
    steps = np.arange(1.0, 7.0)
    values = np.array([0.0, 0.0, 0.0, 10.0, 10.0, 10.0])
    assert smooth(steps, values, 3, breaks=[4.0]).tolist() == values.tolist()
    # Without the break the jump is blurred: (0 + 0 + 10) / 3 at step 3.
    assert smooth(steps, values, 3, breaks=[])[2] == pytest.approx(10 / 3)


def test_plot_overlay_and_compare_runs(tmp_path: Path) -> None:
    path = plot_overlay(
        {"a": [(1, 0.5), (2, 0.4)], "b": [(1, 0.3), (2, float("nan"))]},
        title="Entropy",
        ylabel="nats",
        path=tmp_path / "out" / "overlay.png",
    )
    assert path.read_bytes().startswith(PNG_SIGNATURE) and imread(path).size > 0
    with pytest.raises(DataError, match="nothing to plot"):
        plot_overlay({"a": []}, title="t", ylabel="y", path=tmp_path / "empty.png")

    runs = [_run(tmp_path, ["entropy_full"], "r1"), _run(tmp_path, ["reward_mean"], "r2")]
    out = compare_runs(runs, "entropy_full", tmp_path / "cmp.png")
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(DataError, match="no run logged 'clip_frac'"):
        compare_runs(runs, "clip_frac", tmp_path / "none.png")
    with pytest.raises(DataError, match="does not exist"):
        compare_runs([tmp_path / "missing"], "entropy_full", tmp_path / "x.png")


def test_a_mixed_run_gets_panels_by_ability_and_source(tmp_path: Path) -> None:
    from or1.report.groups import group_columns

    columns = ["accuracy", "accuracy/math", "accuracy/code", "accuracy/src/gsm8k"]
    run_dir = _run(tmp_path, columns)
    run = load_run(run_dir)
    assert group_columns(run, "accuracy") == (
        ["accuracy/code", "accuracy/math"],
        ["accuracy/src/gsm8k"],
    )
    html = write_report(run_dir).read_text()
    assert (run_dir / "plots" / "accuracy_by_group.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "Accuracy by ability (solid) and data source (dashed)" in html
    # Response lengths were not logged by group: that panel is listed as not logged.
    assert "not logged (response_length_mean/&lt;group&gt;)" in html
    assert not (run_dir / "plots" / "response_length_by_group.png").exists()
