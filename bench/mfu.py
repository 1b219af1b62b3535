"""Training throughput of the policy update: tokens/s and achieved FLOP/s vs matmul peak.

    .venv/bin/python bench/mfu.py [--repeats 3] [--skip-25m]

A real rollout batch (tiny-arith held-out prompts, 32 x 8 samples, at most 64 tokens,
every group kept) is trained on with ``LocalPolicy.update`` and the MAGIC loss, one
optimizer step per repeat, for the tiny-arith model and a ~25M-parameter Qwen2.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one update
(matmuls and attention, forward and backward; elementwise work is not counted, as in
the usual MFU). "achieved" divides them by the update's median wall time. The peak is
a 2048 x 2048 fp32 matmul measured in the same run, with the same threads.
``mfu_useful`` counts only the non-padding tokens' share.

Output: one JSON line {"mfu", "flops_per_s", "peak_flops_per_s", "tokens_per_s", ...}
for the tiny-arith model, plus per model under "models".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from or1.config import AlgoConfig, OptimConfig
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.policy import LocalPolicy
from or1.engine.rollout import SamplingParams
from or1.objective import magic_loss
from or1.trainer import build_batch
from or1.types import RolloutBatch


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def rollout_batch(model: Any, tok: Any, prompts: list[list[int]], cfg: Any) -> RolloutBatch:
    engine = HFRolloutEngine(model, pad_id=tok.pad_token_id, stop_ids=C.stops(tok, model))
    out = engine.generate(prompts, SamplingParams(n=8, max_tokens=64))
    rewards = (torch.arange(len(out)) % 3 == 0).float()  # every group mixed: all kept
    batch, _ = build_batch(out, rewards, pad_id=tok.pad_token_id, cfg=cfg)
    assert batch is not None
    return batch


def measure(name: str, model: Any, tok: Any, prompts: list, cfg: Any, repeats: int) -> dict:
    batch = rollout_batch(model, tok, prompts, cfg)
    policy = LocalPolicy(model, OptimConfig(lr=1e-5), micro_batch_size=cfg.train.micro_batch_size)
    loss = magic_loss(AlgoConfig(), entropy_coef=0.001)
    rows = [torch.arange(len(batch))]
    policy.update(batch, loss, mini_batches=rows)  # warm-up (allocator, optimizer state)
    with FlopCounterMode(display=False) as counter:
        policy.update(batch, loss, mini_batches=rows)
    flops = counter.get_total_flops()
    seconds = []
    for r in range(repeats):
        t0 = time.perf_counter()
        policy.update(batch, loss, mini_batches=rows)
        seconds.append(time.perf_counter() - t0)
        C.log(f"  {name} update {r + 1}/{repeats}: {seconds[-1]:.2f} s")
    t = C.median(seconds)
    real = float(batch.attention_mask.sum())
    grid = batch.attention_mask.numel()
    return {
        "params": C.params_of(model),
        "sequences": len(batch),
        "tokens": int(real),
        "response_tokens": int(batch.response_mask.sum()),
        "seconds": round(t, 3),
        "tokens_per_s": round(real / t, 1),
        "flops_per_update": flops,
        "flops_per_s": round(flops / t),
        "padding_fraction": round(1 - real / grid, 3),
        "seconds_all": [round(s, 3) for s in seconds],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-25m", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help=C.THREADS_HELP)
    args = ap.parse_args()
    C.set_threads(args.threads)
    cfg, loaded, _, test = C.tiny_arith(["algo.reject_uniform_groups=false"])
    tok, model = loaded.tokenizer, loaded.model
    prompts = C.prompts_of(tok, test[:32])
    peak_before = matmul_peak()
    models = {"tiny-arith": measure("tiny-arith", model, tok, prompts, cfg, args.repeats)}
    if not args.skip_25m:
        big = C.model_25m(tok)
        models["25m"] = measure("25m", big, tok, prompts, cfg, args.repeats)
    peak = max(peak_before, matmul_peak())
    for m in models.values():
        m["mfu"] = round(m["flops_per_s"] / peak, 3)
        m["mfu_useful"] = round(m["mfu"] * (1 - m["padding_fraction"]), 3)
    head = models["tiny-arith"]
    C.emit(
        {
            "mfu": head["mfu"],
            "flops_per_s": head["flops_per_s"],
            "peak_flops_per_s": round(peak),
            "tokens_per_s": head["tokens_per_s"],
            "models": models,
            "machine": C.machine(),
        }
    )


if __name__ == "__main__":
    main()
