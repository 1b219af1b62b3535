"""From scored rollouts to the training batch: rejection, advantages, layout.

Also how a batch is cut into the optimizer steps of one rollout batch
(N_SGD = mini-batches x reuse epochs), by ``algo.mini_batching``: "split" (the paper)
cuts the kept groups into batch_size / mini_batch_size parts, so N_SGD is fixed however
many groups rejection dropped; "fixed-size" (the released code) cuts the kept rows into
mini-batches of mini_batch_size x group_size rows (the last one shorter), so rejection
means fewer optimizer steps.
"""

from __future__ import annotations

import torch

from or1.algo import group_advantages, reject_uniform_groups
from or1.config import Config, StageConfig
from or1.engine.rollout import Rollouts
from or1.types import RolloutBatch


def build_batch(
    rollouts: Rollouts, rewards: torch.Tensor, *, pad_id: int, cfg: Config
) -> tuple[RolloutBatch | None, dict[str, float]]:
    """Reject uniform groups, compute advantages, lay out the kept rows as a RolloutBatch."""
    group_ids = torch.tensor(rollouts.group_ids)
    keep = (
        reject_uniform_groups(rewards, group_ids)
        if cfg.algo.reject_uniform_groups
        else torch.ones_like(group_ids, dtype=torch.bool)
    )
    n_groups = len(set(rollouts.group_ids))
    kept_groups = len(set(group_ids[keep].tolist()))
    info = {"kept_group_fraction": kept_groups / max(n_groups, 1)}
    if not bool(keep.any()):
        return None, info
    rows = keep.nonzero().squeeze(-1).tolist()
    advantages = group_advantages(
        rewards[keep], group_ids[keep], eps=cfg.algo.adv_eps, normalize_std=cfg.algo.normalize_std
    )
    width_p = max(len(rollouts.prompt_ids[r]) for r in rows)
    width_t = max(len(rollouts.response_ids[r]) for r in rows)
    ids = torch.full((len(rows), width_p + width_t), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    resp_mask = torch.zeros((len(rows), width_t))
    rollout_logp = torch.zeros((len(rows), width_t))
    for i, r in enumerate(rows):
        prompt, response = rollouts.prompt_ids[r], rollouts.response_ids[r]
        ids[i, width_p - len(prompt) : width_p] = torch.tensor(prompt)
        ids[i, width_p : width_p + len(response)] = torch.tensor(response)
        attn[i, width_p - len(prompt) : width_p + len(response)] = 1
        resp_mask[i, : len(response)] = 1.0
        rollout_logp[i, : len(response)] = torch.tensor(rollouts.logprobs[r])
    truncated = torch.tensor([rollouts.truncated[r] for r in rows])
    if cfg.algo.truncation == "mask":
        resp_mask[truncated] = 0.0
    batch = RolloutBatch(
        input_ids=ids,
        attention_mask=attn,
        response_mask=resp_mask,
        prompt_length=width_p,
        rewards=rewards[keep],
        advantages=advantages,
        group_ids=group_ids[keep],
        truncated=truncated,
        rollout_logp=rollout_logp,
    )
    return batch, info


def _epoch_orders(group_ids: torch.Tensor, *, epochs: int, seed: int) -> list[torch.Tensor]:
    """The group ids in the order of each epoch: sorted in the first, then shuffled by
    a generator seeded with ``seed + epoch`` (the same order on every rank and resume)."""
    groups = torch.unique(group_ids)
    orders = [groups] if epochs >= 1 else []
    for epoch in range(1, epochs):
        gen = torch.Generator().manual_seed(seed + epoch)
        orders.append(groups[torch.randperm(len(groups), generator=gen)])
    return orders


def mini_batch_rows(
    group_ids: torch.Tensor, *, n_mini: int, epochs: int, seed: int
) -> list[torch.Tensor]:
    """Row indices of each optimizer step: groups split into ``n_mini`` parts per epoch."""
    out = []
    for order in _epoch_orders(group_ids, epochs=epochs, seed=seed):
        for part in order.tensor_split(min(n_mini, len(order))):
            out.append(torch.isin(group_ids, part).nonzero().squeeze(-1))
    return out


def fixed_size_rows(
    group_ids: torch.Tensor, *, rows_per_step: int, epochs: int, seed: int
) -> list[torch.Tensor]:
    """Row indices of each optimizer step: the rows, in order (groups shuffled on
    epochs after the first), cut into runs of ``rows_per_step`` (the last may be short).

    Example:
        10 rows, rows_per_step 4, 1 epoch: rows 0-3, 4-7, 8-9 (3 optimizer steps).
    """
    if rows_per_step < 1:
        raise ValueError(f"rows_per_step must be >= 1, got {rows_per_step}")
    out = []
    for order in _epoch_orders(group_ids, epochs=epochs, seed=seed):
        rows = torch.cat([(group_ids == g).nonzero().squeeze(-1) for g in order.tolist()])
        out.extend(rows.split(rows_per_step))
    return out


def optimizer_step_rows(
    group_ids: torch.Tensor, *, stage: StageConfig, cfg: Config, seed: int
) -> list[torch.Tensor]:
    """The rows of each optimizer step of one rollout batch, by ``algo.mini_batching``."""
    epochs = cfg.algo.reuse_epochs
    if cfg.algo.mini_batching == "fixed-size":
        rows = stage.mini_batch_size * stage.group_size
        return fixed_size_rows(group_ids, rows_per_step=rows, epochs=epochs, seed=seed)
    n_mini = stage.batch_size // stage.mini_batch_size
    return mini_batch_rows(group_ids, n_mini=n_mini, epochs=epochs, seed=seed)
