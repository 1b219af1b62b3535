"""The stage controller, the entropy diagnosis and refill in real runs: a switch made by
the truncation ratio, checkpointed, and resumed exactly (after a kill, and from a
checkpoint taken while the truncation window was half full)."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from or1.tracking import OTHER_PREFIX, tracker_name
from or1.trainer import TIMING_METRICS

from .cli_runs import read_metrics, run_or1

pytestmark = pytest.mark.slow


def _assert_same_metrics(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in b] == [r["step"] for r in a]
    for ra, rb in zip(a, b, strict=True):
        assert set(ra) == set(rb), ra["step"]
        for key, va in ra.items():
            if key in TIMING_METRICS or va is None or key.startswith("device_"):
                continue
            assert math.isclose(va, rb[key], rel_tol=1e-5, abs_tol=1e-6), (ra["step"], key)


def test_a_truncation_switch_resumes_exactly(small_args: list[str], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = [
        "train",
        "--quiet",
        *small_args,
        "eval.before=false",
        "eval.after=false",
        "logging.tensorboard=false",
        "train.keep_checkpoints=10",
        # 2 tokens: nearly every response is cut off, so the window of 3 reaches 0.5
        # after step 3 and stage 1 starts at step 4 instead of 5.
        "stages.0.steps=4",
        "stages.0.max_response_length=2",
        "stages.0.advance_at_truncation=0.5",
        "stages.0.advance_window=3",
        # every step updates the weights: no rejection, an adaptive entropy term whose
        # target is the mean entropy of the first 2 steps (auto)
        "algo.reject_uniform_groups=false",
        "algo.entropy.target=auto",
        "algo.entropy.auto_fraction=1.0",
        "algo.entropy.auto_steps=2",
        "algo.entropy.delta=0.05",
        "algo.entropy.alarm.window=1",
        "algo.entropy.alarm.within=null",
        "algo.refill=oversample",
        "algo.refill_max_rounds=1",
        "optim.lr=1e-2",
    ]
    straight = run_or1([*args, "name=straight"])
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = read_metrics(runs / "straight")
    assert [r["stage"] for r in a] == [0, 0, 0, 1, 1, 1]  # stage 0 ended after 3 of 4 steps
    assert [r["max_response_length"] for r in a] == [2, 2, 2, 64, 64, 64]
    assert a[2]["stage_advanced_early"] == 1.0 and a[2]["truncation_ratio_window"] >= 0.5
    assert "truncation_ratio_window" not in a[1]  # the window of 3 was not full yet
    assert all("entropy_target" in r for r in a[1:]) and "entropy_target" not in a[0]
    assert len({r["entropy_sampled"] for r in a}) > 1
    assert all(r["batch_fill"] <= 1.0 and r["refill_rounds"] <= 1 for r in a)
    keys = {k for r in a for k in r} - {"step"}
    assert not [k for k in keys if tracker_name(k).startswith(OTHER_PREFIX)]  # all named
    summary = json.loads((runs / "straight" / "summary.json").read_text())
    assert summary["stage_starts"] == [1, 4] and summary["steps"] == 6
    assert "stage 1 -> 2 after step 3: the truncation ratio averaged" in straight.stderr
    ckpts = runs / "straight" / "ckpt"
    assert (ckpts / "step_3").is_dir()  # the switch is checkpointed (not a multiple of 2)

    # A kill after the switch's checkpoint: the resumed run is in stage 1 from step 4.
    killed = run_or1([*args, "name=crashed"], env={"OR1_KILL_AFTER_STEP": "3"})
    assert killed.returncode == -9
    crashed = runs / "crashed"
    assert os.readlink(crashed / "ckpt" / "latest") == "step_3"
    resumed = run_or1(["train", "--quiet", "--resume", str(crashed)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_metrics(a, read_metrics(crashed))

    # From step 2's checkpoint, its window half full (2 of 3 ratios): the redone run
    # switches after step 3 again and logs what the uninterrupted one logged.
    shutil.copy(runs / "straight" / "metrics.jsonl", tmp_path / "straight.jsonl")
    again = run_or1(["train", "--quiet", "--resume", str(ckpts / "step_2")])
    assert again.returncode == 0, again.stderr[-3000:]
    _assert_same_metrics(a, read_metrics(runs / "straight"))
