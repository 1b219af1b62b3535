"""Turn a Config into the objects of a run: problems, tokenizer, model (warmed up)."""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from or1.config import Config
from or1.data.problem import Problem
from or1.data.tasks import arith
from or1.engine import gguf
from or1.engine.models import (
    build_tiny_model,
    build_tiny_tokenizer,
    load_pretrained,
    resolve_device,
)
from or1.errors import ConfigError, DataError
from or1.progress import progress_bar
from or1.warmup import cache_key, save_atomically, supervised_warmup

logger = logging.getLogger("or1.build")


@dataclass
class Loaded:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    info: dict[str, Any] = field(default_factory=dict)


def cache_dir(cfg: Config) -> Path:
    root = cfg.cache_dir or os.environ.get("OR1_CACHE") or Path.home() / ".cache" / "or1"
    return Path(root)


def load_problems(cfg: Config) -> tuple[list[Problem], list[Problem]]:
    """(train, test) problems of the configured task or files."""
    if cfg.data.train is not None:
        from or1.data.sources import load_problems as load_files  # issue: real data

        skip = cfg.data.skip_bad_rows
        train = load_files(cfg.data.train, skip_bad_rows=skip)
        test = load_files(cfg.data.test, skip_bad_rows=skip) if cfg.data.test else []
        return train, test
    if cfg.data.task == "tiny-arith":
        return arith.generate_splits(cfg.data.arith, cfg.train.seed)
    if cfg.data.task == "reasoning-gym":
        from or1.data.tasks import reasoning_gym  # optional dependency: the [smol] extra

        return reasoning_gym.generate_splits(cfg.data.reasoning_gym, cfg.train.seed)
    raise ConfigError("no training data: set data.task or data.train.")


def fit_prompts(
    problems: list[Problem],
    encode: Callable[[Problem], list[int]],
    max_prompt_length: int,
    *,
    split: str,
) -> tuple[list[Problem], dict[str, list[int]]]:
    """The problems whose chat prompt fits ``max_prompt_length`` tokens, and their ids.

    Longer prompts are dropped with one warning naming how many and the first one (verl's
    ``filter_overlong_prompts``): truncating a problem statement would train on a question
    the model cannot read. Raises DataError when nothing is left.
    """
    kept: list[Problem] = []
    ids: dict[str, list[int]] = {}
    too_long: list[tuple[str, int]] = []
    for problem in problems:
        prompt = encode(problem)
        if len(prompt) > max_prompt_length:
            too_long.append((problem.uid, len(prompt)))
            continue
        kept.append(problem)
        ids[problem.uid] = prompt
    if too_long:
        uid, length = too_long[0]
        logger.warning(
            "%s: dropped %d of %d problems whose prompt is longer than "
            "rollout.max_prompt_length=%d tokens (e.g. %s: %d tokens)",
            split,
            len(too_long),
            len(problems),
            max_prompt_length,
            uid,
            length,
        )
    if problems and not kept:
        uid, length = too_long[0]
        raise DataError(
            f"{split}: every prompt is longer than rollout.max_prompt_length="
            f"{max_prompt_length} tokens (e.g. {uid}: {length} tokens).",
            hint="raise rollout.max_prompt_length or shorten the prompts.",
        )
    return kept, ids


def encode_prompt(tokenizer: PreTrainedTokenizerFast, problem: Problem) -> list[int]:
    """Token ids of the problem's chat prompt with the assistant turn opened."""
    encoded = tokenizer.apply_chat_template(
        problem.prompt, add_generation_prompt=True, tokenize=True
    )
    ids = encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
    return list(ids)


def _tiny_arith_model(cfg: Config, train: list[Problem], show: bool) -> Loaded:
    arith_cfg = cfg.data.arith
    key = cache_key(
        "tiny-arith",
        arith_cfg.model_dump(),
        cfg.model.tiny.model_dump(),
        cfg.warmup.model_dump(),
        cfg.train.seed,
    )
    target = cache_dir(cfg) / "warmup" / key
    if (target / "config.json").is_file():
        loaded = load_pretrained(target, cfg.model)
        info = json.loads((target / "or1_warmup.json").read_text())
        return Loaded(*loaded, info={**info, "cached": True, "path": str(target)})
    torch.manual_seed(cfg.train.seed)
    tokenizer = build_tiny_tokenizer(
        arith.tokenizer_corpus(arith_cfg), extra_tokens=(arith.THINK_OPEN, arith.THINK_CLOSE)
    )
    model = build_tiny_model(cfg.model.tiny, tokenizer)
    info: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters())}
    if cfg.warmup.enabled and cfg.warmup.steps > 0:
        pairs = arith.warmup_examples(
            train,
            cfg.warmup.n_examples,
            error_rate=arith_cfg.teacher_error_rate,
            seed=cfg.train.seed,
        )
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
    save_atomically(model, tokenizer, target)
    (target / "or1_warmup.json").write_text(json.dumps(info))
    loaded = load_pretrained(target, cfg.model)
    return Loaded(*loaded, info={**info, "cached": False, "path": str(target)})


def load_model(cfg: Config, train: list[Problem], *, show: bool = True) -> Loaded:
    """The policy to start from: ``model.path`` (a GGUF converted once and cached), or
    the task's tiny model, warmed up."""
    source = gguf.gguf_source(cfg.model)
    if source is not None:
        path, info = gguf.ensure_converted(source, cache_dir(cfg) / "gguf")
        model, tokenizer = load_pretrained(path, cfg.model)
        return Loaded(model, tokenizer, info)
    if cfg.model.path is not None:
        model, tokenizer = load_pretrained(cfg.model.path, cfg.model)
        return Loaded(model, tokenizer, {"path": cfg.model.path})
    if cfg.data.task == "tiny-arith":
        return _tiny_arith_model(cfg, train, show)
    raise ConfigError(
        "model.path is not set and the task builds no model.",
        hint="set model.path to a local Hugging Face model directory.",
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)


def device_of(cfg: Config) -> torch.device:
    return resolve_device(cfg.model)
