"""The plan as a table (rich), the ``or1 plan`` command, and the check at a run's start."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from or1.config import Config
from or1.errors import ConfigError
from or1.plan.budget import GIB, Item, Plan, Settings, make_plan, settings_of
from or1.plan.shape import model_shape

log = logging.getLogger("or1.plan")

PHASES = {
    "held": "whole run",
    "update": "update",
    "rollout": "rollout",
    "vllm": "in vLLM's share",
}
DEFAULT_GPU_GIB = 80.0

ADVICE = {
    "master weights": "more FSDP ranks (distributed.backend=ray distributed.workers=N)",
    "AdamW state": "more FSDP ranks (distributed.workers)",
    "gradients": "more FSDP ranks (distributed.workers)",
    "vLLM's share": "a smaller rollout.vllm.gpu_memory_utilization",
    "activations": "a smaller train.micro_batch_size (or train.micro_batch_tokens)",
    "LM head, log-probs": "a smaller train.logits_chunk_tokens",
    "KV cache (hf)": "a smaller rollout.max_num_seqs, or rollout.engine=vllm",
    "unsharded weights": "more, smaller FSDP units (a tied embedding/LM head stays in the root)",
    "compute copies": "model.dtype=float32 (no compute copies, slower), or FSDP ranks",
}


def _advice(item: Item, settings: Settings) -> str:
    if item.name == "activations" and not settings.checkpointing:
        return "model.gradient_checkpointing=true, or " + ADVICE[item.name]
    if item.name == "vLLM's share" and not settings.vllm_sleeps:
        return "rollout.vllm.sleep_level=2 frees it for the update, or " + ADVICE[item.name]
    if item.name == "LM head, log-probs" and settings.logits_chunk is None:
        return "set train.logits_chunk_tokens (e.g. 2048): the head is not chunked"
    return ADVICE[item.name]


def advice(plan: Plan) -> list[str]:
    """What to change when the plan does not fit, largest consumers first."""
    out = []
    if plan.vllm_sequences == 0:
        out.append(
            "vLLM's share leaves no KV cache for one full-length sequence: raise "
            "rollout.vllm.gpu_memory_utilization (the policy then gets less) or shorten it"
        )
    if plan.peak > plan.gpu_bytes:
        phase = "update" if plan.total("update") >= plan.total("rollout") else "rollout"
        items = [i for i in plan.items if i.phase in ("held", phase) and i.name in ADVICE]
        for item in sorted(items, key=lambda i: -i.bytes)[:3]:
            out.append(f"{item.name} ({item.bytes / GIB:.1f} GiB): {_advice(item, plan.settings)}")
    return out


def _gib(value: int) -> str:
    return f"{value / GIB:.2f}"


def header(plan: Plan) -> str:
    """The model and the settings the budget is for, in two lines."""
    s, x = plan.shape, plan.settings
    dtypes = {4: "fp32", 2: "bf16"}
    return (
        f"model: {s.params / 1e9:.2f}B parameters ({s.layers} layers, hidden {s.hidden}, "
        f"MLP {s.intermediate}, {s.kv_heads} KV heads x {s.head_dim}, vocabulary {s.vocab})\n"
        f"run: {x.workers} FSDP rank(s), {dtypes[x.master_bytes]} master / "
        f"{dtypes[x.compute_bytes]} compute, checkpointing {'on' if x.checkpointing else 'off'};"
        f" stage {x.stage}: {x.prompt_length} + {x.response_length} tokens, micro-batch "
        f"{x.micro_tokens:,} tokens per rank, LM head chunk {x.logits_chunk or 'off'}; "
        f"rollout.engine={x.engine}"
    )


def table(plan: Plan) -> Table:
    """One row per item of the budget, then the totals per phase and the peak."""
    out = Table(title=f"or1 plan: memory per GPU (GiB) on a {plan.gpu_bytes / GIB:g} GiB GPU")
    for name, justify in (("item", "left"), ("when", "left"), ("formula", "left")):
        out.add_column(name, justify=justify)  # type: ignore[arg-type]
    out.add_column("GiB", justify="right")
    for item in plan.items:
        out.add_row(item.name, PHASES[item.phase], item.formula, _gib(item.bytes))
    out.add_section()
    for phase in ("held", "update", "rollout"):
        if any(i.phase == phase for i in plan.items):
            out.add_row(f"total {PHASES[phase]}", "", "", _gib(plan.total(phase)))
    out.add_row("peak", "", "held + max(update, rollout)", _gib(plan.peak))
    return out


def verdict(plan: Plan) -> str:
    """One paragraph: fits or not, vLLM's concurrency, what to change."""
    peak, gpu = plan.peak / GIB, plan.gpu_bytes / GIB
    x = plan.settings
    lines = [
        f"fits: {peak:.1f} of {gpu:g} GiB"
        if plan.fits
        else f"does NOT fit: {peak:.1f} GiB needed of {gpu:g} GiB"
    ]
    if plan.vllm_sequences is not None:
        lines.append(
            f"vLLM: {plan.vllm_sequences} sequences of {x.seq_tokens:,} tokens at once per "
            f"engine at full length (the step samples {x.sequences:,})"
        )
    lines += [f"to lower: {line}" for line in advice(plan)]
    return "\n".join(lines)


