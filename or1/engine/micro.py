"""Cutting a (mini-)batch into micro-batches, and trimming their padding.

Two budgets (``train.micro_batch_size`` rows, ``train.micro_batch_tokens`` tokens): with a
token budget, micro-batches are filled with rows until their *padded* size, rows x
(longest prompt + longest response) after ``trim_padding``, would exceed it (verl's
dynamic batch size), so 32K-token and 300-token responses share a step without OOM and
without padding short rows to 32K. Rows are ordered by their group's longest row first
(groups stay together where the budget allows: their shared prompt runs once, and less
padding is trimmed away). The loss does not depend on the split: every micro-batch is
normalized by the totals of its whole mini-batch (``BatchTotals``).
"""

from __future__ import annotations

from dataclasses import fields

import torch

from or1.errors import ConfigError
from or1.types import RolloutBatch


def row_lengths(batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt tokens [N], response tokens [N]) of each row (real tokens, no padding)."""
    p = batch.prompt_length
    mask = batch.attention_mask
    return mask[:, :p].sum(-1), mask[:, p:].sum(-1)


def _ordered(batch: RolloutBatch, index: torch.Tensor) -> torch.Tensor:
    """``index`` with groups together, groups ordered by their longest row (longest first)."""
    lengths = batch.attention_mask[index].sum(-1).float()
    _, group = torch.unique(batch.group_ids[index], return_inverse=True)
    longest = torch.zeros(int(group.max()) + 1).scatter_reduce(0, group, lengths, "amax")
    by_group = torch.sort(group, stable=True).indices
    index, group = index[by_group], group[by_group]
    return index[torch.sort(longest[group], descending=True, stable=True).indices]


def plan_micro_batches(
    batch: RolloutBatch,
    index: torch.Tensor,
    *,
    max_rows: int,
    max_tokens: int | None = None,
) -> list[torch.Tensor]:
    """Split the rows ``index`` ([n] long) of ``batch`` into micro-batches.

    Args:
        max_rows: at most this many rows per micro-batch.
        max_tokens: at most this many padded tokens (rows x (longest prompt + longest
            response)) per micro-batch; None: rows only.

    Raises:
        ConfigError: a single row is longer than ``max_tokens``.

    Example:
        rows of 10, 9, 3, 2 tokens (one prompt token each), max_tokens 20, max_rows 8:
        [10, 9] (2 x 10 = 20), then [3, 2] (2 x 3 = 6).
    """
    if len(index) == 0:
        return []
    if len(index) > 1:
        index = _ordered(batch, index)
    if max_tokens is None:
        return list(index.split(max_rows))
    prompt, response = (x[index].tolist() for x in row_lengths(batch))
    parts: list[list[int]] = []
    longest_p = longest_t = 0
    for i, (p, t) in enumerate(zip(prompt, response, strict=True)):
        if p + t > max_tokens:
            raise ConfigError(
                f"train.micro_batch_tokens={max_tokens} is smaller than one row of "
                f"{p + t} tokens ({p} prompt + {t} response).",
                hint="raise train.micro_batch_tokens to at least rollout.max_prompt_length "
                "+ the longest stage's max_response_length.",
            )
        wide_p, wide_t = max(longest_p, p), max(longest_t, t)
        if (
            parts
            and len(parts[-1]) < max_rows
            and (len(parts[-1]) + 1) * (wide_p + wide_t) <= max_tokens
        ):
            parts[-1].append(i)
            longest_p, longest_t = wide_p, wide_t
        else:
            parts.append([i])
            longest_p, longest_t = p, t
    return [index[torch.tensor(part)] for part in parts]


def trim_padding(batch: RolloutBatch) -> RolloutBatch:
    """The batch without the columns that are padding in every row.

    Left: prompt columns before the longest prompt; right: response columns after the
    longest response. Per-token fields [N, T] are cut to the kept response columns.
    """
    attn = batch.attention_mask
    p = batch.prompt_length
    real = attn.bool().any(0)
    first = int(real[:p].long().argmax()) if bool(real[:p].any()) else p - 1
    first = min(first, p - 1)  # keep column P-1: its hidden state predicts response token 0
    tail = real[p:].nonzero()
    t = int(tail[-1]) + 1 if len(tail) else 1
    if first == 0 and t == attn.shape[1] - p:
        return batch
    values = {}
    for f in fields(batch):
        value = getattr(batch, f.name)
        if f.name in ("input_ids", "attention_mask"):
            value = value[:, first : p + t]
        elif isinstance(value, torch.Tensor) and value.dim() == 2:
            value = value[:, :t]
        values[f.name] = value
    values["prompt_length"] = p - first
    return RolloutBatch(**values)


def shared_prompts(batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(a row of each group [B], each row's group [n]) when rows share prompts by group.

    None when no group has two rows here or when some group's rows differ in their
    prompt (then the prompt cannot be run once for the group).
    """
    _, group = torch.unique(batch.group_ids, return_inverse=True)
    count = int(group.max()) + 1 if len(group) else 0
    if count == len(batch):
        return None
    rows = torch.arange(len(batch))
    first = torch.full((count,), len(batch)).scatter_reduce(0, group, rows, "amin")
    p = batch.prompt_length
    for field in (batch.input_ids, batch.attention_mask):
        if not torch.equal(field[:, :p], field[first, :p][group]):
            return None
    return first, group
