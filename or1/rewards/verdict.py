"""The outcome of grading one response: its reward and why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """A reward with its reason.

    Attributes:
        reward: in [0, 1].
        reason: why (e.g. "wrong answer", "test failed", "timeout"); "" when unknown.
        hack: the grader saw an attempt to pass without solving (e.g. exiting early).
    """

    reward: float
    reason: str = ""
    hack: bool = False
