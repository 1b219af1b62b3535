"""The loss the policy calls: truncated importance sampling and the rollout log-prob gap."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from or1.engine.policy import BatchTotals, RolloutBatch
from or1.objective import ObjectiveSettings, magic_loss


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


def _loss(settings: ObjectiveSettings, logp: torch.Tensor, micro: RolloutBatch):
    logits = torch.zeros((*logp.shape, 5))  # entropy term off (coef 0): any logits
    return magic_loss(settings)(logp, logits, micro, BatchTotals.of(micro))


BASE = ObjectiveSettings(0.2, 0.2, "token-mean", entropy_coef=0.0)
TIS = ObjectiveSettings(0.2, 0.2, "token-mean", entropy_coef=0.0, tis_cap=2.0)


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


@pytest.mark.parametrize("settings", [BASE, TIS])
def test_the_loss_function_ships_to_workers(settings: ObjectiveSettings) -> None:
    """Ray ships it with cloudpickle (a closure over frozen settings)."""
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    fn = cloudpickle.loads(cloudpickle.dumps(magic_loss(settings)))
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    micro = _micro(logp - 0.1, [1.0])
    assert torch.allclose(
        _loss(settings, logp, micro)[0],
        fn(logp, torch.zeros(1, 2, 5), micro, BatchTotals.of(micro))[0],
    )
    pickle.dumps(settings)  # the settings themselves are plain data
