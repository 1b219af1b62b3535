"""Progress output: rich bars on a terminal, plain lines when stdout is not one.

A cluster's log file (or any pipe) cannot show a bar: it would collect control frames.
When stdout is not a terminal each phase prints plain, greppable lines instead::

    warm-up (supervised) 40/400 (10%) elapsed 0:00:05 eta 0:00:45 loss=1.234
    RL steps 3/160 (2%) elapsed 0:00:31 eta 0:27:02 stage=1/2 reward=0.406 ...

one when the phase starts, then one each time another ``line_every`` percent of it is
done (``LINE_EVERY_PERCENT``, 10) and at its end; with ``line_every=0`` one per advance
(the RL loop: one line per step). ``show=False`` (``--quiet``, ``logging.progress=false``)
prints nothing. Lines go to stdout, flushed at once, as the bars would.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Protocol, TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

LINE_EVERY_PERCENT = 10.0


class ProgressSink(Protocol):
    def advance(self, n: int = 1, **fields: str) -> None:
        """``n`` more units done; ``fields`` describe the latest one (e.g. loss=0.51)."""


class Bar:
    """A rich progress bar, or nothing (``progress`` None)."""

    def __init__(self, progress: Progress | None, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, **fields: str) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, advance=n, info=" ".join(f"{k}={v}" for k, v in fields.items())
            )


class LineProgress:
    """Plain progress lines: at the start, every ``every`` percent, and at the end.

    Args:
        description: What the phase is (the start of each line).
        total: Units in the phase.
        every: Percent of ``total`` between lines; 0: a line per advance.
        completed: Units already done (a resumed run), not counted in the rate.
        stream: Where lines go (default: stdout).
    """

    def __init__(
        self,
        description: str,
        total: int,
        *,
        every: float = LINE_EVERY_PERCENT,
        completed: int = 0,
        stream: TextIO | None = None,
    ) -> None:
        self.description, self.total, self.every = description, max(total, 0), every
        self.done = self._first = completed
        self._stream = stream or sys.stdout
        self._start = time.perf_counter()
        self._next = self._threshold(completed)
        self._print({})

    def _threshold(self, done: int) -> float:
        """The count at which the next line is due."""
        if self.every <= 0 or self.total == 0:
            return done + 1
        step = self.total * self.every / 100
        return min(self.total, (int(done / step) + 1) * step)

    def advance(self, n: int = 1, **fields: str) -> None:
        self.done += n
        if self.done >= self._next:
            self._print(fields)
            self._next = self._threshold(self.done)
            if self.done >= self.total:
                self._next = float("inf")  # the end is printed once

    def _print(self, fields: Mapping[str, str]) -> None:
        elapsed = time.perf_counter() - self._start
        percent = 100 * self.done / self.total if self.total else 100.0
        parts = [f"{self.description} {self.done}/{self.total} ({percent:.0f}%)"]
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.done > self._first and self.done < self.total:
            rate = elapsed / (self.done - self._first)
            parts.append(f"eta {_clock(rate * (self.total - self.done))}")
        parts += [f"{k}={v}" for k, v in fields.items()]
        print(" ".join(parts), file=self._stream, flush=True)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def plain_output() -> bool:
    """True when stdout is not a terminal (a pipe, a file, a cluster's log)."""
    isatty = getattr(sys.stdout, "isatty", None)
    return not (isatty and isatty())


@contextmanager
def progress_bar(
    description: str,
    total: int,
    *,
    show: bool = True,
    line_every: float = LINE_EVERY_PERCENT,
    completed: int = 0,
) -> Iterator[ProgressSink]:
    """Progress of one long phase (warm-up, rollout, update, eval).

    Args:
        description: The phase's name.
        total: Units in the phase (steps, problems).
        show: False prints nothing.
        line_every: Without a terminal, percent of ``total`` between plain lines
            (0: one line per advance).
        completed: Units already done (a resumed run).
    """
    if not show:
        yield Bar(None, None)
        return
    if plain_output():
        yield LineProgress(description, total, every=line_every, completed=completed)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, info="", completed=completed)
        yield Bar(progress, task)


def _number(metrics: Mapping[str, Any], key: str, spec: str) -> str:
    value = metrics.get(key)
    return format(value, spec) if isinstance(value, int | float) else "nan"


def step_fields(metrics: Mapping[str, Any], *, stages: int) -> dict[str, str]:
    """What a training step's progress line shows, from its ``metrics.jsonl`` row.

    ``stage`` is 1-based of ``stages``; ``entropy`` is the controller's sampled-token
    estimate e_k, ``coef`` the entropy coefficient alpha_k used, ``len`` the mean/max
    response length in tokens, ``trunc`` the truncated share, ``seconds`` the step's time.

    Example:
        >>> step_fields({"stage": 0, "reward_mean": 0.5, "step_seconds": 2.0}, stages=2)["stage"]
        '1/2'
    """
    return {
        "stage": f"{int(metrics.get('stage', 0)) + 1}/{stages}",
        "reward": _number(metrics, "reward_mean", ".3f"),
        "accuracy": _number(metrics, "accuracy", ".3f"),
        "entropy": _number(metrics, "entropy_sampled", ".3f"),
        "coef": _number(metrics, "entropy_coef", ".4g"),
        "len": f"{_number(metrics, 'response_length_mean', '.1f')}"
        f"/{_number(metrics, 'response_length_max', '.0f')}",
        "trunc": _number(metrics, "truncation_ratio", ".3f"),
        "seconds": _number(metrics, "step_seconds", ".2f"),
    }
