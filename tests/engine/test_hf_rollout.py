from __future__ import annotations

import torch

from or1.batch import build_batch
from or1.config import OptimConfig, load_config
from or1.engine.hf_rollout import HFRolloutEngine, sample_tokens
from or1.engine.policy import LocalPolicy
from or1.engine.rollout import SamplingParams, stop_token_ids


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
