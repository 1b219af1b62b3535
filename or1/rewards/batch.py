"""Score a batch of (ability, response, ground_truth) items, in order."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from or1.errors import RewardError
from or1.rewards import pool
from or1.rewards.registry import get_reward, reward_timeout

logger = logging.getLogger("or1.rewards")

Item = tuple[str, str, str]  # (ability, response, ground truth)


def score_batch(items: Sequence[Item], *, workers: int = 0) -> list[float]:
    """Rewards of (ability, response, ground_truth) items, in the order given.

    Identical items are scored once (small models repeat themselves a lot).

    Args:
        items: (ability, response, ground_truth); ability selects the reward
            ("math", "code", or a registered one); code ground truth is the JSON tests.
        workers: 0 scores in the calling process (which should be the main thread:
            Math-Verify's timeouts need it; from another thread the batch goes to a
            one-worker pool instead); N >= 1 uses the shared pool of N spawned processes
            (parallel, hard per-item deadlines; created once, kept alive, shut down at exit).

    Returns:
        One float per item.

    Raises:
        RewardError: an unknown ability, a malformed item or ground truth.

    Example:
        >>> score_batch([("math", "\\\\boxed{2}", "2"), ("math", "\\\\boxed{3}", "2")])
        [1.0, 0.0]
    """
    if not isinstance(workers, int) or workers < 0:
        raise RewardError(f"workers must be an int >= 0, got {workers!r}")
    index: dict[Item, int] = {}
    slots = [index.setdefault(_check(item), len(index)) for item in items]
    unique = list(index)
    if not unique:
        return []
    in_process = workers == 0 and threading.current_thread() is threading.main_thread()
    if in_process:
        scores = [_score_here(*item) for item in unique]
    else:
        jobs = [(get_reward(a), r, g, reward_timeout(a)) for a, r, g in unique]
        scores = pool.score_in_pool(jobs, workers=workers or None)
    return [scores[k] for k in slots]


def _check(item: object) -> Item:
    if not (isinstance(item, tuple) and len(item) == 3 and all(isinstance(x, str) for x in item)):
        raise RewardError(
            f"a batch item must be (ability, response, ground_truth) strings, got {item!r:.120}",
            hint="code ground truth is the JSON string of the tests.",
        )
    get_reward(item[0])  # unknown abilities fail before any work is done
    return item


def _score_here(ability: str, response: str, ground_truth: str) -> float:
    fn = get_reward(ability)
    try:
        return float(fn(response, ground_truth))
    except RewardError:
        raise
    except Exception:
        logger.exception("reward %r raised; reward 0", ability)
        return 0.0
