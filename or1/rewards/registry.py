"""The reward registry: one fixed signature, keyed by a problem's `ability`.

Every reward is a `RewardFn`: `(response: str, ground_truth: str) -> float` in [0, 1].
The trainer, the evaluator and `score_batch` look rewards up here, the built-ins too.
"""

from __future__ import annotations

from collections.abc import Callable

from or1.errors import RewardError
from or1.rewards import code as code_module
from or1.rewards import math as math_module
from or1.rewards.code import code_reward
from or1.rewards.math import math_reward

RewardFn = Callable[[str, str], float]

DEFAULT_TIMEOUT_S = 300.0  # hard per-item deadline in the process pool
REWARDS: dict[str, RewardFn] = {"math": math_reward, "code": code_reward}
_TIMEOUTS: dict[str, float] = {
    "math": math_module.POOL_TIMEOUT_S,
    "code": code_module.POOL_TIMEOUT_S,
}


def get_reward(name: str) -> RewardFn:
    """The reward for an ability name ("math", "code", or one registered).

    Raises:
        RewardError: unknown name (the message lists the known ones).

    Example:
        >>> get_reward("math")("\\\\boxed{4}", "4")
        1.0
    """
    try:
        return REWARDS[name]
    except (KeyError, TypeError):
        raise RewardError(
            f"unknown reward {name!r}; known rewards: {', '.join(sorted(REWARDS))}",
            hint="register it with or1.rewards.register_reward(name, fn).",
        ) from None


def register_reward(
    name: str, fn: RewardFn, *, timeout_s: float = DEFAULT_TIMEOUT_S, replace: bool = False
) -> None:
    """Add a reward under `name`.

    Args:
        name: the ability it scores (a problem's `ability` field).
        fn: `(response, ground_truth) -> float`; define it at module level (or as a
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
