"""Tests for or1.algo.filters."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from or1.algo import (
    drop_solved,
    group_accuracy,
    group_advantages,
    keep_by_pass_rate,
    reject_uniform_groups,
    solved_prompts,
    zero_truncated_rewards,
)

FAST = settings(max_examples=40, deadline=None)


@st.composite
def grouped_rewards(draw):
    size = draw(st.integers(1, 24))
    # few distinct reward values so that uniform groups actually occur
    rewards = draw(st.lists(st.sampled_from([0.0, 1.0, -0.5, 0.25]), min_size=size, max_size=size))
    ids = draw(st.lists(st.sampled_from([-2, 5, 6, 99]), min_size=size, max_size=size))
    return torch.tensor(rewards), torch.tensor(ids)


def test_reject_uniform_groups_hand_example():
    # group 3: [1, 1] all correct -> drop; group 8: [0, 1] -> keep;
    # group -1: [0, 0] all wrong -> drop; group 5: a single response -> uniform, drop
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    ids = torch.tensor([3, 3, 8, 8, -1, -1, 5])
    keep = reject_uniform_groups(rewards, ids)
    assert keep.dtype == torch.bool
    assert keep.tolist() == [False, False, True, True, False, False, False]


def test_reject_uses_exact_comparison():
    # rewards differing by one ulp are not "all equal"
    one = torch.tensor(1.0)
    rewards = torch.stack([one, torch.nextafter(one, torch.tensor(2.0))])
    assert reject_uniform_groups(rewards, torch.tensor([0, 0])).tolist() == [True, True]


def test_reject_accepts_int_and_bool_rewards_and_empty():
    ids = torch.tensor([0, 0, 1, 1])
    assert reject_uniform_groups(torch.tensor([1, 0, 1, 1]), ids).tolist() == [
        True,
        True,
        False,
        False,
    ]
    assert reject_uniform_groups(torch.tensor([True, True, False, True]), ids).tolist() == [
        False,
        False,
        True,
        True,
    ]
    empty = reject_uniform_groups(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert empty.numel() == 0


@FAST
@given(grouped_rewards())
def test_reject_matches_looped_reference(data):
    rewards, ids = data
    expected = [len(set(rewards[ids == g].tolist())) > 1 for g in ids.tolist()]
    assert reject_uniform_groups(rewards, ids).tolist() == expected


@FAST
@given(grouped_rewards())
def test_rejected_responses_are_exactly_those_with_zero_advantage_groups(data):
    rewards, ids = data
    keep = reject_uniform_groups(rewards, ids)
    adv = group_advantages(rewards, ids)
    assert (adv[~keep] == 0).all()
    for g in ids[keep].unique().tolist():  # every kept group has some signal
        assert adv[ids == g].abs().max() > 0.1


def test_group_accuracy_hand_example():
    # group 2: [1, 1, 0] -> 2/3; group 7: [0] -> 0; group -4: [1, 0] -> 0.5
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    ids = torch.tensor([2, 7, -4, 2, -4, 2])
    uniq, acc = group_accuracy(rewards, ids)
    assert uniq.tolist() == [-4, 2, 7]
    assert acc.tolist() == pytest.approx([0.5, 2 / 3, 0.0])


@FAST
@given(grouped_rewards())
def test_group_accuracy_matches_looped_reference(data):
    rewards, ids = data
    uniq, acc = group_accuracy(rewards, ids)
    expected_ids = sorted(set(ids.tolist()))
    assert uniq.tolist() == expected_ids
    expected = [rewards[ids == g].mean().item() for g in expected_ids]
    assert acc.tolist() == pytest.approx(expected, abs=1e-6)


def test_drop_solved_keeps_order_and_unseen_prompts():
    accuracy = {"p1": 1.0, "p2": 0.9375, "p3": 0.0, "p5": 1.0}  # p4 never seen
    assert drop_solved(["p5", "p4", "p3", "p2", "p1"], accuracy) == ["p4", "p3", "p2"]
    assert drop_solved(["p5", "p4", "p3", "p2", "p1"], accuracy, threshold=0.9) == ["p4", "p3"]
    assert solved_prompts(accuracy) == {"p1", "p5"}


def test_drop_solved_with_integer_ids():
    assert drop_solved([3, 1, 2], {1: 1.0, 2: 0.5}) == [3, 2]


def test_keep_by_pass_rate_drops_exactly_zero_and_all():
    # N = 16: 0/16 and 16/16 dropped, 1/16 and 15/16 kept
    rates = torch.tensor([0, 1, 8, 15, 16]) / 16
    assert keep_by_pass_rate(rates).tolist() == [False, True, True, True, False]
    # a narrower band: keep 0.1 < p < 0.9
    assert keep_by_pass_rate(rates, low=0.1, high=0.9).tolist() == [
        False,
        False,
        True,
        False,
        False,
    ]
    with pytest.raises(ValueError):
        keep_by_pass_rate(rates, low=0.5, high=0.5)


def test_zero_truncated_rewards_hand_example():
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.5])
    truncated = torch.tensor([False, True, True, False])
    assert zero_truncated_rewards(rewards, truncated).tolist() == [1.0, 0.0, 0.0, 0.5]
    assert rewards.tolist() == [1.0, 1.0, 0.0, 0.5]  # the input is not modified
    ints = zero_truncated_rewards(torch.tensor([1, 1]), torch.tensor([True, False]))
    assert ints.dtype.is_floating_point and ints.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="truncated"):
        zero_truncated_rewards(rewards, truncated[:2])
