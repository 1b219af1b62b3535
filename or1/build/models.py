"""Load or build the policy model and its tokenizer.

Two sources: a local Hugging Face causal-LM directory (``model.path``), or, for built-in
tasks, a tiny Qwen2-architecture model built from a config with random weights and a
byte-level BPE tokenizer trained locally with ``tokenizers`` on the task's texts. The
tiny tokenizer carries a ChatML chat template, like Qwen's, so both paths use
``apply_chat_template`` the same way.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from or1.config import ModelConfig, TinyModelConfig
from or1.engine.precision import master_dtype, resolve_device
from or1.engine.rollout import IM_END
from or1.errors import ConfigError

PAD, IM_START = "<|endoftext|>", "<|im_start|>"
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_tokenizer(
    corpus: list[str], *, vocab_size: int = 384, extra_tokens: tuple[str, ...] = ()
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``corpus``; digits are always single tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Role names and the chat frame occur in every prompt: let BPE merge them.
    frame = [f"{IM_START}{role}\n" for role in ("system", "user", "assistant")] * 50
    tok.train_from_iterator([*corpus, *frame], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=IM_END, unk_token=None
    )
    if extra_tokens:
        fast.add_tokens(list(extra_tokens))
    fast.chat_template = CHATML_TEMPLATE
    fast.padding_side = "left"
    return fast


def tiny_model_config(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2Config:
    """The Qwen2 config of the tiny model sized by ``cfg`` for ``tokenizer`` (no weights)."""
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        attn_implementation="sdpa",
    )


def build_tiny_model(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 model sized by ``cfg`` for ``tokenizer``."""
    return Qwen2ForCausalLM(tiny_model_config(cfg, tokenizer))


def load_tokenizer(path: str | Path, cfg: ModelConfig) -> PreTrainedTokenizerFast:
    """The tokenizer of a local HF model directory, which must have a chat template
    (``cfg.chat_template`` supplies one), padding on the left."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    if cfg.chat_template:
        tokenizer.chat_template = cfg.chat_template
    if not getattr(tokenizer, "chat_template", None):
        # Prompts are chat lists rendered with apply_chat_template; guessing a format
        # would silently train on prompts the model was never tuned for.
        raise ConfigError(
            f"the tokenizer in model.path {path} has no chat template.",
            hint="use a chat/instruct model (R1-Distill models ship one), add "
            "chat_template to its tokenizer_config.json, or set model.chat_template.",
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_pretrained(
    path: str | Path, cfg: ModelConfig
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A local HF causal-LM directory and its tokenizer (which must have a chat template)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model.path {path} is not a Hugging Face model directory (no config.json).",
            hint="point model.path at a directory written by save_pretrained.",
        )
    device = resolve_device(cfg)
    tokenizer = load_tokenizer(path, cfg)
    # Loaded in the master dtype; forward/backward and rollouts run in the compute dtype.
    model = AutoModelForCausalLM.from_pretrained(path, dtype=master_dtype(cfg))
    if cfg.gradient_checkpointing:  # renamed activation checkpointing in transformers 5.2x
        enable = getattr(model, "activation_checkpointing_enable", None)
        (enable or model.gradient_checkpointing_enable)()
    return model.to(device), tokenizer
