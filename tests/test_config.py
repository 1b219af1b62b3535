from __future__ import annotations

from pathlib import Path

import pytest

from or1.config import apply_override, load_config, load_saved_config, preset_names, save_config
from or1.errors import ConfigError


def test_default_preset_carries_paper_defaults() -> None:
    cfg = load_config("tiny-arith")
    assert cfg.preset == "tiny-arith"
    assert (cfg.algo.clip_low, cfg.algo.clip_high) == (0.2, 0.2)
    assert cfg.algo.kl_beta == 0.0
    assert cfg.algo.aggregation == "token-mean"
    assert cfg.algo.truncation == "keep"
    assert cfg.rollout.temperature == 1.0 and cfg.rollout.top_p == 1.0
    assert cfg.optim.betas == (0.9, 0.999) and cfg.optim.weight_decay == 0.01
    assert cfg.optim.grad_clip == 1.0
    assert cfg.algo.entropy.delta == 0.005 and cfg.algo.entropy.coef_max is None
    lengths = [s.max_response_length for s in cfg.stages]
    assert len(lengths) >= 2 and lengths == sorted(lengths) and lengths[0] < lengths[-1]


def test_dotted_overrides_parse_yaml_values() -> None:
    cfg = load_config(
        "tiny-arith",
        ["algo.clip_high=0.265", "stages.0.group_size=16", "eval.benchmarks=[aime24,aime25]"],
    )
    assert cfg.algo.clip_high == 0.265
    assert cfg.stages[0].group_size == 16
    assert cfg.eval.benchmarks == ["aime24", "aime25"]


def test_unknown_key_names_the_key_and_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("tiny-arith", ["algo.clip_hgh=0.3"])
    message = str(info.value)
    assert "algo.clip_hgh" in message and "clip_high" in message and "clip_low" in message


def test_bad_literal_lists_allowed_values() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("tiny-arith", ["algo.aggregation=mean"])
    message = str(info.value)
    assert "algo.aggregation" in message and "token-mean" in message and "'mean'" in message


def test_bad_number_and_bad_index() -> None:
    with pytest.raises(ConfigError, match=r"algo\.clip_low"):
        load_config("tiny-arith", ["algo.clip_low=-1"])
    with pytest.raises(ConfigError, match="not an index"):
        load_config("tiny-arith", ["stages.7.steps=3"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("tiny-arith", ["algo.clip_low"])


def test_mini_batch_must_divide_batch() -> None:
    with pytest.raises(ConfigError, match="mini_batch_size"):
        load_config("tiny-arith", ["stages.0.mini_batch_size=5"])


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ConfigError, match="tiny-arith"):
        load_config("no-such-preset")
    assert "tiny-arith" in preset_names()


def test_apply_override_creates_sections() -> None:
    data: dict = {}
    apply_override(data, "algo.entropy.target=0.3")
    assert data == {"algo": {"entropy": {"target": 0.3}}}


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config("tiny-arith", ["algo.clip_high=0.28"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_saved_config(tmp_path / "config.yaml")
    assert again == cfg
    assert load_saved_config(tmp_path / "config.yaml", ["train.max_steps=3"]).train.max_steps == 3
