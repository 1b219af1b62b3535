"""Refill after rejection (or1/refill.py) with a fake draw: rounds, requests, trimming."""

from __future__ import annotations

import pytest
import torch

from or1.config import load_config
from or1.data.problem import Problem
from or1.engine.rollout import Rollouts
from or1.errors import ConfigError
from or1.refill import (
    Scored,
    keep_groups,
    merge,
    refill_request,
    sample_with_refill,
)
from or1.rewards.verdict import Verdict

G = 2  # responses per group


def _scored(patterns: list[tuple[float, float]], start: int) -> Scored:
    """One round: group g gets rewards patterns[g]; uids p<start + g>."""
    problems = [
        Problem(uid=f"p{start + g}", prompt=[{"role": "user", "content": "q"}], ground_truth="1")
        for g in range(len(patterns))
    ]
    rewards = [r for pattern in patterns for r in pattern]
    n = len(rewards)
    rollouts = Rollouts(
        prompt_ids=[[start + g] for g in range(len(patterns)) for _ in range(G)],
        response_ids=[[i] for i in range(n)],
        logprobs=[[-0.5] for _ in range(n)],
        truncated=[False] * n,
        group_ids=[g for g in range(len(patterns)) for _ in range(G)],
    )
    t = torch.tensor(rewards)
    return Scored(
        problems,
        rollouts,
        [f"r{i}" for i in range(n)],
        [Verdict(r) for r in rewards],
        t,
        t.clone(),
        {"rollout_seconds": 1.0, "reward_seconds": 0.5},
    )


class FakeDraw:
    """Draws from a fixed stream of group reward patterns; records each request."""

    def __init__(self, stream: list[tuple[float, float]]) -> None:
        self.stream, self.used, self.requests = stream, 0, []

    def __call__(self, n: int) -> Scored:
        self.requests.append(n)
        out = _scored(self.stream[self.used : self.used + n], self.used)
        self.used += n
        return out


MIXED, SOLVED, FAILED = (0.0, 1.0), (1.0, 1.0), (0.0, 0.0)


def test_none_draws_once_and_the_batch_shrinks() -> None:
    draw = FakeDraw([MIXED, SOLVED, FAILED, MIXED] + [MIXED] * 10)
    everything, update, info = sample_with_refill(draw, batch_size=4, mode="none", max_rounds=4)
    assert draw.requests == [4] and update is everything
    assert info["update_groups"] == 2 and info["batch_fill"] == 0.5
    assert info["kept_group_fraction"] == 0.5 and info["refill_rounds"] == 0


def test_oversample_refills_to_batch_size_and_trims_the_excess() -> None:
    # round 0: 2 of 4 kept (rate 1/2), 2 missing -> ask 2 / 0.5 = 4 more: all 4 mixed.
    draw = FakeDraw([MIXED, SOLVED, FAILED, MIXED] + [MIXED] * 10)
    everything, update, info = sample_with_refill(
        draw, batch_size=4, mode="oversample", max_rounds=4
    )
    assert draw.requests == [4, 4]
    assert info["refill_rounds"] == 1 and info["sampled_prompts"] == 8
    assert info["update_groups"] == 4 and info["batch_fill"] == 1.0
    assert info["kept_group_fraction"] == 6 / 8
    # the update: the first 4 kept groups (p0, p3, p4, p5), then the uniform ones
    assert [p.uid for p in update.problems] == ["p0", "p3", "p4", "p5", "p1", "p2"]
    # rows keep their drawn order (p0..p5; p6, p7 left out), ids renumbered
    assert update.rollouts.group_ids == [0, 0, 4, 4, 5, 5, 1, 1, 2, 2, 3, 3]
    assert update.rewards.tolist() == [0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 1]
    assert update.rollouts.prompt_ids[6] == [3]  # rows travel with their group
    assert everything.seconds == {"rollout_seconds": 2.0, "reward_seconds": 1.0}


def test_oversample_stops_at_the_round_cap() -> None:
    draw = FakeDraw([SOLVED] * 200)
    _, _, info = sample_with_refill(draw, batch_size=2, mode="oversample", max_rounds=3)
    # nothing kept: each round asks 2 / REFILL_MIN_RATE (0.125) = 16
    assert draw.requests == [2, 16, 16, 16] and info["refill_rounds"] == 3
    assert info["update_groups"] == 0 and info["batch_fill"] == 0.0


def test_refill_request() -> None:
    assert refill_request(3, kept=3, sampled=4) == 4  # 3 / 0.75
    assert refill_request(5, kept=8, sampled=8) == 5  # never fewer than missing
    assert refill_request(1, kept=0, sampled=3) == 8


def test_merge_offsets_group_ids_and_keep_groups_renumbers() -> None:
    merged = merge([_scored([MIXED, SOLVED], 0), _scored([FAILED], 2)])
    assert merged.rollouts.group_ids == [0, 0, 1, 1, 2, 2]
    assert [p.uid for p in merged.problems] == ["p0", "p1", "p2"]
    assert merged.non_uniform() == [0]
    kept = keep_groups(merged, [2, 0])
    assert kept.rollouts.group_ids == [1, 1, 0, 0]  # rows keep their order, ids renumbered
    assert [p.uid for p in kept.problems] == ["p2", "p0"]
    assert kept.texts == ["r0", "r1", "r0", "r1"] and kept.graded.tolist() == [0, 1, 0, 0]


def test_refill_config() -> None:
    cfg = load_config("tiny-arith", [])
    assert cfg.algo.refill == "none" and cfg.algo.refill_max_rounds == 4  # the paper: none
    assert load_config("tiny-arith", ["algo.refill=oversample"]).algo.refill == "oversample"
    with pytest.raises(ConfigError, match="refill"):
        load_config("tiny-arith", ["algo.refill=dynamic"])
