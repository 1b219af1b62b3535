"""Shared fixtures: a small tiny-arith config whose warm-up is cached once per session;
small random models, policies and batches for the engine and distributed tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel

from or1.build.models import build_tiny_model, build_tiny_tokenizer
from or1.config import Config, OptimConfig, TinyModelConfig, load_config
from or1.engine.policy import LocalPolicy
from or1.types import RolloutBatch

torch.set_num_threads(2)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (then restore). A reference computed in the
    test process must use the thread count of the workers it is compared with: fp32
    reductions split over another number of threads add up in another order."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def torch_threads() -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """torch_threads(n): a context manager running its block with n torch threads."""
    return _torch_threads


def small_overrides(cache: Path, runs: Path) -> list[str]:
    """A tiny-arith run small enough for tests (seconds), same code path as the default."""
    return [
        f"cache_dir={cache}",
        f"runs_dir={runs}",
        "data.arith.n_train=64",
        "data.arith.n_test=12",
        "model.tiny.hidden_size=64",
        "model.tiny.num_layers=2",
        "model.tiny.intermediate_size=128",
        "warmup.steps=40",
        "warmup.batch_size=32",
        "warmup.n_examples=256",
        "optim.lr=1e-4",
        "stages.0.steps=3",
        "stages.0.batch_size=4",
        "stages.0.mini_batch_size=4",
        "stages.0.group_size=4",
        "stages.1.steps=3",
        "stages.1.batch_size=4",
        "stages.1.mini_batch_size=4",
        "stages.1.group_size=4",
        "eval.samples=2",
        "train.checkpoint_every=2",
        "logging.progress=false",
    ]


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("or1-cache")


@pytest.fixture
def small_args(cache_root: Path, tmp_path: Path) -> list[str]:
    """Overrides for a small run writing under ``tmp_path / "runs"``."""
    return small_overrides(cache_root, tmp_path / "runs")


@pytest.fixture
def small_config(small_args: list[str]) -> Config:
    return load_config("tiny-arith", small_args)


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


def _small_model(layers: int = 2, *, tied: bool = True) -> PreTrainedModel:
    torch.manual_seed(0)
    tok = build_tiny_tokenizer(["abc def 123"] * 10, vocab_size=300)
    size = TinyModelConfig(
        hidden_size=32, num_layers=layers, intermediate_size=64, tie_embeddings=tied
    )
    return build_tiny_model(size, tok)


@pytest.fixture(scope="session")
def small_model() -> Callable[..., PreTrainedModel]:
    """small_model(layers=2, tied=True): a random Qwen2 (hidden 32, vocab 300), the same
    weights every call; ``tied=False``: separate embedding and LM head (as 7B/32B)."""
    return _small_model


def _small_policy(micro: int, layers: int = 2) -> LocalPolicy:
    return LocalPolicy(_small_model(layers), OptimConfig(lr=1e-3), micro_batch_size=micro)


@pytest.fixture(scope="session")
def small_policy() -> Callable[..., LocalPolicy]:
    """small_policy(micro, layers=2): a fresh LocalPolicy over a 300-token random model,
    the same weights every call."""
    return _small_policy


def _ragged_batch(vocab: int, n: int = 6, p: int = 5, t: int = 7) -> RolloutBatch:
    """n <= 7 rows in groups of two (the 7th alone), ragged response masks, a padded
    prompt, random sampling log-probs."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (n, p + t), generator=gen)
    mask = torch.ones((n, t))
    mask[0, 4:] = 0
    mask[3, 2:] = 0
    if n > 6:
        mask[6, 1:] = 0
    attn = torch.ones_like(ids)
    attn[1, :2] = 0
    return RolloutBatch(
        input_ids=ids,
        attention_mask=attn,
        response_mask=mask,
        prompt_length=p,
        rewards=torch.tensor([1.0, 0, 1, 0, 1, 0, 1][:n]),
        advantages=torch.tensor([1.0, -1, 0.5, -0.5, 2, -2, 0.7][:n]),
        group_ids=torch.tensor([0, 0, 1, 1, 2, 2, 3][:n]),
        truncated=torch.zeros(n, dtype=torch.bool),
        rollout_logp=-torch.rand((n, t), generator=gen) * mask,
    )


@pytest.fixture(scope="session")
def ragged_batch() -> Callable[..., RolloutBatch]:
    """ragged_batch(vocab, n=6, p=5, t=7): see _ragged_batch."""
    return _ragged_batch
