"""The built-in task registry: names, hooks, and the run's problems through it."""

from __future__ import annotations

import typing

import pytest

from or1.build.problems import load_problems
from or1.config import ArithConfig, DataConfig, load_config
from or1.data.tasks import TASKS, arith, get_task
from or1.errors import ConfigError


def test_every_configurable_task_name_is_registered() -> None:
    names = typing.get_args(typing.get_args(DataConfig.model_fields["task"].annotation)[0])
    assert set(names) == set(TASKS)
    with pytest.raises(ConfigError, match=r"unknown task 'nope'.*tiny-code"):
        get_task("nope")
    with pytest.raises(ConfigError, match=r"data\.task"):
        load_config("tiny-arith", ["data.task=tiny-cod"])


def test_tiny_arith_hooks_are_the_arith_module_unchanged() -> None:
    data = DataConfig(arith=ArithConfig(n_train=40, n_test=5))
    hooks = TASKS["tiny-arith"].tiny
    assert hooks is not None and hooks.vocab_size == 384
    # The warm-up cache key of tiny-arith keeps its old inputs (caches stay valid).
    old_key = ("n_train", "n_test", "min_terms", "max_terms", "max_operand", "teacher_error_rate")
    assert hooks.cache_parts(data) == {k: getattr(data.arith, k) for k in old_key}
    train, test = TASKS["tiny-arith"].generate_splits(data, 3)
    math_train, math_test = arith.generate_splits(data.arith, 3)
    assert [p.uid for p in train + test] == [p.uid for p in math_train + math_test]
    via_hook = list(hooks.warmup_examples(train, 30, data, 3))
    direct = list(arith.warmup_examples(train, 30, error_rate=0.25, seed=3))
    assert [(p.uid, s) for p, s in via_hook] == [(p.uid, s) for p, s in direct]
    merging = DataConfig(arith=ArithConfig(n_train=40, n_test=5, teacher_merge_rate=0.5))
    via_hook = list(hooks.warmup_examples(train, 30, merging, 3))
    direct = list(arith.warmup_examples(train, 30, error_rate=0.25, seed=3, merge_rate=0.5))
    assert [(p.uid, s) for p, s in via_hook] == [(p.uid, s) for p, s in direct]


def test_tiny_model_tasks_key_their_cache_on_their_settings() -> None:
    base = DataConfig()
    other = DataConfig(code={"teacher_error_rate": 0.3})
    for name in ("tiny-code", "tiny-mix"):
        hooks = TASKS[name].tiny
        assert hooks is not None and hooks.vocab_size > 384
        assert hooks.cache_parts(base) != hooks.cache_parts(other)
    assert TASKS["reasoning-gym"].tiny is None  # needs model.path


def test_load_problems_builds_the_configured_task() -> None:
    cfg = load_config("tiny-arith", ["data.task=tiny-code", "data.code.n_train=30"])
    train, test = load_problems(cfg)
    assert len(train) == 30 and len(test) == 100
    assert {p.ability for p in train + test} == {"code"}
