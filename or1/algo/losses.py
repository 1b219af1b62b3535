"""Policy losses (a registry), token aggregation and the (ablation-only) KL penalty.

Recipe (RECIPE.md step 5): ratio = exp(logp - old_logp), per-token loss
max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high)), aggregated
"token-mean": the sum over every response token of the batch divided by the batch's
total token count. No KL term by default (beta = 0); ``kl_penalty`` exists for the KL
ablation only.

Choices:
- Positions outside ``mask`` are ignored even if they hold NaN/inf (padding): the log
  ratio is zeroed there before ``exp`` and every reduction uses ``torch.where``.
- The "seq-mean-*" modes divide by the number of sequences that have at least one
  response token (a fully masked row contributes nothing and is not counted); with the
  usual batch, where every row has a response, this is the batch size B.
- ``normalizer`` replaces the default denominator so that micro-batch losses sum to the
  mini-batch loss; compute it once per mini-batch with ``loss_normalizer``.
- The released code's weighting (``algo.aggregation: micro-token-mean``) is "token-mean"
  with a per-micro-batch denominator, ``micro_token_mean_normalizer``: each micro-batch's
  token mean times its share of the configured mini-batch's sequences.
- The "approx_kl" statistic is the k1 estimator mean(old_logp - logp) of
  KL(old || new) over response tokens, the quantity verl logs as ``ppo_kl``.

Registry: ``POLICY_LOSSES`` maps a name (``algo.loss``) to a function with the signature
of ``policy_loss``; ``register_policy_loss`` adds one. Entries: "ppo-clip" (the recipe's)
and "gspo" (Zheng et al. 2025, sequence-level importance ratio).
"""

from collections.abc import Callable

import torch
from torch import Tensor

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
"""Allowed ``aggregation`` modes; "token-mean" is the recipe's."""

KL_KINDS = ("k1", "k2", "k3")
"""Per-token KL estimators of ``kl_penalty`` (Schulman's k1/k2/k3, as in verl)."""


def _check_aggregation(aggregation: str) -> None:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; allowed: {', '.join(AGGREGATIONS)}")


def _default_denominator(keep: Tensor, aggregation: str) -> Tensor:
    """Token count for "token-mean", count of non-empty sequences otherwise (int64)."""
    if aggregation == "token-mean":
        return keep.sum()
    return keep.any(dim=-1).sum()


def loss_normalizer(mask: Tensor, aggregation: str = "token-mean") -> float:
    """The denominator ``aggregate_tokens`` would use for this (mini-)batch.

    Pass it as ``normalizer`` to every micro-batch of the mini-batch: the micro-batch
    losses then sum exactly to the mini-batch loss. Across data-parallel workers, sum
    the workers' values.

    Args:
        mask: [B, T] response mask (bool or 0/1).
        aggregation: One of ``AGGREGATIONS``.

    Returns:
        Total response tokens ("token-mean") or sequences with at least one response
        token (the "seq-mean-*" modes), at least 1.

    Example:
        >>> loss_normalizer(torch.tensor([[1, 1, 0], [1, 0, 0]]))
        3.0
    """
    _check_aggregation(aggregation)
    return float(_default_denominator(mask.bool(), aggregation).clamp(min=1))


