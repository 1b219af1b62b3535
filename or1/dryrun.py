"""``or1 train --dry-run``: check everything a run needs, without training.

Nothing here loads model weights, starts an engine or creates the run directory. Checked:

- the config: it validated (before this module), the rollout engine is registered and
  its optional packages import, the device exists, the trackers' packages import, the
  reward functions of ``rewards.by_ability`` import (``rewards_from_config``, as at the
  start of training); with code problems, the sandbox isolates programs here
  (``require_sandbox``, as at the start of training);
- the data: every row of ``data.train`` / ``data.test`` is read and converted exactly as
  training reads it (a bad row is the same DataError), or the task's problems generated;
- the model: ``model.path`` holds a readable ``config.json``, weight files whose
  safetensors headers parse (they give the parameter count; the tensors are not read)
  and a tokenizer with a chat template; a GGUF file exists; the tiny model's warm-up is
  cached or will run;
- the prompts: with the tokenizer, every prompt of every split and benchmark is encoded
  and held against ``rollout.max_prompt_length``, and the longest kept prompt plus each
  stage's response length against the model's ``max_position_embeddings`` (from its
  config.json: ``check_lengths``, the function training starts with);
- ``eval.benchmarks``: every file is found and read;
- the run directory and the cache: they could be created and written (the nearest
  existing parent is a writable directory); on ``--resume``, what the resume would do:
  the checkpoint it continues from, verified against its manifest, and the overrides
  checked against what a resume may change (``or1.resume.verify_resume``, the resume's
  own first step), or, for a run killed during its first checkpoint, that it starts
  again at step 0 (``or1.resume.starts_again``). Verifying reads every file of the
  checkpoint once (sha256, ~300 MiB/s per core).

Independent checks all run; their errors come back together in one paragraph
(:class:`or1.errors.DryRunError`; a single error is raised as it is).

Example:
    >>> lines = dry_run(load_config("tiny-arith"), Path("runs/demo"))  # doctest: +SKIP
    >>> print("\\n".join(lines))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from transformers import PretrainedConfig, PreTrainedTokenizerBase

from or1.config import Config
from or1.data.problem import Problem
from or1.dryrun_model import check_model, memory_verdict
from or1.errors import ConfigError, DataError, DryRunError, Or1Error
from or1.rundir import require_writable

T = TypeVar("T")
# Optional packages by what needs them: (module, install hint).
BACKEND_PACKAGES = {"ray": ("ray", "pip install 'or1[ray]'")}


class _Checks:
    """Runs checks, keeping the first line of output of each and every error."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.errors: list[Or1Error] = []

    def run(self, label: str, check: Callable[[], tuple[str, T]]) -> T | None:
        try:
            text, value = check()
        except Or1Error as err:
            self.errors.append(err)
            self.lines.append(f"{label:<11}FAILED")
            return None
        self.lines.append(f"{label:<11}{text}")
        return value

    def raise_errors(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            parts = " ".join(f"({i}) {err}" for i, err in enumerate(self.errors, 1))
            raise DryRunError(f"the dry run found {len(self.errors)} problems: {parts}")


def dry_run(
    cfg: Config, run_dir: Path, *, resume: bool = False, fallback: bool = False
) -> list[str]:
    """Check ``cfg`` for a run in ``run_dir``; return the summary lines.

    Args:
        cfg: The resolved config (already validated and, for a new run, trainable).
        run_dir: The run directory training would use (it is not created).
        resume: The run continues from a checkpoint in ``run_dir``.
        fallback: With ``resume``: a damaged latest checkpoint falls back to the newest
            verified one (``--fallback-to-verified``).

    Raises:
        Or1Error: One check failed (its own error), or DryRunError naming every failure.
    """
    checks = _Checks()
    checks.run("run dir", functools.partial(_check_run_dir, Path(run_dir), resume))
    if resume:
        checks.run("resume", functools.partial(_check_resume, cfg, Path(run_dir), fallback))
    checks.run("packages", functools.partial(_check_packages, cfg))
    checks.run("trackers", functools.partial(_check_trackers, cfg, Path(run_dir)))
    checks.run("rewards", functools.partial(_check_rewards, cfg))
    splits = checks.run("data", functools.partial(_check_data, cfg))
    benchmarks = checks.run("benchmarks", functools.partial(_check_benchmarks, cfg))
    if splits is not None:
        scored = [*splits[0], *splits[1], *(p for ps in (benchmarks or {}).values() for p in ps)]
        checks.run("sandbox", functools.partial(_check_sandbox, cfg, scored))
    model = checks.run("model", functools.partial(check_model, cfg))
    tokenizer, model_config = model or (None, None)
    if tokenizer is not None and splits is not None:
        sets = {"train": splits[0], "test": splits[1], **(benchmarks or {})}
        longest = checks.run("prompts", functools.partial(_check_prompts, cfg, tokenizer, sets))
        if longest is not None and model_config is not None:
            lengths = functools.partial(_check_lengths, cfg, model_config, longest)
            checks.run("lengths", lengths)
    memory = memory_verdict(cfg) if tokenizer is not None else None
    if memory:
        checks.lines.append(f"{'memory':<11}{memory}")
    checks.lines.append(f"{'stages':<11}{_stages(cfg)}")
    checks.raise_errors()
    return [f"or1 dry run of preset {cfg.preset}: nothing trained, nothing written", *checks.lines]


# ---- the run directory and the cache -------------------------------------------------
def _check_run_dir(run_dir: Path, resume: bool) -> tuple[str, None]:
    from or1.rundir import OUTPUTS

    where = require_writable(run_dir, "the run directory", "name= or runs_dir=")
    earlier = not resume and any((run_dir / name).exists() for name in OUTPUTS)
    # A new run here passed refuse_existing: an attempt killed before its first checkpoint.
    note = "; an earlier attempt's outputs (no checkpoint) are cleared at start" if earlier else ""
    return f"{run_dir} ({where}){note}", None


def _check_resume(cfg: Config, run_dir: Path, fallback: bool) -> tuple[str, None]:
    """What ``or1 train --resume run_dir`` would do, decided by the resume's own code."""
    from or1.checkpoint import find_checkpoint
    from or1.resume import starts_again, verify_resume

    if starts_again(run_dir, run_dir):
        return (
            "no complete checkpoint (killed during its first one?): the run starts again "
            "at step 0, its earlier outputs cleared",
            None,
        )
    ckpt, changes = verify_resume(cfg, run_dir, run_dir, fallback=fallback)
    text = f"from {ckpt.path.name} (step {ckpt.step}, verified)"
    latest = find_checkpoint(run_dir)
    if latest != ckpt.path:  # --fallback-to-verified chose an older one
        text += f"; {latest.name} is damaged and would be set aside"
    if changes:
        text += "; changes: " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())
    return text, None


