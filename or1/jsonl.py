"""JSON-lines files of a run directory (``metrics.jsonl``, ``eval.jsonl``): strict JSON
values, tolerant of the partial last line a killed writer leaves, atomic rewrites.

:class:`or1.tracking.MetricsLogger` writes them; the report and the study read them with
:func:`read_jsonl`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from or1.errors import DataError


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file written by :class:`MetricsLogger`.

    Blank lines are skipped. An unparsable *last* line that has no trailing newline is
    the mark of a writer killed mid-line and is dropped; any other bad line is an error.

    Args:
        path: The ``.jsonl`` file. A missing file reads as no rows.

    Returns:
        The rows, in file order.

    Raises:
        DataError: A line before the last, or a complete last line, is not a JSON object.

    Example:
        >>> read_jsonl(Path("runs/demo/metrics.jsonl"))[0]["step"]  # doctest: +SKIP
        1
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")  # the last element is "" when the file ends with a newline
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:  # no newline after it: a partial line from a killed run
                break
            raise DataError(
                f"{path}: line {i + 1} is not valid JSON ({err.msg}).",
                hint="the file was edited or written by another tool; fix or delete that line.",
            ) from err
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {i + 1} is a JSON {type(row).__name__}, not an object.")
        rows.append(row)
    return rows


def clean_value(key: str, value: Any) -> int | float | None:
    """One metric value as JSON-safe int/float, or None for missing and non-finite."""
    if value is None:
        return None
    if isinstance(value, str | bytes):
        raise TypeError(f"metric {key!r} must be a number or None, got the string {value!r}")
    if isinstance(value, numbers.Integral):  # includes bool and numpy integers
        return int(value)
    number = float(value)  # numpy floats, 0-d tensors; TypeError for anything else
    return number if math.isfinite(number) else None


def clean_tree(value: Any) -> Any:
    """A JSON-safe copy of a nested eval result: non-finite floats become None."""
    if isinstance(value, Mapping):
        return {str(k): clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(v) for v in value]
    if isinstance(value, str | bool) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) or hasattr(value, "__float__"):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def drop_partial_tail(path: Path) -> None:
    """Cut a trailing partial line (no newline) so that appended rows stay parseable."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        f.truncate(f.read().rfind(b"\n") + 1)  # rfind is -1 when there is no newline at all
        f.flush()
        os.fsync(f.fileno())


def rewrite_keeping(path: Path, max_step: int) -> None:
    """Atomically rewrite ``path`` keeping only rows whose step is <= ``max_step``."""
    if not path.exists():
        return
    rows = [r for r in read_jsonl(path) if r.get("step") is not None and r["step"] <= max_step]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
