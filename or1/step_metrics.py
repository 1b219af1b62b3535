"""The metrics of one training step: of its rollouts (rewards, lengths, truncation) and
of its policy update (loss statistics over the N_SGD optimizer steps)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from or1.config import StageConfig
from or1.types import RolloutBatch


def rollout_metrics(
    rewards: torch.Tensor,
    graded: torch.Tensor,
    truncated: torch.Tensor,
    lengths: torch.Tensor,
    *,
    stage: StageConfig,
) -> dict[str, float]:
    """Reward, accuracy, length and truncation metrics of one step's rollouts.

    Args:
        rewards: [B*G] the rewards trained on (after ``algo.truncated_reward``).
        graded: [B*G] the verifier's grades (before zeroing truncated responses).
        truncated: [B*G] bool, response cut off at the length limit.
        lengths: [B*G] response lengths in tokens (float).
        stage: the step's stage (its ``max_response_length`` is logged).
    """
    return {
        "reward_mean": float(rewards.mean()),
        "accuracy": float((rewards > 0.5).float().mean()),
        "response_length_mean": float(lengths.mean()),
        "response_length_max": float(lengths.max()),
        "truncation_ratio": int(truncated.sum()) / truncated.numel(),
        # graded correct although cut off (reward 0 unless truncated_reward=graded)
        "truncated_correct_ratio": float(((graded > 0.5) & truncated).float().mean()),
        "max_response_length": stage.max_response_length,
    }


def update_metrics(steps: list[dict[str, float]]) -> dict[str, float]:
    """Loss statistics averaged over the N_SGD optimizer steps of one update (clip
    fraction and KL are 0 on the first one by construction); ``entropy_full`` of the
    first step (the rollout policy's); the largest ``grad_norm``."""
    out = {key: sum(s[key] for s in steps) / len(steps) for key in steps[0]}
    out["entropy_full"] = steps[0].get("entropy_full", float("nan"))
    out["grad_norm"] = max(s["grad_norm"] for s in steps)
    return out


def mean_neg_logp(logp: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean negative log-prob of the sampled tokens, the Monte-Carlo entropy estimate e_k
    (nats per token). ``logp``, ``mask``: [N, T]; a batch without tokens gives 0."""
    return float(-(logp * mask).sum() / mask.sum().clamp(min=1))


def trainer_entropy(batch: RolloutBatch, steps: list[dict[str, float]]) -> float | None:
    """e_k from the trainer's log-probs under the weights before the update (the released
    code's, ``algo.entropy.source: trainer``): from ``batch.old_logp`` when the trainer
    recomputed it, else from the first optimizer step's ``neg_logp`` statistic (then
    that step is the whole batch, N_SGD = 1); None before the update when neither exists.
    """
    if batch.old_logp is not None:
        return mean_neg_logp(batch.old_logp, batch.response_mask)
    return steps[0]["neg_logp"] if steps else None


@dataclass(frozen=True)
class EntropySource:
    """Where the entropy e_k the controller gates on comes from (``algo.entropy.source``)
    and when it is needed (``algo.entropy.gate``), so the trainer asks one object.

    ``rollout`` (the paper's): the rollout engine's sampled log-probs. ``trainer`` (the
    released code's): the trainer's log-probs under the weights before the update;
    with ``gate: current`` the coefficient of step k needs e_k before the update, so the
    trainer recomputes ``old_logp`` first (``needs_old_logp``); with ``gate: previous``
    e_k is read from the update's first step at no extra pass.
    """

    source: str = "rollout"
    gate: str = "current"

    @property
    def needs_old_logp(self) -> bool:
        """The trainer must recompute ``batch.old_logp`` before the update."""
        return self.source == "trainer" and self.gate == "current"

    def before_update(self, batch: RolloutBatch, sampled: float) -> float | None:
        """e_k as known before the update (None: not yet; the gate then uses e_{k-1}).
        ``sampled``: ``mean_neg_logp`` of the rollout's log-probs (nats per token)."""
        return sampled if self.source == "rollout" else trainer_entropy(batch, [])

    def after_update(
        self,
        batch: RolloutBatch,
        steps: list[dict[str, float]],
        sampled: float,
        metrics: dict[str, float],
    ) -> float | None:
        """e_k for the controller's ``end_step``. With the trainer's entropy, ``metrics``
        (the update's) gets ``entropy_trainer`` in place of ``neg_logp``, which is e_k."""
        if self.source == "rollout":
            return sampled
        metrics.pop("neg_logp", None)
        e_k = metrics["entropy_trainer"] = trainer_entropy(batch, steps)
        return e_k
