"""Score many responses, in order: the one path the trainer, the evaluator, the offline
filter and ``or1 data score`` share.

- `score_rollouts(problems, group_ids, responses)`: response j answers
  `problems[group_ids[j]]` (a rollout's layout); one `Verdict` per response.
- `score_problems(pairs)`: the same for (problem, response) pairs.
- `score_batch(items)`: (ability, response, ground_truth) triples -> floats, for callers
  that have no `Problem` (the rewards see a problem with only those fields).

Identical items (same problem uid, ability, ground truth and response) are scored once:
small models repeat themselves a lot. A `RewardSet` says which reward scores each
ability (default: the registry; a run's comes from its ``rewards`` config).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from or1.data.problem import Problem
from or1.errors import RewardError
from or1.rewards import pool
from or1.rewards.registry import REWARDS, RewardFn, reward_timeout
from or1.rewards.verdict import Verdict, as_verdict

logger = logging.getLogger("or1.rewards")

Item = tuple[str, str, str]  # (ability, response, ground truth)
_Key = tuple[str, str, str, str]  # (uid, ability, ground truth, response)


@dataclass(frozen=True)
class RewardSet:
    """The reward of each ability, its hard deadline in the process pool (seconds), and
    how many pool processes score a batch by default (``workers``; 0: in this process)."""

    fns: Mapping[str, RewardFn]
    timeouts: Mapping[str, float] = field(default_factory=dict)
    workers: int = 0

    @classmethod
    def default(cls) -> RewardSet:
        """The registry as it is now (`REWARDS`, `register_reward`)."""
        return cls(dict(REWARDS), {name: reward_timeout(name) for name in REWARDS})

    def get(self, ability: str) -> RewardFn:
        """The reward of ``ability``; RewardError naming the known ones."""
        try:
            return self.fns[ability]
        except (KeyError, TypeError):
            raise RewardError(
                f"unknown reward {ability!r}; known rewards: {', '.join(sorted(self.fns))}",
                hint="register it with or1.rewards.register_reward(name, fn), or name one "
                "in the config: rewards.by_ability.<name>=module:function.",
            ) from None

    def timeout(self, ability: str) -> float:
        return self.timeouts.get(ability, reward_timeout(ability))


def score_rollouts(
    problems: Sequence[Problem],
    group_ids: Sequence[int],
    responses: Sequence[str],
    *,
    rewards: RewardSet | None = None,
    workers: int = 0,
) -> list[Verdict]:
    """One Verdict per response; response j answers ``problems[group_ids[j]]``.

    Args:
        problems: the prompts of a rollout, by group.
        group_ids: per response, the index of its problem. [B*G]
        responses: the decoded responses. [B*G]
        rewards: the reward of each ability (None: the registry's).
        workers: 0 scores in this process (which should be the main thread: Math-Verify's
            timeouts need it; from another thread a one-worker pool is used instead);
            N >= 1 uses the shared pool of N processes (hard per-item deadlines).
            0 defers to ``rewards.workers`` (a run's: its ``rewards.workers`` setting).

    Raises:
        RewardError: an unknown ability, a malformed ground truth (the caller's fault).

    Example:
        >>> p = Problem("p0", [{"role": "user", "content": "1+1?"}], "2")
        >>> [v.reward for v in score_rollouts([p], [0, 0], ["\\\\boxed{2}", "\\\\boxed{3}"])]
        [1.0, 0.0]
    """
    pairs = [(problems[g], r) for g, r in zip(group_ids, responses, strict=True)]
    return score_problems(pairs, rewards=rewards, workers=workers)


def score_problems(
    pairs: Sequence[tuple[Problem, str]], *, rewards: RewardSet | None = None, workers: int = 0
) -> list[Verdict]:
    """One Verdict per (problem, response), in order (see `score_rollouts`)."""
    if not isinstance(workers, int) or workers < 0:
        raise RewardError(f"workers must be an int >= 0, got {workers!r}")
    rewards = rewards or RewardSet.default()
    workers = workers or rewards.workers
    index: dict[_Key, int] = {}
    unique: list[tuple[Problem, str]] = []
    slots = []
    for problem, response in pairs:
        rewards.get(problem.ability)  # unknown abilities fail before any work is done
        key = (problem.uid, problem.ability, problem.ground_truth, response)
        if key not in index:
            index[key] = len(unique)
            unique.append((problem, response))
        slots.append(index[key])
    if not unique:
        return []
    if workers == 0 and threading.current_thread() is threading.main_thread():
        verdicts = [_score_here(rewards, p, r) for p, r in unique]
    else:
        # Whole Verdicts come back (reason, hack flag), as in this process.
        jobs = [(rewards.get(p.ability), p, r, rewards.timeout(p.ability)) for p, r in unique]
        verdicts = pool.score_in_pool(jobs, workers=workers or None)  # type: ignore[arg-type]
    return [verdicts[k] for k in slots]


def score_batch(items: Sequence[Item], *, workers: int = 0) -> list[float]:
    """Rewards of (ability, response, ground_truth) items, in the order given.

    The rewards see a `Problem` with only the ability and ground truth (no question).

    Raises:
        RewardError: an unknown ability, a malformed item or ground truth.

    Example:
        >>> score_batch([("math", "\\\\boxed{2}", "2"), ("math", "\\\\boxed{3}", "2")])
        [1.0, 0.0]
    """
    pairs = [(Problem("", [], gold, ability=ability), r) for ability, r, gold in map(_check, items)]
    return [v.reward for v in score_problems(pairs, workers=workers)]


def _check(item: object) -> Item:
    if not (isinstance(item, tuple) and len(item) == 3 and all(isinstance(x, str) for x in item)):
        raise RewardError(
            f"a batch item must be (ability, response, ground_truth) strings, got {item!r:.120}",
            hint="code ground truth is the JSON string of the tests.",
        )
    return item  # type: ignore[return-value]


def _score_here(rewards: RewardSet, problem: Problem, response: str) -> Verdict:
    try:
        return as_verdict(rewards.get(problem.ability)(problem, response))
    except RewardError:
        raise
    except Exception as err:  # a bug in a reward function is not the model's fault
        logger.exception("reward %r raised; reward 0", problem.ability)
        return Verdict(0.0, f"reward error: {type(err).__name__}")
