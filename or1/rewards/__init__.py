"""Verifiable rewards: Math-Verify for math, sandboxed tests for code.

- `math_reward(response, ground_truth) -> float` (math.py)
- `code_reward(response, tests, *, fractional=False, timeout_s=6.0,
  total_timeout_s=60.0) -> float` (code.py; programs run in sandbox.py)
- `REWARDS`, `get_reward(name)`, `register_reward(name, fn)`: the registry keyed by a
  problem's `ability` (registry.py)
- `score_batch(items, *, workers=0) -> list[float]`: (ability, response, ground_truth)
  items in order, deduplicated, in-process or in a process pool (batch.py, pool.py)
"""

from or1.rewards.batch import score_batch
from or1.rewards.code import code_reward
from or1.rewards.math import math_reward
from or1.rewards.pool import shutdown_pool
from or1.rewards.registry import REWARDS, RewardFn, get_reward, register_reward

__all__ = [
    "REWARDS",
    "RewardFn",
    "code_reward",
    "get_reward",
    "math_reward",
    "register_reward",
    "score_batch",
    "shutdown_pool",
]
