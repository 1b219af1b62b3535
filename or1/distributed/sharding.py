"""Driver-side splitting of work across Ray workers (pure functions, no Ray, no I/O).

Policy shards. FSDP2 runs collectives (all-gather in forward, reduce-scatter in
backward) on every forward/backward pass, so every rank must run the *same number* of
passes or the group hangs. Each mini-batch is therefore split into W shards of exactly
R = ceil(rows / W) rows: a shard short of R rows is padded with copies of a real row
whose response mask is zero (they add nothing to the loss, the gradient or the stats).
The loss normalizers (``BatchTotals``) are counted over the whole mini-batch *before*
sharding, so the W shard losses add up exactly to the single-process loss.

Rollout shards. Prompts are split into contiguous chunks of whole groups, so every
group is sampled by one worker and ``group_ids`` stay prompt indices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from or1.engine.policy import BatchTotals, RolloutBatch
from or1.engine.rollout import Rollouts


@dataclass
class PolicyShard:
    """One rank's part of one mini-batch.

    Attributes:
        batch: R rows (real rows first, then zero-mask padding rows).
        real: how many of the R rows are real (the rest are padding).
        totals: counts over the whole mini-batch (all ranks), for loss normalization.
        n_micro: forward/backward passes to run (identical on every rank).
    """

    batch: RolloutBatch
    real: int
    totals: BatchTotals
    n_micro: int


def shard_rows(
    batch: RolloutBatch, rows: torch.Tensor, *, world: int, micro_batch_size: int
) -> list[PolicyShard]:
    """Split ``batch``'s ``rows`` (a [n] long tensor, n >= 1) into ``world`` equal shards.

    Example:
        5 rows on 2 ranks -> shards of 3 rows: rows 0-2, and rows 3-4 + one padding row.
    """
    if len(rows) == 0:
        raise ValueError("cannot shard an empty mini-batch")
    totals = BatchTotals.of(batch.select(rows))
    per_rank = math.ceil(len(rows) / world)
    n_micro = math.ceil(per_rank / micro_batch_size)
    shards = []
    for part in rows.tensor_split(world):
        real = len(part)
        filler = part[:1] if real else rows[:1]
        index = torch.cat([part, filler.repeat(per_rank - real)])
        shard = batch.select(index)
        shard.response_mask = shard.response_mask.clone()
        shard.response_mask[real:] = 0.0
        shards.append(PolicyShard(shard, real, totals, n_micro))
    return shards


def merge_rows(parts: list[torch.Tensor], shards: list[PolicyShard]) -> torch.Tensor:
    """Concatenate per-shard [R, ...] results, dropping padding rows (inverse of shard_rows)."""
    return torch.cat([p[: s.real] for p, s in zip(parts, shards, strict=True)])


def merge_stats(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """Token-weighted mean of each rank's stat sums; ``grad_norm`` is global (rank 0's).

    Each entry holds ``tokens`` (response tokens of its real rows), ``grad_norm``, and
    for every loss statistic k the token-weighted sum ``sum:k``.
    """
    tokens = sum(r["tokens"] for r in per_rank)
    out: dict[str, float] = {}
    for rank in per_rank:
        for key, value in rank.items():
            if key.startswith("sum:"):
                name = key.removeprefix("sum:")
                out[name] = out.get(name, 0.0) + value / max(tokens, 1.0)
    out["grad_norm"] = per_rank[0]["grad_norm"]
    return out


def split_prompts(n_prompts: int, workers: int) -> list[tuple[int, int]]:
    """[start, end) prompt ranges of each worker: contiguous, sizes differing by at most 1.

    Workers beyond ``n_prompts`` get no range (fewer entries are returned).
    """
    bounds = torch.arange(n_prompts).tensor_split(min(workers, max(n_prompts, 1)))
    return [(int(b[0]), int(b[-1]) + 1) for b in bounds if len(b)]


def merge_rollouts(parts: list[Rollouts], starts: list[int]) -> Rollouts:
    """Concatenate workers' rollouts; group ids are shifted back to request prompt indices."""
    out = Rollouts([], [], [], [], [])
    for part, start in zip(parts, starts, strict=True):
        out.prompt_ids.extend(part.prompt_ids)
        out.response_ids.extend(part.response_ids)
        out.logprobs.extend(part.logprobs)
        out.truncated.extend(part.truncated)
        out.group_ids.extend(g + start for g in part.group_ids)
        for key, value in part.stats.items():
            # seconds and counts add up poorly across parallel workers: keep the slowest
            out.stats[key] = max(out.stats.get(key, value), value)
    return out
