"""Shared helpers of the benchmarks: the models, prompts, machine facts, JSON output.

Every bench prints progress to stderr and exactly one JSON object as the last line of
stdout. Timings are wall-clock seconds of the same work run side by side in one
process, alternating, several repeats; ratios are of medians.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from or1.build import encode_prompt, load_model, load_problems
from or1.build.models import build_tiny_model
from or1.config import Config, load_config
from or1.engine.rollout import stop_token_ids

# ~25M parameters with the tiny-arith tokenizer (hidden 512, 8 layers, GQA 8/2, ffn 1536).
MODEL_25M = {
    "hidden_size": 512,
    "num_layers": 8,
    "num_heads": 8,
    "num_kv_heads": 2,
    "intermediate_size": 1536,
}


THREADS_HELP = (
    "torch threads for every engine in the run (default 1: on this shared 2-core machine "
    "2-thread runs collapse whenever another process holds a core)"
)


PROCESSES_HELP = (
    "or1 decodes rollouts in this many single-thread processes (rollout.hf.processes); "
    "use with --threads 2 to give both sides the whole 2-core machine"
)


def set_threads(n: int) -> None:
    torch.set_num_threads(n)


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """The bench's result: one JSON object, the last line of stdout."""
    print(json.dumps(result), flush=True)


def machine() -> dict[str, Any]:
    """What the numbers came from (and how busy the machine was)."""
    cpu, flags = platform.processor() or "", set()
    try:
        with open("/proc/cpuinfo") as fh:
            lines = fh.readlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        cpu = names[0] if names else cpu
        flags = {f for line in lines if line.startswith("flags") for f in line.split()}
    except OSError:
        pass
    # The same model name covers hosts with and without AVX-512, which moves every number.
    vector = next((isa for isa in ("amx_tile", "avx512f", "avx2") if isa in flags), "unknown")
    return {
        "cpu": cpu,
        "widest_simd": vector,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def tiny_arith(overrides: list[str] | None = None) -> tuple[Config, Any, list, list]:
    """The tiny-arith preset, its warmed-up model (cached) and its (train, test) problems."""
    cfg = load_config("tiny-arith", overrides or [])
    train, test = load_problems(cfg)
    loaded = load_model(cfg, train, show=False)
    return cfg, loaded, train, test


def model_25m(tokenizer: Any, *, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised ~25M-parameter Qwen2 with the tiny-arith tokenizer."""
    from or1.config import TinyModelConfig

    torch.manual_seed(seed)
    return build_tiny_model(TinyModelConfig(**MODEL_25M), tokenizer).eval()


def prompts_of(tokenizer: Any, problems: list) -> list[list[int]]:
    return [encode_prompt(tokenizer, p) for p in problems]


def stops(tokenizer: Any, model: Any) -> list[int]:
    return stop_token_ids(tokenizer, model)


def params_of(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def alternate(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[Any]]:
    """Run each fn once per repeat, alternating (a, b, a, b, ...); collect their results."""
    out: dict[str, list[Any]] = {name: [] for name in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            value = fn()
            seconds = time.perf_counter() - t0
            out[name].append((seconds, value))
            log(f"  repeat {r + 1}/{repeats} {name}: {seconds:.2f} s")
    return out


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))
