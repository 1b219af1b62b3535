"""Pick the policy and rollout engines for a config (local today; Ray/vLLM plug in here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from or1.config import Config
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.models import stop_token_ids
from or1.engine.policy import LocalPolicy, Policy
from or1.engine.rollout import RolloutEngine
from or1.errors import ConfigError


@dataclass
class Engines:
    """The policy, the rollout engine, and how to push new weights from one to the other."""

    policy: Policy
    rollout: RolloutEngine
    sync_weights: Callable[[], None]


def make_engines(
    cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> Engines:
    """The engines for ``cfg``.

    Locally both share ``model``, so syncing weights after an update is a no-op.
    """
    if cfg.distributed.backend != "local":
        raise ConfigError(
            f"distributed.backend={cfg.distributed.backend} is not available in this build.",
            hint="use distributed.backend=local.",
        )
    if cfg.rollout.engine != "hf":
        raise ConfigError(
            f"rollout.engine={cfg.rollout.engine} is not available in this build.",
            hint="use rollout.engine=hf.",
        )
    policy = LocalPolicy(
        model,
        cfg.optim,
        micro_batch_size=cfg.train.micro_batch_size,
        keep_reference=cfg.algo.kl_beta > 0,
    )
    engine = HFRolloutEngine(
        model,
        pad_id=tokenizer.pad_token_id,
        stop_ids=stop_token_ids(tokenizer, model),
        max_batch_sequences=cfg.rollout.batch_size,
        seed=cfg.train.seed,
    )
    return Engines(policy, engine, sync_weights=lambda: None)
