from __future__ import annotations

import torch

from or1.batch import build_batch, mini_batch_rows
from or1.config import load_config
from or1.engine.rollout import Rollouts


def _rollouts() -> Rollouts:
    # 3 prompts x 2 responses; prompt lengths 2, 3, 1; response lengths vary.
    prompts = [[5, 6], [7, 8, 9], [4]]
    responses = [[10, 2], [11], [12, 13, 14], [15, 2], [16], [17, 18]]
    return Rollouts(
        prompt_ids=[prompts[i // 2] for i in range(6)],
        response_ids=responses,
        logprobs=[[-0.5] * len(r) for r in responses],
        truncated=[False, True, True, False, False, True],
        group_ids=[0, 0, 1, 1, 2, 2],
    )


def test_build_batch_rejects_uniform_groups_and_lays_out_tokens() -> None:
    cfg = load_config("tiny-arith")
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])  # group 1 is all-correct
    batch, info = build_batch(_rollouts(), rewards, pad_id=0, cfg=cfg)
    assert batch is not None
    assert info["kept_group_fraction"] == 2 / 3
    assert batch.group_ids.tolist() == [0, 0, 2, 2]
    assert batch.prompt_length == 2 and batch.input_ids.shape == (4, 2 + 2)
    assert batch.input_ids[0].tolist() == [5, 6, 10, 2]
    assert batch.input_ids[2].tolist() == [0, 4, 16, 0]
    assert batch.attention_mask[2].tolist() == [0, 1, 1, 0]
    assert batch.response_mask.tolist() == [[1, 1], [1, 0], [1, 0], [1, 1]]
    # Groups of two with rewards (1, 0): mean 0.5, sample std 0.7071 -> +-0.7071.
    assert torch.allclose(
        batch.advantages, torch.tensor([0.7071, -0.7071, -0.7071, 0.7071]), atol=1e-4
    )
    # Truncated responses stay in the batch with their reward 0 by default (paper).
    assert batch.truncated.tolist() == [False, True, False, True]
    assert batch.response_mask[1].sum() == 1


def test_truncation_mask_ablation_zeroes_truncated_rows() -> None:
    cfg = load_config("tiny-arith", ["algo.truncation=mask"])
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    batch, _ = build_batch(_rollouts(), rewards, pad_id=0, cfg=cfg)
    assert batch is not None
    assert batch.response_mask.sum(-1).tolist() == [2, 0, 0, 2, 1, 0]


def test_all_uniform_gives_no_batch_unless_rejection_is_off() -> None:
    rewards = torch.zeros(6)
    batch, info = build_batch(_rollouts(), rewards, pad_id=0, cfg=load_config("tiny-arith"))
    assert batch is None and info["kept_group_fraction"] == 0
    cfg = load_config("tiny-arith", ["algo.reject_uniform_groups=false"])
    batch, _ = build_batch(_rollouts(), rewards, pad_id=0, cfg=cfg)
    assert batch is not None and len(batch) == 6 and float(batch.advantages.abs().sum()) == 0


def test_mini_batch_rows_split_by_group_and_repeat_per_epoch() -> None:
    group_ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    one = mini_batch_rows(group_ids, n_mini=1, epochs=1, seed=0)
    assert len(one) == 1 and one[0].tolist() == list(range(8))
    two = mini_batch_rows(group_ids, n_mini=2, epochs=2, seed=0)
    assert len(two) == 4  # N_SGD = 2 mini-batches x 2 epochs
    for rows in two:
        assert len(rows) == 4 and len(set(group_ids[rows].tolist())) == 2
    assert sorted(torch.cat(two[:2]).tolist()) == list(range(8))
    assert sorted(torch.cat(two[2:]).tolist()) == list(range(8))
