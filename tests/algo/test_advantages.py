"""Tests for or1.algo.advantages.group_advantages."""

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from or1.algo import GRPO_EPS, group_advantages

FAST = settings(max_examples=40, deadline=None)


def looped_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float) -> torch.Tensor:
    """Reference: one Python iteration per group, torch.std (sample std, n-1)."""
    out = torch.zeros_like(rewards, dtype=torch.float64)
    for gid in set(group_ids.tolist()):
        idx = (group_ids == gid).nonzero().flatten()
        r = rewards[idx].double()
        if len(idx) > 1:
            out[idx] = (r - r.mean()) / (r.std() + eps)
    return out


@st.composite
def grouped_rewards(draw, *, min_size: int = 1, max_size: int = 24, subnormal: bool = True):
    size = draw(st.integers(min_size, max_size))
    values = st.floats(-1e3, 1e3, allow_subnormal=subnormal)
    rewards = draw(st.lists(values, min_size=size, max_size=size))
    # few distinct ids so that groups have several members; negatives and gaps on purpose
    ids = draw(st.lists(st.sampled_from([-7, 0, 3, 1000]), min_size=size, max_size=size))
    return torch.tensor(rewards, dtype=torch.float64), torch.tensor(ids, dtype=torch.int64)


def test_hand_computed_group_of_four():
    # r = [1, 0, 0, 0]: mean 0.25, deviations [0.75, -0.25, -0.25, -0.25]
    # sum of squares 0.5625 + 3 * 0.0625 = 0.75; sample var 0.75 / 3 = 0.25; std 0.5
    # A = deviation / 0.5 = [1.5, -0.5, -0.5, -0.5]
    # (population std sqrt(0.75 / 4) = 0.433 would give 1.732 instead)
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.zeros(4, dtype=torch.long))
    assert torch.allclose(adv, torch.tensor([1.5, -0.5, -0.5, -0.5]), atol=1e-5)
    exact = group_advantages(
        torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64),
        torch.zeros(4, dtype=torch.long),
        eps=0.0,
    )
    assert exact.tolist() == [1.5, -0.5, -0.5, -0.5]


def test_eps_is_added_to_std():
    # std 0.5, eps 0.5: A_0 = 0.75 / (0.5 + 0.5) = 0.75
    adv = group_advantages(
        torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.zeros(4, dtype=torch.long), eps=0.5
    )
    assert adv[0].item() == pytest.approx(0.75)
    assert GRPO_EPS == 1e-6


def test_interleaved_non_contiguous_ids_and_singleton():
    # group 10: r = [1, 0], mean 0.5, sample std sqrt((0.25 + 0.25) / 1) = 0.7071
    #   -> A = [0.5 / 0.7071, -0.5 / 0.7071] = [0.7071, -0.7071]
    # group -3: r = [2, 4], mean 3, sample std sqrt((1 + 1) / 1) = 1.4142 -> [-0.7071, 0.7071]
    # group 42: a single response -> 0
    rewards = torch.tensor([1.0, 2.0, 0.0, 4.0, 7.0], dtype=torch.float64)
    ids = torch.tensor([10, -3, 10, -3, 42])
    adv = group_advantages(rewards, ids, eps=0.0)
    s = 1 / math.sqrt(2)
    assert torch.allclose(adv, torch.tensor([s, -s, -s, s, 0.0], dtype=torch.float64))


def test_without_std_normalization():
    # group 0: mean 0.5 -> [0.5, -0.5]; group 1: [3, 5, 7], mean 5 -> [-2, 0, 2]; singleton 0
    rewards = torch.tensor([1.0, 0.0, 3.0, 5.0, 7.0, 9.0])
    ids = torch.tensor([0, 0, 1, 1, 1, 2])
    adv = group_advantages(rewards, ids, normalize_std=False)
    assert adv.tolist() == [0.5, -0.5, -2.0, 0.0, 2.0, 0.0]


