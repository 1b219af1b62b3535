"""``model`` and ``warmup``: which policy to train, and the tiny model's warm-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from or1.config.base import Section


class TinyModelConfig(Section):
    """A small Qwen2-architecture model built from a config (random init)."""

    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(4, gt=0)
    num_heads: int = Field(4, gt=0)
    num_kv_heads: int = Field(2, gt=0)
    intermediate_size: int = Field(384, gt=0)
    max_position_embeddings: int = Field(1024, gt=0)


class ModelConfig(Section):
    """Which policy to train. ``path`` None builds the tiny model of the task."""

    path: str | None = None  # an HF dir, a .gguf file, or a GGUF shortcut (smollm2)
    # A GGUF file inside ``path`` (transformers' gguf_file); converted once to a cached HF
    # directory (or1/build/gguf.py).
    gguf_file: str | None = None
    tiny: TinyModelConfig = TinyModelConfig()
    # The compute dtype of forward/backward and rollouts. auto: bf16 on a GPU, fp32 on a
    # CPU (bf16 is emulated there, ~8x slower; bfloat16 on a CPU is for testing the policy).
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    # The master weights and the AdamW state (RECIPE step 9: bf16 compute, fp32 masters).
    # bfloat16 keeps the whole model in bf16: at lr 1e-6 most updates then round away.
    master_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="dtype of the trained parameters and the optimizer state"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gradient_checkpointing: bool = False
    # A Jinja chat template for a tokenizer that has none (a model.path without one is an
    # error otherwise: prompts are always rendered with apply_chat_template).
    chat_template: str | None = None


class WarmupConfig(Section):
    """Supervised warm-up of a tiny model on teacher solutions (cached by content hash)."""

    enabled: bool = True
    steps: int = Field(400, ge=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(2e-3, gt=0)
    n_examples: int = Field(6000, gt=0)
