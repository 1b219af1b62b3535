"""The rollout engine's KV cache: in-place slots, swap-removal, both mask paths."""

from __future__ import annotations

import pytest
import torch

from or1.config import OptimConfig, load_config
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.kv_cache import SlotKVCache
from or1.engine.policy import LocalPolicy
from or1.engine.rollout import SamplingParams, stop_token_ids
from or1.trainer import build_batch


def _fill(cache: SlotKVCache, rows: int, steps: int) -> torch.Tensor:
    """Write steps columns of K = V = row id (+ column / 100); return the last K view."""
    for t in range(steps):
        kv = (torch.arange(rows, dtype=torch.float32) + t / 100)[:, None, None, None].expand(
            rows, 2, 1, 4
        )
        keys, _ = cache.update(kv.clone(), kv.clone(), 0)
    return keys


def test_slot_cache_writes_in_place_and_compacts_by_swap_removal() -> None:
    cache = SlotKVCache(num_layers=1, max_rows=6, max_length=8)
    buffer = None
    keys = _fill(cache, 6, 3)
    buffer = cache.layers[0].keys
    assert keys.shape == (6, 2, 3, 4) and keys.data_ptr() == buffer.data_ptr()
    done = torch.tensor([False, True, False, True, False, False])
    order = cache.compact(done)
    # Rows 1 and 3 die; the live rows past the new end (4, 5) move into their holes.
    assert order.tolist() == [0, 4, 2, 5]
    assert cache.rows == 4
    rows = cache.layers[0].keys[:4, 0, :3, 0]
    assert torch.allclose(rows[:, 0], torch.tensor([0.0, 4, 2, 5]))
    assert torch.allclose(rows[1], torch.tensor([4.0, 4.01, 4.02]))
    keys = _fill(cache, 4, 1)  # the next step writes column 3 of the 4 live rows
    assert keys.shape == (4, 2, 4, 4) and cache.layers[0].keys.data_ptr() == buffer.data_ptr()


def test_slot_cache_repeat_interleave_copies_each_prompt_to_its_group() -> None:
    cache = SlotKVCache(num_layers=1, max_rows=6, max_length=4)
    kv = torch.arange(2, dtype=torch.float32)[:, None, None, None].expand(2, 2, 3, 4).clone()
    cache.update(kv, kv, 0)
    cache.batch_repeat_interleave(3)
    assert cache.rows == 6
    assert cache.layers[0].keys[:6, 0, 0, 0].tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    ("prebuilt_mask", "same_length"), [(True, False), (False, False), (True, True)]
)
def test_mask_paths_match_the_trainers_forward(tiny, prebuilt_mask: bool, same_length: bool):
    """The prebuilt 4-D mask (known architectures), the 2-D mask (any model) and no mask
    (no prompt padded): log-probs equal the full forward's while rows stop independently
    and leave the batch."""
    tok, model, prompts = tiny
    engine = HFRolloutEngine(model, pad_id=tok.pad_token_id, stop_ids=stop_token_ids(tok, model))
    engine._prebuilt_mask = engine._mask_mapping = prebuilt_mask
    if same_length:
        prompts = [p for p in prompts if len(p) == len(prompts[0])]
    else:
        assert len({len(p) for p in prompts}) > 1
    out = engine.generate(prompts, SamplingParams(n=4, max_tokens=24))
    lengths = {len(r) for r in out.response_ids}
    assert len(lengths) > 1  # some rows stopped early, others ran on
    cfg = load_config("tiny-arith", ["algo.reject_uniform_groups=false"])
    batch, _ = build_batch(out, torch.arange(len(out)) % 2 * 1.0, pad_id=tok.pad_token_id, cfg=cfg)
    assert batch is not None
    logp = LocalPolicy(model, OptimConfig(), micro_batch_size=6).logprobs(batch)
    assert float(((logp - batch.rollout_logp).abs() * batch.response_mask).max()) < 1e-4
