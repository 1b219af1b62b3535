"""The loss the policy calls: the entropy bonus, the loss registry (GSPO), truncated
importance sampling and the rollout log-prob gap."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from or1.config import AlgoConfig
from or1.errors import ConfigError
from or1.objective import magic_loss
from or1.types import BatchTotals, RolloutBatch, TokenScores


def _micro(rollout_logp: torch.Tensor, advantages: list[float]) -> RolloutBatch:
    n, t = rollout_logp.shape
    return RolloutBatch(
        input_ids=torch.zeros((n, 2 + t), dtype=torch.long),
        attention_mask=torch.ones((n, 2 + t), dtype=torch.long),
        response_mask=torch.ones((n, t)),
        prompt_length=2,
        rewards=torch.zeros(n),
        advantages=torch.tensor(advantages),
        group_ids=torch.zeros(n, dtype=torch.long),
        truncated=torch.zeros(n, dtype=torch.bool),
        rollout_logp=rollout_logp,
    )


def _loss(algo: AlgoConfig, logp: torch.Tensor, micro: RolloutBatch, coef: float = 0.0):
    entropy = torch.zeros_like(logp)  # entropy term off (coef 0): any entropy
    return magic_loss(algo, entropy_coef=coef)(
        TokenScores(logp, entropy), micro, BatchTotals.of(micro)
    )


BASE = AlgoConfig()
TIS = AlgoConfig(tis_cap=2.0)


def test_rollout_logp_diff_is_the_mean_absolute_gap() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.25], [0.5, 0.5]]))
    rollout = logp + torch.tensor([[0.1, -0.3], [0.0, 0.2]])
    micro = _micro(rollout, [1.0, -1.0])
    micro.response_mask[1, 1] = 0.0  # padding is not counted
    _, stats = _loss(BASE, logp, micro)
    assert math.isclose(float(stats["rollout_logp_diff"]), (0.1 + 0.3 + 0.0) / 3, rel_tol=1e-5)


def test_tis_off_by_default_and_a_noop_when_engines_agree() -> None:
    assert BASE.tis_cap is None
    logp = torch.log(torch.tensor([[0.5, 0.25], [0.2, 0.4]])).requires_grad_()
    micro = _micro(logp.detach().clone(), [1.0, -0.5])
    base, _ = _loss(BASE, logp, micro)
    tis, _ = _loss(TIS, logp, micro)
    assert torch.allclose(base, tis)


def test_tis_weights_each_token_by_the_capped_ratio() -> None:
    """On-policy (old = logp), ratio 1: the per-token loss is -A, so the TIS loss is
    -sum(A_i * min(exp(logp - rollout_logp), cap)) / tokens, computed by hand."""
    p = torch.tensor([[0.5, 0.25], [0.2, 0.4]])
    q = torch.tensor([[0.25, 0.25], [0.8, 0.1]])  # the rollout engine's probabilities
    logp = p.log().requires_grad_()
    micro = _micro(q.log(), [1.0, -0.5])
    loss, _ = _loss(TIS, logp, micro)
    w = [[min(0.5 / 0.25, 2.0), 1.0], [0.2 / 0.8, min(0.4 / 0.1, 2.0)]]  # [[2, 1], [.25, 2]]
    expected = -(1.0 * (w[0][0] + w[0][1]) - 0.5 * (w[1][0] + w[1][1])) / 4
    assert math.isclose(float(loss.detach()), expected, rel_tol=1e-5)
    # The weights are constants: the gradient is the weighted policy gradient.
    loss.backward()
    expected_grad = torch.tensor([[-1.0 * 2.0, -1.0 * 1.0], [0.5 * 0.25, 0.5 * 2.0]]) / 4
    assert torch.allclose(logp.grad, expected_grad, atol=1e-6)


def test_tis_uses_recomputed_old_logprobs_when_present() -> None:
    """Off-policy (N_SGD > 1): the weight is exp(old_logp - rollout_logp), not logp's."""
    logp = torch.log(torch.tensor([[0.5]])).requires_grad_()
    micro = _micro(torch.log(torch.tensor([[0.5]])), [1.0])
    micro.old_logp = torch.log(torch.tensor([[0.25]]))  # weight 0.25 / 0.5 = 0.5
    loss, stats = _loss(TIS, logp, micro)
    # ratio = 0.5 / 0.25 = 2, clipped at 1.2 for A > 0: loss = -1.2 * A * w
    assert math.isclose(float(loss.detach()), -1.2 * 0.5, rel_tol=1e-5)
    assert float(stats["clip_frac"]) == 1.0


@pytest.mark.parametrize("algo", [BASE, TIS])
def test_the_loss_function_ships_to_workers(algo: AlgoConfig) -> None:
    """Ray ships it with cloudpickle (a closure over the config and a float)."""
    import ray.cloudpickle as cloudpickle  # ray is in the dev extra: make test has it

    here = magic_loss(algo, entropy_coef=0.01)
    there = cloudpickle.loads(cloudpickle.dumps(here))
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    micro = _micro(logp - 0.1, [1.0])
    scores = TokenScores(logp, torch.tensor([[0.3, 0.7]]))
    totals = BatchTotals.of(micro)
    assert torch.equal(here(scores, micro, totals)[0], there(scores, micro, totals)[0])
    pickle.dumps(algo)  # the config itself is plain data


def test_the_entropy_bonus_is_subtracted_with_the_coefficient_and_reported() -> None:
    """loss = pg - alpha * token-mean(entropy); entropy_full is the token mean."""
    logp = torch.log(torch.tensor([[0.5, 0.25], [0.5, 0.5]]))
    micro = _micro(logp.clone(), [1.0, -1.0])
    micro.response_mask[1, 1] = 0.0
    entropy = torch.tensor([[1.0, 2.0], [3.0, 100.0]])  # the masked 100 is ignored
    totals = BatchTotals.of(micro)
    loss, stats = magic_loss(BASE, entropy_coef=0.1)(TokenScores(logp, entropy), micro, totals)
    pg, _ = magic_loss(BASE, entropy_coef=0.0)(TokenScores(logp, entropy), micro, totals)
    assert math.isclose(float(loss), float(pg) - 0.1 * (1 + 2 + 3) / 3, rel_tol=1e-6)
    assert math.isclose(float(stats["entropy_full"]), 2.0, rel_tol=1e-6)


def test_gspo_is_selected_by_name_and_an_unknown_loss_is_a_config_error() -> None:
    """algo.loss=gspo: one ratio per sequence, s = exp(mean log ratio); ppo-clip differs."""
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    micro = _micro(logp.clone(), [1.0])
    micro.old_logp = torch.log(torch.tensor([[0.25, 0.25]]))  # token ratios 2 and 1
    gspo = AlgoConfig(loss="gspo", clip_high=0.5, aggregation="seq-mean-token-mean")
    loss, _ = _loss(gspo, logp, micro)
    assert math.isclose(float(loss), -math.sqrt(2.0), rel_tol=1e-6)  # s = sqrt(2 * 1) < 1.5
    ppo, _ = _loss(AlgoConfig(clip_high=0.5, aggregation="seq-mean-token-mean"), logp, micro)
    assert math.isclose(float(ppo), -(1.5 + 1.0) / 2, rel_tol=1e-6)  # token ratio 2 -> 1.5
    with pytest.raises(ConfigError, match=r"unknown algo.loss 'gsop'.*gspo, ppo-clip"):
        magic_loss(AlgoConfig(loss="gsop"), entropy_coef=0.0)
