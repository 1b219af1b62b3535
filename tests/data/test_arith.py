from __future__ import annotations

import random

from or1.config import ArithConfig, DataConfig
from or1.data.tasks import arith_cache_parts
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


def _think_lines(solution: str) -> list[str]:
    return solution.split("<think>\n", 1)[1].split("\n</think>", 1)[0].split("\n")


def test_teacher_without_merges_is_the_teacher_it_always_was() -> None:
    # merge_rate 0 draws nothing more from the generator: the same solutions, in order,
    # as a call without the setting (warm-ups of every preset stay what they were).
    train, _ = generate_splits(ArithConfig(n_train=100, n_test=5, min_terms=3, max_terms=4), 0)
    rng_plain, rng_zero = random.Random(3), random.Random(3)
    plain = [teacher_solution(p, rng_plain, 0.3) for p in train]
    zero = [teacher_solution(p, rng_zero, 0.3, merge_rate=0.0) for p in train]
    assert plain == zero
    assert all(
        len(_think_lines(s)) == len(p.extra_info["ops"]) for p, s in zip(train, plain, strict=True)
    )


def test_merged_steps_share_a_line_and_still_slip_per_operation() -> None:
    train, _ = generate_splits(ArithConfig(n_train=300, n_test=5, min_terms=4, max_terms=4), 0)
    rng = random.Random(0)
    for p in train:  # 3 steps: the first two on one line, e.g. 9+5-1=13 then 13-6=7
        sol = teacher_solution(p, rng, 0.0, merge_rate=1.0)
        first, second = _think_lines(sol)
        terms, ops = p.extra_info["terms"], p.extra_info["ops"]
        assert (
            first
            == f"{terms[0]}{ops[0]}{terms[1]}{ops[1]}{terms[2]}={evaluate(terms[:3], ops[:2])}"
        )
        assert second.startswith(f"{evaluate(terms[:3], ops[:2])}{ops[2]}{terms[3]}=")
        assert sol.endswith(f"\\boxed{{{p.ground_truth}}}")
    # Each operation slips at the error rate either way: 3 operations at 0.3 leave
    # 0.7^3 = 34% right (slips rarely cancel), merged or not.
    for merge_rate in (0.0, 1.0):
        right = sum(
            teacher_solution(p, rng, 0.3, merge_rate=merge_rate).endswith(
                f"\\boxed{{{p.ground_truth}}}"
            )
            for p in train * 4
        )
        assert 0.29 < right / (4 * len(train)) < 0.40, (merge_rate, right)
    lines = [len(_think_lines(teacher_solution(p, rng, 0.0, merge_rate=0.5))) for p in train * 4]
    # 3 steps: 2 lines if steps 1-2 merge (0.5) or else steps 2-3 do (0.25), 3 otherwise.
    assert 2.18 < sum(lines) / len(lines) < 2.32


def test_merge_setting_keys_the_warmup_cache_only_when_merges_are_on() -> None:
    plain = DataConfig()
    assert "teacher_merge_rate" not in arith_cache_parts(plain)  # the key caches always had
    assert arith_cache_parts(plain) == {
        k: v for k, v in plain.arith.model_dump().items() if k != "teacher_merge_rate"
    }
    merging = DataConfig(arith=ArithConfig(teacher_merge_rate=0.5))
    assert arith_cache_parts(merging)["teacher_merge_rate"] == 0.5
    assert arith_cache_parts(merging) != arith_cache_parts(plain)
