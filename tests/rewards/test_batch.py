"""score_batch / score_rollouts, the registry, rewards by import path, the process pool."""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from or1.errors import RewardError
from or1.rewards import REWARDS, get_reward, register_reward, score_batch, shutdown_pool
from or1.rewards import pool as pool_module
from or1.rewards.math import math_reward
from or1.rewards.registry import code_problem_reward, math_problem_reward

from .conftest import _cmdlines

CODE_TESTS = json.dumps({"inputs": ["2\n", "5\n"], "outputs": ["4\n", "25\n"]})
GOOD_CODE = "```python\nn = int(input())\nprint(n * n)\n```"
BAD_CODE = "```python\nprint(4)\n```"
MIXED = [
    ("math", "so \\boxed{\\frac{1}{2}}", "0.5"),
    ("code", GOOD_CODE, CODE_TESTS),
    ("math", "\\boxed{3}", "4"),
    ("code", BAD_CODE, CODE_TESTS),
    ("math", "</think>\\boxed{7}", "7"),
]
EXPECTED = [1.0, 1.0, 0.0, 0.0, 1.0]


@pytest.fixture
def registry():
    """Restore the registry after a test that registers rewards."""
    saved = dict(REWARDS)
    yield REWARDS
    REWARDS.clear()
    REWARDS.update(saved)


@pytest.fixture
def helpers(monkeypatch, registry):
    """Picklable test rewards, importable by fresh pool workers."""
    shutdown_pool()  # new workers must see the extended sys.path
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import reward_helpers

    yield reward_helpers
    shutdown_pool()


def test_in_process_order_and_dedup(registry):
    calls: list[tuple[str, str]] = []

    def counting(problem, response: str) -> float:
        calls.append((response, problem.ground_truth))
        return float(response == problem.ground_truth)

    register_reward("echo", counting)
    items = [
        ("echo", "a", "a"),
        ("echo", "b", "a"),
        ("echo", "a", "a"),
        ("math", "\\boxed{1}", "1"),
        ("echo", "b", "a"),
    ]
    assert score_batch(items) == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert sorted(calls) == [("a", "a"), ("b", "a")]  # duplicates scored once


def test_pool_gives_the_same_rewards_in_order():
    assert score_batch(MIXED, workers=0) == EXPECTED
    assert score_batch(MIXED, workers=2) == EXPECTED
    assert score_batch(list(reversed(MIXED)), workers=2) == list(reversed(EXPECTED))


def test_pool_is_reused_resized_and_leaves_nothing_behind():
    first = pool_module.get_pool(2)
    assert pool_module.get_pool(2) is first and pool_module.get_pool() is first
    workers = [w.proc.pid for w in first._workers]
    assert score_batch([("code", GOOD_CODE, CODE_TESTS)] * 3, workers=2) == [1.0] * 3
    smaller = pool_module.get_pool(1)
    assert smaller is not first and smaller.size == 1
    shutdown_pool()
    alive = [
        pid for pid, cmd in _cmdlines().items() if "or1.rewards._worker" in cmd and pid in workers
    ]
    assert alive == []
    assert score_batch([("math", "\\boxed{2}", "2")], workers=1) == [1.0]  # a new pool


def test_off_main_thread_goes_to_the_pool():
    out: list[list[float]] = []
    thread = threading.Thread(target=lambda: out.append(score_batch(MIXED)))
    thread.start()
    thread.join(120)
    assert out == [EXPECTED]


def test_hung_reward_is_killed_at_its_deadline(helpers):
    register_reward("sleepy", helpers.sleepy_reward, timeout_s=1.0)
    start = time.monotonic()
    items = [("sleepy", "", "60"), ("math", "\\boxed{2}", "2"), ("sleepy", "x", "0")]
    assert score_batch(items, workers=1) == [0.0, 1.0, 1.0]
    assert time.monotonic() - start < 20
    assert score_batch([("math", "\\boxed{5}", "5")], workers=1) == [1.0]  # still usable


def test_crashing_and_raising_rewards_score_zero(helpers):
    register_reward("crash", helpers.crashing_reward)
    register_reward("buggy", helpers.raising_reward)
    items = [("crash", "", ""), ("math", "\\boxed{2}", "2"), ("buggy", "", "")]
    assert score_batch(items, workers=1) == [0.0, 1.0, 0.0]
    assert score_batch(items[1:], workers=0) == [1.0, 0.0]


