"""Shared fixtures: a small tiny-arith config whose warm-up is cached once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from or1.config import Config, load_config

torch.set_num_threads(2)


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