def micro_token_mean_normalizer(mask: Tensor, *, mini_batch_rows: int) -> float:
    """The "token-mean" denominator that makes a micro-batch's loss its token mean
    weighted by its share of the mini-batch's sequences (the released code's actor):
    loss_micro = (sum / tokens_micro) * (rows_micro / mini_batch_rows), so the
    denominator is tokens_micro * mini_batch_rows / rows_micro.

    Unlike ``loss_normalizer`` this depends on how the mini-batch is cut into
    micro-batches: a micro-batch of few long responses weighs as much per sequence as one
    of many short ones. ``mini_batch_rows`` is the *configured* mini-batch size in
    sequences (the released code divides by it, not by the rows actually kept, so a
    mini-batch shrunk by rejection weighs less). Rows without a response token (shard
    padding) do not count. Across data-parallel ranks, sum the rank losses: with the
    global ``mini_batch_rows`` that equals the released mean over ranks of per-rank
    losses divided by the per-rank mini-batch size.

    Args:
        mask: [n, T] response mask of one micro-batch (bool or 0/1).
        mini_batch_rows: sequences in a full mini-batch (mini_batch_size x group_size).

    Returns:
        tokens_micro * mini_batch_rows / rows_micro (at least 1; 1 for an empty one).

    Example:
        >>> m = torch.tensor([[1, 1, 1], [1, 0, 0]])  # 2 rows, 4 tokens
        >>> micro_token_mean_normalizer(m, mini_batch_rows=8)  # 4 * 8 / 2
        16.0
    """
    if mini_batch_rows < 1:
        raise ValueError(f"mini_batch_rows must be >= 1, got {mini_batch_rows}")
    keep = mask.bool()
    rows = int(keep.any(dim=-1).sum())
    if rows == 0:
        return 1.0
    return max(float(keep.sum()) * mini_batch_rows / rows, 1.0)


def aggregate_tokens(
    values: Tensor,
    mask: Tensor,
    aggregation: str = "token-mean",
    *,
    normalizer: float | None = None,
) -> Tensor:
    """Reduce per-token values to a scalar over the response tokens.

    Args:
        values: [B, T] per-token values (e.g. per-token loss).
        mask: [B, T] response mask (bool or 0/1); other positions are ignored.
        aggregation: "token-mean" (sum over all response tokens / token count),
            "seq-mean-token-mean" (mean over sequences of each sequence's token mean) or
            "seq-mean-token-sum" (mean over sequences of each sequence's token sum).
        normalizer: Replaces the denominator (token count for "token-mean", sequence
            count for the "seq-mean-*" modes); see ``loss_normalizer``.

    Returns:
        Scalar tensor (0 if there is no response token and no ``normalizer``).

    Example:
        >>> v = torch.tensor([[1.0, 3.0], [5.0, 0.0]])
        >>> m = torch.tensor([[1, 1], [1, 0]])
        >>> aggregate_tokens(v, m), aggregate_tokens(v, m, "seq-mean-token-mean")
        (tensor(3.), tensor(3.5000))
    """
    _check_aggregation(aggregation)
    if values.shape != mask.shape or values.dim() != 2:
        raise ValueError(f"values and mask must both be [B, T], got {values.shape}, {mask.shape}")
    if normalizer is not None and not normalizer > 0:
        raise ValueError(f"normalizer must be > 0, got {normalizer}")
    keep = mask.bool()
    masked = torch.where(keep, values, torch.zeros_like(values))
    if aggregation == "token-mean":
        total = masked.sum()
    else:
        per_seq = masked.sum(dim=-1)  # [B]
        if aggregation == "seq-mean-token-mean":
            per_seq = per_seq / keep.sum(dim=-1).clamp(min=1)
        total = per_seq.sum()
    if normalizer is None:
        return total / _default_denominator(keep, aggregation).clamp(min=1)
    return total / normalizer


def _masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    return torch.where(keep, values, torch.zeros_like(values)).sum() / keep.sum().clamp(min=1)


@torch.no_grad()
def _ratio_stats(
    log_ratio: Tensor, clip_active: Tensor, keep: Tensor, adv: Tensor
) -> dict[str, Tensor]:
    """Detached diagnostics over response tokens (token means, not ``normalizer``-scaled).

    The clipped branch is active at 1 + clip_high only for a positive advantage and at
    1 - clip_low only for a negative one, so the advantage's sign tells the side
    (``clip_frac_high`` / ``clip_frac_low``, read by the entropy-collapse diagnosis).
    """
    ratio = log_ratio.exp()
    ratio_masked = torch.where(keep, ratio, torch.zeros_like(ratio)).flatten()
    clip = clip_active.to(ratio.dtype)
    return {
        "clip_frac": _masked_mean(clip, keep),
        "clip_frac_high": _masked_mean(clip * (adv > 0), keep),
        "clip_frac_low": _masked_mean(clip * (adv < 0), keep),
        "approx_kl": _masked_mean(-log_ratio, keep),  # k1: mean(old_logp - logp)
        "ratio_mean": _masked_mean(ratio, keep),
        # ratios are > 0, so the padded zero only wins when there is no response token
        "ratio_max": torch.cat([ratio_masked, ratio.new_zeros(1)]).max(),
    }


