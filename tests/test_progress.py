"""Progress output: plain lines without a terminal (every N%, or one per step), nothing
when hidden. The CLI with stdout to a pipe: tests/test_cli_train_logs.py."""

from __future__ import annotations

import io
import re

import pytest

from or1 import progress
from or1.progress import LineProgress, progress_bar, step_fields


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_line_at_the_start_and_every_ten_percent() -> None:
    out = io.StringIO()
    bar = LineProgress("warm-up (supervised)", 400, every=10, stream=out)
    for _ in range(400):
        bar.advance(1, loss="1.000")
    lines = _lines(out)
    assert len(lines) == 11  # the start, then 10%, 20%, ..., 100%
    assert lines[0] == "warm-up (supervised) 0/400 (0%) elapsed 0:00:00"
    done = [int(re.match(r"warm-up \(supervised\) (\d+)/400", x).group(1)) for x in lines]
    assert done == [0, 40, 80, 120, 160, 200, 240, 280, 320, 360, 400]
    assert lines[1].endswith(" loss=1.000") and " eta " in lines[1]
    assert " eta " not in lines[-1]  # done: nothing remains


def test_big_advances_and_small_totals_print_each_threshold_once() -> None:
    out = io.StringIO()
    bar = LineProgress("eval base (avg@8)", 12, every=10, stream=out)
    bar.advance(5)
    bar.advance(7)
    bar.advance(0)  # nothing new after the end
    assert [x.split(" (")[1].split(")")[1].split()[0] for x in _lines(out)] == [
        "0/12",
        "5/12",
        "12/12",
    ]


def test_one_line_per_step_when_every_is_zero_resumed_from_step_two() -> None:
    out = io.StringIO()
    bar = LineProgress("RL steps", 5, every=0, completed=2, stream=out)
    for step in (3, 4, 5):
        bar.advance(1, stage="1/1", reward=f"0.{step}")
    lines = _lines(out)
    assert [x.split()[2] for x in lines] == ["2/5", "3/5", "4/5", "5/5"]
    assert lines[1].endswith("stage=1/1 reward=0.3")


def test_progress_bar_picks_lines_without_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with progress_bar("phase", 2, show=False) as bar:
        bar.advance(2)
    assert capsys.readouterr().out == ""  # hidden: nothing at all
    with progress_bar("phase", 2) as bar:  # pytest's captured stdout is not a terminal
        bar.advance(1)
        bar.advance(1)
    out = capsys.readouterr().out
    assert out.count("\n") == 3 and "\x1b" not in out and out.startswith("phase 0/2 (0%)")
    monkeypatch.setattr(progress, "plain_output", lambda: False)
    with progress_bar("phase", 2) as bar:  # a terminal: the rich bar
        assert isinstance(bar, progress.Bar)


def test_step_fields_name_what_the_issue_asks() -> None:
    metrics = {
        "stage": 1,
        "reward_mean": 0.40625,
        "accuracy": 0.375,
        "entropy_sampled": 0.5123,
        "entropy_coef": 0.0025,
        "response_length_mean": 41.25,
        "response_length_max": 64,
        "truncation_ratio": 0.0625,
        "step_seconds": 3.214,
    }
    assert step_fields(metrics, stages=3) == {
        "stage": "2/3",
        "reward": "0.406",
        "accuracy": "0.375",
        "entropy": "0.512",
        "coef": "0.0025",
        "len": "41.2/64",
        "trunc": "0.062",
        "seconds": "3.21",
    }
    assert step_fields({"stage": 0}, stages=1)["entropy"] == "nan"  # a step without update
