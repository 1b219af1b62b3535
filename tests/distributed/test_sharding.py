"""Driver-side splitting of mini-batches over ranks and prompts over rollout workers."""

from __future__ import annotations

import pytest
import torch

from or1.distributed.sharding import even_out, merge_rows, merge_stats, shard_rows
from or1.types import BatchTotals, RolloutBatch


def _batch(n: int, t: int = 3) -> RolloutBatch:
    mask = torch.ones((n, t))
    mask[0, 1:] = 0  # row 0 has 1 token, the others 3
    return RolloutBatch(
        input_ids=torch.arange(n)[:, None].repeat(1, 2 + t),
        attention_mask=torch.ones((n, 2 + t), dtype=torch.long),
        response_mask=mask,
        prompt_length=2,
        rewards=torch.zeros(n),
        advantages=torch.arange(n, dtype=torch.float),
        group_ids=torch.arange(n) // 2,
        truncated=torch.zeros(n, dtype=torch.bool),
        rollout_logp=torch.zeros((n, t)),
    )


def test_shards_are_equal_sized_padded_and_carry_global_totals() -> None:
    batch = _batch(7)
    rows = torch.tensor([6, 0, 2, 4, 1])  # 5 rows of a mini-batch, any order
    shards = shard_rows(batch, rows, world=2, micro_batch_size=2)
    assert [len(s.batch) for s in shards] == [3, 3] and [s.real for s in shards] == [3, 2]
    assert all(len(s.micro) == 2 for s in shards)  # same number of passes on every rank
    assert all(sorted(torch.cat(s.micro).tolist()) == [0, 1, 2] for s in shards)
    assert all(s.totals == BatchTotals.of(batch.select(rows)) for s in shards)
    assert shards[0].totals == BatchTotals(tokens=1 + 4 * 3, sequences=5)
    padding = shards[1].batch
    assert padding.response_mask[2].sum() == 0  # the padding row adds no token
    assert padding.input_ids[2, 0] == padding.input_ids[0, 0]  # a copy of a real row
    assert batch.response_mask.sum() == 1 + 6 * 3  # the source batch is untouched
    per_row = [s.batch.advantages[:, None] for s in shards]
    assert merge_rows(per_row, shards).squeeze(-1).tolist() == [6, 0, 2, 4, 1]


def test_more_ranks_than_rows_gives_padding_only_shards() -> None:
    shards = shard_rows(_batch(3), torch.tensor([1]), world=3, micro_batch_size=4)
    assert [s.real for s in shards] == [1, 0, 0] and all(len(s.batch) == 1 for s in shards)
    assert all(float(s.batch.response_mask.sum()) == 0 for s in shards[1:])


def test_stats_merge_by_token_weight() -> None:
    ranks = [
        {"tokens": 3.0, "sum:clip_frac": 3 * 0.5, "max:ratio_max": 1.2, "grad_norm": 2.0},
        {"tokens": 1.0, "sum:clip_frac": 1 * 0.1, "max:ratio_max": 1.5, "grad_norm": 2.0},
    ]
    merged = merge_stats(ranks)
    assert abs(merged["clip_frac"] - (1.5 + 0.1) / 4) < 1e-12 and merged["grad_norm"] == 2.0
    assert merged["ratio_max"] == 1.5


def test_token_budgets_give_every_rank_the_same_number_of_passes() -> None:
    """Rank 0 gets the long rows (2 + 9 tokens each: one per 16-token micro-batch), rank 1
    short ones (2 + 1: all fit one); rank 1's plan is halved until both run 3 passes."""
    batch = _batch(6, t=9)
    batch.attention_mask[3:, 3:] = 0  # rows 3-5: 1 response token
    shards = shard_rows(batch, torch.arange(6), world=2, micro_batch_size=8, micro_batch_tokens=16)
    assert [len(s.micro) for s in shards] == [3, 3]
    assert [sorted(torch.cat(s.micro).tolist()) for s in shards] == [[0, 1, 2]] * 2
    assert max(len(m) for m in shards[0].micro) == 1


def test_even_out_halves_the_largest_micro_batch_and_refuses_the_impossible() -> None:
    plan = even_out([torch.tensor([0, 1, 2, 3]), torch.tensor([4])], 3)
    assert [m.tolist() for m in plan] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="cannot cut 1 rows into 2"):
        even_out([torch.tensor([0])], 2)
