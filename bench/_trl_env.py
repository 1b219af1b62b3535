"""The benches' own TRL environment: ``bench/.venv-trl`` (created on first use).

TRL is not a dependency of or1, so it lives in a separate venv: torch 2.13.0 first (so
pip keeps the CPU build instead of pulling CUDA wheels), then TRL and the same
transformers as or1's venv, and Math-Verify for the reward. The TRL worker imports or1
from the source tree only for the task and the reward (no or1 install).

    .venv/bin/python bench/_trl_env.py      # create it now (a few minutes, once)
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-trl"
PYTHON = VENV / "bin" / "python"
TRL_VERSION = "1.16.0"


def ensure() -> Path:
    """The TRL venv's python, creating the venv if it is missing."""
    if PYTHON.exists() and (VENV / ".installed").exists():
        return PYTHON
    print(f"creating {VENV} (TRL {TRL_VERSION}; once)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"torch=={version('torch').split('+')[0]}"], check=True)
    subprocess.run(
        [
            *pip,
            f"trl=={TRL_VERSION}",
            f"transformers=={version('transformers')}",
            "math-verify[antlr4_13_2]",
            "pydantic",
            "pyyaml",
        ],
        check=True,
    )
    (VENV / ".installed").touch()
    return PYTHON


if __name__ == "__main__":
    print(ensure())
