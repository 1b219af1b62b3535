"""``or1 export RUN_OR_CKPT OUT``: a clean Hugging Face model directory from a checkpoint.

OUT holds what transformers and vLLM load, and nothing else: ``config.json``, the
safetensors weights (sharded files with their index for large models), the tokenizer
files with the chat template, a ``generation_config.json`` whose ``eos_token_id`` lists
every stop token the run sampled with (and the evaluation's temperature, top-p and
length), and a ``README.md`` model card: the recipe settings, the data sources, the
steps, and the evaluation table (base and at the exported step) from the run's
``summary.json`` and ``eval.jsonl``. No optimizer, RNG, sharded or state files. The
checkpoint is verified first (a damaged one is a CheckpointError), and OUT is written
as a temp directory renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from or1.checkpoint import Checkpoint, load_checkpoint
from or1.config import Config, load_saved_config
from or1.errors import ConfigError
from or1.resume import flatten
from or1.rundir import CONFIG_FILE

SKIPPED = ("generation_config.json",)  # rewritten with the run's stop tokens


def export_checkpoint(source: Path, out: Path) -> Path:
    """Export the checkpoint at ``source`` (a run dir, its ckpt/latest, a ckpt/step_N) to
    the new directory ``out``. Returns ``out``.

    Raises:
        CheckpointError: the checkpoint is missing or does not verify.
        ConfigError: ``out`` exists and is not empty.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{out} already exists.", hint="give a new directory (or remove that one)."
        )
    ckpt = load_checkpoint(source)
    run_dir = ckpt.path.parent.parent  # runs/<name>/ckpt/step_N
    cfg = _config(ckpt, run_dir)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for path in sorted(ckpt.model_dir.iterdir()):
            if path.is_file() and path.name not in SKIPPED:
                shutil.copy2(path, tmp / path.name)
        _write_generation_config(ckpt.model_dir, tmp, cfg)
        (tmp / "README.md").write_text(model_card(ckpt, cfg, run_dir), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _config(ckpt: Checkpoint, run_dir: Path) -> Config | None:
    """The run's config (the checkpoint's own copy, else the run's), or None."""
    for path in (ckpt.path / CONFIG_FILE, run_dir / CONFIG_FILE):
        if path.is_file():
            return load_saved_config(path)
    return None


def _write_generation_config(model_dir: Path, out: Path, cfg: Config | None) -> None:
    """generation_config.json: every stop token of the run as ``eos_token_id`` (vLLM and
    ``generate`` stop on any of them), and the evaluation's sampling settings."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    from or1.engine.rollout import stop_token_ids

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    try:
        generation = GenerationConfig.from_pretrained(model_dir)
    except OSError:  # none saved
        generation = GenerationConfig.from_model_config(config)
    # stop_token_ids reads only the model's configs: no weights are loaded for it.
    model_configs = SimpleNamespace(generation_config=generation, config=config)
    generation.eos_token_id = stop_token_ids(tokenizer, model_configs)  # type: ignore[arg-type]
    generation.pad_token_id = tokenizer.pad_token_id
    if cfg is not None:
        generation.do_sample = True
        generation.temperature, generation.top_p = cfg.eval.temperature, cfg.eval.top_p
        generation.max_new_tokens = cfg.eval.max_tokens or cfg.stages[-1].max_response_length
    generation.save_pretrained(out)


def _eval_rows(run_dir: Path, step: int) -> list[dict[str, Any]]:
    """The evaluations of the base (step 0) and of the exported weights (``step``)."""
    from or1.tracking import EVAL_FILE, read_jsonl

    rows = read_jsonl(run_dir / EVAL_FILE) if (run_dir / EVAL_FILE).is_file() else []
    return [r for r in rows if r.get("step") in (0, step)]


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


def _recipe(cfg: Config) -> list[str]:
    settings = {f"algo.{k}": v for k, v in flatten(cfg.algo.model_dump(mode="json")).items()}
    settings.update({f"optim.{k}": v for k, v in cfg.optim.model_dump(mode="json").items()})
    settings["rollout.temperature"] = cfg.rollout.temperature
    settings["rollout.top_p"] = cfg.rollout.top_p
    lines = ["## Recipe", "", *_table(["setting", "value"], [[k, v] for k, v in settings.items()])]
    stages = [
        [i, s.steps, s.max_response_length, s.batch_size, s.mini_batch_size, s.group_size]
        for i, s in enumerate(cfg.stages)
    ]
    header = ["stage", "steps", "max response tokens", "prompts", "mini-batch", "group size"]
    return [*lines, "", *_table(header, stages), ""]


def _data(cfg: Config) -> list[str]:
    d = cfg.data
    train = d.train if d.train is not None else f"built-in task {d.task}"
    test = d.test if d.test is not None else ("the task's test split" if d.task else "none")
    benchmarks = ", ".join(cfg.eval.benchmarks) or "none"
    return [
        "## Data",
        "",
        f"- training problems: {train}",
        f"- held-out problems: {test}",
        f"- benchmarks: {benchmarks}",
        f"- base model: {cfg.model.path or 'a tiny Qwen2 built from model.tiny, warmed up'}",
        "",
    ]


def _evaluation(run_dir: Path, step: int) -> list[str]:
    rows = _eval_rows(run_dir, step)
    if not rows:
        return ["## Evaluation", "", "No evaluation was recorded for these weights.", ""]
    body = [
        [
            r.get("step"),
            r.get("label"),
            r.get("benchmark") or "held-out split",
            r.get("problems"),
            r.get("k"),
            _fmt(r.get("avg_at_k")),
            _fmt((r.get("pass_at_k") or {}).get(str(r.get("k")))),
        ]
        for r in rows
    ]
    header = ["step", "label", "set", "problems", "k", "avg@k", "pass@k"]
    return ["## Evaluation", "", *_table(header, body), ""]


def model_card(ckpt: Checkpoint, cfg: Config | None, run_dir: Path) -> str:
    """README.md of an exported model: front matter, recipe, data, steps, evaluation."""
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    name = run_dir.name if (run_dir / CONFIG_FILE).is_file() else ckpt.path.name
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [or1, skywork-or1, magic, grpo, reinforcement-learning]",
        *([f"base_model: {cfg.model.path}"] if cfg is not None and cfg.model.path else []),
        "---",
        "",
        f"# {name} (step {ckpt.step})",
        "",
        "Trained with or1's Skywork-OR1 recipe (MAGIC: GRPO with rejection sampling, a "
        "multi-stage schedule, adaptive entropy control).",
        "",
        f"- steps trained: {ckpt.step}" + (f" of {cfg.total_steps}" if cfg else ""),
    ]
    if summary.get("wall_seconds") is not None:
        lines.append(f"- wall time of the run: {summary['wall_seconds']:.0f} s")
    if cfg is not None:
        lines += [f"- preset: {cfg.preset}, seed {cfg.train.seed}", ""]
        lines += _recipe(cfg) + _data(cfg)
        if cfg.eval.prompt_suffix:
            lines += [f"Math prompts end with: `{cfg.eval.prompt_suffix}`", ""]
    lines += ["", *_evaluation(run_dir, ckpt.step)]
    lines += [
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'model = AutoModelForCausalLM.from_pretrained("<this directory>")',
        'tokenizer = AutoTokenizer.from_pretrained("<this directory>")',
        "```",
        "",
        "vLLM: `vllm serve <this directory>` (generation_config.json holds the stop tokens).",
        "",
    ]
    return "\n".join(lines)
