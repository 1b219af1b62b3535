"""The stage controller: which stage of the multi-stage schedule the next step runs.

The paper's schedule is fixed (RECIPE.md: stage k runs ``steps`` steps, then the response
limit grows); Skywork's users asked when to switch ("case by case"). A stage may set
``advance_at_truncation: r`` (with ``advance_window: w``, default 5): after a step, when
the truncation ratio averaged over the stage's last ``w`` steps reaches ``r``, the next
step already runs in the next stage, so the stage's ``steps`` becomes a maximum. Too many
responses hitting the limit is the signal that the model wants a longer context. A stage
without ``advance_at_truncation`` runs exactly its ``steps`` (the presets: the paper's
fixed schedule).

``StageSchedule`` holds the controller's whole state (stage, the step it started at, the
stage's recent truncation ratios, the switches so far) as a small JSON-able dict that a
checkpoint keeps, so a resumed run switches at the step an uninterrupted one would. It
does no I/O and knows nothing of the trainer: the trainer runs the online filter when it
enters the stage the schedule names (``Trainer.enter_stage``), as on a fixed schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from or1.config import StageConfig


@dataclass(frozen=True)
class StageSwitch:
    """One move to the next stage, decided after global step ``step`` (1-based).

    ``reason`` is "steps" (the stage ran its ``steps``) or "truncation" (the window's
    mean truncation ratio ``window_mean`` reached ``threshold``); ``to`` is None when the
    last stage ended (the run is over).
    """

    step: int
    stage: int
    to: int | None
    reason: str
    window_mean: float | None = None
    threshold: float | None = None

    def message(self) -> str:
        """One log line, e.g. "stage 1 -> 2 after step 37: truncation ratio ...""."""
        where = f"stage {self.stage + 1} -> {'end' if self.to is None else self.to + 1}"
        if self.reason == "truncation":
            return (
                f"{where} after step {self.step}: the truncation ratio averaged "
                f"{self.window_mean:.3f} over the stage's last steps, reaching "
                f"advance_at_truncation {self.threshold}"
            )
        return f"{where} after step {self.step}: the stage ran its steps"


def stage_metrics(schedule: StageSchedule, switch: StageSwitch | None) -> dict[str, float]:
    """The step's metrics of the controller: ``truncation_ratio_window`` (the windowed
    mean of the stage just run, once its window is full) and ``stage_advanced_early``
    (1 on the step whose truncation moved the run to the next stage)."""
    mean = switch.window_mean if switch is not None else schedule.current_window_mean()
    out = {} if mean is None else {"truncation_ratio_window": mean}
    if switch is not None and switch.reason == "truncation":
        out["stage_advanced_early"] = 1.0
    return out


def window_mean(ratios: Sequence[float], window: int) -> float | None:
    """Mean of the last ``window`` ratios; None while fewer than ``window`` were seen.

    Example:
        >>> window_mean([0.1, 0.2, 0.6, 0.4], 2)
        0.5
        >>> window_mean([0.1], 2) is None
        True
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if len(ratios) < window:
        return None
    return sum(ratios[-window:]) / window


class StageSchedule:
    """Where a run is in ``stages`` and when it moves on (see the module docstring).

    Args:
        stages: The run's stages (``cfg.stages``), at least one.

    Example:
        >>> from or1.config import StageConfig
        >>> s = [StageConfig(steps=9, max_response_length=8, batch_size=2,
        ...      mini_batch_size=2, group_size=2, advance_at_truncation=0.5,
        ...      advance_window=2),
        ...      StageConfig(steps=3, max_response_length=16, batch_size=2,
        ...      mini_batch_size=2, group_size=2)]
        >>> sched = StageSchedule(s)
        >>> sched.record(1, 0.3), sched.record(2, 0.8).reason, sched.index
        (None, 'truncation', 1)
    """

    def __init__(self, stages: Sequence[StageConfig]) -> None:
        if not stages:
            raise ValueError("a schedule needs at least one stage")
        self.stages = list(stages)
        self.index = 0
        self.start = 0  # global steps done before the current stage began
        self.ratios: list[float] = []  # the current stage's last truncation ratios
        self.switches: list[StageSwitch] = []
        self.finished = False

    @property
    def stage(self) -> StageConfig:
        """The stage the next step runs in."""
        return self.stages[self.index]

    def stage_starts(self) -> list[int]:
        """The first global step of every stage entered so far (1-based)."""
        return [1] + [s.step + 1 for s in self.switches if s.to is not None]

    def current_window_mean(self) -> float | None:
        """The current stage's windowed truncation ratio (None: no controller or too
        few steps yet)."""
        if self.stage.advance_at_truncation is None:
            return None
        return window_mean(self.ratios, self.stage.advance_window)

    def record(self, step: int, truncation_ratio: float) -> StageSwitch | None:
        """Record global step ``step``'s truncation ratio; move on if the stage is over.

        Returns the switch made after this step, or None (the next step stays here).
        """
        if self.finished:
            raise ValueError(f"step {step} recorded after the last stage ended")
        stage = self.stage
        self.ratios = [*self.ratios, float(truncation_ratio)][-stage.advance_window :]
        mean = self.current_window_mean()
        if mean is not None and mean >= stage.advance_at_truncation:
            return self._advance(step, "truncation", mean, stage.advance_at_truncation)
        if step - self.start >= stage.steps:
            return self._advance(step, "steps", mean, stage.advance_at_truncation)
        return None

    def _advance(
        self, step: int, reason: str, mean: float | None, threshold: float | None
    ) -> StageSwitch:
        last = self.index == len(self.stages) - 1
        to = None if last else self.index + 1
        switch = StageSwitch(step, self.index, to, reason, mean, threshold)
        self.switches.append(switch)
        if last:
            self.finished = True
        else:
            self.index, self.start, self.ratios = self.index + 1, step, []
        return switch

    def max_total_steps(self) -> int:
        """Steps the run takes at most from here: done + the rest of every stage."""
        if self.finished:
            return self.switches[-1].step
        return self.start + sum(s.steps for s in self.stages[self.index :])

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for a checkpoint."""
        return {
            "index": self.index,
            "start": self.start,
            "ratios": list(self.ratios),
            "finished": self.finished,
            "switches": [asdict(s) for s in self.switches],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state written by ``state_dict``."""
        self.index, self.start = int(state["index"]), int(state["start"])
        self.ratios = [float(r) for r in state["ratios"]]
        self.finished = bool(state["finished"])
        self.switches = [StageSwitch(**s) for s in state["switches"]]

    @classmethod
    def at_step(cls, stages: Sequence[StageConfig], step: int) -> StageSchedule:
        """The fixed schedule's state after ``step`` steps: for checkpoints written
        before the stage controller (they hold no schedule state)."""
        schedule = cls(stages)
        for done in range(1, step + 1):
            if schedule.finished:
                break
            if done - schedule.start >= schedule.stage.steps:
                schedule._advance(done, "steps", None, None)
        return schedule
