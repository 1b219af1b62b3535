"""The report panels of the controller features: the entropy-collapse panel (drawn from the
the likely causes computed from the run's own metrics and config."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from or1.report import load_run, write_report
from or1.report.plots import _draw_entropy, _draw_truncation

CONFIG = """\
rollout: {temperature: 0.6}
algo:
  kl_beta: 0.0
  clip_high: 0.2
  entropy: {mode: adaptive, target: auto, alarm: {fraction: 0.5}}
"""


def _run(tmp_path: Path, *, fire_at: int | None) -> Path:
    run = tmp_path / f"run{fire_at}"
    run.mkdir()
    rows = []
    for s in range(1, 21):
        rows.append(
            {
                "step": s,
                "entropy_sampled": 0.4 - 0.015 * s,
                "entropy_target": 0.2,
                "entropy_vs_start": 1.0 - 0.04 * s,
                "entropy_collapse": float(fire_at is not None and s >= fire_at),
                "n_sgd": 4,
                # high-side clipping before the alarm only: the causes use steps <= alarm
                "clip_frac_high": 0.03 if s <= 13 else 0.0,
                "clip_frac_low": 0.0 if s <= 13 else 0.5,
            }
        )
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text(CONFIG)
    return run


def test_the_panel_names_the_likely_causes_of_the_alarm(tmp_path: Path) -> None:
    html = write_report(_run(tmp_path, fire_at=13)).read_text()
    assert "id='entropy_collapse'" in html
    figure = html.split("id='entropy_collapse'")[1].split("</figure>")[0]
    caption = figure.split("<figcaption class='note'>")[1].split("</figcaption>")[0]
    assert "Entropy collapse alarm at step 13" in caption
    assert "N_SGD = 4" in caption and "high side (3.00%" in caption
    assert "low side" not in caption  # the low-side clipping came after the alarm
    assert "temperature 0.6" in caption and "KL" not in caption
    assert (tmp_path / "run13" / "plots" / "entropy_collapse.png").is_file()


def test_no_alarm_no_caption(tmp_path: Path) -> None:
    html = write_report(_run(tmp_path, fire_at=None)).read_text()
    panel = html.split("id='entropy_collapse'")[1].split("</figure>")[0]
    assert "<figcaption class='note'>" not in panel


def test_the_entropy_panel_draws_the_measured_auto_target(tmp_path: Path) -> None:
    fig = Figure()
    ax = fig.add_subplot()
    _draw_entropy(ax, load_run(_run(tmp_path, fire_at=None)))
    labels = [line.get_label() for line in ax.lines]
    assert "target 0.2" in labels  # from the entropy_target column (config says auto)


def test_the_truncation_panel_marks_an_early_stage_switch(tmp_path: Path) -> None:
    run = tmp_path / "switch"
    run.mkdir()
    rows = [
        {"step": s, "stage": 0 if s <= 6 else 1, "truncation_ratio": 0.1 * s}
        | ({"truncation_ratio_window": 0.1 * s - 0.1} if 3 <= s <= 6 else {})
        | ({"stage_advanced_early": 1.0} if s == 6 else {})
        for s in range(1, 11)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text(
        "stages:\n  - {steps: 20, advance_at_truncation: 0.5}\n  - {steps: 4}\n"
    )
    fig = Figure()
    ax = fig.add_subplot()
    drawn = _draw_truncation(ax, load_run(run))
    assert drawn == ["truncation_ratio", "truncation_ratio_window"]
    lines = {line.get_label(): line for line in ax.lines}
    threshold = lines["advance_at_truncation"]
    assert list(threshold.get_xdata()) == [1, 2, 3, 4, 5, 6]  # stage 0 only
    assert set(threshold.get_ydata()) == {0.5}
    assert list(lines["advanced early"].get_xdata()) == [6, 6]
