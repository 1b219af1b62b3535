"""Pick the policy and rollout engines for a config: local or Ray, HF or vLLM rollouts."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from or1.config import Config
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.models import stop_token_ids
from or1.engine.policy import LocalPolicy, Policy
from or1.engine.process_rollout import ProcessRolloutEngine
from or1.engine.rollout import RolloutEngine
from or1.errors import ConfigError

# Rollout worker j samples with seed + j * WORKER_SEED_STRIDE (worker 0: the run's seed,
# so one rollout worker samples exactly what the local engine samples).
WORKER_SEED_STRIDE = 1_000_003


@dataclass
class Engines:
    """The policy, the rollout engine, and how to push new weights from one to the other."""

    policy: Policy
    rollout: RolloutEngine
    sync_weights: Callable[[], None]


@dataclass(frozen=True)
class RolloutSpec:
    """Everything a rollout engine needs besides the model (picklable, for Ray workers)."""

    engine: str  # "hf" | "vllm"
    pad_id: int
    stop_ids: tuple[int, ...]
    max_batch_sequences: int
    seed: int
    processes: int = 1  # hf on a CPU: single-thread decode processes (process_rollout)
    model_dir: str | None = None  # vllm: a HF directory with the start weights + tokenizer
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.5
    dtype: str = "auto"
    max_model_len: int | None = None


def rollout_spec(
    cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> RolloutSpec:
    r = cfg.rollout
    model_dir = None
    if r.engine == "vllm":
        model_dir = cfg.model.path or _save_for_vllm(model, tokenizer)
    return RolloutSpec(
        engine=r.engine,
        pad_id=tokenizer.pad_token_id,
        stop_ids=tuple(stop_token_ids(tokenizer, model)),
        max_batch_sequences=r.batch_size,
        seed=cfg.train.seed,
        processes=r.processes,
        model_dir=model_dir,
        tensor_parallel_size=r.tensor_parallel_size,
        gpu_memory_utilization=r.gpu_memory_utilization,
        dtype=cfg.model.dtype,
        max_model_len=_max_model_len(cfg, model),
    )


def _max_model_len(cfg: Config, model: PreTrainedModel) -> int:
    """Prompt + response tokens, within what the model's positions allow."""
    longest = max(s.max_response_length for s in cfg.stages)
    wanted = cfg.rollout.max_prompt_length + max(longest, cfg.eval.max_tokens or 0)
    limit = getattr(model.config, "max_position_embeddings", None)
    return min(wanted, int(limit)) if limit else wanted


def _save_for_vllm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> str:
    """vLLM loads from a directory: write the built (tiny) model there once."""
    path = tempfile.mkdtemp(prefix="or1-vllm-model-")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_rollout_engine(
    spec: RolloutSpec, model: PreTrainedModel, *, worker_index: int = 0
) -> RolloutEngine:
    """The engine of ``spec`` (in this process, or inside a Ray rollout worker)."""
    seed = spec.seed + worker_index * WORKER_SEED_STRIDE
    if spec.engine == "vllm":
        from or1.engine.vllm_rollout import VLLMRolloutEngine

        assert spec.model_dir is not None
        return VLLMRolloutEngine(
            spec.model_dir,
            stop_ids=list(spec.stop_ids),
            seed=seed,
            tensor_parallel_size=spec.tensor_parallel_size,
            gpu_memory_utilization=spec.gpu_memory_utilization,
            dtype=spec.dtype,
            max_model_len=spec.max_model_len,
        )
    return _hf_engine(
        model,
        pad_id=spec.pad_id,
        stop_ids=list(spec.stop_ids),
        max_batch_sequences=spec.max_batch_sequences,
        seed=seed,
        processes=spec.processes,
    )


def _hf_engine(
    model: PreTrainedModel,
    *,
    pad_id: int,
    stop_ids: list[int],
    max_batch_sequences: int,
    seed: int,
    processes: int,
) -> RolloutEngine:
    if processes == 1:
        return HFRolloutEngine(
            model,
            pad_id=pad_id,
            stop_ids=stop_ids,
            max_batch_sequences=max_batch_sequences,
            seed=seed,
        )
    if next(model.parameters()).device.type != "cpu":
        raise ConfigError(
            f"rollout.processes={processes} decodes in CPU processes, but the model is on "
            f"{next(model.parameters()).device}.",
            hint="use rollout.processes=1 on a GPU (or rollout.engine=vllm).",
        )
    return ProcessRolloutEngine(
        model,
        processes=processes,
        pad_id=pad_id,
        stop_ids=stop_ids,
        max_batch_sequences=max_batch_sequences,
        seed=seed,
    )


def local_rollout_engine(
    cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> RolloutEngine:
    """A local HF engine over ``model`` (evaluation, offline filtering), decoding in
    ``rollout.processes`` CPU processes."""
    return _hf_engine(
        model,
        pad_id=tokenizer.pad_token_id,
        stop_ids=stop_token_ids(tokenizer, model),
        max_batch_sequences=cfg.rollout.batch_size,
        seed=cfg.train.seed,
        processes=cfg.rollout.processes,
    )


def make_engines(
    cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> Engines:
    """The engines for ``cfg``.

    Locally the policy and the HF rollout engine share ``model``, so syncing weights is a
    no-op; a vLLM engine holds its own copy and loads the policy's weights after each
    update. With ``distributed.backend=ray`` both are worker groups (or1.distributed.ray).
    """
    spec = rollout_spec(cfg, model, tokenizer)
    if cfg.distributed.backend == "ray":
        if spec.processes > 1:
            raise ConfigError(
                "rollout.processes > 1 is for the local backend; with Ray, set "
                "distributed.rollout_workers.",
                hint="drop rollout.processes or use distributed.backend=local.",
            )
        return _ray_engines(cfg, model, spec)
    policy = LocalPolicy(
        model,
        cfg.optim,
        micro_batch_size=cfg.train.micro_batch_size,
        keep_reference=cfg.algo.kl_beta > 0,
    )
    engine = build_rollout_engine(spec, model)
    if spec.engine == "hf":
        return Engines(policy, engine, sync_weights=lambda: None)

    def sync_weights() -> None:
        engine.load_weights(policy.export_model().state_dict())

    return Engines(policy, engine, sync_weights=sync_weights)


def _ray_engines(cfg: Config, model: PreTrainedModel, spec: RolloutSpec) -> Engines:
    try:
        from or1.distributed.ray import make_ray_engines
    except ImportError as err:
        raise ConfigError(
            f"distributed.backend=ray needs Ray ({err}).",
            hint="install the extra: pip install 'or1[ray]'.",
        ) from None
    policy, rollout, sync = make_ray_engines(cfg, model, spec)
    return Engines(policy, rollout, sync_weights=sync)
