"""A run's rewards from its config, and metrics by ability and by data source.

Metric names (metrics.jsonl, tensorboard, eval summaries): for a metric ``m`` logged
over a whole batch, ``m/<ability>`` is its value over the responses to problems of that
ability (``accuracy/math``, ``accuracy/code``) and ``m/src/<data_source>`` over the
responses to problems of that source (``accuracy/src/aime24``). A source name keeps
letters, digits, ``.``, ``_`` and ``-``; any other run of characters becomes ``_``
(``openai/gsm8k`` -> ``openai_gsm8k``), so a key has exactly one or two ``/``.

``reward_reasons/<reason>``: how many responses of a step got a verdict with that reason
(``reward_reasons/test_failed``, ``reward_reasons/no_code_block``, ``reward_reasons/
hack_attempt_exit_before_tests_finished``; the reason made a key like a source name);
passes have no reason and are not counted, a reason absent from a step is not logged.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from or1.config.rewards import CodeRewardConfig, RewardsConfig
from or1.data.problem import Problem
from or1.errors import ConfigError, RewardError
from or1.rewards import sandbox
from or1.rewards.batch import RewardSet
from or1.rewards.code import RELEASED_CODE_LIMITS, STARTUP_S, CodeLimits
from or1.rewards.registry import (
    REWARDS,
    RewardFn,
    after_first_think,
    code_problem_reward,
    load_reward,
    reward_timeout,
)
from or1.rewards.verdict import Verdict

HACK_METRIC = "code_reward_hack_attempts"
REASON_METRIC = "reward_reasons"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def code_limits(cfg: CodeRewardConfig) -> dict[str, Any]:
    """Keyword arguments of the code reward for ``rewards.code``: the one place where the
    limits a run uses are decided (paper defaults, or the released harness's, which
    ``algo.variant=released-code`` selects through ``rewards.code.limits``)."""
    limits = RELEASED_CODE_LIMITS if cfg.limits == "released" else CodeLimits()
    if cfg.memory_mb is not None:
        limits = dataclasses.replace(limits, memory_mb=cfg.memory_mb)
    return {
        "limits": limits,
        "fractional": cfg.fractional,
        "timeout_s": cfg.timeout_s,
        "total_timeout_s": cfg.total_timeout_s,
    }


def rewards_from_config(cfg: RewardsConfig) -> RewardSet:
    """The registry, with the code reward's limits from ``rewards.code``, the answer
    text of ``rewards.answer_after`` (registered rewards included) and the functions of
    ``rewards.by_ability`` imported by path (they see the whole response).

    Raises:
        ConfigError: an import path that does not import or is not callable.

    Example:
        >>> from or1.config import RewardsConfig
        >>> sorted(rewards_from_config(RewardsConfig()).fns)
        ['code', 'math']
    """
    fns = dict(REWARDS)
    timeouts = {name: reward_timeout(name) for name in REWARDS}
    if fns.get("code") is code_problem_reward:  # not replaced by a registered reward
        kwargs = code_limits(cfg.code)
        fns["code"] = functools.partial(code_problem_reward, **kwargs)
        # The pool's hard deadline must leave the reward its own cap (+ sandbox starts).
        cap = cfg.code.total_timeout_s or kwargs["limits"].total_max_s
        timeouts["code"] = max(timeouts["code"], cap + 10 * STARTUP_S)
    if cfg.answer_after == "first-think":  # registered rewards; not rewards.by_ability
        fns = {name: functools.partial(after_first_think, fn) for name, fn in fns.items()}
    for ability, path in cfg.by_ability.items():
        try:
            fns[ability] = load_reward(path, key=f"rewards.by_ability.{ability}")
        except RewardError as err:
            raise ConfigError(err.message, hint=err.hint) from None
    return RewardSet(fns, timeouts, workers=cfg.workers)


def uses_sandbox(fn: RewardFn) -> bool:
    """Whether ``fn`` is the built-in code reward, alone, with its limits bound or wrapped
    (``rewards.answer_after: first-think`` passes it as the first argument of a partial);
    those run programs in the sandbox. A custom reward may too; or1 cannot tell."""
    while isinstance(fn, functools.partial):
        if fn.func is code_problem_reward:
            return True
        fn = fn.args[0] if fn.args and callable(fn.args[0]) else fn.func
    return fn is code_problem_reward


def require_sandbox(rewards: RewardSet, problems: Iterable[Problem]) -> sandbox.Backend | None:
    """The sandbox backend the code rewards of ``problems`` will run in, probed now (at the
    start of a run, not at its first code answer); None if no problem's ability is scored
    by the built-in code reward.

    Raises:
        RewardError: no backend can isolate programs here (each backend's reason, and
            what to do): a run with code problems never scores them outside the sandbox.
    """
    abilities = {p.ability for p in problems}
    if not any(uses_sandbox(rewards.get(a)) for a in abilities if a in rewards.fns):
        return None
    try:
        backend = sandbox.get_backend()
    except RewardError as err:
        raise RewardError(
            f"this run has code problems, scored by running their tests in the sandbox: "
            f"{err.message}",
            hint=err.hint,
        ) from None
    return backend


def source_key(source: str) -> str:
    """A data source as a metric-name part (see the module docstring)."""
    return _UNSAFE.sub("_", source).strip("_") or "unknown"


def grouped_means(
    problems: Sequence[Problem], values: Mapping[str, Sequence[float]]
) -> dict[str, float]:
    """Each metric's mean by ability (``m/<ability>``) and by source (``m/src/<source>``).

    Args:
        problems: the problem of each response. [N]
        values: metric name -> one value per response. [N] each

    Example:
        >>> ps = [Problem("a", [], "1", "math", "gsm8k"), Problem("b", [], "{}", "code", "taco")]
        >>> grouped_means(ps, {"accuracy": [1.0, 0.0]})["accuracy/src/gsm8k"]
        1.0
    """
    groups: dict[str, list[int]] = {}
    for i, problem in enumerate(problems):
        groups.setdefault(problem.ability, []).append(i)
        groups.setdefault(f"src/{source_key(problem.data_source)}", []).append(i)
    out: dict[str, float] = {}
    for name, column in values.items():
        for group, rows in groups.items():
            out[f"{name}/{group}"] = sum(float(column[i]) for i in rows) / len(rows)
    return out


def step_breakdown(
    problems: Sequence[Problem],
    verdicts: Sequence[Verdict],
    rewards: Sequence[float],
    lengths: Sequence[float],
    truncated: Sequence[bool],
) -> dict[str, float]:
    """A training step's metrics by ability and by source, and the hack count.

    Args:
        problems: the problem of each response. [B*G]
        verdicts: the reward path's verdicts (their ``hack`` flags are counted). [B*G]
        rewards: the rewards used for training (after truncated responses were zeroed).
        lengths: response lengths in tokens. [B*G]
        truncated: whether each response was cut off at the length limit. [B*G]

    Returns:
        ``reward_mean``, ``accuracy`` (reward > 0.5), ``response_length_mean`` and
        ``truncation_ratio`` per group, ``code_reward_hack_attempts``, and the count of
        each reason (``reward_reasons/<reason>``, see the module docstring).
    """
    metrics = grouped_means(
        problems,
        {
            "reward_mean": rewards,
            "accuracy": [float(r > 0.5) for r in rewards],
            "response_length_mean": lengths,
            "truncation_ratio": [float(t) for t in truncated],
        },
    )
    metrics[HACK_METRIC] = float(sum(v.hack for v in verdicts))
    metrics.update(reason_counts(verdicts))
    return metrics


def reason_counts(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """``reward_reasons/<reason>`` -> how many verdicts have that reason (passes: none).

    Example:
        >>> reason_counts([Verdict(0.0, "test failed"), Verdict(1.0), Verdict(0.0, "test failed")])
        {'reward_reasons/test_failed': 2.0}
    """
    counts = Counter(source_key(v.reason) for v in verdicts if v.reason)
    return {f"{REASON_METRIC}/{key}": float(n) for key, n in sorted(counts.items())}
