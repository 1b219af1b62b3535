"""``rewards``: which reward scores each ability, and the code reward's limits."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from or1.config.base import Section

# ``package.module:function`` (attributes may be dotted: ``pkg.mod:Judge.score``).
IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


class CodeRewardConfig(Section):
    """``rewards.code``: limits of the code reward. Defaults are the paper's (RECIPE.md
    "Rewards": per-test timeout ~6 s, a global cap, reward 1 only if every test passes).

    The released harness's limits (stdin tests 6 s, assert tests 2 s each, a global
    min(7n + 5, 300) s) need per-format limits in the harness; when they exist they are
    selected here (and ``algo.variant=released-code`` may select them), in
    or1/rewards/scoring.py ``code_limits``.
    """

    timeout_s: float = Field(6.0, gt=0, description="wall-clock limit per test, seconds")
    total_timeout_s: float = Field(60.0, gt=0, description="cap per response, seconds")
    fractional: bool = Field(False, description="reward = fraction of tests passed")


class RewardsConfig(Section):
    """``rewards``: the reward of each ability. ``by_ability`` names a function by import
    path (``rewards.by_ability.math: mypkg.judge:score``), a ``(problem, response) ->
    float | Verdict`` that replaces the built-in reward of that ability or adds a new
    ability; it is imported when the run starts. Abilities are matched in any case."""

    by_ability: dict[str, str] = Field(
        default_factory=dict, description="ability -> package.module:function"
    )
    code: CodeRewardConfig = CodeRewardConfig()

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
