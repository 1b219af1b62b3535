"""Driver-side splitting of mini-batches across Ray policy ranks (pure functions, no I/O).

Policy shards. FSDP2 runs collectives (all-gather in forward, reduce-scatter in
backward) on every forward/backward pass, so every rank must run the *same number* of
passes or the group hangs. Each mini-batch is therefore split into W shards of exactly
R = ceil(rows / W) rows: a shard short of R rows is padded with copies of a real row
whose response mask is zero (they add nothing to the loss, the gradient or the stats).
The loss normalizers (``BatchTotals``) are counted over the whole mini-batch *before*
sharding, so the W shard losses add up exactly to the single-process loss.

Micro-batches are planned here too (``or1.engine.micro.plan_micro_batches``, by rows and
optionally by a token budget), then evened out: a shard with fewer micro-batches than
the most has its largest ones halved (a subset of a micro-batch stays within both
budgets), so every rank runs the same number of forward/backward passes.

Prompts are split over rollout workers by ``or1.engine.rollout.split_prompts`` (shared
with the local multi-process engine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from or1.engine.micro import plan_micro_batches
from or1.types import BatchTotals, RolloutBatch


@dataclass
class PolicyShard:
    """One rank's part of one mini-batch.

    Attributes:
        batch: R rows (real rows first, then zero-mask padding rows).
        real: how many of the R rows are real (the rest are padding).
        totals: counts over the whole mini-batch (all ranks), for loss normalization.
        micro: the forward/backward passes to run, as row indices into ``batch`` (the
            same number on every rank).
    """

    batch: RolloutBatch
    real: int
    totals: BatchTotals
    micro: list[torch.Tensor]


def shard_rows(
    batch: RolloutBatch,
    rows: torch.Tensor,
    *,
    world: int,
    micro_batch_size: int,
    micro_batch_tokens: int | None = None,
) -> list[PolicyShard]:
    """Split ``batch``'s ``rows`` (a [n] long tensor, n >= 1) into ``world`` equal shards.

    Example:
        5 rows on 2 ranks -> shards of 3 rows: rows 0-2, and rows 3-4 + one padding row.
    """
    if len(rows) == 0:
        raise ValueError("cannot shard an empty mini-batch")
    totals = BatchTotals.of(batch.select(rows))
    per_rank = math.ceil(len(rows) / world)
    parts = []
    for part in rows.tensor_split(world):
        real = len(part)
        filler = part[:1] if real else rows[:1]
        index = torch.cat([part, filler.repeat(per_rank - real)])
        shard = batch.select(index)
        shard.response_mask = shard.response_mask.clone()
        shard.response_mask[real:] = 0.0
        plan = plan_micro_batches(
            shard,
            torch.arange(per_rank),
            max_rows=micro_batch_size,
            max_tokens=micro_batch_tokens,
        )
        parts.append((shard, real, plan))
    count = max(len(plan) for _, _, plan in parts)
    return [PolicyShard(shard, real, totals, even_out(plan, count)) for shard, real, plan in parts]


def even_out(plan: list[torch.Tensor], count: int) -> list[torch.Tensor]:
    """``plan`` with its largest micro-batches halved until it has ``count`` of them.

    Possible whenever ``count`` <= the rows of the plan (every shard has R rows).
    """
    plan = list(plan)
    while len(plan) < count:
        largest = max(range(len(plan)), key=lambda i: len(plan[i]))
        if len(plan[largest]) < 2:
            raise ValueError(f"cannot cut {sum(map(len, plan))} rows into {count} micro-batches")
        halves = plan[largest].tensor_split(2)
        plan[largest : largest + 1] = list(halves)
    return plan


def merge_rows(parts: list[torch.Tensor], shards: list[PolicyShard]) -> torch.Tensor:
    """Concatenate per-shard [R, ...] results, dropping padding rows (inverse of shard_rows)."""
    return torch.cat([p[: s.real] for p, s in zip(parts, shards, strict=True)])


def merge_stats(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """Token-weighted mean of each rank's stat sums, the max of its maxima; ``grad_norm``
    is global (rank 0's).

    Each entry holds ``tokens`` (response tokens of its real rows), ``grad_norm``, and
    for every loss statistic k the token-weighted sum ``sum:k`` (``max:k`` for a maximum).
    """
    tokens = sum(r["tokens"] for r in per_rank)
    out: dict[str, float] = {}
    for rank in per_rank:
        for key, value in rank.items():
            if key.startswith("sum:"):
                name = key.removeprefix("sum:")
                out[name] = out.get(name, 0.0) + value / max(tokens, 1.0)
            elif key.startswith("max:"):
                name = key.removeprefix("max:")
                out[name] = max(out.get(name, value), value)
    out["grad_norm"] = per_rank[0]["grad_norm"]
    return out
