"""``model`` and ``warmup``: which policy to train, and the tiny model's warm-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from or1.config.base import Section


class TinyModelConfig(Section):
    """A small Qwen2-architecture model built from a config (random init)."""

    hidden_size: int = Field(128, gt=0, description="width of the residual stream")
    num_layers: int = Field(4, gt=0, description="decoder layers")
    num_heads: int = Field(4, gt=0, description="attention (query) heads")
    num_kv_heads: int = Field(2, gt=0, description="key/value heads (grouped-query attention)")
    intermediate_size: int = Field(384, gt=0, description="MLP hidden width")
    max_position_embeddings: int = Field(
        1024, gt=0, description="positions for a prompt and its response together"
    )
    tie_embeddings: bool = Field(
        True,
        description="one matrix for the embeddings and the LM head; false: two, as in "
        "R1-Distill-Qwen-7B/32B (FSDP2 then shards each as a unit of its own)",
    )


class ModelConfig(Section):
    """Which policy to train. ``path`` None builds the tiny model of the task."""

    path: str | None = Field(
        None,
        description="a local HF model directory, a .gguf file, or a GGUF shortcut (smollm2); "
        "null: build the tiny model (model.tiny)",
    )
    # A GGUF file inside ``path`` (transformers' gguf_file); converted once to a cached HF
    # directory (or1/build/gguf.py).
    gguf_file: str | None = Field(None, description="a GGUF file inside model.path to load")
    tiny: TinyModelConfig = TinyModelConfig()
    # The compute dtype of forward/backward and rollouts. auto: bf16 on a GPU, fp32 on a
    # CPU (bf16 is emulated there, ~8x slower; bfloat16 on a CPU is for testing the policy).
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="compute dtype; auto: bfloat16 on a GPU, float32 on a CPU"
    )
    # The master weights and the AdamW state (RECIPE step 9: bf16 compute, fp32 masters).
    # bfloat16 keeps the whole model in bf16: at lr 1e-6 most updates then round away.
    master_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="dtype of the trained parameters and the optimizer state"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: cuda when available, else cpu"
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in backward (less memory, ~1/3 more compute)"
    )
    # A Jinja chat template for a tokenizer that has none (a model.path without one is an
    # error otherwise: prompts are always rendered with apply_chat_template).
    chat_template: str | None = Field(
        None, description="a Jinja chat template for a tokenizer that has none"
    )


class WarmupConfig(Section):
    """Supervised warm-up of a tiny model on teacher solutions (cached by content hash)."""

    enabled: bool = Field(True, description="warm up a tiny model before RL (model.path unset)")
    steps: int = Field(400, ge=0, description="supervised optimizer steps")
    batch_size: int = Field(64, gt=0, description="examples per warm-up step")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate of the warm-up")
    n_examples: int = Field(6000, gt=0, description="teacher solutions generated to train on")
