"""One exception type per kind of user error.

Each carries enough to act on: where (file, row, key), what is wrong, and a hint.
The CLI prints ``str(err)`` as one paragraph, without a traceback, and exits non-zero.
"""

from __future__ import annotations


class Or1Error(Exception):
    """Base class of every error or1 raises for bad input."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} Hint: {hint}")


class ConfigError(Or1Error):
    """A bad preset, override or config value."""


class DataError(Or1Error):
    """A bad dataset file or row."""


class CheckpointError(Or1Error):
    """A missing, partial or incompatible checkpoint."""


class RewardError(Or1Error):
    """A bad reward input that is the caller's fault (not the model's output)."""


class WorkerError(Or1Error):
    """A distributed worker (a Ray actor) died or became unreachable; the run stops."""


class TrainingError(Or1Error):
    """The run cannot go on: e.g. a non-finite loss, gradient or weight. Raised before the
    optimizer step and before any checkpoint is written, so the last checkpoint is good."""


class DryRunError(Or1Error):
    """``or1 train --dry-run`` found several problems (each named in the message)."""
