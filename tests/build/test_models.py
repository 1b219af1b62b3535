"""Local HF causal-LM directories (model.path): tiny random Qwen2 and Llama models saved to
a temp dir with a chat-template tokenizer; load, generate once, score once. No download."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from or1.batch import build_batch
from or1.build import encode_prompt
from or1.build.models import build_tiny_model, build_tiny_tokenizer, load_pretrained
from or1.config import ModelConfig, OptimConfig, TinyModelConfig, load_config
from or1.data.problem import Problem
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.policy import LocalPolicy
from or1.engine.rollout import SamplingParams, stop_token_ids
from or1.errors import ConfigError

CORPUS = ["What is 12 + 30? Think step by step. \\boxed{42} <think> so </think>"] * 20
# A Llama-3-style template with its own special tokens (not ChatML like the tiny Qwen2).
LLAMA_TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
LLAMA_SPECIALS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def tiny_tokenizer(arch: str) -> PreTrainedTokenizerFast:
    tok = build_tiny_tokenizer(CORPUS, vocab_size=300, extra_tokens=("<think>", "</think>"))
    if arch == "llama":
        tok.add_special_tokens({"additional_special_tokens": LLAMA_SPECIALS})
        tok.eos_token = "<|eot_id|>"
        tok.chat_template = LLAMA_TEMPLATE
    return tok


def save_tiny_model(path: Path, arch: str) -> Path:
    """A random-weight model + tokenizer with a chat template, as save_pretrained writes."""
    torch.manual_seed(0)
    tok = tiny_tokenizer(arch)
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            bos_token_id=None,
        )
        model = LlamaForCausalLM(config)
    else:
        dims = TinyModelConfig(hidden_size=32, num_layers=2, intermediate_size=64)
        model = build_tiny_model(dims, tok)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp(request.param), request.param)


def test_load_generate_and_score_agree(model_dir: Path) -> None:
    """One generate and one policy log-prob pass: the policy's full forward reproduces the
    sampler's incremental (KV-cached) log-probabilities, in fp32 on CPU."""
    model, tok = load_pretrained(model_dir, ModelConfig(path=str(model_dir)))
    assert next(model.parameters()).dtype == torch.float32
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    problem = Problem("p", [{"role": "user", "content": "What is 12 + 30?"}], "42")
    prompt = encode_prompt(tok, problem)
    assert tok.decode(prompt).endswith(
        ("<|im_start|>assistant\n", "assistant<|end_header_id|>\n\n")
    )
    engine = HFRolloutEngine(
        model, pad_id=tok.pad_token_id, stop_ids=stop_token_ids(tok, model), seed=0
    )
    rollouts = engine.generate([prompt, prompt[:-3]], SamplingParams(n=2, max_tokens=6))
    assert len(rollouts) == 4 and all(1 <= len(r) <= 6 for r in rollouts.response_ids)
    cfg = load_config("tiny-arith", ["algo.reject_uniform_groups=false"])
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    batch, _ = build_batch(rollouts, rewards, pad_id=tok.pad_token_id, cfg=cfg)
    assert batch is not None
    policy = LocalPolicy(model, OptimConfig(), micro_batch_size=2)
    logp = policy.logprobs(batch)
    mask = batch.response_mask.bool()
    assert torch.allclose(logp[mask], batch.rollout_logp[mask], atol=1e-4)


def test_stop_ids_follow_the_tokenizer_eos() -> None:
    llama_tok = tiny_tokenizer("llama")
    qwen_tok = tiny_tokenizer("qwen2")
    model = build_tiny_model(TinyModelConfig(hidden_size=16, num_layers=1), qwen_tok)
    eot = llama_tok.convert_tokens_to_ids("<|eot_id|>")
    assert llama_tok.eos_token_id == eot and eot in stop_token_ids(llama_tok, model)


def checkpointing(model: torch.nn.Module) -> bool:
    # is_gradient_checkpointing before transformers 5.2x (deprecated after)
    if hasattr(type(model), "is_activation_checkpointing"):
        return bool(model.is_activation_checkpointing)
    return bool(model.is_gradient_checkpointing)


def test_gradient_checkpointing_setting_trains(tmp_path: Path) -> None:
    path = save_tiny_model(tmp_path / "m", "qwen2")
    model, _ = load_pretrained(path, ModelConfig(path=str(path), gradient_checkpointing=True))
    assert checkpointing(model)
    plain, _ = load_pretrained(path, ModelConfig(path=str(path)))
    assert not checkpointing(plain)
    ids = torch.randint(3, 100, (2, 8))
    for m in (model, plain):
        m.train()
        m(input_ids=ids, labels=ids).loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    plain_grads = [p.grad for p in plain.parameters() if p.grad is not None]
    assert len(grads) == len(plain_grads) > 0
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, plain_grads, strict=True))


def test_a_tokenizer_without_chat_template_is_a_config_error(tmp_path: Path) -> None:
    path = save_tiny_model(tmp_path / "m", "qwen2")
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        file = path / name
        if name.endswith(".json"):
            import json

            data = json.loads(file.read_text())
            data.pop("chat_template", None)
            file.write_text(json.dumps(data))
        else:
            file.unlink(missing_ok=True)
    with pytest.raises(ConfigError, match=r"has no chat template.*model\.chat_template"):
        load_pretrained(path, ModelConfig(path=str(path)))
    template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    _, tok = load_pretrained(path, ModelConfig(path=str(path), chat_template=template))
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "hi\n"


def test_a_directory_without_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no config\.json"):
        load_pretrained(tmp_path, ModelConfig(path=str(tmp_path)))
