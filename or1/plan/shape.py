"""What the memory plan needs of a model, from its config.json alone (or1/plan/budget.py
gives the letters): parameter counts from an instance on PyTorch's ``meta`` device (exact
for any architecture transformers knows), the shapes from the config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from or1.errors import ConfigError


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs of a model (counts from its config.json)."""

    params: int  # P
    layer_params: int  # P_layer (the largest decoder layer)
    root_params: int  # P_root = P - L x P_layer
    layers: int  # L
    hidden: int  # h
    intermediate: int  # f
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int  # V
    # P_out: an untied model's larger of embeddings and LM head, each an FSDP2 unit of its
    # own (or1.distributed.fsdp.shard_model); 0 when tied (both in the root unit)
    split_params: int = 0
    rest_params: int = 0  # P_rest: the root unit's share then (P_root - embeddings - head)

    @property
    def kv(self) -> int:
        return self.kv_heads * self.head_dim

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """Count the parameters of ``config``'s architecture on the meta device."""
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        params = sum(p.numel() for p in model.parameters())
        layers = model.get_decoder().layers
        layer_params = max(sum(p.numel() for p in layer.parameters()) for layer in layers)
        heads = config.num_attention_heads
        embed, head = model.get_input_embeddings(), model.get_output_embeddings()
        root = params - sum(sum(p.numel() for p in x.parameters()) for x in layers)
        split = rest = 0
        if head is not None and head.weight is not embed.weight:
            sizes = [sum(p.numel() for p in m.parameters()) for m in (embed, head)]
            split, rest = max(sizes), root - sum(sizes)
        return cls(
            params=params,
            layer_params=layer_params,
            root_params=root,
            layers=config.num_hidden_layers,
            hidden=config.hidden_size,
            intermediate=config.intermediate_size,
            heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            vocab=config.vocab_size,
            split_params=split,
            rest_params=rest,
        )


def model_shape(path: str | Path) -> ModelShape:
    """The shape of the model whose config.json is ``path`` or in directory ``path``."""
    from transformers import AutoConfig

    path = Path(path)
    directory = path.parent if path.name == "config.json" else path
    if not (directory / "config.json").is_file():
        raise ConfigError(
            f"model.path {path} has no config.json.",
            hint="or1 plan reads a Hugging Face model directory (only its config.json).",
        )
    return ModelShape.from_config(AutoConfig.from_pretrained(directory))
