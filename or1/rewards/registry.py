"""The reward registry: one fixed signature, keyed by a problem's `ability`.

Every reward is a `RewardFn`: `(problem, response) -> float | Verdict`, the reward in
[0, 1] (a `Verdict` adds the reason and the hack flag). It sees the whole `Problem`: the
question (`problem.question`, `problem.prompt`), the ground truth, the ability, the data
source and `extra_info`, so an LLM judge is one function. The trainer, the evaluator,
the offline filter and `or1 data score` look rewards up here (or in a run's
`rewards.by_ability`, or1/rewards/scoring.py), the built-ins too.

The built-ins wrap `math_verdict` and `code_verdict`, whose rewards are the public
`math_reward(response, ground_truth)` and `code_reward(response, tests)` (unchanged).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from or1.config.rewards import IMPORT_PATH
from or1.errors import RewardError
from or1.rewards import code as code_module
from or1.rewards import math as math_module
from or1.rewards.code import CodeLimits, code_verdict
from or1.rewards.math import first_think_answer, math_verdict
from or1.rewards.verdict import Verdict

if TYPE_CHECKING:
    from or1.data.problem import Problem

RewardFn = Callable[["Problem", str], "float | Verdict"]

DEFAULT_TIMEOUT_S = 300.0  # hard per-item deadline in the process pool


def math_problem_reward(problem: Problem, response: str) -> Verdict:
    """The "math" reward: `math_verdict(response, problem.ground_truth)`."""
    return math_verdict(response, problem.ground_truth)


def code_problem_reward(
    problem: Problem,
    response: str,
    *,
    limits: CodeLimits | None = None,
    fractional: bool = False,
    timeout_s: float | None = None,
    total_timeout_s: float | None = None,
) -> Verdict:
    """The "code" reward: `code_verdict(response, problem.ground_truth, ...)`, the
    problem's tests in the sandbox. Keyword arguments are `code_verdict`'s limits (a run
    sets them from `rewards.code`, or1/rewards/scoring.py)."""
    return code_verdict(
        response,
        problem.ground_truth,
        limits=limits,
        fractional=fractional,
        timeout_s=timeout_s,
        total_timeout_s=total_timeout_s,
    )


def after_first_think(fn: RewardFn, problem: Problem, response: str) -> float | Verdict:
    """``fn`` scoring only the text between the first and a second `</think>` of
    ``response`` (``rewards.answer_after: first-think``, the released code's split).
    Module level, so ``functools.partial(after_first_think, fn)`` pickles."""
    return fn(problem, first_think_answer(response))


REWARDS: dict[str, RewardFn] = {"math": math_problem_reward, "code": code_problem_reward}
_TIMEOUTS: dict[str, float] = {
    "math": math_module.POOL_TIMEOUT_S,
    "code": code_module.POOL_TIMEOUT_S,
}


def get_reward(name: str) -> RewardFn:
    """The reward for an ability name ("math", "code", or one registered).

    Raises:
        RewardError: unknown name (the message lists the known ones).

    Example:
        >>> from or1.data.problem import Problem
        >>> get_reward("math")(Problem("p", [], "4"), "\\\\boxed{4}").reward
        1.0
    """
    try:
        return REWARDS[name]
    except (KeyError, TypeError):
        raise RewardError(
            f"unknown reward {name!r}; known rewards: {', '.join(sorted(REWARDS))}",
            hint="register it with or1.rewards.register_reward(name, fn), or name one in "
            "the config: rewards.by_ability.<name>=module:function.",
        ) from None


def register_reward(
    name: str, fn: RewardFn, *, timeout_s: float = DEFAULT_TIMEOUT_S, replace: bool = False
) -> None:
    """Add a reward under `name`.

    Args:
        name: the ability it scores (a problem's `ability` field, matched in any case).
        fn: `(problem, response) -> float | Verdict`; define it at module level (or as a
            functools.partial of one) so the process pool can pickle it.
        timeout_s: hard deadline per item in the process pool (the worker is killed).
        replace: allow replacing an existing reward (built-ins included).

    Raises:
        RewardError: bad name or function, or the name is taken and replace is False.
    """
    if not isinstance(name, str) or not name:
        raise RewardError(f"reward name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise RewardError(f"reward {name!r} must be callable, got {type(fn).__name__}")
    if name in REWARDS and not replace:
        raise RewardError(f"reward {name!r} is already registered", hint="pass replace=True.")
    REWARDS[name] = fn
    _TIMEOUTS[name] = float(timeout_s)


def reward_timeout(name: str) -> float:
    """Hard per-item deadline (seconds) of a reward in the process pool."""
    return _TIMEOUTS.get(name, DEFAULT_TIMEOUT_S)


def load_reward(path: str, *, key: str = "rewards.by_ability") -> RewardFn:
    """The reward named by an import path ``package.module:function``.

    Raises:
        RewardError: a malformed path, a module that does not import, a missing or
            non-callable attribute (the message names ``key`` and the path).

    Example:
        >>> load_reward("or1.rewards.registry:math_problem_reward").__name__
        'math_problem_reward'
    """
    if not isinstance(path, str) or not IMPORT_PATH.fullmatch(path):
        raise RewardError(
            f"{key}: {path!r} is not an import path", hint="write it as package.module:function."
        )
    module_name, _, attribute = path.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or whatever the module raises on import
        raise RewardError(
            f"{key}: cannot import {module_name!r} for {path!r} ({type(err).__name__}: {err})",
            hint="is the package installed, or its directory on PYTHONPATH?",
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise RewardError(f"{key}: {module_name!r} has no {attribute!r} (from {path!r})")
        target = getattr(target, part)
    if not callable(target):
        raise RewardError(f"{key}: {path!r} is a {type(target).__name__}, not a function")
    return target  # type: ignore[return-value]
