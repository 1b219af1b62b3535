"""MetricsLogger: JSONL rows, crash tolerance, truncation on resume, tensorboard, the
namespaced tracker names, and the fan-out to trackers (fakes here; the real wandb and
MLflow in tests/test_trackers.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from or1.errors import ConfigError, DataError
from or1.tracking import (
    TRACKER_NAMES,
    MetricsLogger,
    device_metrics,
    eval_scalars,
    read_jsonl,
    tracker_name,
)


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


def test_tensorboard_events_hold_the_namespaced_scalars(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path) as logger:
        logger.log(1, {"reward_mean": 0.25, "entropy_full": None, "grad_norm": 2.0})
        logger.log(2, {"reward_mean": 0.75, "mystery": 1.0})
        logger.log_eval(2, {"label": "final", "avg_at_k": 0.5, "k": 8, "pass_at_k": {"8": 0.9}})
        logger.log_eval(2, {"label": "final", "benchmark": "aime24", "avg_at_k": 0.125, "k": 8})
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert _scalars(tmp_path, "reward/mean") == [(1, 0.25), (2, 0.75)]
    assert _scalars(tmp_path, "actor/grad_norm") == [(1, 2.0)]
    assert _scalars(tmp_path, "other/mystery") == [(2, 1.0)]
    assert _scalars(tmp_path, "eval/test/avg_at_k") == [(2, 0.5)]
    assert _scalars(tmp_path, "eval/test/pass_at_8") == [(2, pytest.approx(0.9))]
    assert _scalars(tmp_path, "eval/aime24/avg_at_k") == [(2, 0.125)]
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert "actor/entropy" not in acc.Tags()["scalars"]  # None is not sent
    # metrics.jsonl keeps the flat keys scripts read.
    assert read_jsonl(tmp_path / "metrics.jsonl")[1] == {
        "step": 2,
        "reward_mean": 0.75,
        "mystery": 1.0,
    }


def test_truncate_after_purges_tensorboard_events(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path) as logger:
        for step in range(1, 6):
            logger.log(step, {"reward_mean": float(step)})
    with MetricsLogger(tmp_path) as logger:
        logger.truncate_after(2)
        logger.log(3, {"reward_mean": 30.0})
    assert _scalars(tmp_path, "reward/mean") == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_tracker_names_table() -> None:
    assert tracker_name("reward_mean") == "reward/mean"
    assert tracker_name("entropy_full") == "actor/entropy"
    assert tracker_name("lr") == "actor/lr"
    assert tracker_name("tokens_per_second") == "rollout/tokens_per_second"
    assert tracker_name("step_seconds") == "timing/step"
    assert tracker_name("not_in_the_table") == "other/not_in_the_table"
    assert tracker_name("custom/already_named") == "custom/already_named"
    # Per-ability and per-source breakdowns (or1.rewards.scoring) follow their metric.
    assert tracker_name("accuracy/math") == "reward/accuracy/math"
    assert (
        tracker_name("response_length_mean/src/gsm8k") == "rollout/response_length_mean/src/gsm8k"
    )
    assert tracker_name("code_reward_hack_attempts") == "reward/code_hack_attempts"
    assert tracker_name("reward_reasons/test_failed") == "reward/reasons/test_failed"
    names = list(TRACKER_NAMES.values())
    assert len(set(names)) == len(names)  # no two metrics on one curve
    prefixes = {name.split("/")[0] for name in names}
    assert prefixes == {"actor", "rollout", "reward", "timing", "perf"}


def test_eval_scalars_go_under_the_benchmark() -> None:
    row = {
        "label": "base",
        "benchmark": "aime25",
        "avg_at_k": 0.2,
        "k": 4,
        "seconds": 3.5,
        "pass_at_k": {"1": 0.2, "4": 0.5},
        "problems": 30,
    }
    assert eval_scalars(row) == {
        "eval/aime25/avg_at_k": 0.2,
        "eval/aime25/seconds": 3.5,
        "eval/aime25/pass_at_1": 0.2,
        "eval/aime25/pass_at_4": 0.5,
    }
    assert set(eval_scalars({"avg_at_k": 0.1})) == {"eval/test/avg_at_k"}


def test_eval_scalars_carry_the_per_ability_and_per_source_breakdown() -> None:
    row = {
        "label": "final",
        "avg_at_k": 0.5,
        "avg_at_k/math": 0.75,
        "avg_at_k/code": 0.25,
        "avg_at_k/src/tiny-code": 0.25,
        "truncation_ratio/code": 0.125,
        "mean_response_length/math": 12.0,
        "problems": 8,
        "k/math": 4,  # not an evaluation scalar
    }
    assert eval_scalars(row) == {
        "eval/test/avg_at_k": 0.5,
        "eval/test/avg_at_k/math": 0.75,
        "eval/test/avg_at_k/code": 0.25,
        "eval/test/avg_at_k/src/tiny-code": 0.25,
        "eval/test/truncation_ratio/code": 0.125,
        "eval/test/mean_response_length/math": 12.0,
    }


class FakeTracker:
    """Records what the logger asks of a tracker."""

    name = "fake"

    def __init__(self, *, continues: bool = True, fail_logs: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.continues, self.fail_logs = continues, fail_logs

    def start(self, *, resume: bool) -> bool:
        self.calls.append(("start", resume))
        return resume and self.continues

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if self.fail_logs:
            raise ConnectionError("tracking server unreachable")
        self.calls.append(("log", (step, dict(scalars))))

    def close(self, *, failed: bool) -> None:
        self.calls.append(("close", failed))


def test_trackers_get_namespaced_finite_scalars(tmp_path: Path) -> None:
    fake = FakeTracker()
    with MetricsLogger(tmp_path, tensorboard=False, trackers=[fake]) as logger:
        assert fake.calls == []  # started at the first row, not before
        logger.log_eval(0, {"label": "base", "avg_at_k": 0.25, "k": 2})
        logger.log(1, {"reward_mean": 0.5, "entropy_full": None, "clip_frac": float("nan")})
    assert fake.calls == [
        ("start", False),
        ("log", (0, {"eval/test/avg_at_k": 0.25})),
        ("log", (1, {"reward/mean": 0.5})),
        ("close", False),
    ]


def test_a_resumed_run_continues_without_resending_steps(tmp_path: Path) -> None:
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        for step in range(1, 6):  # the killed run logged 5 steps; its checkpoint is at 3
            logger.log(step, {"reward_mean": step / 10})
    fake = FakeTracker()
    with MetricsLogger(tmp_path, tensorboard=False, trackers=[fake]) as logger:
        logger.truncate_after(3)
        for step in range(4, 8):
            logger.log(step, {"reward_mean": step / 10})
    # Steps 4 and 5 were sent by the killed run: the continued tracker run skips them.
    assert [c for c in fake.calls if c[0] != "log"] == [("start", True), ("close", False)]
    assert [c[1][0] for c in fake.calls if c[0] == "log"] == [6, 7]
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == list(range(1, 8))
    # A tracker that had no run to continue (turned on at resume) gets every new step.
    fresh = FakeTracker(continues=False)
    with MetricsLogger(tmp_path, tensorboard=False, trackers=[fresh]) as logger:
        logger.truncate_after(6)
        logger.log(7, {"reward_mean": 0.7})
    assert [c[1][0] for c in fresh.calls if c[0] == "log"] == [7]


def test_a_failing_run_is_closed_as_failed_and_tracker_errors_do_not_stop_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeTracker()
    with pytest.raises(RuntimeError), MetricsLogger(tmp_path, trackers=[fake]) as logger:
        logger.log(1, {"reward_mean": 0.5})
        raise RuntimeError("non-finite loss")
    assert fake.calls[-1] == ("close", True)
    broken = FakeTracker(fail_logs=True)
    with MetricsLogger(tmp_path / "b", tensorboard=False, trackers=[broken]) as logger:
        logger.log(1, {"reward_mean": 0.5})
        logger.log(2, {"reward_mean": 0.6})
    assert [r["step"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl")] == [1, 2]
    warnings = [r for r in caplog.records if "could not log" in r.getMessage()]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()


def test_device_metrics_report_the_peak_of_each_step(monkeypatch: pytest.MonkeyPatch) -> None:
    assert device_metrics() == {}  # no CUDA here
    # The CUDA calls are the unreachable boundary on this CPU machine: fake them.
    peaks = iter([3 * 2**30, 1.5 * 2**30])
    resets: list[bool] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: next(peaks))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: resets.append(True))
    assert device_metrics() == {"max_memory_allocated_gb": 3.0}
    assert device_metrics() == {"max_memory_allocated_gb": 1.5}
    assert resets == [True, True]
    assert tracker_name("max_memory_allocated_gb") == "perf/max_memory_allocated_gb"


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


def test_start_trackers_stops_early_and_closes_what_it_opened(tmp_path: Path) -> None:
    class Refuses(FakeTracker):
        name = "refuses"

        def start(self, *, resume: bool) -> bool:
            raise ConfigError("logging.refuses: cannot start.")

    first, second = FakeTracker(), Refuses()
    logger = MetricsLogger(tmp_path, tensorboard=False, trackers=[first, second])
    with pytest.raises(ConfigError, match="cannot start"):
        logger.start_trackers()  # before anything is logged
    assert first.calls == [("start", False), ("close", True)]
    fine = FakeTracker()
    logger = MetricsLogger(tmp_path / "ok", tensorboard=False, trackers=[fine])
    logger.start_trackers()
    logger.start_trackers()  # safe twice
    logger.log(1, {"reward_mean": 0.5})
    logger.close()
    assert [c[0] for c in fine.calls] == ["start", "log", "close"]
