"""The MAGIC objective as a loss function the policy engine calls per micro-batch.

loss = policy_loss (``algo.loss``: PPO clip by default, token-mean) - alpha_k * entropy
(+ beta * KL, ablation). The entropy bonus is aggregated like the policy loss; alpha_k
comes from the adaptive controller (computed by the trainer before the update, from the
rollout entropy). Built from ``AlgoConfig`` directly: a new setting of the loss is read
here, nowhere else.

Rollout/trainer mismatch: ``rollout_logp_diff`` is the mean |rollout_logp - logp| over
response tokens (the trainer's first mini-batch is scored with the weights that sampled
it, so any difference comes from the rollout engine, e.g. vLLM kernels or bf16).
``algo.tis_cap`` (off by default, not in the paper) turns on truncated importance
sampling: each token's policy loss is weighted by min(exp(old_logp - rollout_logp), cap).

``algo.aggregation: micro-token-mean`` (the released code) normalizes each micro-batch by
``micro_token_mean_normalizer`` (its token mean x its share of ``mini_batch_rows``, the
configured mini-batch in sequences) instead of the mini-batch's token total.
``algo.entropy.source: trainer`` adds the statistic ``neg_logp`` (mean -logp of the
sampled tokens under the weights being trained: on the first optimizer step, the
trainer's own estimate of the entropy e_k).
"""

from __future__ import annotations

import torch

from or1.algo import POLICY_LOSSES, aggregate_tokens, kl_penalty, micro_token_mean_normalizer
from or1.algo.losses import PolicyLossFn
from or1.config import AlgoConfig
from or1.errors import ConfigError
from or1.types import BatchTotals, LossFn, RolloutBatch, TokenScores


def policy_loss_named(name: str) -> PolicyLossFn:
    """The registered policy loss ``name`` (``algo.loss``), or a ConfigError."""
    if name not in POLICY_LOSSES:
        raise ConfigError(
            f"unknown algo.loss '{name}'; registered losses: {', '.join(sorted(POLICY_LOSSES))}.",
            hint="register one with or1.algo.register_policy_loss(name, fn).",
        )
    return POLICY_LOSSES[name]


def _normalizer(
    algo: AlgoConfig, mask: torch.Tensor, totals: BatchTotals, mini_batch_rows: int | None
) -> tuple[str, float]:
    """(the aggregation ``or1.algo`` computes, its denominator) for one micro-batch."""
    if algo.aggregation == "micro-token-mean":
        if mini_batch_rows is None:
            raise ValueError("aggregation micro-token-mean needs magic_loss(mini_batch_rows=)")
        return "token-mean", micro_token_mean_normalizer(mask, mini_batch_rows=mini_batch_rows)
    normalizer = totals.tokens if algo.aggregation == "token-mean" else totals.sequences
    return algo.aggregation, max(float(normalizer), 1.0)


def magic_loss(
    algo: AlgoConfig, *, entropy_coef: float, mini_batch_rows: int | None = None
) -> LossFn:
    """loss_fn(scores, micro, totals) -> (loss, stats) for ``algo`` and this step's alpha.

    ``mini_batch_rows``: sequences in a full mini-batch (stage mini_batch_size x
    group_size), needed by ``aggregation: micro-token-mean`` only.

    The closure holds only plain data (the config and numbers) and module-level
    functions, so Ray can ship it to the policy ranks.
    """
    policy_fn = policy_loss_named(algo.loss)

    def loss_fn(
        scores: TokenScores, micro: RolloutBatch, totals: BatchTotals
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logp = scores.logp
        device = logp.device
        mask = micro.response_mask.to(device)
        aggregation, normalizer = _normalizer(algo, mask, totals, mini_batch_rows)
        # On-policy (N_SGD = 1) the behaviour policy is the current one: old = logp.detach()
        # gives ratio 1 and the exact policy gradient without a second forward pass.
        old = micro.old_logp.to(device) if micro.old_logp is not None else logp.detach()
        advantages = micro.advantages.to(device)
        rollout_logp = micro.rollout_logp.to(device)
        if algo.tis_cap is not None:
            # The clipped surrogate is positively homogeneous in A: scaling A per token
            # by w > 0 scales that token's loss by w.
            weight = (old - rollout_logp).exp().clamp(max=algo.tis_cap).detach()
            advantages = advantages[:, None] * weight
        pg, stats = policy_fn(
            logp,
            old,
            advantages,
            mask,
            clip_low=algo.clip_low,
            clip_high=algo.clip_high,
            aggregation=aggregation,
            normalizer=normalizer,
        )
        loss = pg
        if entropy_coef > 0:
            loss = loss - entropy_coef * aggregate_tokens(
                scores.entropy, mask, aggregation, normalizer=normalizer
            )
        tokens = mask.sum().clamp(min=1.0)
        stats = {**stats, "entropy_full": (scores.entropy.detach() * mask).sum() / tokens}
        gap = (logp.detach() - rollout_logp).abs()
        stats["rollout_logp_diff"] = (gap * mask).sum() / tokens
        stats["pg_loss"] = (
            pg.detach() * normalizer / tokens if aggregation == "token-mean" else pg.detach()
        )
        if algo.entropy.source == "trainer":
            stats["neg_logp"] = -(logp.detach() * mask).sum() / tokens
        if algo.kl_beta > 0:
            if micro.ref_logp is None:
                raise ValueError("kl_beta > 0 needs ref_logp in the batch")
            kl = kl_penalty(logp, micro.ref_logp.to(device), mask, kind=algo.kl_kind)
            loss = loss + algo.kl_beta * aggregate_tokens(
                kl, mask, aggregation, normalizer=normalizer
            )
            stats["kl_ref"] = (kl.detach() * mask).sum() / tokens
        return loss, stats

    return loss_fn
