"""Supervised warm-up: distil a tiny model from the task's (imperfect) teacher.

This is the analogue of starting RL from R1-Distill: the base already writes
step-by-step solutions in the right format, and makes the teacher's kind of mistakes.
The result is cached by a hash of everything that determines it, so only the first
run of a given preset and seed pays for it. A cache entry holds the model, its tokenizer,
its metadata (``or1_warmup.json``) and last a checksum manifest, written into a temp
directory renamed into place; an entry that does not verify (or load) is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from or1.checkpoint.manifest import write_manifest
from or1.config import WarmupConfig

WARMUP_FORMAT = 1  # bump when the warm-up procedure changes, to invalidate caches
WARMUP_INFO = "or1_warmup.json"  # the entry's metadata (parameters, loss, seconds)


def cache_key(*parts: object) -> str:
    blob = json.dumps([WARMUP_FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _batch(
    examples: list[tuple[list[int], list[int]]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded [b, L] ids, attention mask, and labels (-100 outside responses)."""
    width = max(len(p) + len(r) for p, r in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (prompt, response) in enumerate(examples):
        seq = prompt + response
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, len(prompt) : len(seq)] = torch.tensor(response)
    return ids, mask, labels


def supervised_warmup(
    model: PreTrainedModel,
    examples: list[tuple[list[int], list[int]]],
    cfg: WarmupConfig,
    *,
    pad_id: int,
    seed: int,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """Train on (prompt ids, response ids) pairs with cross-entropy on the responses.

    AdamW with a short linear warm-up then cosine decay to 10% of ``cfg.lr``.
    Returns {"loss": final smoothed loss, "seconds": wall time}.
    """
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    warm = max(1, cfg.steps // 20)

    def lr_at(step: int) -> float:
        if step < warm:
            return cfg.lr * (step + 1) / warm
        frac = (step - warm) / max(1, cfg.steps - warm)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    model.train()
    smoothed, start = None, time.perf_counter()
    for step in range(cfg.steps):
        rows = torch.randint(len(examples), (cfg.batch_size,), generator=gen).tolist()
        ids, mask, labels = _batch([examples[r] for r in rows], pad_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
        if progress is not None:
            progress(1, smoothed)
    return {"loss": float(smoothed or 0.0), "seconds": time.perf_counter() - start}


def save_atomically(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    path: Path,
    *,
    info: dict[str, object],
) -> None:
    """Write a cache entry at ``path``: model, tokenizer, ``info`` and last a manifest,
    in a temp directory renamed into place. A kill leaves no entry at ``path``; when
    another process renamed its entry into place first, that one is kept."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / WARMUP_INFO).write_text(json.dumps(info))
    write_manifest(tmp, kind="warmup")
    shutil.rmtree(path, ignore_errors=True)  # a broken entry, already reported
    try:
        os.replace(tmp, path)
    except OSError:  # ENOTEMPTY: a concurrent run's entry is in place
        shutil.rmtree(tmp, ignore_errors=True)
