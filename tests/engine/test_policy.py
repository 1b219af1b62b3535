from __future__ import annotations

import pytest
import torch

from or1.engine.policy import BatchTotals, add_stats, gather_logprobs
from or1.objective import ObjectiveSettings, magic_loss


def test_gather_logprobs_matches_log_softmax() -> None:
    logits = torch.randn(2, 3, 11)
    ids = torch.randint(11, (2, 3))
    expected = torch.log_softmax(logits, -1).gather(-1, ids[..., None]).squeeze(-1)
    assert torch.allclose(gather_logprobs(logits, ids, chunk=4), expected, atol=1e-6)


def test_update_is_invariant_to_micro_batching(small_policy, ragged_batch) -> None:
    """Token-mean over the mini-batch: 1 micro-batch of 6 == 4 micro-batches (2+2+1+1)."""
    settings = ObjectiveSettings(0.2, 0.2, "token-mean", entropy_coef=0.01)
    results = []
    for micro in (6, 2, 1):
        policy = small_policy(micro, layers=1)
        batch = ragged_batch(policy.model.config.vocab_size)
        policy.update(batch, magic_loss(settings), mini_batches=[torch.arange(6)])
        results.append(torch.cat([p.detach().flatten() for p in policy.model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)
    assert torch.allclose(results[0], results[2], atol=1e-6)


def test_positive_advantage_raises_its_tokens_logprob(small_policy, ragged_batch) -> None:
    policy = small_policy(6, layers=1)
    batch = ragged_batch(policy.model.config.vocab_size)
    before = policy.logprobs(batch)
    settings = ObjectiveSettings(0.2, 0.2, "token-mean", entropy_coef=0.0)
    for _ in range(3):
        policy.update(batch, magic_loss(settings), mini_batches=[torch.arange(6)])
    after = policy.logprobs(batch)
    gain = ((after - before) * batch.response_mask).sum(-1) / batch.response_mask.sum(-1)
    assert float(gain[4]) > 0 > float(gain[5])  # advantages +2 and -2


def test_batch_totals_count_tokens_and_nonempty_rows(ragged_batch) -> None:
    batch = ragged_batch(100)
    batch.response_mask[2] = 0
    totals = BatchTotals.of(batch)
    assert totals.tokens == 4 + 7 + 0 + 2 + 7 + 7 and totals.sequences == 5


def test_add_stats_weights_means_and_keeps_maxima() -> None:
    total: dict[str, float] = {}
    add_stats(total, {"clip_frac": 0.5, "ratio_max": 1.2}, weight=0.75)
    add_stats(total, {"clip_frac": 0.1, "ratio_max": 1.5}, weight=0.25)
    assert total == {"clip_frac": pytest.approx(0.75 * 0.5 + 0.25 * 0.1), "ratio_max": 1.5}
