"""Rollout engines by name, and the engines of a run in this process.

One registry, ``ROLLOUT_ENGINES``: ``rollout.engine`` names an entry, and the entry's
``build(spec, model, seed)`` makes the engine. A new engine (e.g. SGLang) is one
registered ``EngineKind`` plus, if it has settings, a ``rollout.<name>`` config section:
the section reaches the builder as ``spec.options`` (plain data, picklable for Ray).

Ray lives in ``or1.distributed`` and depends on this module, never the reverse; the
choice between the local and the Ray backend is ``or1.build.engines``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from or1.config import Config
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.policy import LocalPolicy, Policy
from or1.engine.precision import resolve_dtype
from or1.engine.process_rollout import ProcessRolloutEngine
from or1.engine.rollout import RolloutEngine, stop_token_ids
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
    """Everything a rollout engine needs besides the model (picklable, for Ray workers).

    ``options`` is the engine's own config section (``rollout.<engine>``) as plain data.
    """

    engine: str
    pad_id: int
    stop_ids: tuple[int, ...]
    max_num_seqs: int
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)
    model_dir: str | None = None  # engines that load their own copy: start weights + tokenizer
    dtype: str = "auto"
    max_model_len: int | None = None


EngineBuilder = Callable[[RolloutSpec, PreTrainedModel, int], RolloutEngine]
"""build(spec, model, seed) -> engine."""


@dataclass(frozen=True)
class EngineKind:
    """A registered rollout engine.

    Attributes:
        build: makes the engine (``seed`` already offset for the worker).
        runs_given_model: decodes with the torch model it is given (so that model must be
            on the device, and locally the policy's updates reach it with no sync);
            otherwise it loads its own copy from ``spec.model_dir`` and needs the
            policy's weights after each update.
    """

    build: EngineBuilder
    runs_given_model: bool


def compute_dtype(cfg: Config, model: PreTrainedModel) -> torch.dtype:
    """``model.dtype`` resolved for the device the model sits on."""
    return resolve_dtype(cfg.model, next(model.parameters()).device)


def _build_hf(spec: RolloutSpec, model: PreTrainedModel, seed: int) -> RolloutEngine:
    processes = int(spec.options.get("processes", 1))
    dtype = None if spec.dtype == "auto" else getattr(torch, spec.dtype)
    if spec.dtype == "auto" and next(model.parameters()).device.type == "cuda":
        dtype = torch.bfloat16
    settings = dict(
        pad_id=spec.pad_id,
        stop_ids=list(spec.stop_ids),
        max_batch_sequences=spec.max_num_seqs,
        seed=seed,
        compute_dtype=dtype,
    )
    if processes == 1:
        return HFRolloutEngine(model, **settings)
    if next(model.parameters()).device.type != "cpu":
        raise ConfigError(
            f"rollout.hf.processes={processes} decodes in CPU processes, but the model is on "
            f"{next(model.parameters()).device}.",
            hint="use rollout.hf.processes=1 on a GPU (or rollout.engine=vllm).",
        )
    return ProcessRolloutEngine(model, processes=processes, **settings)


def _build_vllm(spec: RolloutSpec, model: PreTrainedModel, seed: int) -> RolloutEngine:
    from or1.engine.vllm_rollout import VLLMRolloutEngine, check_vllm_runtime

    check_vllm_runtime()  # vLLM installed, and a device it supports in this process
    if spec.model_dir is None:
        raise ValueError("the vllm engine loads from a directory: spec.model_dir is None")
    return VLLMRolloutEngine(
        spec.model_dir,
        stop_ids=list(spec.stop_ids),
        seed=seed,
        tensor_parallel_size=int(spec.options.get("tensor_parallel_size", 1)),
        gpu_memory_utilization=float(spec.options.get("gpu_memory_utilization", 0.5)),
        sleep_level=int(spec.options.get("sleep_level", 0)),
        dtype=spec.dtype,
        max_model_len=spec.max_model_len,
        max_num_seqs=spec.max_num_seqs,
    )


ROLLOUT_ENGINES: dict[str, EngineKind] = {
    "hf": EngineKind(_build_hf, runs_given_model=True),
    "vllm": EngineKind(_build_vllm, runs_given_model=False),
}


def register_rollout_engine(name: str, kind: EngineKind, *, replace: bool = False) -> None:
    """Add a rollout engine under ``name`` (``rollout.engine=name`` selects it)."""
    if name in ROLLOUT_ENGINES and not replace:
        raise ValueError(f"rollout engine {name!r} is already registered (pass replace=True)")
    ROLLOUT_ENGINES[name] = kind


def engine_kind(name: str) -> EngineKind:
    """The registered engine ``name``, or a ConfigError listing the known ones."""
    if name not in ROLLOUT_ENGINES:
        raise ConfigError(
            f"unknown rollout.engine '{name}'; registered engines: "
            f"{', '.join(sorted(ROLLOUT_ENGINES))}.",
            hint="register one with or1.engine.factory.register_rollout_engine.",
        )
    return ROLLOUT_ENGINES[name]


def rollout_spec(
    cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> RolloutSpec:
    r = cfg.rollout
    kind = engine_kind(r.engine)
    section = getattr(r, r.engine, None)
    options = section.model_dump() if section is not None else {}
    model_dir = None
    if not kind.runs_given_model:
        model_dir = cfg.model.path or _save_model_dir(model, tokenizer)
    return RolloutSpec(
        engine=r.engine,
        pad_id=tokenizer.pad_token_id,
        stop_ids=tuple(stop_token_ids(tokenizer, model)),
        max_num_seqs=r.max_num_seqs,
        seed=cfg.train.seed,
        options=options,
        model_dir=model_dir,
        dtype=cfg.model.dtype,
        max_model_len=_max_model_len(cfg, model),
    )


def _max_model_len(cfg: Config, model: PreTrainedModel) -> int:
    """Prompt + response tokens, within what the model's positions allow."""
    longest = max(s.max_response_length for s in cfg.stages)
    wanted = cfg.rollout.max_prompt_length + max(longest, cfg.eval.max_tokens or 0)
    limit = getattr(model.config, "max_position_embeddings", None)
    return min(wanted, int(limit)) if limit else wanted


def _save_model_dir(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> str:
    """An engine that loads from a directory gets the built (tiny) model written once."""
    path = tempfile.mkdtemp(prefix="or1-rollout-model-")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_rollout_engine(
    spec: RolloutSpec, model: PreTrainedModel, *, worker_index: int = 0
) -> RolloutEngine:
    """The engine of ``spec`` (in this process, or inside a Ray rollout worker)."""
    seed = spec.seed + worker_index * WORKER_SEED_STRIDE
    return engine_kind(spec.engine).build(spec, model, seed)


def local_rollout_engine(
    cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> RolloutEngine:
    """The configured rollout engine (``rollout.engine``) in this process, over ``model``,
    for sampling without a policy: ``or1 eval`` and ``or1 data filter``. With vLLM (a
    GPU, AIME at 32K tokens) it loads ``model.path`` (or the built model, saved once);
    with hf it decodes ``model`` itself, in ``rollout.hf.processes`` CPU processes."""
    return build_rollout_engine(rollout_spec(cfg, model, tokenizer), model)


def make_local_engines(
    cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> Engines:
    """The engines of ``distributed.backend=local``.

    The policy and an engine that runs the given model share ``model``, so syncing
    weights is a no-op; an engine with its own copy (vLLM) loads the policy's weights
    after each update.
    """
    spec = rollout_spec(cfg, model, tokenizer)
    policy = LocalPolicy(
        model,
        cfg.optim,
        micro_batch_size=cfg.train.micro_batch_size,
        micro_batch_tokens=cfg.train.micro_batch_tokens,
        keep_reference=cfg.algo.kl_beta > 0,
        compute_dtype=compute_dtype(cfg, model),
        logits_chunk_tokens=cfg.train.logits_chunk_tokens,
    )
    engine = build_rollout_engine(spec, model)
    if engine_kind(spec.engine).runs_given_model:
        return Engines(policy, engine, sync_weights=lambda: None)

    def sync_weights() -> None:
        engine.load_weights(policy.export_model().state_dict())

    return Engines(policy, engine, sync_weights=sync_weights)
