"""The metrics of one training step: of its rollouts (rewards, lengths, truncation) and
of its policy update (loss statistics over the N_SGD optimizer steps)."""

from __future__ import annotations

import torch

from or1.config import StageConfig


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
