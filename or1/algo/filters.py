"""Data filters: rejection sampling of uniform groups, online and offline prompt filters.

- ``zero_truncated_rewards`` (RECIPE.md step 2): a response cut off at the length limit
  keeps reward 0, even when its unfinished text happens to parse to the right answer;
  it stays in the batch (with a negative advantage when its group has a correct one).
- ``reject_uniform_groups`` (RECIPE.md step 3): drop every group whose rewards are all
  equal; such a group has zero advantage. A group of one response is uniform and is
  dropped too. No refill: the batch shrinks, as in the paper.
- ``drop_solved`` (online filter): at the start of a stage drop the prompts the actor
  solved with accuracy >= threshold (1.0) in the previous stage. This is in the paper,
  not in the released code. Prompts with no recorded accuracy are kept.
- ``keep_by_pass_rate`` (offline filter): keep prompts whose pass rate p over N samples
  satisfies low < p < high, i.e. drop exactly 0/N and N/N with the defaults.
"""

from collections.abc import Hashable, Mapping, Sequence

import torch
from torch import Tensor

from or1.algo._groups import check_groups, float_rewards, uniform_groups


def reject_uniform_groups(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """Mask of the responses whose group has at least two distinct rewards.

    Exact comparison (group max != group min), vectorized over groups.

    Args:
        rewards: [B] rewards.
        group_ids: [B] integer group ids (any values, any order).

    Returns:
        [B] bool keep mask.

    Example:
        >>> reject_uniform_groups(torch.tensor([1.0, 1.0, 0.0, 1.0]), torch.tensor([4, 4, 9, 9]))
        tensor([False, False,  True,  True])
    """
    check_groups(rewards, group_ids)
    r = rewards.to(torch.float64)  # exact for float32 and for integers below 2**53
    ids, inverse = torch.unique(group_ids, return_inverse=True)
    return ~uniform_groups(r, inverse, ids.shape[0])[inverse]


def zero_truncated_rewards(rewards: Tensor, truncated: Tensor) -> Tensor:
    """Rewards with every truncated response's set to 0.

    Args:
        rewards: [B] rewards as graded.
        truncated: [B] bool, True where the response hit the length limit.

    Returns:
        [B] float rewards (a new tensor).

    Example:
        >>> zero_truncated_rewards(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([False, True, True]))
        tensor([1., 0., 0.])
    """
    if rewards.shape != truncated.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} vs truncated {tuple(truncated.shape)}")
    r = float_rewards(rewards)
    return torch.where(truncated.bool(), torch.zeros_like(r), r)


def group_accuracy(rewards: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Mean reward of each group (the accuracy for binary rewards).

    Args:
        rewards: [B] rewards.
        group_ids: [B] integer group ids.

    Returns:
        ``(ids, accuracy)``: [G] sorted unique group ids and [G] mean reward per group.

    Example:
        >>> group_accuracy(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([5, 5, 2]))
        (tensor([2, 5]), tensor([1.0000, 0.5000]))
    """
    check_groups(rewards, group_ids)
    r = float_rewards(rewards)
    ids, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    sums = r.new_zeros(ids.shape[0]).index_add_(0, inverse, r)
    return ids, sums / counts.to(r.dtype)


def solved_prompts(accuracy: Mapping[Hashable, float], *, threshold: float = 1.0) -> set[Hashable]:
    """Prompt ids whose accuracy is >= ``threshold``.

    Example:
        >>> sorted(solved_prompts({"a": 1.0, "b": 0.5}))
        ['a']
    """
    return {prompt for prompt, acc in accuracy.items() if acc >= threshold}


def drop_solved(
    prompt_ids: Sequence[Hashable],
    accuracy: Mapping[Hashable, float],
    *,
    threshold: float = 1.0,
) -> list[Hashable]:
    """Online filter: drop prompts solved (accuracy >= threshold) in the previous stage.

    Args:
        prompt_ids: The stage's prompt ids, in order.
        accuracy: Previous-stage accuracy per prompt id; missing ids are kept.
        threshold: Accuracy at or above which a prompt counts as solved.

    Returns:
        The kept prompt ids, in their original order.

    Example:
        >>> drop_solved(["a", "b", "c"], {"a": 1.0, "b": 0.75})
        ['b', 'c']
    """
    solved = solved_prompts(accuracy, threshold=threshold)
    return [prompt for prompt in prompt_ids if prompt not in solved]


def keep_by_pass_rate(pass_rates: Tensor, *, low: float = 0.0, high: float = 1.0) -> Tensor:
    """Offline difficulty filter: keep prompts with ``low < pass_rate < high``.

    Args:
        pass_rates: [P] fraction of N samples solved per prompt (c / N).
        low: Drop pass rates <= low (0: drop prompts never solved).
        high: Drop pass rates >= high (1: drop prompts always solved).

    Returns:
        [P] bool keep mask.

    Example:
        >>> keep_by_pass_rate(torch.tensor([0.0, 0.25, 1.0]))
        tensor([False,  True, False])
    """
    if not low < high:
        raise ValueError(f"low ({low}) must be < high ({high})")
    return (pass_rates > low) & (pass_rates < high)
