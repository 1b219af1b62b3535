"""Helpers of the tests that run the ``or1`` CLI in a subprocess and read its run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_or1(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m or1.cli ARGS`` with this environment plus ``env``; output captured
    (stdout is a pipe, not a terminal), 600 s at most."""
    return subprocess.run(
        [sys.executable, "-m", "or1.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def read_metrics(run: Path) -> list[dict]:
    """The rows of ``<run>/metrics.jsonl``."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
