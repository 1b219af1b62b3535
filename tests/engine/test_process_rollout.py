from __future__ import annotations

import copy
import functools
import os
import signal
from collections.abc import Callable, Iterator

import pytest
import torch

from or1.config import load_config
from or1.engine.factory import local_rollout_engine
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.process_rollout import SEED_HIGH, ProcessRolloutEngine
from or1.engine.rollout import (
    Rollouts,
    SamplingParams,
    merge_rollouts,
    split_prompts,
    stop_token_ids,
)
from or1.engine.workers import WorkerDied
from or1.errors import ConfigError

PARAMS = SamplingParams(n=3, max_tokens=12)


def test_prompts_split_by_whole_groups_and_merge_back() -> None:
    assert split_prompts(5, 2) == [(0, 3), (3, 5)]
    assert split_prompts(1, 3) == [(0, 1)]
    part = Rollouts([[1], [1]], [[5], [6]], [[-0.1], [-0.2]], [False, True], [0, 0])
    part.stats["seconds"] = 1.0
    other = Rollouts([[2], [3]], [[7], [8]], [[-0.3], [-0.4]], [False, False], [0, 1])
    other.stats["seconds"] = 3.0
    merged = merge_rollouts([part, other], [0, 1])
    assert merged.group_ids == [0, 0, 1, 2] and merged.response_ids == [[5], [6], [7], [8]]
    assert merged.truncated == [False, True, False, False] and merged.stats["seconds"] == 3.0


@pytest.fixture(scope="module")
def two(tiny) -> Iterator[tuple]:
    """A 2-process engine over a private copy of the tiny model (tests change weights)."""
    tok, model, prompts = tiny
    model = copy.deepcopy(model)
    engine = ProcessRolloutEngine(
        model, processes=2, pad_id=tok.pad_token_id, stop_ids=stop_token_ids(tok, model), seed=7
    )
    yield tok, model, prompts, engine
    engine.close()


@pytest.fixture(scope="module")
def expected(torch_threads) -> Callable[..., Rollouts]:
    """expected(model, tok, prompts, state): what the two workers must return from engine
    state ``state``: each chunk sampled in-process, with one thread as the workers, with
    the seed the engine's generator draws for its worker."""
    return functools.partial(_expected, threads=torch_threads)


def _expected(model, tok, prompts: list[list[int]], state: dict, *, threads) -> Rollouts:
    generator = torch.Generator()
    generator.set_state(state["generator"])
    seeds = torch.randint(SEED_HIGH, (2,), generator=generator).tolist()
    parts = []
    ranges = split_prompts(len(prompts), 2)
    for (start, end), worker_seed in zip(ranges, seeds, strict=True):
        engine = HFRolloutEngine(
            model, pad_id=tok.pad_token_id, stop_ids=stop_token_ids(tok, model), seed=worker_seed
        )
        with threads(1):  # the workers decode with one thread each
            parts.append(engine.generate(prompts[start:end], PARAMS))
    return merge_rollouts(parts, [s for s, _ in ranges])


def assert_same(a: Rollouts, b: Rollouts) -> None:
    """Same work, same thread count: the same tokens and bit-identical log-probs."""
    assert a.response_ids == b.response_ids and a.group_ids == b.group_ids
    assert a.prompt_ids == b.prompt_ids and a.truncated == b.truncated
    assert a.logprobs == b.logprobs


def test_workers_sample_what_the_in_process_engine_samples_with_their_seeds(two, expected) -> None:
    tok, model, prompts, engine = two
    state = engine.rng_state()
    out = engine.generate(prompts, PARAMS)
    assert len(out) == 15 and out.group_ids == [i // 3 for i in range(15)]
    assert_same(out, expected(model, tok, prompts, state))


def test_policy_updates_in_place_reach_the_workers(two, expected) -> None:
    tok, model, prompts, engine = two
    state = engine.rng_state()
    before = engine.generate(prompts, PARAMS)
    with torch.no_grad():  # what the optimizer does: in-place writes to the parameters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    engine.set_rng_state(state)
    after = engine.generate(prompts, PARAMS)
    assert after.response_ids != before.response_ids
    assert_same(after, expected(model, tok, prompts, state))


def test_rng_state_round_trip_reproduces_a_call(two) -> None:
    _, _, prompts, engine = two
    state = engine.rng_state()
    first = engine.generate(prompts, PARAMS)
    second = engine.generate(prompts, PARAMS)
    engine.set_rng_state(state)
    assert engine.generate(prompts, PARAMS).response_ids == first.response_ids
    assert second.response_ids != first.response_ids


def test_a_worker_error_is_raised_with_its_traceback_and_the_worker_survives(two, expected) -> None:
    _, _, prompts, engine = two
    with pytest.raises(WorkerDied, match=r"(?s)rollout process 0 of 2 failed.*IndexError"):
        engine.generate([[10**6], *prompts[1:]], PARAMS)  # a token id outside the vocabulary
    # worker 1's answer to the failed call was drained: the next call gets its own answers
    tok, model = two[0], two[1]
    state = engine.rng_state()
    assert_same(engine.generate(prompts, PARAMS), expected(model, tok, prompts, state))


def test_workers_leave_ctrl_c_to_the_parent(two, expected) -> None:
    tok, model, prompts, engine = two
    os.kill(engine.pool._procs[0].pid, signal.SIGINT)  # what Ctrl-C sends the group
    state = engine.rng_state()
    assert_same(engine.generate(prompts, PARAMS), expected(model, tok, prompts, state))


def test_a_killed_worker_is_a_clear_error(tiny) -> None:
    tok, model, prompts = tiny
    engine = ProcessRolloutEngine(
        copy.deepcopy(model), processes=2, pad_id=tok.pad_token_id, stop_ids=[0]
    )
    try:
        engine.pool._procs[1].kill()
        engine.pool._procs[1].join()
        with pytest.raises(WorkerDied, match="rollout process 1 of 2 exited with code -9"):
            engine.generate(prompts, PARAMS)
    finally:
        engine.close()
    assert engine.processes == 0


def test_config_routes_processes(tiny) -> None:
    tok, model, _ = tiny
    one = local_rollout_engine(load_config("tiny-arith"), model, tok)
    assert isinstance(one, HFRolloutEngine)
    cfg = load_config("tiny-arith", ["rollout.hf.processes=2"])
    two = local_rollout_engine(cfg, copy.deepcopy(model), tok)
    assert isinstance(two, ProcessRolloutEngine) and two.processes == 2
    two.close()
    with pytest.raises(ConfigError, match=r"rollout\.hf\.processes > 1 is for the hf engine"):
        load_config("tiny-arith", ["rollout.hf.processes=2", "rollout.engine=vllm"])
