"""A small random tiny-arith language model shared by the engine tests."""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from or1.build.models import build_tiny_model, build_tiny_tokenizer
from or1.config import ArithConfig, TinyModelConfig
from or1.data.tasks import arith

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
