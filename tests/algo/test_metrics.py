"""Tests for or1.algo.metrics."""

from fractions import Fraction
from math import comb

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from or1.algo import avg_at_k, pass_at_k, pass_at_k_table

FAST = settings(max_examples=60, deadline=None)


def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """1 - C(n - c, k) / C(n, k), in exact rational arithmetic."""
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 3, 1, 0.3),  # k = 1 is the plain accuracy c/n
        (10, 0, 5, 0.0),  # nothing correct
        (10, 8, 3, 1.0),  # only 2 wrong samples: every 3-subset has a correct one
    ],
)
def test_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_large_n_is_stable():
    # C(2000, 500) has ~487 digits and overflows float; the product form does not need it
    got = pass_at_k(2000, 3, 500)
    assert got == pytest.approx(float(exact_pass_at_k(2000, 3, 500)), rel=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 1, 5), (4, 5, 1), (4, -1, 1), (4, 1, 0)])
def test_invalid_arguments_raise(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


@FAST
@given(
    st.integers(1, 60).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
def test_matches_combinatorial_formula(nck):
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(float(exact_pass_at_k(n, c, k)), abs=1e-12)


@FAST
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))))
def test_all_correct_gives_one(nk):
    n, k = nk
    assert pass_at_k(n, n, k) == 1.0


def test_avg_at_k_hand_computed():
    # problem accuracies 1/4 and 3/4 -> mean 0.5
    correct = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 1]])
    assert avg_at_k(correct) == 0.5
    assert avg_at_k(correct.bool()) == 0.5


def test_pass_at_k_table_hand_computed():
    # problem 0: c=1 of 4, problem 1: c=3 of 4
    # k=1: (1/4 + 3/4) / 2 = 0.5
    # k=2: problem 0: 1 - C(3,2)/C(4,2) = 0.5; problem 1: n-c = 1 < 2 -> 1; mean 0.75
    # k=4: both problems have a correct sample -> 1
    correct = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 1]])
    table = pass_at_k_table(correct, [1, 2, 4])
    assert table == pytest.approx({1: 0.5, 2: 0.75, 4: 1.0})
    with pytest.raises(ValueError):
        pass_at_k_table(correct, [5])


@pytest.mark.parametrize("bad", [torch.tensor([[0.5, 1.0]]), torch.ones(3), torch.zeros(0, 4)])
def test_bad_correctness_tables_raise(bad):
    with pytest.raises(ValueError):
        avg_at_k(bad)


@FAST
@given(st.integers(1, 5), st.integers(1, 8), st.data())
def test_pass_at_1_equals_avg_and_per_problem_mean(p, n, data):
    bits = data.draw(st.lists(st.booleans(), min_size=p * n, max_size=p * n))
    correct = torch.tensor(bits).reshape(p, n)
    avg = avg_at_k(correct)
    assert pass_at_k_table(correct, [1])[1] == pytest.approx(avg, abs=1e-12)
    per_problem = [sum(row) / n for row in correct.tolist()]
    assert avg == pytest.approx(sum(per_problem) / p, abs=1e-12)
