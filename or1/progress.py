"""Progress bars (rich) that degrade to nothing when asked or when not on a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Bar:
    def __init__(self, progress: Progress | None, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, **fields: str) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, advance=n, info=" ".join(f"{k}={v}" for k, v in fields.items())
            )


@contextmanager
def progress_bar(description: str, total: int, *, show: bool = True) -> Iterator[Bar]:
    """A rich progress bar for one long phase (warm-up, rollout, update, eval)."""
    if not show:
        yield Bar(None, None)
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
        task = progress.add_task(description, total=total, info="")
        yield Bar(progress, task)
