"""Stages of a run: which stage a step is in (fixed steps; or1/schedule.py decides where
a stage ends when it may end early), and the online filter
applied when a new stage starts (RECIPE: drop prompts solved with accuracy 1 in the
previous stage; ``algo.online_filter=false`` turns it off)."""

from __future__ import annotations

import logging

from or1.algo import drop_solved
from or1.config import StageConfig
from or1.data.sampler import PromptSampler

log = logging.getLogger("or1.trainer")


def stage_of(stages: list[StageConfig], step: int) -> int:
    """Index of the stage that global step ``step`` (1-based) belongs to."""
    end = 0
    for index, stage in enumerate(stages):
        end += stage.steps
        if step <= end:
            return index
    return len(stages) - 1


def online_filter(sampler: PromptSampler, accuracy: dict[str, float], *, stage_number: int) -> None:
    """Drop from ``sampler`` the prompts whose group accuracy (by uid) was 1 in the stage
    that ended; keep them all (with a warning) if every prompt was solved.

    ``stage_number`` (1-based) is the stage about to start; it is only logged.
    """
    kept = drop_solved(sampler.active, accuracy, threshold=1.0)
    if kept:
        log.info(
            "stage %d: online filter keeps %d of %d prompts",
            stage_number,
            len(kept),
            len(sampler.active),
        )
        sampler.set_active(kept)
    else:
        log.warning("stage %d: every prompt was solved; keeping them all", stage_number)
