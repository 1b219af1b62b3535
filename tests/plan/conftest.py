"""config.json files of Qwen2.5-7B and -32B shapes (the published architectures; no
weights, nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

QWEN = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "vocab_size": 152064,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
}
Q7B = {**QWEN, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28}
Q7B |= {"num_attention_heads": 28, "num_key_value_heads": 4}
Q32B = {**QWEN, "hidden_size": 5120, "intermediate_size": 27648, "num_hidden_layers": 64}
Q32B |= {"num_attention_heads": 40, "num_key_value_heads": 8}


def _write(root: Path, name: str, config: dict) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.fixture(scope="session")
def q7b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only a Qwen2.5-7B-shaped config.json."""
    return _write(tmp_path_factory.mktemp("models"), "q7b", Q7B)


@pytest.fixture(scope="session")
def q32b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only a Qwen2.5-32B-shaped config.json."""
    return _write(tmp_path_factory.mktemp("models"), "q32b", Q32B)