def show(plan: Plan, console: Console | None = None) -> None:
    console = console or Console()
    console.print(header(plan))
    console.print(table(plan))
    console.print(verdict(plan))


def device_memory(cfg: Config) -> tuple[str, float]:
    """(device kind, GiB) of this run's device: CUDA device 0's total memory; with Ray and
    no local GPU, 80 GiB assumed (the GPUs are on other nodes); else the host's RAM."""
    if cfg.model.device != "cpu" and torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_properties(0).total_memory / GIB
    if cfg.model.device != "cpu" and cfg.distributed.backend == "ray":
        return "cuda", DEFAULT_GPU_GIB
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return "cpu", int(line.split()[1]) * 1024 / GIB
    return "cpu", DEFAULT_GPU_GIB


def preflight(cfg: Config, console: Console | None = None) -> Plan | None:
    """At the start of ``or1 train``, before anything is loaded: the rollout engine can
    start here (vLLM installed, a device it supports), and for a model.path run, print
    the plan (a warning when it does not fit). Returns the plan, if there is one."""
    if cfg.rollout.engine == "vllm":
        from or1.engine.vllm_rollout import check_vllm_runtime

        check_vllm_runtime(distributed=cfg.distributed.backend == "ray")
    if cfg.model.path is None:
        return None
    try:
        shape = model_shape(cfg.model.path)
    except (ConfigError, ValueError, OSError) as err:  # GGUF, a missing dir: the loader says
        log.info("no memory plan for model.path=%s: %s", cfg.model.path, err)
        return None
    device, gib = device_memory(cfg)
    plan = make_plan(shape, settings_of(cfg, device=device), gpu_gib=gib)
    show(plan, console)
    if not plan.fits:
        log.warning("the memory plan does not fit this device; the run may run out of memory")
    return plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny-arith", help="preset name or YAML file")
    parser.add_argument(
        "--gpu-memory", type=float, default=DEFAULT_GPU_GIB, help="GiB per GPU (default 80)"
    )
    parser.add_argument(
        "--workers", type=int, help="FSDP ranks (sets distributed.backend=ray and .workers)"
    )
    parser.add_argument("--stage", type=int, help="plan this stage (default: the longest)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value settings (model.path=DIR)")


def main(args: argparse.Namespace) -> int:
    """``or1 plan``: print the budget; exit code 0 when it fits, 1 when it does not."""
    from or1.config import load_config

    overrides = list(args.overrides)
    if args.workers is not None:
        overrides += ["distributed.backend=ray", f"distributed.workers={args.workers}"]
    cfg = load_config(args.preset, overrides)
    if cfg.model.path is None:
        raise ConfigError(
            f"or1 plan: preset {cfg.preset} has no model.path.",
            hint="give the model directory (only its config.json is read): "
            "model.path=/models/DeepSeek-R1-Distill-Qwen-7B.",
        )
    plan = make_plan(
        model_shape(cfg.model.path),
        settings_of(cfg, stage=args.stage, device="cuda"),
        gpu_gib=args.gpu_memory,
    )
    show(plan)
    return 0 if plan.fits else 1
