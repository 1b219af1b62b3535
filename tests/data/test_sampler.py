from __future__ import annotations

from or1.data.sampler import PromptSampler


def test_each_epoch_is_a_permutation_and_batches_span_epochs() -> None:
    uids = [f"p{i}" for i in range(10)]
    sampler = PromptSampler(uids, seed=3)
    first = sampler.next_batch(4) + sampler.next_batch(4) + sampler.next_batch(2)
    assert sorted(first) == sorted(uids)
    spanning = sampler.next_batch(15)
    assert sampler.epoch == 2
    assert sorted(spanning[:10]) == sorted(uids)


def test_resume_continues_the_same_order() -> None:
    uids = [f"p{i}" for i in range(7)]
    a = PromptSampler(uids, seed=0)
    a.next_batch(5)
    state = a.state_dict()
    expected = a.next_batch(9)
    b = PromptSampler(uids, seed=0)
    b.load_state_dict(state)
    assert b.next_batch(9) == expected


def test_set_active_restricts_sampling() -> None:
    sampler = PromptSampler(["a", "b", "c", "d"], seed=1)
    sampler.set_active(["b", "d"])
    assert set(sampler.next_batch(6)) == {"b", "d"}


def test_seeds_differ() -> None:
    uids = [f"p{i}" for i in range(20)]
    assert PromptSampler(uids, seed=0).next_batch(20) != PromptSampler(uids, seed=1).next_batch(20)
