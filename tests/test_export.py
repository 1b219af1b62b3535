"""or1 export: a clean HF model directory that transformers loads and vLLM can serve
(its files), with a model card of the run; nothing of the training state."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from or1.build.models import build_tiny_tokenizer
from or1.checkpoint import global_rng_state, save_checkpoint, training_state_writer
from or1.cli import main
from or1.config import Config
from or1.engine.policy import LocalPolicy
from or1.engine.rollout import IM_END
from or1.errors import CheckpointError, ConfigError
from or1.export import export_checkpoint
from or1.rundir import config_text, write_config

EVALS = [
    {"step": 0, "label": "base", "k": 2, "avg_at_k": 0.25, "pass_at_k": {"2": 0.5}, "problems": 12},
    {
        "step": 1,
        "label": "step_1",
        "k": 2,
        "avg_at_k": 0.3,
        "pass_at_k": {"2": 0.6},
        "problems": 12,
    },
    {
        "step": 2,
        "label": "final",
        "k": 2,
        "avg_at_k": 0.5,
        "pass_at_k": {"2": 0.75},
        "problems": 12,
    },
]


@pytest.fixture
def run(tmp_path: Path, small_policy: Callable[..., LocalPolicy], small_config: Config) -> Path:
    """A run directory as or1 train leaves it: config, checkpoint at step 2, evals."""
    run = tmp_path / "runs" / "demo"
    tokenizer = build_tiny_tokenizer(["abc def 123"] * 10, vocab_size=300)
    policy = small_policy(4)
    # As Qwen's models: the model's eos <|endoftext|> besides the chat's <|im_end|>.
    policy.model.generation_config.eos_token_id = [tokenizer.pad_token_id]
    cfg = small_config.model_copy(deep=True)
    cfg.algo.clip_high = 0.28
    save_checkpoint(
        run / "ckpt",
        step=2,
        model=policy.model,
        tokenizer=tokenizer,
        write_training_state=training_state_writer(policy, step=2),
        rng={"global": global_rng_state(), "engine": {}},
        state={"stage_index": 0},
        config_text=config_text(cfg),
        keep=2,
    )
    write_config(run, cfg)
    (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in EVALS))
    (run / "summary.json").write_text(json.dumps({"wall_seconds": 123.4, "steps": 2}))
    return run


def test_export_writes_a_clean_model_directory(run: Path, tmp_path: Path) -> None:
    out = export_checkpoint(run, tmp_path / "export")
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "README.md",
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert not list(tmp_path.glob("export.tmp*"))
    # transformers loads it, with the checkpoint's weights and the chat template.
    model = AutoModelForCausalLM.from_pretrained(out)
    saved = AutoModelForCausalLM.from_pretrained(run / "ckpt" / "latest" / "model")
    for name, value in saved.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name
    tokenizer = AutoTokenizer.from_pretrained(out)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert chat.startswith("<|im_start|>user\nhi")
    # The stop tokens the run sampled with: the model's eos and <|im_end|>.
    generation = GenerationConfig.from_pretrained(out)
    stops = [
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        tokenizer.convert_tokens_to_ids(IM_END),
    ]
    assert generation.eos_token_id == sorted(stops) and len(set(stops)) == 2
    assert generation.do_sample and generation.max_new_tokens == 64  # the last stage's length


def test_the_export_is_shaped_for_vllm(run: Path, tmp_path: Path) -> None:
    """What vLLM reads (it is not installed here): config.json naming the architecture,
    safetensors holding every weight, the fast tokenizer's files."""
    out = export_checkpoint(run, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["model_type"] == "qwen2"
    with safe_open(str(out / "model.safetensors"), framework="pt") as fh:
        keys = set(fh.keys())
    model = AutoModelForCausalLM.from_pretrained(out)
    expected = set(model.state_dict()) - {"lm_head.weight"}  # tied to the embeddings
    assert config["tie_word_embeddings"] and keys == expected
    assert json.loads((out / "tokenizer.json").read_text())["model"]["type"] == "BPE"


def test_the_model_card_holds_recipe_data_steps_and_evaluations(run: Path, tmp_path: Path) -> None:
    card = (export_checkpoint(run, tmp_path / "export") / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "# demo (step 2)" in card and "steps trained: 2 of 6" in card
    assert "wall time of the run: 123 s" in card
    assert "| algo.clip_high | 0.28 |" in card and "| optim.lr | 0.0001 |" in card
    assert "| 1 | 3 | 64 | 4 | 4 | 4 |" in card  # stage 1: steps, length, sizes
    assert "built-in task tiny-arith" in card
    # base and the exported step; not the step-1 evaluation of other weights.
    assert "| 0 | base | held-out split | 12 | 2 | 0.2500 | 0.5000 |" in card
    assert "| 2 | final | held-out split | 12 | 2 | 0.5000 | 0.7500 |" in card
    assert "step_1" not in card


def test_export_refuses_a_damaged_checkpoint_or_a_used_directory(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="already exists"):
        export_checkpoint(run, used)
    assert sorted(p.name for p in used.iterdir()) == ["keep.txt"]
    weights = run / "ckpt" / "step_2" / "model" / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.seek(weights.stat().st_size // 2)
        fh.write(os.urandom(4096))
    with pytest.raises(CheckpointError, match="damaged"):
        export_checkpoint(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["export", str(run), str(tmp_path / "out")]) == 2
    assert "Traceback" not in capsys.readouterr().err
