"""The policy runs each group's shared prompt once: same log-probs and gradients."""

from __future__ import annotations

import torch

from or1.config import OptimConfig, TinyModelConfig
from or1.engine.models import build_tiny_model, build_tiny_tokenizer
from or1.engine.policy import LocalPolicy, RolloutBatch, shared_prompts, trim_padding
from or1.objective import ObjectiveSettings, magic_loss


def _grouped_batch(vocab: int, groups: int = 3, g: int = 4, p: int = 6, t: int = 5) -> RolloutBatch:
    """groups x g rows; a group's rows share a (left-padded) prompt; ragged responses."""
    gen = torch.Generator().manual_seed(1)
    n = groups * g
    prompts = torch.randint(3, vocab, (groups, p), generator=gen).repeat_interleave(g, 0)
    ids = torch.cat([prompts, torch.randint(3, vocab, (n, t), generator=gen)], dim=1)
    attn = torch.ones_like(ids)
    attn[g : 2 * g, :2] = 0  # group 1's prompt is 2 tokens shorter
    lengths = torch.randint(1, t + 1, (n,), generator=gen)
    resp = (torch.arange(t)[None] < lengths[:, None]).float()
    attn[:, p:] = resp.long()
    ids[:, p:][resp == 0] = 0
    return RolloutBatch(
        input_ids=ids,
        attention_mask=attn,
        response_mask=resp,
        prompt_length=p,
        rewards=torch.arange(n) % 2 * 1.0,
        advantages=torch.randn(n, generator=gen),
        group_ids=torch.arange(groups).repeat_interleave(g),
        truncated=torch.zeros(n, dtype=torch.bool),
        rollout_logp=torch.zeros((n, t)),
    )


def _policy(micro: int) -> LocalPolicy:
    torch.manual_seed(0)
    tok = build_tiny_tokenizer(["abc def 123"] * 10, vocab_size=300)
    model = build_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=2, intermediate_size=64), tok
    )
    return LocalPolicy(model, OptimConfig(lr=1e-3), micro_batch_size=micro)


def test_shared_prompts_detects_groups_and_refuses_mixed_prompts() -> None:
    batch = _grouped_batch(100)
    first, group = shared_prompts(batch)
    assert first.tolist() == [0, 4, 8] and group.tolist() == [i // 4 for i in range(12)]
    batch.input_ids[5, 3] += 1  # one row of group 1 with another prompt
    assert shared_prompts(batch) is None


def test_shared_prompt_logprobs_and_update_equal_the_full_forward() -> None:
    results = []
    for share, micro in ((False, 12), (True, 12), (True, 5)):
        policy = _policy(micro)
        policy.share_prompts = share
        batch = _grouped_batch(policy.model.config.vocab_size)
        logp = policy.logprobs(batch)
        settings = ObjectiveSettings(0.2, 0.2, "token-mean", entropy_coef=0.01)
        policy.update(batch, magic_loss(settings), mini_batches=[torch.arange(len(batch))])
        params = torch.cat([p.detach().flatten() for p in policy.model.parameters()])
        results.append((logp * batch.response_mask, params))
    for logp, params in results[1:]:
        assert torch.allclose(logp, results[0][0], atol=1e-5)
        assert torch.allclose(params, results[0][1], atol=1e-6)


def test_trim_padding_keeps_the_scored_columns() -> None:
    batch = _grouped_batch(100)
    batch.attention_mask[:, :1] = 0  # a column of padding in every prompt
    batch.response_mask[:, -1] = 0
    batch.attention_mask[:, -1] = 0  # and in every response
    trimmed = trim_padding(batch)
    assert trimmed.prompt_length == batch.prompt_length - 1
    assert trimmed.response_mask.shape[1] == batch.response_mask.shape[1] - 1
    assert torch.equal(trimmed.response_ids, batch.response_ids[:, :-1])