def _check_packages(cfg: Config) -> tuple[str, None]:
    from or1.build.models import resolve_device
    from or1.engine.factory import engine_kind

    engine_kind(cfg.rollout.engine)
    if cfg.rollout.engine == "vllm":  # the check training starts with (or1.plan.preflight)
        from or1.engine.vllm_rollout import check_vllm_runtime

        check_vllm_runtime(distributed=cfg.distributed.backend == "ray")
    for module, hint in filter(None, [BACKEND_PACKAGES.get(cfg.distributed.backend)]):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"this run needs the {module} package, not installed.", hint=hint)
    device = resolve_device(cfg.model)
    return (
        f"rollout engine {cfg.rollout.engine}, backend {cfg.distributed.backend} "
        f"(workers {cfg.distributed.workers}), device {device.type}"
    ), None


def _check_trackers(cfg: Config, run_dir: Path) -> tuple[str, None]:
    from or1.trackers import MlflowTracker, WandbTracker, make_trackers

    names = ["metrics.jsonl"] + (["tensorboard"] if cfg.logging.tensorboard else [])
    for tracker in make_trackers(cfg.logging, run_dir, {}):  # imports their packages
        if isinstance(tracker, WandbTracker):
            s = tracker.settings
            names.append(f"wandb (project {s['project']}, run {s['name']}, {s['mode']})")
        elif isinstance(tracker, MlflowTracker):
            where = tracker.tracking_uri or "the default tracking URI"
            names.append(f"mlflow (experiment {tracker.experiment} at {where})")
    return ", ".join(names), None


