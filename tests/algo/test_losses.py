"""Tests for or1.algo.losses: policy_loss, gspo_loss, the registry, aggregate_tokens,
loss_normalizer, kl_penalty."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from or1.algo import (
    AGGREGATIONS,
    POLICY_LOSSES,
    aggregate_tokens,
    gspo_loss,
    kl_penalty,
    loss_normalizer,
    policy_loss,
    register_policy_loss,
)

FAST = settings(max_examples=40, deadline=None)
F64 = torch.float64


def hand_batch():
    """B=2, T=3. Ratios [[1.5, 0.5, 1.0], [1.1, 0.7, pad]], advantages [1, -1].

    Per-token loss max(-A r, -A clip(r, 0.8, 1.2)):
      row 0 (A=1):  r=1.5: max(-1.5, -1.2) = -1.2 (clipped); r=0.5: max(-0.5, -0.8) = -0.5;
                    r=1.0: -1.0                                  -> row sum -2.7
      row 1 (A=-1): r=1.1: max(1.1, 1.1) = 1.1; r=0.7: max(0.7, 0.8) = 0.8 (clipped)
                                                                 -> row sum 1.9
    The padded position holds NaN log-probs, which must be ignored.
    """
    old = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -1.2, 0.0]], dtype=F64)
    ratios = torch.tensor([[1.5, 0.5, 1.0], [1.1, 0.7, 1.0]], dtype=F64)
    logp = old + ratios.log()
    logp[1, 2] = float("nan")
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    return logp, old, torch.tensor([1.0, -1.0], dtype=F64), mask


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("token-mean", (-2.7 + 1.9) / 5),  # -0.16
        ("seq-mean-token-mean", (-2.7 / 3 + 1.9 / 2) / 2),  # (-0.9 + 0.95) / 2 = 0.025
        ("seq-mean-token-sum", (-2.7 + 1.9) / 2),  # -0.4
    ],
)
def test_hand_computed_loss(aggregation, expected):
    logp, old, adv, mask = hand_batch()
    loss, _ = policy_loss(logp, old, adv, mask, aggregation=aggregation)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_hand_computed_stats():
    logp, old, adv, mask = hand_batch()
    _, stats = policy_loss(logp, old, adv, mask)
    assert stats["clip_frac"].item() == pytest.approx(2 / 5)  # tokens (0, 0) and (1, 1)
    # (0, 0): ratio 1.5, A = +1 clipped at 1.2 (high side); (1, 1): ratio 0.7, A = -1
    # clipped at 0.8 (low side).
    assert stats["clip_frac_high"].item() == pytest.approx(1 / 5)
    assert stats["clip_frac_low"].item() == pytest.approx(1 / 5)
    assert stats["ratio_mean"].item() == pytest.approx((1.5 + 0.5 + 1.0 + 1.1 + 0.7) / 5)
    assert stats["ratio_max"].item() == pytest.approx(1.5)
    # k1: mean(old - logp) = -mean(log r) over the 5 response tokens
    k1 = -(math.log(1.5) + math.log(0.5) + 0.0 + math.log(1.1) + math.log(0.7)) / 5
    assert stats["approx_kl"].item() == pytest.approx(k1)  # 0.10981
    assert not any(v.requires_grad for v in stats.values())
    assert all(v.dim() == 0 for v in stats.values())


def test_gradient_is_zero_on_clipped_tokens():
    # d/dlogp of -A r is -A r; token-mean divides by 5 tokens; clipped tokens get 0:
    # row 0: [0 (clipped), -0.5 / 5, -1.0 / 5]; row 1: [1.1 / 5, 0 (clipped), 0 (pad)]
    logp, old, adv, mask = hand_batch()
    logp.requires_grad_(True)
    loss, _ = policy_loss(logp, old, adv, mask)
    loss.backward()
    expected = torch.tensor([[0.0, -0.1, -0.2], [0.22, 0.0, 0.0]], dtype=F64)
    assert torch.allclose(logp.grad, expected, atol=1e-12)


def test_clip_higher_widens_only_the_upper_bound():
    # ratio 1.25, A = 1: eps_high 0.2 clips to -1.2; eps_high 0.28 leaves -1.25.
    # ratio 0.75, A = -1: eps_low 0.2 clips to 0.8 under both settings.
    old = torch.zeros(1, 2, dtype=F64)
    logp = torch.log(torch.tensor([[1.25, 0.75]], dtype=F64))
    adv = torch.tensor([[1.0, -1.0]], dtype=F64)
    mask = torch.ones(1, 2)
    default, _ = policy_loss(logp, old, adv, mask, aggregation="seq-mean-token-sum")
    higher, _ = policy_loss(logp, old, adv, mask, clip_high=0.28, aggregation="seq-mean-token-sum")
    assert default.item() == pytest.approx(-1.2 + 0.8)
    assert higher.item() == pytest.approx(-1.25 + 0.8)


def test_sequence_advantages_broadcast_and_mask_dtypes():
    logp, old, adv, mask = hand_batch()
    base, _ = policy_loss(logp, old, adv, mask)
    per_token, _ = policy_loss(logp, old, adv[:, None].expand(2, 3), mask)
    float_mask, _ = policy_loss(logp, old, adv, mask.double())
    assert per_token.item() == base.item()
    assert float_mask.item() == base.item()


def test_empty_mask_gives_zero_loss_and_stats():
    logp = torch.randn(2, 3)
    loss, stats = policy_loss(logp, logp + 1, torch.ones(2), torch.zeros(2, 3))
    assert loss.item() == 0.0
    assert {k: v.item() for k, v in stats.items()} == {
        "clip_frac": 0.0,
        "clip_frac_high": 0.0,
        "clip_frac_low": 0.0,
        "approx_kl": 0.0,
        "ratio_mean": 0.0,
        "ratio_max": 0.0,
    }


def test_unknown_aggregation_lists_allowed_modes():
    with pytest.raises(ValueError, match="seq-mean-token-sum"):
        aggregate_tokens(torch.zeros(1, 1), torch.ones(1, 1), "sum")
    logp = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="token-mean"):
        policy_loss(logp, logp, torch.ones(1), torch.ones(1, 1), aggregation="mean")
    assert AGGREGATIONS == ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


def test_bad_shapes_and_normalizer_raise():
    logp = torch.zeros(2, 3)
    with pytest.raises(ValueError):
        policy_loss(logp, torch.zeros(2, 4), torch.ones(2), torch.ones(2, 3))
    with pytest.raises(ValueError):
        policy_loss(logp, logp, torch.ones(3), torch.ones(2, 3))
    with pytest.raises(ValueError):
        aggregate_tokens(logp, torch.ones(2, 3), normalizer=0.0)


def test_seq_modes_skip_fully_masked_rows():
    # row 1 has no response token: seq-mean-token-mean = mean([(2 + 4) / 2]) = 3, not 1.5
    values = torch.tensor([[2.0, 4.0], [9.0, 9.0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    assert aggregate_tokens(values, mask, "seq-mean-token-mean").item() == 3.0
    assert aggregate_tokens(values, mask, "seq-mean-token-sum").item() == 6.0
    assert loss_normalizer(mask, "seq-mean-token-sum") == 1.0
    assert loss_normalizer(mask, "token-mean") == 2.0


def test_normalizer_replaces_denominator():
    # sum of masked values 1 + 3 + 5 = 9; token-mean with normalizer 10 -> 0.9
    # seq-mean-token-mean: (2 + 5) / normalizer 7 -> 1.0
    values = torch.tensor([[1.0, 3.0], [5.0, 100.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    assert aggregate_tokens(values, mask, normalizer=10.0).item() == pytest.approx(0.9)
    got = aggregate_tokens(values, mask, "seq-mean-token-mean", normalizer=7.0)
    assert got.item() == pytest.approx(1.0)


def looped_policy_loss(logp, old, adv, mask, clip_low, clip_high, aggregation):
    """Reference: plain Python over tokens, straight from the formulas."""
    seq_values, total, tokens = [], 0.0, 0
    for b in range(len(logp)):
        row = []
        for t in range(len(logp[b])):
            if mask[b][t]:
                r = math.exp(logp[b][t] - old[b][t])
                a = adv[b]
                row.append(max(-a * r, -a * min(max(r, 1 - clip_low), 1 + clip_high)))
        total += sum(row)
        tokens += len(row)
        if row:
            seq_values.append(sum(row) / len(row) if aggregation.endswith("mean") else sum(row))
    if aggregation == "token-mean":
        return total / max(tokens, 1)
    return sum(seq_values) / max(len(seq_values), 1)


@st.composite
def loss_batches(draw):
    b, t = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    floats = st.floats(-3.0, 0.0)
    logp = draw(st.lists(floats, min_size=b * t, max_size=b * t))
    old = draw(st.lists(floats, min_size=b * t, max_size=b * t))
    mask = draw(st.lists(st.booleans(), min_size=b * t, max_size=b * t))
    adv = draw(st.lists(st.floats(-3.0, 3.0), min_size=b, max_size=b))
    return (
        torch.tensor(logp, dtype=F64).reshape(b, t),
        torch.tensor(old, dtype=F64).reshape(b, t),
        torch.tensor(adv, dtype=F64),
        torch.tensor(mask).reshape(b, t),
    )


@FAST
@given(
    loss_batches(),
    st.sampled_from(AGGREGATIONS),
    st.floats(0.0, 0.5),
    st.floats(0.0, 0.5),
)
def test_matches_looped_reference(batch, aggregation, clip_low, clip_high):
    logp, old, adv, mask = batch
    loss, _ = policy_loss(
        logp, old, adv, mask, clip_low=clip_low, clip_high=clip_high, aggregation=aggregation
    )
    expected = looped_policy_loss(
        logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), clip_low, clip_high, aggregation
    )
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


@FAST
@given(loss_batches())
def test_token_mean_is_sum_over_count(batch):
    values, _, _, mask = batch
    expected = (values * mask).sum() / max(int(mask.sum()), 1)
    assert aggregate_tokens(values, mask).item() == pytest.approx(expected.item(), abs=1e-12)


@FAST
@given(loss_batches(), st.sampled_from(AGGREGATIONS), st.data())
def test_micro_batches_sum_to_full_batch_loss(batch, aggregation, data):
    logp, old, adv, mask = batch
    full, _ = policy_loss(logp, old, adv, mask, aggregation=aggregation)
    norm = loss_normalizer(mask, aggregation)
    cuts = sorted(
        data.draw(st.sets(st.integers(1, logp.shape[0] - 1))) if logp.shape[0] > 1 else []
    )
    bounds = [0, *cuts, logp.shape[0]]
    total = sum(
        policy_loss(
            logp[i:j], old[i:j], adv[i:j], mask[i:j], aggregation=aggregation, normalizer=norm
        )[0]
        for i, j in itertools.pairwise(bounds)
    )
    assert total.item() == pytest.approx(full.item(), rel=1e-9, abs=1e-12)


# KL penalty: d = ref_logp - logp
#   logp 0, ref -1 (d = -1): k1 = 1, k2 = 0.5, k3 = e^-1 - (-1) - 1 = 0.36788
#   logp -1, ref 0 (d = 1):  k1 = -1, k2 = 0.5, k3 = e - 1 - 1 = 0.71828
#   logp -50, ref 0 (d = 50): k1 = -50, k2 = 1250, k3: d clamped to 20, e^20 - 21 -> 10
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("k1", [1.0, -1.0, -50.0, 0.0]),
        ("k2", [0.5, 0.5, 1250.0, 0.0]),
        ("k3", [math.exp(-1), math.e - 2, 10.0, 0.0]),
    ],
)
def test_kl_penalty_hand_values(kind, expected):
    logp = torch.tensor([[0.0, -1.0, -50.0, float("nan")]], dtype=F64)
    ref = torch.tensor([[-1.0, 0.0, 0.0, 3.0]], dtype=F64)
    mask = torch.tensor([[1, 1, 1, 0]])  # last position is padding
    got = kl_penalty(logp, ref, mask, kind=kind)
    assert torch.allclose(got, torch.tensor([expected], dtype=F64))


def test_kl_penalty_unknown_kind():
    with pytest.raises(ValueError, match="k3"):
        kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), kind="full")


def test_gspo_hand_computed_sequence_ratios_loss_and_gradient():
    """GSPO on hand_batch: s_0 = (1.5 * 0.5 * 1.0)^(1/3) = 0.9086, s_1 = (1.1 * 0.7)^(1/2)
    = 0.8775, both inside [0.8, 1.2]; with seq-mean-token-mean the loss is
    (-A_0 s_0 + -A_1 s_1) / 2 and d loss / d logp_it = -A_i s_i / (|y_i| * 2)."""
    logp, old, adv, mask = hand_batch()
    logp = logp.nan_to_num(0.0).requires_grad_()
    s0, s1 = 0.75 ** (1 / 3), 0.77**0.5
    loss, stats = gspo_loss(logp, old, adv, mask, aggregation="seq-mean-token-mean")
    assert loss.item() == pytest.approx((-s0 + s1) / 2, abs=1e-12)
    assert stats["ratio_mean"].item() == pytest.approx((3 * s0 + 2 * s1) / 5)
    assert stats["clip_frac"].item() == 0.0
    (grad,) = torch.autograd.grad(loss, logp)
    expected = torch.tensor([[-s0 / 6] * 3, [s1 / 4, s1 / 4, 0.0]], dtype=F64)
    assert torch.allclose(grad, expected, atol=1e-12)


def test_gspo_clips_whole_sequences_where_ppo_clips_tokens():
    """One sequence, A = 1, token ratios 2 and 1: PPO clips token 0 only (loss
    -(1.2 + 1) / 2); GSPO's s = sqrt(2) = 1.414 > 1.2 clips the sequence (loss -1.2,
    no gradient to any token)."""
    old = torch.zeros(1, 2, dtype=F64)
    logp = torch.tensor([[math.log(2.0), 0.0]], dtype=F64, requires_grad=True)
    mask, adv = torch.ones(1, 2, dtype=torch.bool), torch.tensor([1.0], dtype=F64)
    ppo, _ = policy_loss(logp, old, adv, mask)
    assert ppo.item() == pytest.approx(-(1.2 + 1.0) / 2)
    gspo, stats = gspo_loss(logp, old, adv, mask)
    assert gspo.item() == pytest.approx(-1.2) and stats["clip_frac"].item() == 1.0
    (grad,) = torch.autograd.grad(gspo, logp)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_the_loss_registry_holds_both_losses_and_refuses_a_taken_name():
    assert POLICY_LOSSES["ppo-clip"] is policy_loss and POLICY_LOSSES["gspo"] is gspo_loss
    with pytest.raises(ValueError, match="already registered"):
        register_policy_loss("gspo", policy_loss)
