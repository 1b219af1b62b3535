"""The reasoning-gym task: splits, prompts, ground truths the math reward accepts, errors."""

from __future__ import annotations

import pytest

from or1.build import load_problems
from or1.config import ReasoningGymConfig, load_config
from or1.data.tasks.arith import PROMPT_SUFFIX
from or1.data.tasks.reasoning_gym import generate_splits
from or1.errors import ConfigError
from or1.rewards import math_reward

EASY = {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}


def small(**kw: object) -> ReasoningGymConfig:
    return ReasoningGymConfig(**{"params": EASY, "n_train": 50, "n_test": 20, **kw})


def test_splits_have_the_asked_sizes_and_are_disjoint() -> None:
    train, test = generate_splits(small())
    assert (len(train), len(test)) == (50, 20)
    assert not {p.question for p in train} & {p.question for p in test}
    uids = [p.uid for p in train + test]
    assert len(set(uids)) == len(uids)


def test_problems_depend_on_the_task_seed_not_the_training_seed() -> None:
    a_train, a_test = generate_splits(small(), seed=0)
    b_train, b_test = generate_splits(small(), seed=7)
    assert [p.question for p in a_test] == [p.question for p in b_test]
    assert [p.question for p in a_train] == [p.question for p in b_train]
    _, c_test = generate_splits(small(seed=1))
    assert [p.question for p in c_test] != [p.question for p in a_test]


def test_prompt_asks_for_boxed_answer_and_truth_is_the_sum() -> None:
    train, _ = generate_splits(small(n_train=10, n_test=2))
    for problem in train:
        assert problem.ability == "math"
        assert problem.data_source == "reasoning-gym/chain_sum"
        assert problem.question.endswith(PROMPT_SUFFIX)
        expression = problem.question.split(":")[1].split("=")[0]
        assert int(problem.ground_truth) == eval(expression)  # chain_sum: "a + b - c ="


def test_math_reward_judges_boxed_answers_against_the_truth() -> None:
    problem = generate_splits(small(n_train=3, n_test=2))[0][0]
    truth = problem.ground_truth
    assert math_reward(f"The sum is \\boxed{{{truth}}}.", truth) == 1.0
    assert math_reward(f"The sum is \\boxed{{{int(truth) + 1}}}.", truth) == 0.0


def test_difficulty_params_reach_the_dataset() -> None:
    train, _ = generate_splits(
        small(params={"min_terms": 5, "max_terms": 5, "min_digits": 3, "max_digits": 3})
    )
    expression = train[0].question.split(":")[1].split("=")[0]
    terms = [t for t in expression.replace("-", "+").split("+") if t.strip()]
    assert len(terms) == 5
    assert all(len(t.strip()) == 3 for t in terms)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (ReasoningGymConfig(dataset="no_such_set"), "unknown reasoning-gym dataset"),
        (ReasoningGymConfig(params={"max_terms": 1, "min_terms": 2}), "not accepted"),
        (ReasoningGymConfig(dataset="spell_backward", n_train=8, n_test=2), "cannot verify"),
        (ReasoningGymConfig(params={"max_terms": 2, "max_digits": 1}, n_test=90), "too few"),
    ],
)
def test_bad_settings_are_config_errors(cfg: ReasoningGymConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        generate_splits(cfg)


def test_build_dispatches_to_the_task() -> None:
    cfg = load_config(
        "smol-arith", ["data.reasoning_gym.n_train=12", "data.reasoning_gym.n_test=4"]
    )
    train, test = load_problems(cfg)
    assert (len(train), len(test)) == (12, 4)
    assert train[0].data_source == f"reasoning-gym/{cfg.data.reasoning_gym.dataset}"


def test_prompt_suffix_setting_replaces_the_recipe_suffix() -> None:
    train, test = generate_splits(small(prompt_suffix="Answer in \\boxed{}."))
    assert all(p.question.endswith("\nAnswer in \\boxed{}.") for p in train + test)
    assert not any(PROMPT_SUFFIX in p.question for p in train + test)
