"""The records that cross the seams between the trainer, the loss and the engines.

Shape letters (as everywhere in or1): N rows (sequences) of a batch, n of a micro-batch,
P prompt columns (left-padded), T response columns (right-padded), V vocabulary size.
These types import nothing of or1, so the trainer, the objective, the engines and the
distributed workers can all use them without importing one another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch


@dataclass
class RolloutBatch:
    """N sequences laid out as [left-padded prompt | right-padded response].

    Response token j of every row sits at column P + j, so the logits that predict it
    are at column P + j - 1. Per-sequence fields are [N]; per-token fields are [N, T].
    """

    input_ids: torch.Tensor  # [N, P+T] long
    attention_mask: torch.Tensor  # [N, P+T] long
    response_mask: torch.Tensor  # [N, T] float: 1 on tokens that enter the loss
    prompt_length: int  # P
    rewards: torch.Tensor  # [N]
    advantages: torch.Tensor  # [N]
    group_ids: torch.Tensor  # [N] long
    truncated: torch.Tensor  # [N] bool
    rollout_logp: torch.Tensor  # [N, T] sampling log-probs (0 on padding)
    old_logp: torch.Tensor | None = None  # [N, T] recomputed when N_SGD > 1
    ref_logp: torch.Tensor | None = None  # [N, T] reference policy, KL ablation only

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def response_ids(self) -> torch.Tensor:  # [N, T]
        return self.input_ids[:, self.prompt_length :]

    def select(self, index: torch.Tensor) -> RolloutBatch:
        """The rows ``index`` (a [n] long tensor), every per-row field sliced alike."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value[index] if isinstance(value, torch.Tensor) else value
        return RolloutBatch(**values)


@dataclass(frozen=True)
class BatchTotals:
    """Counts over the whole mini-batch, so micro-batch losses add up to its loss."""

    tokens: float  # response tokens in the loss
    sequences: int  # rows with at least one response token in the loss

    @classmethod
    def of(cls, batch: RolloutBatch) -> BatchTotals:
        per_row = batch.response_mask.sum(-1)
        return cls(float(per_row.sum()), int((per_row > 0).sum()))


@dataclass
class TokenScores:
    """What the policy computed for a micro-batch's response tokens (differentiable).

    Both are [n, T] float32 at the scoring temperature, 0 where the response is padding.
    No [n, T, V] logits exist: the engine computes them in chunks of tokens from the
    final hidden states (``or1.engine.lm_head``).
    """

    logp: torch.Tensor  # [n, T] log-probability of each sampled token
    entropy: torch.Tensor  # [n, T] full-vocabulary entropy of the distribution, in nats


LossFn = Callable[
    [TokenScores, RolloutBatch, BatchTotals], tuple[torch.Tensor, dict[str, torch.Tensor]]
]
"""loss_fn(scores, micro_batch, totals) -> (loss, stats): the scalar to backpropagate
(normalized by the mini-batch ``totals``, so micro-batch losses add up) and detached
scalar statistics."""
