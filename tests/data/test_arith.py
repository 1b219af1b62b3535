from __future__ import annotations

import random

from or1.config import ArithConfig
from or1.data.tasks.arith import evaluate, generate_splits, teacher_solution


def test_splits_are_disjoint_sized_and_seeded() -> None:
    cfg = ArithConfig(n_train=300, n_test=50, max_operand=9, max_terms=3)
    train, test = generate_splits(cfg, seed=0)
    assert len(train) == 300 and len(test) == 50
    assert not {p.uid for p in train} & {p.uid for p in test}
    assert [p.uid for p in generate_splits(cfg, seed=0)[1]] == [p.uid for p in test]
    assert [p.uid for p in generate_splits(cfg, seed=1)[1]] != [p.uid for p in test]


def test_ground_truth_is_the_value_of_the_expression() -> None:
    train, _ = generate_splits(ArithConfig(n_train=50, n_test=5), seed=0)
    for p in train:
        terms, ops = p.extra_info["terms"], p.extra_info["ops"]
        assert int(p.ground_truth) == evaluate(terms, ops)
        assert "\\boxed{}" in p.question


def test_teacher_without_errors_is_right_and_with_errors_slips() -> None:
    train, _ = generate_splits(ArithConfig(n_train=200, n_test=5, min_terms=3, max_terms=3), 0)
    rng = random.Random(0)
    for p in train:
        sol = teacher_solution(p, rng, 0.0)
        assert sol.endswith(f"\\boxed{{{p.ground_truth}}}") and "</think>" in sol
    wrong = sum(
        not teacher_solution(p, rng, 0.5).endswith(f"\\boxed{{{p.ground_truth}}}") for p in train
    )
    # Two steps each slipping with p=0.5: 1 - 0.25 = 75% wrong expected (slips rarely cancel).
    assert 0.6 * len(train) < wrong < 0.9 * len(train)