def _check_rewards(cfg: Config) -> tuple[str, None]:
    """Import every reward as training's start does (a bad rewards.by_ability path)."""
    from or1.rewards import rewards_from_config

    rewards = rewards_from_config(cfg.rewards)
    custom = cfg.rewards.by_ability
    names = [f"{n} ({custom[n]})" if n in custom else n for n in sorted(rewards.fns)]
    return ", ".join(names), None


def _check_sandbox(cfg: Config, problems: list[Problem]) -> tuple[str, None]:
    """Probe the code sandbox as training's start does (``require_sandbox``)."""
    from or1.rewards import rewards_from_config
    from or1.rewards.scoring import require_sandbox

    backend = require_sandbox(rewards_from_config(cfg.rewards), problems)
    return ("not needed (no code problems)" if backend is None else backend.describe()), None


# ---- data and benchmarks ----------------------------------------------------------------
def _check_data(cfg: Config) -> tuple[str, tuple[list[Problem], list[Problem]]]:
    from or1.build import load_problems

    train, test = load_problems(cfg)
    if not train:
        raise DataError(
            "the training set is empty.", hint="check data.train (or the task's n_train)."
        )
    source = cfg.data.train if cfg.data.train is not None else f"task {cfg.data.task}"
    return f"train {len(train)} problems, test {len(test)} ({source})", (train, test)


def _check_benchmarks(cfg: Config) -> tuple[str, dict[str, list[Problem]]]:
    from or1.evaluate import load_benchmarks

    loaded = load_benchmarks(cfg)
    text = ", ".join(f"{name} {len(p)} problems" for name, p in loaded.items()) or "none"
    return text, {f"benchmark {name}": problems for name, problems in loaded.items()}


# ---- prompts and stages -------------------------------------------------------------------
def _check_prompts(
    cfg: Config, tokenizer: PreTrainedTokenizerBase, sets: dict[str, list[Problem]]
) -> tuple[str, int]:
    """Prompts against rollout.max_prompt_length; the value is the longest kept prompt
    (tokens), as training measures it."""
    from or1.build import encode_prompt, fit_prompts

    encode = functools.partial(encode_prompt, tokenizer)
    limit = cfg.rollout.max_prompt_length
    parts, longest = [], 0
    for split, problems in sets.items():
        if problems:
            kept, ids = fit_prompts(problems, encode, limit, split=split)
            longest = max([longest, *map(len, ids.values())])
            dropped = len(problems) - len(kept)
            parts.append(f"{split} {len(kept)}" + (f" ({dropped} too long)" if dropped else ""))
    return f"fit rollout.max_prompt_length={limit}: {', '.join(parts)}", longest


def _check_lengths(cfg: Config, model_config: PretrainedConfig, longest: int) -> tuple[str, None]:
    from or1.build import check_lengths

    check_lengths(cfg, model_config, [longest])  # the check training starts with
    limit = getattr(model_config, "max_position_embeddings", None)
    response = max(s.max_response_length for s in cfg.stages)
    response = max(response, cfg.eval.max_tokens or 0)
    if not limit:
        return "the model states no max_position_embeddings: not checked", None
    return (
        f"longest prompt {longest} + longest response {response} = {longest + response} "
        f"of {limit} positions",
        None,
    )


def _stages(cfg: Config) -> str:
    stages = "; ".join(
        f"{i}) {s.steps} steps x {s.batch_size} prompts x {s.group_size} samples, "
        f"{s.max_response_length} tokens"
        for i, s in enumerate(cfg.stages, 1)
    )
    limit = f" (train.max_steps={cfg.train.max_steps})" if cfg.train.max_steps else ""
    at_most = "at most " if any(s.advance_at_truncation for s in cfg.stages) else ""  # advance
    return f"{stages}; {at_most}{cfg.total_steps} steps in all{limit}"
