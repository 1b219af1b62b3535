"""The MAGIC objective as a loss function the policy engine calls per micro-batch.

loss = pg_loss(PPO clip, token-mean) - alpha_k * entropy_full (+ beta * KL, ablation).
The entropy bonus is aggregated like the policy loss; alpha_k comes from the adaptive
controller (computed by the trainer before the update, from the rollout entropy).

Rollout/trainer mismatch: ``rollout_logp_diff`` is the mean |rollout_logp - logp| over
response tokens (the trainer's first mini-batch is scored with the weights that sampled
it, so any difference comes from the rollout engine, e.g. vLLM kernels or bf16).
``tis_cap`` (off by default, not in the paper) turns on truncated importance sampling:
each token's policy loss is weighted by min(exp(old_logp - rollout_logp), tis_cap).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from or1.algo import aggregate_tokens, kl_penalty, policy_loss, token_entropy
from or1.engine.policy import BatchTotals, LossFn, RolloutBatch


@dataclass(frozen=True)
class ObjectiveSettings:
    clip_low: float
    clip_high: float
    aggregation: str
    entropy_coef: float
    kl_beta: float = 0.0
    tis_cap: float | None = None  # truncated importance-sampling cap; None: off


def magic_loss(settings: ObjectiveSettings) -> LossFn:
    """Build loss_fn(logp [n,T], logits [n,T,V], micro, totals) -> (loss, stats)."""

    def loss_fn(
        logp: torch.Tensor, logits: torch.Tensor, micro: RolloutBatch, totals: BatchTotals
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mask = micro.response_mask.to(logp.device)
        normalizer = totals.tokens if settings.aggregation == "token-mean" else totals.sequences
        normalizer = max(float(normalizer), 1.0)
        # On-policy (N_SGD = 1) the behaviour policy is the current one: old = logp.detach()
        # gives ratio 1 and the exact policy gradient without a second forward pass.
        old = micro.old_logp.to(logp.device) if micro.old_logp is not None else logp.detach()
        advantages = micro.advantages.to(logp.device)
        rollout_logp = micro.rollout_logp.to(logp.device)
        if settings.tis_cap is not None:
            # The clipped surrogate is positively homogeneous in A: scaling A per token
            # by w > 0 scales that token's loss by w.
            weight = (old - rollout_logp).exp().clamp(max=settings.tis_cap).detach()
            advantages = advantages[:, None] * weight
        pg, stats = policy_loss(
            logp,
            old,
            advantages,
            mask,
            clip_low=settings.clip_low,
            clip_high=settings.clip_high,
            aggregation=settings.aggregation,
            normalizer=normalizer,
        )
        entropy = token_entropy(logits)
        loss = pg
        if settings.entropy_coef > 0:
            loss = loss - settings.entropy_coef * aggregate_tokens(
                entropy, mask, settings.aggregation, normalizer=normalizer
            )
        tokens = mask.sum().clamp(min=1.0)
        stats = {**stats, "entropy_full": (entropy.detach() * mask).sum() / tokens}
        gap = (logp.detach() - rollout_logp).abs()
        stats["rollout_logp_diff"] = (gap * mask).sum() / tokens
        stats["pg_loss"] = (
            pg.detach() * normalizer / tokens
            if settings.aggregation == "token-mean"
            else pg.detach()
        )
        if settings.kl_beta > 0:
            if micro.ref_logp is None:
                raise ValueError("kl_beta > 0 needs ref_logp in the batch")
            kl = kl_penalty(logp, micro.ref_logp.to(logp.device), mask)
            loss = loss + settings.kl_beta * aggregate_tokens(
                kl, mask, settings.aggregation, normalizer=normalizer
            )
            stats["kl_ref"] = (kl.detach() * mask).sum() / tokens
        return loss, stats

    return loss_fn
