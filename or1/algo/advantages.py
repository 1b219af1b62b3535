"""GRPO outcome advantages: each reward normalized within its prompt's group.

A = (r - mean_g) / (std_g + eps), one value per response, copied to every response
token by the loss (RECIPE.md step 4).

Choices and departures:
- ``std_g`` is the SAMPLE standard deviation (divisor n-1), as the Skywork-OR1 / verl
  code does (``torch.std``); the paper's formula does not say which.
- ``eps`` defaults to ``GRPO_EPS`` = 1e-6, the Skywork/verl value.
- A group of one response gets advantage 0. verl instead uses mean 0 and std 1 for a
  singleton group (A = r / (1 + eps)); a lone sample has no baseline, so we give it no
  learning signal. With rejection sampling on (the recipe default) singleton groups
  never reach the loss anyway.
"""

import torch
from torch import Tensor

from or1.algo._groups import check_groups, float_rewards, uniform_groups

GRPO_EPS = 1e-6
"""Added to the group std before dividing; the Skywork-OR1 / verl value."""


def group_advantages(
    rewards: Tensor,
    group_ids: Tensor,
    *,
    eps: float = GRPO_EPS,
    normalize_std: bool = True,
) -> Tensor:
    """Normalize rewards within groups of responses to the same prompt.

    Vectorized over groups (``torch.unique`` + ``index_add_``); group ids may be any
    integers, in any order, not necessarily contiguous.

    Args:
        rewards: [B] rewards (float, int or bool).
        group_ids: [B] integer id of each response's group (its prompt).
        eps: Added to the group's sample std before dividing.
        normalize_std: If False, return ``r - mean_g`` (Dr. GRPO style, no std).

    Returns:
        [B] advantages, floating (float32 for int/bool rewards). Responses in a group
        of one, or in a group whose rewards are all equal, get 0.

    Example:
        >>> group_advantages(torch.tensor([1.0, 0.0, 0.0, 5.0]), torch.tensor([7, 7, 3, 3]))
        tensor([ 0.7071, -0.7071, -0.7071,  0.7071])
    """
    check_groups(rewards, group_ids)
    r = float_rewards(rewards)
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    counts = counts.to(r.dtype)
    num_groups = counts.shape[0]
    mean = r.new_zeros(num_groups).index_add_(0, inverse, r) / counts
    advantages = r - mean[inverse]
    if normalize_std:
        # two-pass (centered) variance: stable for large rewards; sample std, n-1
        sq_sum = r.new_zeros(num_groups).index_add_(0, inverse, advantages.square())
        std = (sq_sum / (counts - 1).clamp(min=1)).sqrt()
        advantages = advantages / (std[inverse] + eps)
    # Exactly 0 for singleton and constant groups (a singleton is uniform), even with
    # eps = 0 or rounding in the mean.
    uniform = uniform_groups(r, inverse, num_groups)[inverse]
    return torch.where(uniform, torch.zeros_like(advantages), advantages)
