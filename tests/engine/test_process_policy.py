"""The data-parallel process policy computes what LocalPolicy computes."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch

from or1.config import OptimConfig, load_config
from or1.engine.factory import local_policy
from or1.engine.policy import LocalPolicy
from or1.engine.process_policy import ProcessPolicy, split_groups
from or1.engine.workers import WorkerDied
from or1.objective import ObjectiveSettings, magic_loss

SETTINGS = ObjectiveSettings(0.2, 0.28, "token-mean", entropy_coef=0.01)


def _params(policy: LocalPolicy) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in policy.model.parameters()])


@pytest.fixture(scope="module")
def pair(small_policy) -> Iterator[tuple[LocalPolicy, ProcessPolicy]]:
    """A LocalPolicy and a 2-process ProcessPolicy over the same initial weights."""
    local = small_policy(3)
    model = small_policy(3).model
    parallel = ProcessPolicy(model, OptimConfig(lr=1e-3), processes=2, micro_batch_size=3)
    yield local, parallel
    parallel.close()


def test_split_groups_keeps_groups_whole_and_balances_tokens(grouped_batch) -> None:
    batch = grouped_batch(100, groups=4, g=2)
    batch.attention_mask[:2, :] = 1  # group 0: 2 rows x 11 tokens = 22, the largest
    lengths = batch.attention_mask.sum(-1)
    parts = split_groups(batch, 2)
    assert sorted(torch.cat(parts).tolist()) == list(range(8))
    for part in parts:  # whole groups, rows in order
        groups = batch.group_ids[part].tolist()
        assert all(groups.count(g) == 2 for g in groups) and part.tolist() == sorted(part.tolist())
    loads = sorted(int(lengths[p].sum()) for p in parts)
    # greedy largest-first: no move of one group between the parts would balance better
    per_group = lengths.view(4, 2).sum(-1).tolist()
    assert loads[1] - loads[0] <= max(per_group)
    assert [len(p) for p in split_groups(batch.select(torch.arange(2)), 3)] == [2, 0, 0]


def test_updates_and_logprobs_equal_the_local_policy(pair, grouped_batch) -> None:
    local, parallel = pair
    batch = grouped_batch(local.model.config.vocab_size, groups=5, g=4)
    mask = batch.response_mask  # padding positions are unspecified
    assert torch.allclose(parallel.logprobs(batch) * mask, local.logprobs(batch) * mask, atol=1e-6)
    # two optimizer steps: the second worker pass must see the first step's weights
    rows = [torch.arange(0, 12), torch.arange(12, 20)]
    batch.old_logp = local.logprobs(batch)
    want = local.update(batch, magic_loss(SETTINGS), mini_batches=rows)
    got = parallel.update(batch, magic_loss(SETTINGS), mini_batches=rows)
    assert torch.allclose(_params(parallel), _params(local), atol=1e-6)
    for w, g in zip(want, got, strict=True):
        assert w.keys() == g.keys()
        for key in w:
            assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-6), key
    assert torch.allclose(parallel.logprobs(batch) * mask, local.logprobs(batch) * mask, atol=1e-5)


def _closure_loss(settings: ObjectiveSettings):
    inner = magic_loss(settings)
    return lambda *args: inner(*args)


def test_an_unpicklable_loss_is_a_clear_error(pair, grouped_batch) -> None:
    _, parallel = pair
    batch = grouped_batch(parallel.model.config.vocab_size)
    with pytest.raises(TypeError, match=r"cannot be pickled.*module-level"):
        parallel.update(batch, _closure_loss(SETTINGS), mini_batches=[torch.arange(12)])


def test_a_worker_error_comes_back_with_its_traceback(pair, grouped_batch) -> None:
    _, parallel = pair
    batch = grouped_batch(parallel.model.config.vocab_size)
    before = _params(parallel)
    batch.input_ids[0, -1] = 10**6  # outside the vocabulary: scoring it fails
    with pytest.raises(WorkerDied, match=r"(?s)update process [01] of 2 failed.*out of bounds"):
        parallel.update(batch, magic_loss(SETTINGS), mini_batches=[torch.arange(12)])
    assert torch.equal(_params(parallel), before)  # no step was taken


def test_config_routes_update_processes(tiny) -> None:
    _, model, _ = tiny
    assert type(local_policy(load_config("tiny-arith"), model)) is LocalPolicy
    cfg = load_config("tiny-arith", ["train.update_processes=2"])
    policy = local_policy(cfg, copy.deepcopy(model))
    try:
        assert isinstance(policy, ProcessPolicy) and policy.processes == 2
    finally:
        policy.close()