def test_partial_of_a_module_function_travels_to_the_pool(helpers):
    register_reward("code-frac", functools.partial(code_problem_reward, fractional=True))
    register_reward("len", helpers.length_reward)
    half = "```python\nprint(4)\n```"
    assert score_batch([("code-frac", half, CODE_TESTS), ("len", "abc", "3")], workers=2) == [
        0.5,
        1.0,
    ]


def test_unpicklable_reward_runs_in_the_caller(registry):
    register_reward("lambda", lambda problem, response: 1.0)
    assert score_batch([("lambda", "x", "y"), ("math", "\\boxed{1}", "1")], workers=1) == [1.0, 1.0]


def test_reward_errors_reach_the_caller_and_the_pool_survives():
    bad = [("math", "\\boxed{1}", "1"), ("code", GOOD_CODE, "{not json")]
    for workers in (0, 1):
        with pytest.raises(RewardError, match="not valid JSON"):
            score_batch(bad, workers=workers)
    assert score_batch([("math", "\\boxed{1}", "1")], workers=1) == [1.0]


def test_a_pool_that_cannot_start_says_so_and_recovers(monkeypatch):
    shutdown_pool()
    monkeypatch.setattr(sys, "executable", "/bin/false")  # workers die at once
    with pytest.raises(RuntimeError, match="failed to start"):
        score_batch([("math", "\\boxed{1}", "1")], workers=1)
    monkeypatch.undo()
    assert score_batch([("math", "\\boxed{1}", "1")], workers=1) == [1.0]


def test_unknown_ability_lists_the_known_ones():
    with pytest.raises(RewardError, match="known rewards: code, math"):
        score_batch([("chemistry", "x", "y")])
    with pytest.raises(RewardError, match="unknown reward"):
        get_reward("chemistry")


@pytest.mark.parametrize(
    "item", [("math", "x"), ["math", "x", "y"], ("math", None, "1"), ("math", "x", {"a": 1})]
)
def test_malformed_items(item):
    with pytest.raises(RewardError, match="batch item"):
        score_batch([item])


def test_workers_must_be_a_count():
    with pytest.raises(RewardError, match="workers"):
        score_batch([], workers=-1)
    assert score_batch([]) == []


def test_registry(registry):
    assert get_reward("math") is math_problem_reward
    assert get_reward("code") is code_problem_reward
    with pytest.raises(RewardError, match="already registered"):
        register_reward("math", math_problem_reward)
    register_reward("math", code_problem_reward, replace=True)
    assert get_reward("math") is code_problem_reward
    with pytest.raises(RewardError, match="callable"):
        register_reward("x", "not a function")
    with pytest.raises(RewardError, match="non-empty"):
        register_reward("", math_reward)


@pytest.mark.slow
def test_pathological_math_off_the_main_thread_is_bounded():
    out: list[float] = []
    thread = threading.Thread(target=lambda: out.append(math_reward("\\boxed{9!!!!!!!!}", "1")))
    start = time.monotonic()
    thread.start()
    thread.join(60)
    assert out == [0.0] and time.monotonic() - start < 20


def test_rewards_workers_from_the_config_scores_in_the_pool(helpers, registry):
    """``rewards.workers`` (the skywork presets: 16) reaches every scoring call through the
    run's RewardSet: the trainer, the evaluator and the offline filter pass none."""
    from or1.config import RewardsConfig
    from or1.data.problem import Problem
    from or1.rewards import rewards_from_config, score_rollouts

    register_reward("pid", helpers.pid_reward)
    problems = [Problem(f"p{i}", [], "x", ability="pid") for i in range(4)]
    here = rewards_from_config(RewardsConfig())
    pooled = rewards_from_config(RewardsConfig(workers=2))
    assert (here.workers, pooled.workers) == (0, 2)
    answers = [f"r{i}" for i in range(8)]
    in_process = score_rollouts(problems, [i // 2 for i in range(8)], answers, rewards=here)
    assert {v.reason for v in in_process} == {str(os.getpid())}
    verdicts = score_rollouts(problems, [i // 2 for i in range(8)], answers, rewards=pooled)
    pids = {int(v.reason) for v in verdicts}
    assert os.getpid() not in pids and pids <= {w.proc.pid for w in pool_module.get_pool()._workers}
    assert [v.reward for v in verdicts] == [1.0] * 8
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        RewardsConfig(workers=-1)
