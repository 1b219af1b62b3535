"""The policy runs each group's shared prompt once: same log-probs and gradients."""

from __future__ import annotations

import torch

from or1.config import AlgoConfig
from or1.engine.micro import shared_prompts, trim_padding
from or1.objective import magic_loss


def test_shared_prompts_detects_groups_and_refuses_mixed_prompts(grouped_batch) -> None:
    batch = grouped_batch(100)
    first, group = shared_prompts(batch)
    assert first.tolist() == [0, 4, 8] and group.tolist() == [i // 4 for i in range(12)]
    batch.input_ids[5, 3] += 1  # one row of group 1 with another prompt
    assert shared_prompts(batch) is None


def test_shared_prompt_logprobs_and_update_equal_the_full_forward(
    grouped_batch, small_policy
) -> None:
    results = []
    for share, micro in ((False, 12), (True, 12), (True, 5)):
        policy = small_policy(micro)
        policy.share_prompts = share
        batch = grouped_batch(policy.model.config.vocab_size)
        logp = policy.logprobs(batch)
        loss_fn = magic_loss(AlgoConfig(), entropy_coef=0.01)
        policy.update(batch, loss_fn, mini_batches=[torch.arange(len(batch))])
        params = torch.cat([p.detach().flatten() for p in policy.model.parameters()])
        results.append((logp * batch.response_mask, params))
    for logp, params in results[1:]:
        assert torch.allclose(logp, results[0][0], atol=1e-5)
        assert torch.allclose(params, results[0][1], atol=1e-6)


def test_trim_padding_keeps_the_scored_columns(grouped_batch) -> None:
    batch = grouped_batch(100)
    batch.attention_mask[:, :1] = 0  # a column of padding in every prompt
    batch.response_mask[:, -1] = 0
    batch.attention_mask[:, -1] = 0  # and in every response
    trimmed = trim_padding(batch)
    assert trimmed.prompt_length == batch.prompt_length - 1
    assert trimmed.response_mask.shape[1] == batch.response_mask.shape[1] - 1
    assert torch.equal(trimmed.response_ids, batch.response_ids[:, :-1])
