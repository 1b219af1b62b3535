"""The stage controller (or1/schedule.py): hand-computed switches, config checks, state."""

from __future__ import annotations

import json

import pytest

from or1.config import StageConfig, load_config
from or1.errors import ConfigError
from or1.schedule import StageSchedule, window_mean


def _stage(steps: int, *, at: float | None = None, window: int = 3) -> StageConfig:
    return StageConfig(
        steps=steps,
        max_response_length=8,
        batch_size=2,
        mini_batch_size=2,
        group_size=2,
        advance_at_truncation=at,
        advance_window=window,
    )


def test_window_mean_is_the_mean_of_the_last_window() -> None:
    assert window_mean([0.0, 0.3, 0.6, 0.9], 3) == pytest.approx(0.6)  # (0.3+0.6+0.9)/3
    assert window_mean([0.5, 0.5], 3) is None
    with pytest.raises(ValueError):
        window_mean([0.1], 0)


def test_a_fixed_schedule_runs_every_stage_to_its_steps() -> None:
    sched = StageSchedule([_stage(2), _stage(3)])
    stages = []
    step = 0
    while not sched.finished:
        step += 1
        stages.append(sched.index)
        sched.record(step, 1.0)  # any truncation: no controller on these stages
    assert stages == [0, 0, 1, 1, 1]
    assert [(s.step, s.reason, s.to) for s in sched.switches] == [
        (2, "steps", 1),
        (5, "steps", None),
    ]
    assert sched.stage_starts() == [1, 3]


def test_the_stage_advances_once_the_window_mean_reaches_the_threshold() -> None:
    # window 3, threshold 0.5: means after steps 3, 4, 5 are 0.2, 0.4, 0.6 -> advance after 5.
    sched = StageSchedule([_stage(10, at=0.5), _stage(4)])
    ratios = [0.0, 0.2, 0.4, 0.6, 0.8]
    switch = None
    for step, r in enumerate(ratios, start=1):
        assert sched.index == 0
        switch = sched.record(step, r)
        assert (switch is None) == (step < 5)
    assert switch is not None and switch.reason == "truncation" and switch.to == 1
    assert switch.window_mean == pytest.approx(0.6) and switch.threshold == 0.5
    assert "0.600" in switch.message() and "stage 1 -> 2 after step 5" in switch.message()
    assert sched.index == 1 and sched.start == 5 and sched.ratios == []
    # The next stage runs its own steps (4), counted from its start.
    assert sched.max_total_steps() == 9
    for step in range(6, 10):
        sched.record(step, 1.0)
    assert sched.finished and sched.switches[-1].step == 9


def test_below_the_threshold_the_steps_are_a_maximum() -> None:
    sched = StageSchedule([_stage(4, at=0.9, window=2), _stage(1)])
    for step in range(1, 5):
        sched.record(step, 0.5)
    assert sched.index == 1 and sched.switches[0].reason == "steps"
    assert sched.switches[0].window_mean == 0.5  # logged even when it did not trigger


def test_the_window_starts_again_in_each_stage() -> None:
    """Ratios of the previous stage never count toward the next stage's window."""
    sched = StageSchedule([_stage(2), _stage(5, at=0.5, window=2), _stage(1)])
    sched.record(1, 1.0)
    sched.record(2, 1.0)  # stage 0 ends on steps
    # One ratio in stage 1: its window of 2 is not full (with stage 0's 1.0s it would be).
    assert sched.record(3, 1.0) is None and sched.current_window_mean() is None
    switch = sched.record(4, 0.0)  # (1.0 + 0.0) / 2 = 0.5 reaches 0.5
    assert switch is not None and switch.reason == "truncation" and switch.step == 4


def test_state_round_trips_through_json_and_continues_identically() -> None:
    stages = [_stage(10, at=0.5), _stage(3)]
    # means (window 3) after steps 3, 4: 0.4, 0.6 -> advance after 4; stage 1 ends after 7.
    ratios = [0.1, 0.5, 0.6, 0.7, 0.9, 0.2, 0.2]
    straight = StageSchedule(stages)
    for step, r in enumerate(ratios, start=1):
        straight.record(step, r)
    for cut in range(len(ratios)):
        first = StageSchedule(stages)
        for step, r in enumerate(ratios[:cut], start=1):
            first.record(step, r)
        resumed = StageSchedule(stages)
        resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
        for step, r in enumerate(ratios[cut:], start=cut + 1):
            resumed.record(step, r)
        assert resumed.state_dict() == straight.state_dict(), cut
    assert straight.finished and straight.stage_starts() == [1, 5]


def test_at_step_rebuilds_a_fixed_schedule_for_old_checkpoints() -> None:
    stages = [_stage(2), _stage(3)]
    for step in range(6):
        live = StageSchedule(stages)
        for s in range(1, step + 1):
            live.record(s, 0.0)
        rebuilt = StageSchedule.at_step(stages, step)
        assert (rebuilt.index, rebuilt.start, rebuilt.finished) == (
            live.index,
            live.start,
            live.finished,
        )


def test_recording_after_the_end_is_refused() -> None:
    sched = StageSchedule([_stage(1)])
    sched.record(1, 0.0)
    with pytest.raises(ValueError, match="after the last stage"):
        sched.record(2, 0.0)


def test_config_checks_of_the_controller() -> None:
    cfg = load_config("tiny-arith", ["stages.0.advance_at_truncation=0.3"])
    assert cfg.stages[0].advance_window == 5 and cfg.stages[1].advance_at_truncation is None
    with pytest.raises(ConfigError, match="last stage"):
        load_config("tiny-arith", ["stages.1.advance_at_truncation=0.3"])
    with pytest.raises(ConfigError, match="could never trigger"):
        load_config("tiny-arith", ["stages.0.advance_at_truncation=0.3", "stages.0.steps=3"])
    with pytest.raises(ConfigError, match="advance_at_truncation"):
        load_config("tiny-arith", ["stages.0.advance_at_truncation=1.5"])


@pytest.mark.parametrize("preset", ["tiny-arith", "skywork-or1-7b", "skywork-or1-math-7b"])
def test_presets_keep_fixed_steps(preset: str) -> None:
    assert all(s.advance_at_truncation is None for s in load_config(preset, []).stages)


def test_the_dry_run_says_the_steps_are_a_maximum() -> None:
    from or1.dryrun import _stages

    fixed = load_config("tiny-arith", [])
    assert "; 160 steps in all" in _stages(fixed)
    early = load_config("tiny-arith", ["stages.0.advance_at_truncation=0.3"])
    assert "; at most 160 steps in all" in _stages(early)
