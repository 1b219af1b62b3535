from __future__ import annotations

import pytest
import torch

from or1.config import AlgoConfig
from or1.engine.policy import add_stats, return_cached_memory
from or1.objective import magic_loss
from or1.types import BatchTotals


def test_update_is_invariant_to_micro_batching(small_policy, ragged_batch) -> None:
    """Token-mean over the mini-batch: 1 micro-batch of 6 == 4 micro-batches (2+2+1+1)."""
    loss_fn = magic_loss(AlgoConfig(), entropy_coef=0.01)
    results = []
    for micro in (6, 2, 1):
        policy = small_policy(micro, layers=1)
        batch = ragged_batch(policy.model.config.vocab_size)
        policy.update(batch, loss_fn, mini_batches=[torch.arange(6)])
        results.append(torch.cat([p.detach().flatten() for p in policy.model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)
    assert torch.allclose(results[0], results[2], atol=1e-6)


def test_positive_advantage_raises_its_tokens_logprob(small_policy, ragged_batch) -> None:
    policy = small_policy(6, layers=1)
    batch = ragged_batch(policy.model.config.vocab_size)
    before = policy.logprobs(batch)
    loss_fn = magic_loss(AlgoConfig(), entropy_coef=0.0)
    for _ in range(3):
        policy.update(batch, loss_fn, mini_batches=[torch.arange(6)])
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


def test_an_update_gives_the_allocators_cache_back_for_a_waking_vllm(
    small_policy, ragged_batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU, after every update (not after every optimizer step): a colocated vLLM
    that slept through it allocates outside torch's cache. No GPU here: the CUDA calls
    are recorded, the update itself runs on the CPU."""
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    policy = small_policy(6, layers=1)
    batch = ragged_batch(policy.model.config.vocab_size)
    loss_fn = magic_loss(AlgoConfig(), entropy_coef=0.0)
    policy.update(batch, loss_fn, mini_batches=[torch.arange(3), torch.arange(3, 6)])
    assert emptied == []  # no CUDA device: nothing to give back
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return_cached_memory()
    assert emptied == [True]
    monkeypatch.setattr("or1.engine.policy.return_cached_memory", lambda: emptied.append("u"))
    policy.update(batch, loss_fn, mini_batches=[torch.arange(3), torch.arange(3, 6)])
    assert emptied == [True, "u"]  # two optimizer steps, one release
