"""Tests for or1.algo.entropy: token_entropy and the entropy-coefficient controllers."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from or1.algo import AdaptiveEntropyController, FixedEntropyCoef, token_entropy

FAST = settings(max_examples=40, deadline=None)


# --- token_entropy -------------------------------------------------------------------


def test_hand_computed_entropies():
    # uniform over 4 tokens: ln 4 = 1.386294
    # logits [0, ln 3] -> p = [1/4, 3/4]: H = -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.562335
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -1e9, -1e9]]])
    h = token_entropy(logits)
    assert h.shape == (1, 2)
    assert h[0, 0].item() == pytest.approx(math.log(4), abs=1e-6)
    assert h[0, 1].item() == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-6
    )


def test_stable_for_large_logits():
    # Entropy is shift invariant; in float32, logsumexp(z) - sum(p z) around z ~ 1e4
    # loses ~1e-3 to cancellation unless the row max is subtracted first.
    logits = torch.randn(4, 3, 50) + 1e4
    exact = torch.distributions.Categorical(logits=logits.double()).entropy()
    assert torch.allclose(token_entropy(logits).double(), exact, atol=1e-5)


def test_low_precision_input_is_computed_in_float32():
    logits = torch.randn(2, 3, 11)
    h = token_entropy(logits.to(torch.bfloat16))
    assert h.dtype == torch.float32
    expected = torch.distributions.Categorical(logits=logits.to(torch.bfloat16).float()).entropy()
    assert torch.allclose(h, expected, atol=1e-5)


@st.composite
def logits_and_chunks(draw):
    b, t, v = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 9))
    values = draw(st.lists(st.floats(-30.0, 30.0), min_size=b * t * v, max_size=b * t * v))
    chunk = draw(st.integers(1, b * t + 2))
    return torch.tensor(values, dtype=torch.float64).reshape(b, t, v), chunk


@FAST
@given(logits_and_chunks())
def test_matches_categorical_and_is_chunk_size_invariant(data):
    logits, chunk = data
    expected = torch.distributions.Categorical(logits=logits).entropy()
    got = token_entropy(logits, chunk_size=chunk)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10)
    assert torch.allclose(got, token_entropy(logits, chunk_size=10_000), rtol=0, atol=1e-12)


def test_gradcheck_across_several_chunks():
    logits = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)  # 6 rows, 3 chunks
    assert torch.autograd.gradcheck(lambda z: token_entropy(z, chunk_size=2), (logits,))


def test_gradient_matches_categorical_entropy():
    weights = torch.randn(2, 7)  # a weighted sum so that every row's gradient matters
    logits = torch.randn(2, 7, 13, requires_grad=True)
    (token_entropy(logits, chunk_size=3) * weights).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    (torch.distributions.Categorical(logits=logits).entropy() * weights).sum().backward()
    assert ours.abs().sum() > 0
    assert torch.allclose(ours, logits.grad, atol=1e-5)


def test_no_grad_path_matches_grad_path():
    logits = torch.randn(3, 4, 9, requires_grad=True)
    with torch.no_grad():
        plain = token_entropy(logits, chunk_size=2)
    assert not plain.requires_grad
    assert torch.allclose(plain, token_entropy(logits, chunk_size=2), atol=0)


def test_empty_and_bad_chunk_size():
    assert token_entropy(torch.zeros(0, 3, 5)).shape == (0, 3)
    with pytest.raises(ValueError):
        token_entropy(torch.zeros(1, 1, 2), chunk_size=0)


# --- AdaptiveEntropyController --------------------------------------------------------


def test_paper_controller_hand_sequence():
    # target 0.2, delta 0.005, c_0 = 0, alpha_k = c_k if e_k < 0.2 else 0
    # k=0 e=0.1: alpha 0      c_1 = 0.005
    # k=1 e=0.1: alpha 0.005  c_2 = 0.010
    # k=2 e=0.3: alpha 0      c_3 = 0.005
    # k=3 e=0.2: alpha 0      c_4 = 0      (e == target is not below target)
    # k=4 e=0.3: alpha 0      c_5 = max(-0.005, 0) = 0
    # k=5 e=0.1: alpha 0      c_6 = 0.005
    # k=6 e=0.0: alpha 0.005  c_7 = 0.010
    ctl = AdaptiveEntropyController.paper()
    assert ctl.coef == 0.0
    alphas, values = [], []
    for e in [0.1, 0.1, 0.3, 0.2, 0.3, 0.1, 0.0]:
        alphas.append(ctl.update(e))
        assert ctl.coef == alphas[-1]
        values.append(ctl.value)
    assert alphas == pytest.approx([0.0, 0.005, 0.0, 0.0, 0.0, 0.0, 0.005])
    assert values == pytest.approx([0.005, 0.01, 0.005, 0.0, 0.0, 0.005, 0.01])


def test_paper_has_no_upper_cap():
    ctl = AdaptiveEntropyController.paper()
    for _ in range(100):
        ctl.update(0.0)
    assert ctl.value == pytest.approx(0.5)  # 100 * 0.005
    assert ctl.coef == pytest.approx(0.495)  # alpha_99 = c_99


def test_released_code_caps_at_0_005():
    ctl = AdaptiveEntropyController.released_code()
    assert (ctl.delta, ctl.coef_min, ctl.coef_max, ctl.target) == (1e-4, 0.0, 0.005, 0.2)
    for _ in range(80):  # 50 steps of 1e-4 reach the cap
        ctl.update(0.1)
    assert ctl.value == 0.005
    assert ctl.coef == 0.005


def test_coef_before_update_is_zero_even_with_initial():
    ctl = AdaptiveEntropyController(initial=0.01)
    assert (ctl.coef, ctl.value) == (0.0, 0.01)
    assert ctl.update(torch.tensor(0.1)) == 0.01  # tensors are accepted


def test_state_dict_roundtrip_through_json_continues_identically():
    entropies = [0.1, 0.25, 0.05, 0.1, 0.3, 0.1, 0.15, 0.4]
    ctl = AdaptiveEntropyController(delta=0.003, coef_max=0.007)
    for e in entropies[:4]:
        ctl.update(e)
    resumed = AdaptiveEntropyController(delta=0.003, coef_max=0.007)
    resumed.load_state_dict(json.loads(json.dumps(ctl.state_dict())))
    assert (resumed.coef, resumed.value) == (ctl.coef, ctl.value)
    assert [resumed.update(e) for e in entropies[4:]] == [ctl.update(e) for e in entropies[4:]]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delta": -0.1},
        {"coef_min": 0.1, "coef_max": 0.05},
        {"initial": -0.1},
        {"coef_max": 0.0, "initial": 0.1},
    ],
)
def test_invalid_settings_raise(kwargs):
    with pytest.raises(ValueError):
        AdaptiveEntropyController(**kwargs)


def test_non_finite_entropy_raises():
    ctl = AdaptiveEntropyController()
    with pytest.raises(ValueError):
        ctl.update(float("nan"))
    assert ctl.value == 0.0


@FAST
@given(
    st.lists(st.floats(0.0, 2.0), max_size=60),
    st.floats(0.0, 0.01),
    st.floats(0.0, 0.02),
    st.one_of(st.none(), st.floats(0.0, 0.05)),
    st.floats(0.0, 0.1),
)
def test_controller_stays_within_bounds(entropies, delta, coef_min, extra, target):
    coef_max = None if extra is None else coef_min + extra
    ctl = AdaptiveEntropyController(
        target=target, delta=delta, coef_min=coef_min, coef_max=coef_max, initial=coef_min
    )
    upper = math.inf if coef_max is None else coef_max
    for e in entropies:
        previous = ctl.value
        alpha = ctl.update(e)
        assert coef_min <= ctl.value <= upper
        # alpha is either the previous in-range value (below target) or exactly 0
        assert alpha == (previous if e < target else 0.0)


# --- FixedEntropyCoef -----------------------------------------------------------------


def test_fixed_coef_ignores_entropy():
    fixed = FixedEntropyCoef(0.002)
    assert fixed.coef == 0.002
    assert [fixed.update(e) for e in (0.0, 5.0, 0.1)] == [0.002, 0.002, 0.002]
    assert fixed.value == 0.002
    other = FixedEntropyCoef(0.0)
    other.load_state_dict(json.loads(json.dumps(fixed.state_dict())))
    assert other.coef == 0.002
