"""``rewards``: which reward scores each ability, and the code reward's limits."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from or1.config.base import Section

# ``package.module:function`` (attributes may be dotted: ``pkg.mod:Judge.score``).
IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


# Where the released code's rewards depart from the paper; applied by
# ``algo.variant=released-code`` (``Config``) to the settings left unset.
RELEASED_CODE_REWARDS: dict[str, Any] = {"answer_after": "first-think"}
RELEASED_CODE_CODE_REWARD: dict[str, Any] = {"limits": "released"}


class CodeRewardConfig(Section):
    """``rewards.code``: limits of the code reward (or1/rewards/code.py ``CodeLimits``).

    ``limits: paper`` (default, RECIPE.md "Rewards"): ~6 s per test, 60 s per response.
    ``limits: released``: the released harness's 6 s per stdin test, 2 s per assert test,
    min(7n + 5, 300) s per response (``RELEASED_CODE_LIMITS``), which ``algo.variant=
    released-code`` selects unless ``limits`` is set. A field set below replaces that
    field of the chosen limits.
    """

    limits: Literal["paper", "released"] = Field(
        "paper", description="paper: ~6 s per test, 60 s per response; released: its harness"
    )
    timeout_s: float | None = Field(
        None, gt=0, description="one per-test limit (s) for every kind of test; None: limits'"
    )
    total_timeout_s: float | None = Field(
        None, gt=0, description="a fixed cap per response (s); None: the limits' formula"
    )
    memory_mb: int | None = Field(None, gt=0, description="address space per program, MiB")
    fractional: bool = Field(False, description="reward = fraction of tests passed")


class RewardsConfig(Section):
    """``rewards``: the reward of each ability. ``by_ability`` names a function by import
    path (``rewards.by_ability.math: mypkg.judge:score``), a ``(problem, response) ->
    float | Verdict`` that replaces the built-in reward of that ability or adds a new
    ability; it is imported when the run starts. Abilities are matched in any case."""

    by_ability: dict[str, str] = Field(
        default_factory=dict, description="ability -> package.module:function"
    )
    answer_after: Literal["last-think", "first-think"] = Field(
        "last-think",
        description="built-in rewards score the text after the last </think> (or1); "
        "first-think: between the first and a second one (released code)",
    )
    code: CodeRewardConfig = CodeRewardConfig()
    # A step of 256 x 16 responses scored one after another would wait on every code
    # program in turn; a pool of processes scores them in parallel, each item under a hard
    # deadline (or1/rewards/pool.py). Training, evaluation and the offline filter use it.
    workers: int = Field(
        0,
        ge=0,
        description="reward processes scoring a batch in parallel (hard per-item deadline); "
        "0: in the trainer's process, one after another",
    )

    @field_validator("by_ability")
    @classmethod
    def _import_paths(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for ability, path in value.items():
            name = ability.strip().lower()
            if not name:
                raise ValueError("an ability name must not be empty")
            if not isinstance(path, str) or not IMPORT_PATH.fullmatch(path):
                raise ValueError(
                    f"rewards.by_ability.{ability}: {path!r} is not an import path "
                    "(write package.module:function)"
                )
            out[name] = path
        return out
