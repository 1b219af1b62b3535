"""One rollout worker: a local rollout engine (HF or vLLM) in its own process (no Ray here).

``or1.distributed.ray`` runs it as a Ray actor; the engine is the same class the local
backend uses, built from the same ``RolloutSpec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import PreTrainedModel

from or1.engine.factory import RolloutSpec, build_rollout_engine, engine_kind
from or1.engine.rollout import Rollouts, SamplingParams


class RolloutWorker:
    """Holds the engine; ``worker_index`` offsets its sampling seed.

    Args:
        model: the start weights (its own copy: Ray passes it by value).
        spec: the engine settings.
        worker_index: j of R; worker 0 samples with the run's seed.
        threads: torch intra-op threads (CPU).
        dtype: the dtype to run in on this worker's device (None: keep the model's).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        spec: RolloutSpec,
        *,
        worker_index: int,
        threads: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        if engine_kind(spec.engine).runs_given_model and torch.cuda.is_available():
            model.to("cuda")
        if dtype is not None:
            model.to(dtype)
        self.engine = build_rollout_engine(spec, model, worker_index=worker_index)

    def ready(self) -> bool:
        return True

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> Rollouts:
        return self.engine.generate(prompts, params)

    def load_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.engine.load_weights(state_dict)

    def release_memory(self) -> None:
        self.engine.release_memory()

    def rng_state(self) -> dict[str, Any]:
        return self.engine.rng_state()

    def set_rng_state(self, state: Mapping[str, Any]) -> None:
        if state:  # {}: no saved state for this worker (keep its fresh seed)
            self.engine.set_rng_state(state)
