from __future__ import annotations

import pytest
import torch

from or1.batch import build_batch
from or1.config import OptimConfig, load_config
from or1.engine.hf_rollout import HFRolloutEngine, sample_tokens
from or1.engine.kv_cache import free_memory_bytes, kv_cache_bytes
from or1.engine.policy import LocalPolicy
from or1.engine.rollout import SamplingParams, stop_token_ids
from or1.errors import ConfigError


def test_tokenizer_round_trips_task_text(tiny) -> None:
    tok, _, _ = tiny
    text = "<think>\n7+5=12\n12-3=9\n</think>\n\\boxed{-9}"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert [tok.decode([i]) for i in tok("123")["input_ids"]] == ["1", "2", "3"]


def test_groups_shape_stop_and_truncation(tiny) -> None:
    tok, model, prompts = tiny
    engine = HFRolloutEngine(model, pad_id=tok.pad_token_id, stop_ids=stop_token_ids(tok, model))
    out = engine.generate(prompts, SamplingParams(n=3, max_tokens=12))
    assert len(out) == 15 and out.group_ids == [i // 3 for i in range(15)]
    stops = set(stop_token_ids(tok, model))
    for resp, lps, trunc, prompt, g in zip(
        out.response_ids, out.logprobs, out.truncated, out.prompt_ids, out.group_ids, strict=True
    ):
        assert prompt == prompts[g] and len(resp) == len(lps) and 1 <= len(resp) <= 12
        ends_with_stop = resp[-1] in stops
        assert trunc == (not ends_with_stop)
        assert all(s not in stops for s in resp[:-1])
        assert all(lp <= 0 for lp in lps)


def test_same_seed_same_samples_and_chunking_is_seamless(tiny) -> None:
    tok, model, prompts = tiny
    params = SamplingParams(n=4, max_tokens=10)
    a = HFRolloutEngine(model, pad_id=tok.pad_token_id, stop_ids=[0], seed=5).generate(
        prompts, params
    )
    b = HFRolloutEngine(model, pad_id=tok.pad_token_id, stop_ids=[0], seed=5).generate(
        prompts, params
    )
    c = HFRolloutEngine(model, pad_id=tok.pad_token_id, stop_ids=[0], seed=6).generate(
        prompts, params
    )
    assert a.response_ids == b.response_ids
    assert a.response_ids != c.response_ids


def test_sampling_logprobs_match_the_trainers_forward(tiny) -> None:
    """The KV-cached decode and the full-sequence training forward agree on log-probs."""
    tok, model, prompts = tiny
    engine = HFRolloutEngine(model, pad_id=tok.pad_token_id, stop_ids=stop_token_ids(tok, model))
    out = engine.generate(prompts, SamplingParams(n=4, max_tokens=16))
    cfg = load_config("tiny-arith", ["algo.reject_uniform_groups=false"])
    rewards = torch.arange(len(out)) % 2 * 1.0
    batch, _ = build_batch(out, rewards, pad_id=tok.pad_token_id, cfg=cfg)
    assert batch is not None
    policy = LocalPolicy(model, OptimConfig(), micro_batch_size=7)
    logp = policy.logprobs(batch)
    diff = ((logp - batch.rollout_logp).abs() * batch.response_mask).max()
    assert float(diff) < 1e-4


def test_sample_tokens_temperature_and_top_p() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(4000, 1)
    tokens, lps = sample_tokens(logits, temperature=1.0, top_p=1.0, generator=gen)
    freq = torch.bincount(tokens, minlength=4).float() / 4000
    expected = torch.softmax(logits[0], -1)
    assert torch.allclose(freq, expected, atol=0.03)
    assert torch.allclose(lps, expected.log()[tokens], atol=1e-6)
    top, _ = sample_tokens(logits, temperature=1.0, top_p=0.6, generator=gen)
    # p = [0.644, 0.237, ...]: the first token alone exceeds 0.6, so only it survives.
    assert set(top.tolist()) == {0}
    cold, _ = sample_tokens(logits, temperature=0.05, top_p=1.0, generator=gen)
    assert (cold == 0).float().mean() > 0.99


def test_kv_cache_size_is_the_allocated_size(tiny) -> None:
    """rows x length x layers x 2 (K, V) x kv_heads x head_dim x bytes, by hand and as
    allocated by a real prefill."""
    tok, model, prompts = tiny
    # The fixture's model: 2 layers, 2 KV heads of 64 / 4 = 16 dims, float32.
    assert kv_cache_bytes(model.config, rows=12, length=40) == 12 * 40 * 2 * 2 * 2 * 16 * 4
    assert (
        kv_cache_bytes(model.config, rows=1, length=1, dtype=torch.bfloat16) == 2 * 2 * 2 * 16 * 2
    )
    engine = HFRolloutEngine(model, pad_id=tok.pad_token_id, stop_ids=[0])
    cache, *_ = engine._prefill(prompts[:3], 4, 9)
    allocated = sum(
        buf.numel() * buf.element_size()
        for layer in cache.layers
        for buf in (layer.keys, layer.values)
    )
    width = max(len(p) for p in prompts[:3])
    assert allocated == kv_cache_bytes(model.config, rows=12, length=width + 9)


def test_a_kv_cache_over_the_free_memory_is_refused(tiny) -> None:
    """At the boundary: exactly the cache's size free passes, one byte less is a
    ConfigError naming the settings to lower (free memory faked, the one boundary)."""
    tok, model, prompts = tiny
    params = SamplingParams(n=4, max_tokens=10)
    width = max(len(p) for p in prompts)
    needed = kv_cache_bytes(model.config, rows=len(prompts) * 4, length=width + 10)
    seen: list[torch.device] = []

    def free(device: torch.device, size: int) -> int:
        seen.append(device)
        return size

    fits = HFRolloutEngine(
        model, pad_id=tok.pad_token_id, stop_ids=[0], free_memory=lambda d: free(d, needed)
    )
    assert len(fits.generate(prompts, params)) == 20 and seen == [torch.device("cpu")]
    short = HFRolloutEngine(
        model, pad_id=tok.pad_token_id, stop_ids=[0], free_memory=lambda d: free(d, needed - 1)
    )
    with pytest.raises(ConfigError) as err:
        short.generate(prompts, params)
    text = str(err.value)
    assert f"{len(prompts) * 4} rows x {width + 10} tokens (float32)" in text
    assert "rollout.max_num_seqs" in text and "max_response_length" in text and "Hint:" in text
    # Chunks of fewer rows (max_batch_sequences) need less: the same free memory suffices.
    chunked = HFRolloutEngine(
        model,
        pad_id=tok.pad_token_id,
        stop_ids=[0],
        max_batch_sequences=8,
        free_memory=lambda d: free(d, needed - 1),
    )
    assert len(chunked.generate(prompts, params)) == 20


def test_free_memory_reads_memavailable(tmp_path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  24000000 kB\nMemFree:  1000 kB\nMemAvailable:  2048 kB\n")
    assert free_memory_bytes(torch.device("cpu"), meminfo) == 2048 * 1024
    assert free_memory_bytes(torch.device("cpu")) > 0  # this machine's
