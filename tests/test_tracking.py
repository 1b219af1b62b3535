"""MetricsLogger: JSONL rows, crash tolerance, truncation on resume, tensorboard, wandb."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from or1.errors import ConfigError, DataError
from or1.tracking import MetricsLogger, read_jsonl


def _scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_log_writes_rows_that_read_back(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(1, {"reward_mean": 0.25, "stage": 0, "entropy_full": None})
        logger.log(2, {"reward_mean": np.float32(0.5), "stage": np.int64(1), "approx_kl": np.nan})
        logger.log(3, {"clip_frac": float("inf")})
    assert read_jsonl(tmp_path / "metrics.jsonl") == [
        {"step": 1, "reward_mean": 0.25, "stage": 0, "entropy_full": None},
        {"step": 2, "reward_mean": 0.5, "stage": 1, "approx_kl": None},
        {"step": 3, "clip_frac": None},
    ]
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON for other readers


def test_each_row_is_on_disk_before_close(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log(7, {"accuracy": 0.75})
    # Read without closing: a killed run must have kept every logged row.
    assert read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 7, "accuracy": 0.75}]
    logger.close()


def test_log_rejects_bad_input(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        with pytest.raises(ValueError, match="step"):
            logger.log(1, {"step": 3})
        with pytest.raises(TypeError, match="label"):
            logger.log(1, {"label": "0.5"})  # type: ignore[dict-item]


def test_truncate_after_drops_later_rows(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log_eval(0, {"label": "base", "avg_at_k": 0.3, "k": 8})
        for step in range(1, 6):
            logger.log(step, {"reward_mean": step / 10})
        logger.log_eval(5, {"label": "final", "avg_at_k": 0.6, "k": 8})
    with MetricsLogger(tmp_path, tensorboard=False) as logger:  # a resumed run
        logger.truncate_after(3)
        logger.log(4, {"reward_mean": 9.0})
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["reward_mean"]) for r in rows] == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 9.0)]
    assert [r["label"] for r in read_jsonl(tmp_path / "eval.jsonl")] == ["base"]
    assert not list(tmp_path.glob("*.tmp"))


def test_read_jsonl_tolerates_partial_trailing_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a": 2.0}\n{"step": 3, "a"')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    # The logger cuts the partial line before appending, so the file stays readable.
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(3, {"a": 3.0})
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3]


def test_read_jsonl_rejects_corrupt_middle_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2,,}\n{"step": 3}\n')
    with pytest.raises(DataError, match="line 2"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_tensorboard_events_hold_the_scalars(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path) as logger:
        logger.log(1, {"reward_mean": 0.25, "entropy_full": None})
        logger.log(2, {"reward_mean": 0.75})
        logger.log_eval(2, {"label": "final", "avg_at_k": 0.5, "k": 8, "pass_at_k": {"8": 0.9}})
        logger.log_eval(2, {"label": "final", "benchmark": "aime24", "avg_at_k": 0.125, "k": 8})
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert _scalars(tmp_path, "reward_mean") == [(1, 0.25), (2, 0.75)]
    assert _scalars(tmp_path, "eval/avg_at_k") == [(2, 0.5)]
    assert _scalars(tmp_path, "eval/pass_at_8") == [(2, pytest.approx(0.9))]
    assert _scalars(tmp_path, "eval/aime24/avg_at_k") == [(2, 0.125)]
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert "entropy_full" not in acc.Tags()["scalars"]  # None is not sent


def test_truncate_after_purges_tensorboard_events(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path) as logger:
        for step in range(1, 6):
            logger.log(step, {"reward_mean": float(step)})
    with MetricsLogger(tmp_path) as logger:
        logger.truncate_after(2)
        logger.log(3, {"reward_mean": 30.0})
    assert _scalars(tmp_path, "reward_mean") == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_wandb_missing_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail
    with pytest.raises(ConfigError, match=r"pip install or1\[wandb\]"):
        MetricsLogger(tmp_path, tensorboard=False, wandb=True)


def test_wandb_receives_scalars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []

    class FakeRun:
        def log(self, data: dict[str, float], step: int) -> None:
            calls.append(("log", (data, step)))

        def finish(self) -> None:
            calls.append(("finish", None))

    def init(**kwargs: Any) -> FakeRun:
        calls.append(("init", kwargs))
        return FakeRun()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    config = {"algo": {"clip_high": 0.265}}
    with MetricsLogger(
        tmp_path, tensorboard=False, wandb=True, wandb_project="p", config=config
    ) as logger:
        logger.log(4, {"reward_mean": 0.5, "entropy_full": None})
    assert calls[0][0] == "init"
    assert calls[0][1]["project"] == "p" and calls[0][1]["config"] == config
    assert calls[1:] == [("log", ({"reward_mean": 0.5}, 4)), ("finish", None)]
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["reward_mean"] == 0.5


def test_without_tensorboard_metrics_go_to_jsonl_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """tensorboard is the optional extra or1[tensorboard]: missing, one warning, no crash."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import -> ImportError
    with caplog.at_level("WARNING", logger="or1.tracking"), MetricsLogger(tmp_path) as logger:
        logger.log(1, {"reward_mean": 0.25})
        logger.log(2, {"reward_mean": 0.75})
        logger.truncate_after(1)
    assert [r["reward_mean"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [0.25]
    assert not (tmp_path / "tb").exists()
    warnings = [r.message for r in caplog.records if "tensorboard" in r.message]
    assert len(warnings) == 1 and "or1[tensorboard]" in warnings[0]
