"""Small random models and batches shared by the engine tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from or1.config import ArithConfig, OptimConfig, TinyModelConfig
from or1.data.tasks import arith
from or1.engine.models import build_tiny_model, build_tiny_tokenizer
from or1.engine.policy import LocalPolicy, RolloutBatch

TinyLM = tuple[PreTrainedTokenizerFast, PreTrainedModel, list[list[int]]]


@pytest.fixture(scope="session")
def tiny() -> TinyLM:
    """(tokenizer, random 2-layer Qwen2, 5 tiny-arith chat prompts as token ids).

    Shared by the session: tests that change the weights work on a copy.
    """
    torch.manual_seed(0)
    tok = build_tiny_tokenizer(
        arith.tokenizer_corpus(ArithConfig()), extra_tokens=(arith.THINK_OPEN, arith.THINK_CLOSE)
    )
    model = build_tiny_model(
        TinyModelConfig(hidden_size=64, num_layers=2, intermediate_size=128), tok
    )
    train, _ = arith.generate_splits(ArithConfig(n_train=20, n_test=2), seed=0)
    prompts = [
        tok.apply_chat_template(p.prompt, add_generation_prompt=True, tokenize=True)["input_ids"]
        for p in train[:5]
    ]
    return tok, model, prompts


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


@pytest.fixture(scope="session")
def grouped_batch() -> Callable[..., RolloutBatch]:
    """grouped_batch(vocab, groups=3, g=4, p=6, t=5): a batch whose groups share prompts."""
    return _grouped_batch


def _small_policy(micro: int, layers: int = 2) -> LocalPolicy:
    torch.manual_seed(0)
    tok = build_tiny_tokenizer(["abc def 123"] * 10, vocab_size=300)
    model = build_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=layers, intermediate_size=64), tok
    )
    return LocalPolicy(model, OptimConfig(lr=1e-3), micro_batch_size=micro)


@pytest.fixture(scope="session")
def small_policy() -> Callable[..., LocalPolicy]:
    """small_policy(micro, layers=2): a fresh LocalPolicy over a 300-token random model,
    the same weights every call."""
    return _small_policy
