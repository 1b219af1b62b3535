"""Verifiable rewards: Math-Verify for math, sandboxed tests for code.

- `math_reward(response, ground_truth) -> float` (math.py; a JSON list of answers scores
  any of them), `math_verdict` (the same with its reason)
- `code_reward(response, tests, *, fractional=False, limits=None) -> float` and
  `code_verdict(...) -> Verdict` (the reward and its reason); `CodeLimits` (paper
  defaults) and `RELEASED_CODE_LIMITS` (code.py; programs run in sandbox.py)
- `Verdict(reward, reason, hack)`: what a reward may return (verdict.py)
- `REWARDS`, `get_reward(name)`, `register_reward(name, fn)`, `load_reward(path)`: the
  registry keyed by a problem's `ability`; a `RewardFn` is `(problem, response) ->
  float | Verdict` (registry.py)
- `score_rollouts(problems, group_ids, responses, *, rewards=None, workers=0)`,
  `score_problems(pairs)`: Verdicts in order, deduplicated, in-process or in a process
  pool; `score_batch(items)`: (ability, response, ground_truth) -> floats (batch.py)
- `RewardSet`, `rewards_from_config(cfg.rewards)`: a run's rewards (scoring.py)
"""

from or1.rewards.batch import RewardSet, score_batch, score_problems, score_rollouts
from or1.rewards.code import RELEASED_CODE_LIMITS, CodeLimits, code_reward, code_verdict
from or1.rewards.math import math_reward, math_verdict
from or1.rewards.pool import shutdown_pool
from or1.rewards.registry import REWARDS, RewardFn, get_reward, load_reward, register_reward
from or1.rewards.scoring import rewards_from_config
from or1.rewards.verdict import Verdict

__all__ = [
    "RELEASED_CODE_LIMITS",
    "REWARDS",
    "CodeLimits",
    "RewardFn",
    "RewardSet",
    "Verdict",
    "code_reward",
    "code_verdict",
    "get_reward",
    "load_reward",
    "math_reward",
    "math_verdict",
    "register_reward",
    "rewards_from_config",
    "score_batch",
    "score_problems",
    "score_rollouts",
    "shutdown_pool",
]
