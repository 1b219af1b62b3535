"""torch.distributed.checkpoint state without a process group: a sharded run's files load
into a local policy (the 2-rank save, resharding and resume are in test_ray.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from or1.checkpoint import SHARDED_DIR, Checkpoint, restore_training_state
from or1.distributed.dcp import local_tensors, save_state, training_state
from or1.engine.policy import LocalPolicy


def _trained(small_policy: Callable[..., LocalPolicy]) -> LocalPolicy:
    policy = small_policy(4)
    ids = torch.randint(3, 250, (2, 6), generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        policy.model(input_ids=ids, labels=ids).loss.backward()
        policy.optimizer.step()
        policy.optimizer.zero_grad()
    return policy


def test_dcp_files_restore_weights_and_adamw_into_a_local_policy(
    tmp_path: Path, small_policy: Callable[..., LocalPolicy]
) -> None:
    policy = _trained(small_policy)
    save_state(training_state(policy.model, policy.optimizer), tmp_path / SHARDED_DIR)
    assert sorted(p.name for p in (tmp_path / SHARDED_DIR).iterdir()) == [
        ".metadata",
        "__0_0.distcp",
    ]
    fresh = small_policy(4)  # the start weights and an empty AdamW
    loaded = restore_training_state(fresh, Checkpoint(tmp_path, {"step": 2}))
    assert loaded is True  # the weights came from the sharded files too
    for name, value in policy.model.state_dict().items():
        assert torch.equal(value, fresh.model.state_dict()[name]), name
    a, b = policy.optimizer.state_dict(), fresh.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for index, values in a["state"].items():
        for key, value in values.items():
            assert torch.equal(value, b["state"][index][key]), (index, key)
    assert float(b["state"][0]["step"]) == 2.0  # not the zero-lr step that initializes it


def test_local_tensors_names_every_tensor_of_the_nested_state(
    small_policy: Callable[..., LocalPolicy],
) -> None:
    policy = _trained(small_policy)
    names = dict(local_tensors(training_state(policy.model, policy.optimizer)))
    assert "model.model.embed_tokens.weight" in names
    assert "optimizer.state.model.embed_tokens.weight.exp_avg" in names
    assert all(isinstance(t, torch.Tensor) for t in names.values())
