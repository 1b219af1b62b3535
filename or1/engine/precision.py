"""Where and in which dtypes the engines run: ``model.device``, ``model.dtype`` (compute)
and ``model.master_dtype`` (the trained parameters and the AdamW state)."""

from __future__ import annotations

import torch

from or1.config import ModelConfig
from or1.errors import ConfigError


def resolve_device(cfg: ModelConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device=cuda but no CUDA device is visible.", hint="use cpu.")
    return torch.device(cfg.device)


def resolve_dtype(cfg: ModelConfig, device: torch.device) -> torch.dtype:
    """The compute dtype (``model.dtype``) on ``device``."""
    # bf16 is emulated on CPU (about 8x slower to train), so CPU defaults to fp32.
    if cfg.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, cfg.dtype)


def master_dtype(cfg: ModelConfig) -> torch.dtype:
    """The dtype of the trained parameters and the AdamW state (``model.master_dtype``)."""
    return getattr(torch, cfg.master_dtype)
