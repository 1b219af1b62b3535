"""Refill after rejection (``algo.refill``; DAPO's dynamic sampling, not in the paper).

The paper drops every group whose rewards are all equal and trains on what is left, so
the batch shrinks as accuracy rises (``refill: none``, the default). With
``refill: oversample`` the step keeps sampling fresh prompts from the same sampler until
it has ``batch_size`` groups whose rewards are not uniform, for at most
``refill_max_rounds`` extra rounds. Each round asks for the missing groups divided by
the share of groups kept so far (at least 1 in ``REFILL_MIN_RATE``: more prompts than
missing, so fewer rounds; each round decodes as one batch), and the kept groups beyond
``batch_size`` are left out of the update (their prompts were drawn: the sampler moved
on, as in DAPO). The step's metrics say how many rounds and prompts it took.

``Scored`` is one round's scored rollouts; ``merge`` joins rounds (group ids offset),
``keep_groups`` trims to the groups the update uses. Neither does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from or1.data.problem import Problem
from or1.engine.rollout import Rollouts
from or1.rewards.verdict import Verdict

# A round asks for at most 1 / REFILL_MIN_RATE times the missing prompts (a step whose
# groups are nearly all uniform does not sample the whole data set at once).
REFILL_MIN_RATE = 0.125


@dataclass
class Scored:
    """Rollouts of ``problems`` (group g answers ``problems[g]``) with their grades."""

    problems: list[Problem]
    rollouts: Rollouts
    texts: list[str]
    verdicts: list[Verdict]
    graded: torch.Tensor  # [B*G] rewards as graded
    rewards: torch.Tensor  # [B*G] rewards for training (truncated zeroed by default)
    seconds: dict[str, float] = field(default_factory=dict)  # rollout/reward seconds

    def non_uniform(self) -> list[int]:
        """Group ids whose rewards are not all equal (the groups rejection keeps)."""
        ids = torch.tensor(self.rollouts.group_ids)
        out = []
        for g in range(len(self.problems)):
            r = self.rewards[ids == g]
            if len(r) and bool(r.max() != r.min()):
                out.append(g)
        return out


def merge(parts: Sequence[Scored]) -> Scored:
    """One ``Scored`` of several rounds, group ids offset so they stay distinct."""
    if len(parts) == 1:
        return parts[0]
    ro = [p.rollouts for p in parts]
    offsets = [0]
    for p in parts[:-1]:
        offsets.append(offsets[-1] + len(p.problems))
    rollouts = Rollouts(
        prompt_ids=[x for r in ro for x in r.prompt_ids],
        response_ids=[x for r in ro for x in r.response_ids],
        logprobs=[x for r in ro for x in r.logprobs],
        truncated=[x for r in ro for x in r.truncated],
        group_ids=[g + off for r, off in zip(ro, offsets, strict=True) for g in r.group_ids],
    )
    seconds: dict[str, float] = {}
    for p in parts:
        for key, value in p.seconds.items():
            seconds[key] = seconds.get(key, 0.0) + value
    return Scored(
        problems=[x for p in parts for x in p.problems],
        rollouts=rollouts,
        texts=[x for p in parts for x in p.texts],
        verdicts=[x for p in parts for x in p.verdicts],
        graded=torch.cat([p.graded for p in parts]),
        rewards=torch.cat([p.rewards for p in parts]),
        seconds=seconds,
    )


def keep_groups(scored: Scored, groups: Sequence[int]) -> Scored:
    """Only the rows of ``groups`` (renumbered 0.. in the given order)."""
    new_id = {g: i for i, g in enumerate(groups)}
    rows = [i for i, g in enumerate(scored.rollouts.group_ids) if g in new_id]
    ro = scored.rollouts
    rollouts = Rollouts(
        prompt_ids=[ro.prompt_ids[i] for i in rows],
        response_ids=[ro.response_ids[i] for i in rows],
        logprobs=[ro.logprobs[i] for i in rows],
        truncated=[ro.truncated[i] for i in rows],
        group_ids=[new_id[ro.group_ids[i]] for i in rows],
    )
    index = torch.tensor(rows, dtype=torch.long)
    return Scored(
        problems=[scored.problems[g] for g in groups],
        rollouts=rollouts,
        texts=[scored.texts[i] for i in rows],
        verdicts=[scored.verdicts[i] for i in rows],
        graded=scored.graded[index],
        rewards=scored.rewards[index],
        seconds=scored.seconds,
    )


def refill_request(missing: int, *, kept: int, sampled: int) -> int:
    """Prompts to draw next: the missing groups over the share kept so far.

    Example:
        >>> refill_request(6, kept=10, sampled=16)  # 6 / (10/16) = 9.6
        10
        >>> refill_request(6, kept=0, sampled=16)  # the rate floor: 6 / 0.125
        48
    """
    rate = max(kept / max(sampled, 1), REFILL_MIN_RATE)
    return max(missing, math.ceil(missing / rate - 1e-9))


def sample_with_refill(
    draw: Callable[[int], Scored], *, batch_size: int, mode: str, max_rounds: int
) -> tuple[Scored, Scored, dict[str, float]]:
    """Draw ``batch_size`` prompts, then (``mode`` "oversample") refill rounds.

    Args:
        draw: Samples, rolls out and scores that many fresh prompts.
        batch_size: Groups the update wants (D_R).
        mode: "none" (the paper: one round) or "oversample".
        max_rounds: Extra rounds at most.

    Returns:
        (every round's rollouts, for the step's metrics; the groups the update uses:
        the first ``batch_size`` kept groups, then the uniform ones, which rejection
        drops; the refill metrics).
    """
    parts = [draw(batch_size)]
    kept = parts[0].non_uniform()
    rounds = 0
    while mode == "oversample" and len(kept) < batch_size and rounds < max_rounds:
        sampled = sum(len(p.problems) for p in parts)
        parts.append(draw(refill_request(batch_size - len(kept), kept=len(kept), sampled=sampled)))
        rounds += 1
        kept = merge(parts).non_uniform()
    everything = merge(parts)
    used = kept[:batch_size]
    uniform = [g for g in range(len(everything.problems)) if g not in set(kept)]
    update = everything if len(kept) <= batch_size else keep_groups(everything, used + uniform)
    info = {
        # over every round's groups (build_batch's is over the update's)
        "kept_group_fraction": len(kept) / len(everything.problems),
        "refill_rounds": float(rounds),
        "sampled_prompts": float(len(everything.problems)),
        "update_groups": float(min(len(kept), batch_size)),
        "batch_fill": min(len(kept), batch_size) / batch_size,
    }
    return everything, update, info
