"""The engines of a run, by ``distributed.backend``: in this process, or on Ray.

One registry, ``BACKENDS``: a backend is a function ``(cfg, model, tokenizer) -> Engines``.
Ray is imported only when its backend is chosen (it is an optional extra), and the
engine package never imports ``or1.distributed``: the dependency runs one way.
"""

from __future__ import annotations

from collections.abc import Callable

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from or1.config import Config
from or1.engine.factory import Engines, make_local_engines
from or1.errors import ConfigError

Backend = Callable[[Config, PreTrainedModel, PreTrainedTokenizerBase], Engines]


def _ray(cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> Engines:
    try:
        from or1.distributed.ray import make_ray_engines
    except ImportError as err:
        raise ConfigError(
            f"distributed.backend=ray needs Ray ({err}).",
            hint="install the extra: pip install 'or1[ray]'.",
        ) from None
    return make_ray_engines(cfg, model, tokenizer)


BACKENDS: dict[str, Backend] = {"local": make_local_engines, "ray": _ray}


def make_engines(
    cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> Engines:
    """The policy, the rollout engine and the weight sync of ``cfg``'s backend."""
    return BACKENDS[cfg.distributed.backend](cfg, model, tokenizer)
