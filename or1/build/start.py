"""The policy a run starts from: ``model.path`` (a GGUF converted once and cached), or the
task's tiny model, warmed up on teacher solutions (cached by content hash)."""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

from or1.build import gguf
from or1.build.models import build_tiny_model, build_tiny_tokenizer, load_pretrained
from or1.build.problems import encode_prompt
from or1.checkpoint.manifest import manifest_problem
from or1.config import Config
from or1.data.problem import Problem
from or1.data.tasks import TASKS, TinyModelHooks
from or1.errors import ConfigError
from or1.progress import progress_bar
from or1.warmup import WARMUP_INFO, cache_key, save_atomically, supervised_warmup

log = logging.getLogger("or1.build")


@dataclass
class Loaded:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    info: dict[str, Any] = field(default_factory=dict)


def _cached_warmup(target: Path, cfg: Config) -> Loaded | None:
    """The warm-up cache entry at ``target``; None if there is none, or if it does not
    verify or load (then it is removed, to be rebuilt: a broken entry is never fatal)."""
    if not target.exists():
        return None
    problem = manifest_problem(target)
    if problem is None:
        try:
            info = json.loads((target / WARMUP_INFO).read_text())
            model, tokenizer = load_pretrained(target, cfg.model)
            return Loaded(model, tokenizer, info={**info, "cached": True, "path": str(target)})
        except Exception as err:  # any failure to read the entry means: rebuild it
            problem = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    log.warning("warm-up cache entry %s is broken (%s); rebuilding it", target, problem)
    shutil.rmtree(target, ignore_errors=True)
    return None


def tiny_hooks(cfg: Config) -> TinyModelHooks | None:
    """The tiny-model hooks of ``cfg``'s task; None when the task builds no model."""
    task = TASKS.get(cfg.data.task) if cfg.data.task else None
    return task.tiny if task is not None else None


def _hooks(cfg: Config) -> TinyModelHooks:
    hooks = tiny_hooks(cfg)
    if hooks is None:
        raise ConfigError(
            "model.path is not set and the task builds no model.",
            hint="set model.path to a local Hugging Face model directory.",
        )
    return hooks


def warmup_dir(cfg: Config) -> Path:
    """Where the tiny model of ``cfg``'s task is cached once warmed up (keyed by content)."""
    key = cache_key(
        cfg.data.task,
        _hooks(cfg).cache_parts(cfg.data),
        cfg.model.tiny.model_dump(),
        cfg.warmup.model_dump(),
        cfg.train.seed,
    )
    return cfg.cache_path / "warmup" / key


def tiny_tokenizer(cfg: Config) -> PreTrainedTokenizerFast:
    """The tokenizer of a fresh tiny model of ``cfg``'s task (trained on the task's texts)."""
    hooks = _hooks(cfg)
    return build_tiny_tokenizer(
        hooks.tokenizer_corpus(cfg.data),
        vocab_size=hooks.vocab_size,
        extra_tokens=hooks.extra_tokens,
    )


def _tiny_model(cfg: Config, train: list[Problem], show: bool) -> Loaded:
    target = warmup_dir(cfg)
    cached = _cached_warmup(target, cfg)
    if cached is not None:
        return cached
    torch.manual_seed(cfg.train.seed)
    tokenizer = tiny_tokenizer(cfg)
    model = build_tiny_model(cfg.model.tiny, tokenizer)
    info: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    if cfg.warmup.enabled and cfg.warmup.steps > 0:
        pairs = _hooks(cfg).warmup_examples(train, cfg.warmup.n_examples, cfg.data, cfg.train.seed)
        eos = [tokenizer.eos_token_id]
        examples = [
            (encode_prompt(tokenizer, p), tokenizer(sol)["input_ids"] + eos) for p, sol in pairs
        ]
        with progress_bar("warm-up (supervised)", cfg.warmup.steps, show=show) as bar:
            stats = supervised_warmup(
                model,
                examples,
                cfg.warmup,
                pad_id=tokenizer.pad_token_id,
                seed=cfg.train.seed,
                progress=lambda n, loss: bar.advance(n, loss=f"{loss:.3f}"),
            )
        info.update(warmup_loss=stats["loss"], warmup_seconds=stats["seconds"])
    target.parent.mkdir(parents=True, exist_ok=True)
    save_atomically(model, tokenizer, target, info=info)
    loaded = load_pretrained(target, cfg.model)
    return Loaded(*loaded, info={**info, "cached": False, "path": str(target)})


def load_model(cfg: Config, train: list[Problem], *, show: bool = True) -> Loaded:
    """The policy to start from: ``model.path`` (a GGUF converted once and cached), or
    the task's tiny model, warmed up."""
    source = gguf.gguf_source(cfg.model)
    if source is not None:
        path, info = gguf.ensure_converted(source, cfg.cache_path / "gguf")
        model, tokenizer = load_pretrained(path, cfg.model)
        return Loaded(model, tokenizer, info)
    if cfg.model.path is not None:
        model, tokenizer = load_pretrained(cfg.model.path, cfg.model)
        return Loaded(model, tokenizer, {"path": cfg.model.path})
    return _tiny_model(cfg, train, show)


def check_lengths(
    cfg: Config, model_config: PretrainedConfig, prompt_lengths: Iterable[int]
) -> None:
    """Refuse lengths the model cannot hold: the longest prompt plus each stage's (and
    the evaluation's) response length must fit its ``max_position_embeddings``. Training
    calls it at start with the loaded model's config; ``or1 train --dry-run`` with the
    config.json alone (the same check, so the two never disagree).

    Args:
        cfg: The run's config (stages, eval.max_tokens).
        model_config: The model's config (a model without ``max_position_embeddings``
            passes).
        prompt_lengths: Token count of every prompt kept (train, test, benchmarks).

    Raises:
        ConfigError: naming every length that does not fit.
    """
    limit = getattr(model_config, "max_position_embeddings", None)
    if not limit:
        return
    prompt = max(prompt_lengths, default=0)
    lengths = {
        f"stages.{i}.max_response_length": s.max_response_length for i, s in enumerate(cfg.stages)
    }
    lengths["eval.max_tokens"] = cfg.eval.max_tokens or cfg.stages[-1].max_response_length
    too_long = [f"{key}={n}" for key, n in lengths.items() if prompt + n > limit]
    if too_long:
        source = cfg.model.path or "model.tiny"
        raise ConfigError(
            f"{', '.join(too_long)} plus the longest prompt ({prompt} tokens) exceeds the "
            f"{limit} positions of the model ({source}: max_position_embeddings).",
            hint="lower those lengths, or rollout.max_prompt_length (longer prompts are dropped).",
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)
