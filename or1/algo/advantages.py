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

import math

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
        # two-pass (centered) variance: stable for large rewards; sample std, n-1.
        # Deviations are first scaled by a power of two per group (exact, so results are
        # bitwise unchanged in the normal range): squares of a tiny spread (< ~1e-154 in
        # float64) would underflow to std 0 and give +-inf with eps = 0.
        scale = _pow2_scale(advantages.abs(), inverse, num_groups)  # [G]
        scaled = advantages * scale[inverse]
        sq_sum = r.new_zeros(num_groups).index_add_(0, inverse, scaled.square())
        std = (sq_sum / (counts - 1).clamp(min=1)).sqrt()
        advantages = scaled / (std + eps * scale)[inverse]
    # Exactly 0 for singleton and constant groups (a singleton is uniform), even with
    # eps = 0 or rounding in the mean.
    uniform = uniform_groups(r, inverse, num_groups)[inverse]
    return torch.where(uniform, torch.zeros_like(advantages), advantages)


def _pow2_scale(magnitudes: Tensor, inverse: Tensor, num_groups: int) -> Tensor:
    """[G] powers of two 2^-k bringing each group's largest magnitude into [0.5, 1).

    k is clamped so that 2^-k and 2^k are normal numbers of the dtype (subnormal spreads
    are scaled as far as possible, zero-spread groups get 2^0 = 1).
    """
    peak = magnitudes.new_zeros(num_groups).scatter_reduce(
        0, inverse, magnitudes, reduce="amax", include_self=True
    )
    limit = -math.frexp(torch.finfo(magnitudes.dtype).tiny)[1]  # 1021 for float64
    exponent = torch.frexp(peak).exponent.clamp(-limit, limit)
    return torch.pow(2.0, -exponent.to(torch.float64)).to(magnitudes.dtype)
