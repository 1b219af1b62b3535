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
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from transformers import PretrainedConfig, PreTrainedTokenizerBase

from or1.config import Config
from or1.data.problem import Problem
from or1.errors import ConfigError, DataError, DryRunError, Or1Error

T = TypeVar("T")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
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
    model = checks.run("model", functools.partial(_check_model, cfg))
    tokenizer, model_config = model or (None, None)
    if tokenizer is not None and splits is not None:
        sets = {"train": splits[0], "test": splits[1], **(benchmarks or {})}
        longest = checks.run("prompts", functools.partial(_check_prompts, cfg, tokenizer, sets))
        if longest is not None and model_config is not None:
            lengths = functools.partial(_check_lengths, cfg, model_config, longest)
            checks.run("lengths", lengths)
    memory = _memory(cfg) if tokenizer is not None else None
    if memory:
        checks.lines.append(f"{'memory':<11}{memory}")
    checks.lines.append(f"{'stages':<11}{_stages(cfg)}")
    checks.raise_errors()
    return [f"or1 dry run of preset {cfg.preset}: nothing trained, nothing written", *checks.lines]


# ---- the run directory and the cache -------------------------------------------------
def _writable_parent(path: Path) -> tuple[bool, Path]:
    """(writable, the nearest existing ancestor): could ``path`` be created and written?"""
    node = path.absolute()
    while not node.exists():
        node = node.parent
    return node.is_dir() and os.access(node, os.W_OK | os.X_OK), node


def _require_writable(path: Path, what: str, setting: str) -> str:
    ok, node = _writable_parent(path)
    if not ok:
        kind = "directory" if node.is_dir() else "file"
        raise ConfigError(
            f"{what} {path} cannot be written: {node} is a {kind} this user cannot write to.",
            hint=f"choose another {setting}, or fix the permissions of {node}.",
        )
    return "exists, writable" if node == path.absolute() else f"would be created in {node}"


def _check_run_dir(run_dir: Path, resume: bool) -> tuple[str, None]:
    from or1.rundir import OUTPUTS

    where = _require_writable(run_dir, "the run directory", "name= or runs_dir=")
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


# ---- the model ----------------------------------------------------------------------------
Model = tuple[PreTrainedTokenizerBase | None, PretrainedConfig | None]


def _check_model(cfg: Config) -> tuple[str, Model]:
    """The model's description, its tokenizer and its config (None: not available
    without loading weights: a GGUF file not converted yet)."""
    from or1.build import gguf

    source = gguf.gguf_source(cfg.model)
    if source is not None:
        target = cfg.cache_path / "gguf" / gguf.cache_key(gguf.file_digest(source.file))
        size = source.file.stat().st_size / 1e9
        if (target / "config.json").is_file():
            text, tokenizer = _hf_dir(target, cfg)
            return f"GGUF {source.file} ({size:.2f} GB), converted: {text}", tokenizer
        cache = _require_writable(target, "the GGUF cache", "cache_dir=")
        return (
            f"GGUF {source.file} ({size:.2f} GB), converted on the first run (cache {cache}); "
            "prompt lengths are checked then",
            (None, None),
        )
    if cfg.model.path is not None:
        return _hf_dir(Path(cfg.model.path), cfg)
    from or1.build.start import tiny_hooks

    if tiny_hooks(cfg) is not None:
        return _tiny_model(cfg)
    raise ConfigError(
        "model.path is not set and the task builds no model.",
        hint="set model.path to a local Hugging Face model directory.",
    )


def _tiny_model(cfg: Config) -> tuple[str, Model]:
    from transformers import AutoConfig

    from or1.build.models import load_tokenizer, tiny_model_config
    from or1.build.start import tiny_tokenizer, warmup_dir

    t = cfg.model.tiny
    text = f"tiny Qwen2 from model.tiny ({t.num_layers} layers, hidden {t.hidden_size})"
    target = warmup_dir(cfg)
    if (target / "config.json").is_file():
        model = (load_tokenizer(target, cfg.model), AutoConfig.from_pretrained(target))
        return f"{text}, warm-up cached in {target}", model
    steps = cfg.warmup.steps if cfg.warmup.enabled else 0
    cache = _require_writable(target, "the warm-up cache", "cache_dir=")
    tokenizer = tiny_tokenizer(cfg)
    model = (tokenizer, tiny_model_config(cfg.model.tiny, tokenizer))
    return f"{text}, warm-up of {steps} steps runs first (cache {cache})", model


def _hf_dir(path: Path, cfg: Config) -> tuple[str, Model]:
    """Describe a local HF model directory from its config and weight headers."""
    from transformers import AutoConfig

    from or1.build.models import load_tokenizer

    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model.path {path} is not a Hugging Face model directory (no config.json).",
            hint="point model.path at a directory written by save_pretrained.",
        )
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{path}/config.json cannot be read: {err}") from None
    params, files = _weights(path)
    tokenizer = load_tokenizer(path, cfg.model)
    arch = ",".join(getattr(config, "architectures", None) or [config.model_type])
    positions = getattr(config, "max_position_embeddings", None)
    count = f"{params / 1e9:.2f}B" if params >= 1e9 else f"{params / 1e6:.2f}M"
    return (
        f"{path}: {arch}, {count} parameters in {files}, max positions {positions}; "
        "tokenizer with a chat template"
    ), (tokenizer, config)


def _weights(path: Path) -> tuple[int, str]:
    """(parameter count, which files): read from safetensors headers, no tensor data."""
    from safetensors import SafetensorError, safe_open

    shards = sorted(p for p in path.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
    if not shards:
        raise ConfigError(
            f"model.path {path} has a config.json but no weight files "
            f"({', '.join(WEIGHT_SUFFIXES)}).",
            hint="copy the model's weights beside its config, or re-save it with save_pretrained.",
        )
    safetensors = [p for p in shards if p.suffix == ".safetensors"]
    if not safetensors:  # torch pickles: counting would mean loading them
        return 0, f"{len(shards)} torch weight files (not inspected)"
    total = 0
    for shard in safetensors:
        try:
            with safe_open(shard, framework="pt") as f:
                total += sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
        except (SafetensorError, OSError, json.JSONDecodeError) as err:
            raise ConfigError(
                f"weight file {shard} is damaged: {err}.",
                hint="download or copy the model again.",
            ) from None
    size = sum(p.stat().st_size for p in safetensors) / 1e9
    return total, f"{len(safetensors)} safetensors files ({size:.2f} GB)"


def _numel(shape: list[int]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def _memory(cfg: Config) -> str | None:
    """The memory plan's verdict for a model.path run (``or1 plan`` prints its table);
    None when there is no plan (the tiny model, a GGUF file)."""
    from or1.plan import make_plan, model_shape, settings_of
    from or1.plan.report import device_memory

    if cfg.model.path is None or cfg.model.gguf_file or cfg.model.path.endswith(".gguf"):
        return None
    try:
        shape = model_shape(cfg.model.path)
    except (ConfigError, ValueError, OSError):
        return None
    device, gib = device_memory(cfg)
    plan = make_plan(shape, settings_of(cfg, device=device), gpu_gib=gib)
    peak = plan.peak / 2**30
    verdict = "fits" if plan.fits else "does NOT fit (training warns)"
    return f"{verdict}: peak {peak:.1f} of {gib:.0f} GiB ({device}); `or1 plan` has the table"


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