def test_constant_group_is_zero_and_int_bool_rewards_accepted():
    ids = torch.tensor([0, 0, 0, 1, 1])
    adv = group_advantages(torch.tensor([1, 1, 1, 1, 0]), ids)
    assert adv.dtype == torch.float32
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    # group 1: [1, 0], sample std 0.7071 -> +-0.7071
    assert adv[3].item() == pytest.approx(1 / math.sqrt(2), abs=1e-5)
    adv_bool = group_advantages(torch.tensor([True, True, True, True, False]), ids)
    assert torch.equal(adv, adv_bool)


def test_empty_batch():
    assert group_advantages(torch.zeros(0), torch.zeros(0, dtype=torch.long)).numel() == 0


@pytest.mark.parametrize(
    ("rewards", "ids"),
    [
        (torch.zeros(3), torch.zeros(2, dtype=torch.long)),  # length mismatch
        (torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long)),  # not 1-D
        (torch.zeros(2), torch.zeros(2)),  # float ids
        (torch.tensor([0.0, float("nan")]), torch.zeros(2, dtype=torch.long)),  # NaN reward
    ],
)
def test_bad_inputs_raise(rewards, ids):
    with pytest.raises(ValueError):
        group_advantages(rewards, ids)


@FAST
@given(grouped_rewards())
def test_matches_looped_reference(data):
    rewards, ids = data
    expected = looped_advantages(rewards, ids, GRPO_EPS)
    assert torch.allclose(group_advantages(rewards, ids), expected, rtol=1e-9, atol=1e-9)


@FAST
@given(grouped_rewards(), st.randoms(use_true_random=False))
def test_permutation_equivariant(data, rng):
    rewards, ids = data
    perm = list(range(len(rewards)))
    rng.shuffle(perm)
    perm = torch.tensor(perm)
    adv = group_advantages(rewards, ids)
    assert torch.allclose(group_advantages(rewards[perm], ids[perm]), adv[perm], atol=1e-12)


@FAST
# No subnormal rewards: their group mean is not representable (mean of [5e-324, 0] rounds
# to 0), so deviations cannot sum to 0. Tiny normal spreads must work: their squares
# underflow (the example below once gave -inf/+inf with eps = 0).
@given(grouped_rewards(min_size=2, subnormal=False))
@example((torch.tensor([0.0, 1.1288e-172], dtype=torch.float64), torch.tensor([-7, -7])))
@example((torch.tensor([1e300, -1e300, 0.0], dtype=torch.float64), torch.tensor([0, 0, 0])))
def test_groups_sum_to_zero_and_have_unit_sample_std(data):
    rewards, ids = data
    adv = group_advantages(rewards, ids, eps=0.0)
    for gid in set(ids.tolist()):
        a, r = adv[ids == gid], rewards[ids == gid]
        assert abs(a.sum().item()) < 1e-9
        if len(a) > 1 and r.std().item() > 1e-6:  # not constant
            assert a.std().item() == pytest.approx(1.0, abs=1e-9)


@FAST
@given(st.lists(st.booleans(), min_size=2, max_size=16))
def test_binary_rewards_unit_std_with_default_eps(bits):
    rewards = torch.tensor(bits, dtype=torch.float32)
    ids = torch.zeros(len(bits), dtype=torch.long)
    adv = group_advantages(rewards, ids)
    assert abs(adv.sum().item()) < 1e-4
    if 0 < sum(bits) < len(bits):
        assert adv.std().item() == pytest.approx(1.0, abs=1e-4)  # eps 1e-6 vs std >= 0.25
    else:
        assert adv.abs().max().item() == 0.0


@pytest.mark.parametrize("normalize_std", [True, False])
def test_constant_group_is_exactly_zero_despite_rounding(normalize_std):
    # mean of three 0.1s rounds to 0.10000000000000002, so r - mean is ~1e-17, not 0;
    # with eps = 0 a naive implementation returns +-1 noise instead of 0.
    rewards = torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64)
    adv = group_advantages(
        rewards, torch.zeros(3, dtype=torch.long), eps=0.0, normalize_std=normalize_std
    )
    assert adv.tolist() == [0.0, 0.0, 0.0]
