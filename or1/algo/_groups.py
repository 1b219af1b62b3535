"""Group helpers shared by advantages and filters (private)."""

import torch
from torch import Tensor

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_groups(rewards: Tensor, group_ids: Tensor) -> None:
    """Raise ValueError unless ``rewards`` [B] and ``group_ids`` [B] are usable.

    Args:
        rewards: [B] finite rewards (real or bool dtype).
        group_ids: [B] integer group ids (any values, not necessarily contiguous).
    """
    if rewards.dim() != 1 or group_ids.shape != rewards.shape:
        raise ValueError(
            "rewards and group_ids must be 1-D of the same length, got "
            f"{tuple(rewards.shape)} and {tuple(group_ids.shape)}"
        )
    if group_ids.dtype not in _INT_DTYPES:
        raise ValueError(f"group_ids must be an integer tensor, got {group_ids.dtype}")
    if rewards.is_floating_point() and not bool(rewards.isfinite().all()):
        raise ValueError("rewards must be finite (got NaN or inf)")


def float_rewards(rewards: Tensor) -> Tensor:
    """Rewards as a floating tensor: float dtypes kept, bool/int become float32."""
    return rewards if rewards.is_floating_point() else rewards.to(torch.float32)


def uniform_groups(values: Tensor, inverse: Tensor, num_groups: int) -> Tensor:
    """[G] bool: True where every value of the group is equal (exact max == min).

    Args:
        values: [B] values.
        inverse: [B] group index in [0, G) of each value (``torch.unique`` inverse).
        num_groups: G.
    """
    empty = values.new_zeros(num_groups)
    high = empty.scatter_reduce(0, inverse, values, reduce="amax", include_self=False)
    low = empty.scatter_reduce(0, inverse, values, reduce="amin", include_self=False)
    return high == low
