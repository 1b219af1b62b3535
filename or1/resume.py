"""What a resumed run may change, and the record of every resume (``resumes.jsonl``).

A resume continues the saved state, so a setting that shaped that state cannot change:
the model and its tokenizer (``model.*`` but its device and activation checkpointing,
``warmup.*``), the data the prompt sampler and the filter tables index (``data.*``,
``rollout.max_prompt_length``), every random stream (``train.seed``), the optimizer (its
AdamW state carries ``optim.*``: a new learning rate would be silently ignored), the
recipe (``algo.*``, ``rewards.*``, the sampling temperature and top-p: a variant is a
new run), the rollout engine (its sampler state), and stages already finished. A resume
that changes any of them is refused in one paragraph naming every such key, before
anything is read into the run or written to its directory.

Allowed, and recorded in ``resumes.jsonl`` (time, checkpoint, step, each change as
[old, new]): steps (``train.max_steps``, the steps and sizes of the current and later
stages), evaluation (``eval.*``), logging (``logging.*``), and how the work is done
(checkpoint cadence and retention, threads, micro-batch size, samples kept, decode batch,
CPU decode processes, vLLM memory share and tensor parallelism, device, activation
checkpointing, and the backend and world size: the sharded state reshards on load).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from or1.build.models import load_pretrained
from or1.checkpoint import (
    Checkpoint,
    guarded_load,
    load_checkpoint,
    load_torch_file,
    move_aside_newer,
    restore_training_state,
    set_global_rng_state,
)
from or1.config import Config, load_saved_config
from or1.errors import ConfigError
from or1.rundir import CONFIG_FILE, clear_outputs, has_checkpoint, refuse_existing, write_config
from or1.trackers import make_trackers
from or1.tracking import MetricsLogger

log = logging.getLogger("or1.resume")

RESUMES_FILE = "resumes.jsonl"

ALLOWED_PREFIXES = ("eval.", "logging.")
ALLOWED_KEYS = frozenset(
    {
        "preset",
        "name",
        "runs_dir",
        "cache_dir",
        "train.max_steps",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.threads",
        "train.micro_batch_size",
        "train.save_samples",
        "rollout.max_num_seqs",
        "rollout.hf.processes",
        "rollout.vllm.gpu_memory_utilization",
        "rollout.vllm.tensor_parallel_size",
        "model.device",
        "model.gradient_checkpointing",
        "distributed.backend",
        "distributed.workers",
        "distributed.rollout_workers",
    }
)
# Why a key cannot change, by its first dotted part (checked in this order).
REASONS = {
    "model": "the checkpoint's weights and tokenizer were made with the saved model settings",
    "warmup": "the run started from the saved warm-up",
    "data": "the saved prompt sampler and filter tables index the saved problems",
    "rollout.max_prompt_length": "it selects the problems the saved sampler indexes",
    "rollout.engine": "the checkpoint holds the saved engine's sampler state",
    "rollout": "sampling is part of the recipe (a variant is a new run)",
    "train.seed": "every random stream continues from the checkpoint's state",
    "optim": "the checkpoint's AdamW state carries the saved optimizer settings",
    "algo": "the recipe of a run is fixed (a variant is a new run)",
    "rewards": "the reward is part of the recipe (a variant is a new run)",
    "stages": "a finished stage cannot change",
}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a config dump: sections and stages recursed, other lists as values."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(tree, list) and tree and all(isinstance(v, dict) for v in tree):
        out = {}
        for i, value in enumerate(tree):
            out.update(flatten(value, f"{prefix}.{i}"))
        return out
    return {prefix: tree}


def config_changes(saved: Config, new: Config) -> dict[str, list[Any]]:
    """{dotted key: [saved value, new value]} for every setting that differs."""
    a, b = flatten(saved.model_dump(mode="json")), flatten(new.model_dump(mode="json"))
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _refusal(key: str, *, stage_index: int, step: int) -> str | None:
    """Why ``key`` cannot change on a resume at ``step`` (in stage ``stage_index``)."""
    if key in ALLOWED_KEYS or key.startswith(ALLOWED_PREFIXES):
        return None
    if key.startswith("stages."):
        index = key.split(".")[1]
        if index.isdigit() and int(index) >= stage_index:
            return None
        return f"stage {index} is finished at step {step}"
    for prefix, reason in REASONS.items():
        if key == prefix or key.startswith(prefix + "."):
            return reason
    return "it shaped the saved state"


def check_resume(
    saved: Config, new: Config, *, stage_index: int, step: int, where: Path
) -> dict[str, list[Any]]:
    """The changes of a resume from a checkpoint at ``step`` (stage ``stage_index``).

    Raises:
        ConfigError: one paragraph naming every key that cannot change, and why.
    """
    changes = config_changes(saved, new)
    if len(saved.stages) != len(new.stages):
        changes["stages"] = [len(saved.stages), len(new.stages)]
    refused = {}
    for key in changes:
        reason = (
            "the number of stages is fixed"
            if key == "stages"
            else _refusal(key, stage_index=stage_index, step=step)
        )
        if reason is not None:
            refused[key] = reason
    if refused:
        listed = "; ".join(
            f"{key} ({changes[key][0]!r} -> {changes[key][1]!r}): {reason}"
            for key, reason in refused.items()
        )
        raise ConfigError(
            f"cannot resume {where} with these changes: {listed}. A resume may change the "
            "steps (train.max_steps, stages of the current and later stages), eval.*, "
            "logging.*, and how the work is done (train.checkpoint_every, keep_checkpoints, "
            "threads, micro_batch_size, distributed.*, model.device, ...); nothing was "
            "changed in the run.",
            hint="drop those overrides to continue the run, or start a new run "
            "(another name=) to change them.",
        )
    return changes


def record_resume(
    run_dir: Path, *, checkpoint: Path | None, step: int, changes: dict[str, list[Any]]
) -> None:
    """Append one row to ``run_dir/resumes.jsonl``: when, from which checkpoint, what
    changed (checkpoint None: a run with no complete checkpoint started again)."""
    row = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": None if checkpoint is None else checkpoint.name,
        "step": step,
        "changes": changes,
    }
    with open(run_dir / RESUMES_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


# ---- resuming a trainer -------------------------------------------------------------
class Resumable(Protocol):
    """What ``restore`` and ``open_run`` need of a trainer (``or1.trainer.Trainer``)."""

    cfg: Config
    run_dir: Path
    step: int
    policy: Any
    engine: Any

    def sync_weights(self) -> None: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


def starts_again(run_dir: Path, resume: Path | None) -> bool:
    """Does a resume from ``resume`` start ``run_dir`` again at step 0? It does when it
    resumes the run directory itself and that holds no complete checkpoint (the run was
    killed during its first one)."""
    if resume is None or Path(resume).resolve() != Path(run_dir).resolve():
        return False
    return not has_checkpoint(run_dir)


def verify_resume(
    cfg: Config, run_dir: Path, path: Path, *, fallback: bool = False
) -> tuple[Checkpoint, dict[str, list[Any]]]:
    """The checkpoint a resume of ``run_dir`` from ``path`` continues (its manifest
    verified; with ``fallback``, the newest verified one if that is damaged) and the
    config changes since it was written. Reads only: ``restore`` and
    ``or1 train --dry-run --resume`` both start with it.

    Raises:
        CheckpointError: no checkpoint, or a damaged one (naming the file).
        ConfigError: a change a resume cannot make (``check_resume``).
    """
    ckpt = load_checkpoint(path, fallback=fallback)
    saved = ckpt.path / CONFIG_FILE  # in every checkpoint since 2026-12
    saved = saved if saved.is_file() else Path(run_dir) / CONFIG_FILE
    changes = check_resume(
        load_saved_config(saved),
        cfg,
        stage_index=int(ckpt.state.get("stage_index", 0)),
        step=ckpt.step,
        where=Path(run_dir),
    )
    return ckpt, changes


def restore(
    trainer: Resumable, path: Path, *, fallback: bool = False
) -> tuple[Checkpoint, dict[str, list[Any]]]:
    """Load a verified checkpoint into ``trainer``: weights, optimizer, every RNG and the
    loop's state. Writes nothing. Raises CheckpointError (damaged or unfitting) or
    ConfigError (a change a resume cannot make, checked before anything is loaded).

    Returns the checkpoint and the config changes since it was written.
    """
    ckpt, changes = verify_resume(trainer.cfg, trainer.run_dir, path, fallback=fallback)
    rng = load_torch_file(ckpt.path / "rng.pt")
    if not restore_training_state(trainer.policy, ckpt):  # sharded files hold the weights
        model_dir, model_cfg = ckpt.model_dir, trainer.cfg.model
        model, _ = guarded_load(model_dir, lambda: load_pretrained(model_dir, model_cfg))
        guarded_load(model_dir, lambda: trainer.policy.load_weights(model.state_dict()))
    trainer.sync_weights()  # the rollout engine (and a sharded policy's model copy)
    guarded_load(ckpt.path / "state.json", lambda: trainer.load_state(ckpt.state))
    guarded_load(ckpt.path / "rng.pt", lambda: set_global_rng_state(rng["global"]))
    guarded_load(ckpt.path / "rng.pt", lambda: trainer.engine.set_rng_state(rng["engine"]))
    log.info("resumed from %s at step %d", ckpt.path, trainer.step)
    return ckpt, changes


def open_run(trainer: Resumable, resume: Path | None, *, fallback: bool) -> MetricsLogger:
    """Restore from ``resume`` (reading only) or prepare a fresh start, then make the
    run's first writes: set aside skipped checkpoints, resumes.jsonl, config.yaml, the
    metrics logger (dropping what was logged after the checkpoint).

    A resume of a run directory with no complete checkpoint (killed during its first
    one) starts it again at step 0.
    """
    run_dir = trainer.run_dir
    # Not started yet (nothing written), but a missing package is an error before any write.
    trackers = make_trackers(trainer.cfg.logging, run_dir, trainer.cfg.model_dump(mode="json"))
    restart = starts_again(run_dir, resume)
    if restart:
        log.warning("%s has no complete checkpoint: it starts again at step 0", run_dir)
        resume = None
    if resume is not None:
        ckpt, changes = restore(trainer, resume, fallback=fallback)
        suffix = "damaged" if fallback else "skipped"
        for moved in move_aside_newer(run_dir / "ckpt", trainer.step, suffix=suffix):
            log.warning("set aside %s (newer than the checkpoint resumed from)", moved)
        record_resume(run_dir, checkpoint=ckpt.path, step=trainer.step, changes=changes)
    else:
        refuse_existing(run_dir)
        previous = run_dir / CONFIG_FILE
        known = restart and previous.is_file()
        changes = config_changes(load_saved_config(previous), trainer.cfg) if known else {}
        clear_outputs(run_dir)
        if restart:
            record_resume(run_dir, checkpoint=None, step=0, changes=changes)
    write_config(run_dir, trainer.cfg)
    logger = MetricsLogger(run_dir, tensorboard=trainer.cfg.logging.tensorboard, trackers=trackers)
    if resume is not None:
        logger.truncate_after(trainer.step)
    logger.start_trackers()  # a tracker that cannot start stops the run now, not after eval
    return logger
