"""The start of a run: lengths that fit the model, and a warm-up cache that is written
atomically with its metadata inside and rebuilt (never fatal) when broken."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import PreTrainedModel

from or1.build import check_lengths, load_model, load_problems
from or1.checkpoint.manifest import MANIFEST, manifest_problem
from or1.config import Config, load_config
from or1.errors import ConfigError
from or1.warmup import WARMUP_INFO


def test_check_lengths_names_every_length_that_does_not_fit(
    small_config: Config, small_model: Callable[..., PreTrainedModel]
) -> None:
    model = small_model()
    model.config.max_position_embeddings = 50
    cfg = small_config.model_copy(deep=True)
    cfg.stages[0].max_response_length, cfg.stages[1].max_response_length = 10, 40
    check_lengths(cfg, model.config, [10, 5])  # 10 + 40 = 50: fits exactly
    with pytest.raises(ConfigError) as err:
        check_lengths(cfg, model.config, [11, 5])
    assert "stages.1.max_response_length=40, eval.max_tokens=40" in err.value.message
    assert "longest prompt (11 tokens)" in err.value.message
    assert "stages.0" not in err.value.message
    cfg.eval.max_tokens = 45
    with pytest.raises(ConfigError, match=r"eval\.max_tokens=45"):
        check_lengths(cfg, model.config, [10])


@pytest.fixture
def warm(small_args: list[str], tmp_path: Path) -> Config:
    """A config whose warm-up is quick and cached in this test's own directory."""
    return load_config(
        "tiny-arith", [*small_args, f"cache_dir={tmp_path / 'cache'}", "warmup.steps=3"]
    )


def _entry(cfg: Config) -> Path:
    (entry,) = (cfg.cache_path / "warmup").iterdir()
    return entry


def test_a_warmup_entry_holds_its_metadata_and_manifest(warm: Config) -> None:
    train, _ = load_problems(warm)
    first = load_model(warm, train, show=False)
    entry = _entry(warm)
    assert first.info["cached"] is False and first.info["path"] == str(entry)
    assert manifest_problem(entry) is None
    files = json.loads((entry / MANIFEST).read_text())["files"]
    assert WARMUP_INFO in files and "model.safetensors" in files  # metadata inside
    assert json.loads((entry / WARMUP_INFO).read_text())["params"] == first.info["params"]
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temp dirs left
    again = load_model(warm, train, show=False)
    assert again.info["cached"] is True


@pytest.mark.parametrize("damage", ["garbage", "no metadata", "no manifest", "empty"])
def test_a_broken_warmup_entry_is_rebuilt(
    warm: Config, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    train, _ = load_problems(warm)
    good = load_model(warm, train, show=False)
    # A clone: the loaded weights may be memory-mapped from the file damaged below.
    weights_before = {k: v.clone() for k, v in good.model.state_dict().items()}
    entry = _entry(warm)
    if damage == "garbage":
        weights = entry / "model.safetensors"
        with open(weights, "r+b") as fh:
            fh.seek(weights.stat().st_size // 2)
            fh.write(os.urandom(4096))
    elif damage == "no metadata":
        (entry / WARMUP_INFO).unlink()
    elif damage == "no manifest":  # an entry written before manifests
        (entry / MANIFEST).unlink()
    else:  # a directory left by something else
        for path in entry.iterdir():
            path.unlink()
    with caplog.at_level(logging.WARNING, logger="or1.build"):
        rebuilt = load_model(warm, train, show=False)
    assert rebuilt.info["cached"] is False
    assert f"warm-up cache entry {entry} is broken" in caplog.text
    assert manifest_problem(entry) is None
    for name, value in weights_before.items():  # the same seed: the same model
        assert (value == rebuilt.model.state_dict()[name]).all(), name