def _token_advantages(advantages: Tensor, shape: torch.Size) -> Tensor:
    """[B] or [B, T] advantages as [B, T]."""
    if advantages.dim() == 1 and advantages.shape[0] == shape[0]:
        return advantages.unsqueeze(-1).expand(shape)
    if advantages.shape == shape:
        return advantages
    raise ValueError(
        f"advantages must be [B] or [B, T] for logp {tuple(shape)}, got {tuple(advantages.shape)}"
    )


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    aggregation: str = "token-mean",
    normalizer: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate loss with decoupled clip range (clip-higher).

    Args:
        logp: [B, T] log-probs of the sampled tokens under the current policy.
        old_logp: [B, T] log-probs under the policy that sampled them.
        advantages: [B] per-response (broadcast to tokens) or [B, T] per-token.
        mask: [B, T] response mask (bool or 0/1).
        clip_low: Ratio lower bound is ``1 - clip_low``.
        clip_high: Ratio upper bound is ``1 + clip_high``.
        aggregation: One of ``AGGREGATIONS`` (see ``aggregate_tokens``).
        normalizer: Denominator override for micro-batching (see ``loss_normalizer``).

    Returns:
        ``(loss, stats)``: the scalar loss to minimize, and detached scalar stats
        "clip_frac" (fraction of response tokens where the clipped branch is strictly
        larger, i.e. active), "approx_kl" (k1, mean(old_logp - logp)), "ratio_mean",
        "ratio_max", all over response tokens.

    Example:
        >>> lp = torch.log(torch.tensor([[0.5, 0.6]]))
        >>> loss, stats = policy_loss(lp, lp, torch.tensor([1.0]), torch.ones(1, 2))
        >>> loss, stats["clip_frac"]  # ratio 1 everywhere: loss = -A
        (tensor(-1.), tensor(0.))
    """
    if old_logp.shape != logp.shape or mask.shape != logp.shape or logp.dim() != 2:
        raise ValueError(
            f"logp, old_logp and mask must all be [B, T], got {tuple(logp.shape)}, "
            f"{tuple(old_logp.shape)}, {tuple(mask.shape)}"
        )
    keep = mask.bool()
    adv = _token_advantages(advantages, logp.shape).to(logp.dtype)
    log_ratio = torch.where(keep, logp - old_logp, torch.zeros_like(logp))  # padding -> ratio 1
    ratio = log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    loss = aggregate_tokens(per_token, keep, aggregation, normalizer=normalizer)
    return loss, _ratio_stats(log_ratio.detach(), clipped > unclipped, keep, adv)


def kl_penalty(logp: Tensor, ref_logp: Tensor, mask: Tensor, *, kind: str = "k3") -> Tensor:
    """Per-token KL estimate between the current and the reference policy.

    Same estimators as verl's ``kl_penalty`` (J. Schulman, "Approximating KL
    divergence", 2020), including verl's clamps for k3: with d = ref_logp - logp,
    k1 = logp - ref_logp, k2 = 0.5 * d**2, k3 = clamp(exp(d') - d' - 1, -10, 10) where
    d' = clamp(d, -20, 20). Used only for the KL ablation (the recipe has beta = 0).

    Args:
        logp: [B, T] log-probs under the current policy.
        ref_logp: [B, T] log-probs under the reference policy.
        mask: [B, T] response mask; positions outside it are 0.
        kind: One of ``KL_KINDS``.

    Returns:
        [B, T] per-token KL; aggregate with ``aggregate_tokens``.

    Example:
        >>> kl_penalty(torch.tensor([[0.0]]), torch.tensor([[-1.0]]), torch.ones(1, 1))
        tensor([[0.3679]])
    """
    if kind not in KL_KINDS:
        raise ValueError(f"unknown KL kind {kind!r}; allowed: {', '.join(KL_KINDS)}")
    keep = mask.bool()
    diff = torch.where(keep, ref_logp - logp, torch.zeros_like(logp))
    if kind == "k1":
        kl = -diff
    elif kind == "k2":
        kl = 0.5 * diff.square()
    else:
        d = diff.clamp(-20.0, 20.0)
        kl = (d.exp() - d - 1.0).clamp(-10.0, 10.0)
    return torch.where(keep, kl, torch.zeros_like(kl))


def gspo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    aggregation: str = "token-mean",
    normalizer: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """GSPO: the clipped surrogate with one importance ratio per sequence.

    s_i = exp(mean_t (logp_it - old_logp_it)), the length-normalized sequence ratio, is
    clipped to [1 - clip_low, 1 + clip_high] and applied to every token of the sequence
    in the "GSPO-token" form s_it = sg[s_i] * exp(logp_it - sg[logp_it]) (value s_i,
    gradient s_i * d logp_it), so per-token advantages and every aggregation work. With
    per-sequence advantages and "seq-mean-token-mean" this is GSPO's sequence objective
    exactly; its paper uses clip ranges of about 3e-4 / 4e-4, not PPO's 0.2.

    Args and returns: as ``policy_loss`` ("clip_frac" counts the tokens of clipped
    sequences; "ratio_mean"/"ratio_max" are over the per-token values s_i).

    Example:
        >>> lp = torch.log(torch.tensor([[0.5, 0.6]]))
        >>> gspo_loss(lp, lp, torch.tensor([1.0]), torch.ones(1, 2))[0]  # s = 1: -A
        tensor(-1.)
    """
    if old_logp.shape != logp.shape or mask.shape != logp.shape or logp.dim() != 2:
        raise ValueError(
            f"logp, old_logp and mask must all be [B, T], got {tuple(logp.shape)}, "
            f"{tuple(old_logp.shape)}, {tuple(mask.shape)}"
        )
    keep = mask.bool()
    adv = _token_advantages(advantages, logp.shape).to(logp.dtype)
    log_ratio = torch.where(keep, logp - old_logp, torch.zeros_like(logp))
    seq = log_ratio.sum(-1) / keep.sum(-1).clamp(min=1)  # [B]: log s_i
    token_log_ratio = seq.detach()[:, None] + torch.where(keep, logp - logp.detach(), 0.0)
    ratio = token_log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    loss = aggregate_tokens(per_token, keep, aggregation, normalizer=normalizer)
    stats = _ratio_stats(token_log_ratio.detach(), clipped > unclipped, keep, adv)
    stats["approx_kl"] = _masked_mean(-log_ratio.detach(), keep)
    return loss, stats


PolicyLossFn = Callable[..., tuple[Tensor, dict[str, Tensor]]]
"""(logp, old_logp, advantages, mask, *, clip_low, clip_high, aggregation, normalizer)
-> (loss, stats): the signature of ``policy_loss``."""

POLICY_LOSSES: dict[str, PolicyLossFn] = {"ppo-clip": policy_loss, "gspo": gspo_loss}
"""Policy losses by name (``algo.loss``); "ppo-clip" is the recipe's."""


def register_policy_loss(name: str, fn: PolicyLossFn, *, replace: bool = False) -> None:
    """Add a policy loss under ``name`` (same signature as ``policy_loss``)."""
    if not name or (name in POLICY_LOSSES and not replace):
        raise ValueError(f"policy loss {name!r} is empty or already registered (replace=True)")
    POLICY_LOSSES[name] = fn
