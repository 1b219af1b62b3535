"""The chunked LM head: same values and gradients as materialized logits, bounded memory."""

from __future__ import annotations

import math

import pytest
import torch

from or1.engine import lm_head
from or1.engine.lm_head import (
    SCORES_METHOD,
    add_matmul,
    give_scores_method,
    head_scores,
    token_scores,
)

F64 = torch.float64


def _inputs(n: int = 37, h: int = 16, v: int = 101, dtype: torch.dtype = F64, bias: bool = True):
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, h, generator=gen, dtype=dtype).requires_grad_()
    weight = torch.randn(v, h, generator=gen, dtype=dtype).requires_grad_()
    b = torch.randn(v, generator=gen, dtype=dtype).requires_grad_() if bias else None
    targets = torch.randint(v, (n,), generator=gen)
    return hidden, weight, b, targets


def _grads(chunk, temperature, g_logp, g_ent, *, dtype=F64, bias=True):
    hidden, weight, b, targets = _inputs(dtype=dtype, bias=bias)
    logp, ent = token_scores(
        hidden, weight, b, targets, temperature=temperature, chunk_tokens=chunk
    )
    loss = (g_logp.to(dtype) * logp).sum() + (g_ent.to(dtype) * ent).sum()
    wrt = [hidden, weight] + ([b] if bias else [])
    return logp.detach(), ent.detach(), torch.autograd.grad(loss, wrt)


def test_hand_computed_uniform_and_two_token_cases() -> None:
    """Zero logits over V = 4: log p = -ln 4, H = ln 4. Logits (ln 3, 0): p = (3/4, 1/4),
    log p(token 1) = -ln 4, H = -(3/4 ln 3/4 + 1/4 ln 1/4) = 0.5623."""
    logp, ent = token_scores(torch.zeros(1, 2), torch.zeros(4, 2), None, torch.tensor([1]))
    assert math.isclose(float(logp), -math.log(4), rel_tol=1e-6)
    assert math.isclose(float(ent), math.log(4), rel_tol=1e-6)
    w = torch.tensor([[math.log(3.0)], [0.0]])
    logp, ent = token_scores(torch.ones(1, 1), w, None, torch.tensor([1]), chunk_tokens=1)
    assert math.isclose(float(logp), -math.log(4), rel_tol=1e-6)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert math.isclose(float(ent), h, rel_tol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("bias", [False, True])
def test_chunked_equals_materialized_logits_values_and_gradients(temperature, bias) -> None:
    """float64 (exact to rounding): a log-prob term, an entropy bonus, any chunk size."""
    gen = torch.Generator().manual_seed(1)
    g_logp, g_ent = torch.randn(37, generator=gen), torch.randn(37, generator=gen)
    ref = _grads(None, temperature, g_logp, g_ent, bias=bias)
    for chunk in (1, 5, 36, 1000):
        got = _grads(chunk, temperature, g_logp, g_ent, bias=bias)
        for a, b in zip(ref[:2] + tuple(ref[2]), got[:2] + tuple(got[2]), strict=True):
            assert torch.allclose(a, b, atol=1e-12, rtol=1e-12)


def test_float32_agrees_to_float32_rounding_and_unused_outputs_cost_nothing() -> None:
    gen = torch.Generator().manual_seed(2)
    g_logp = torch.randn(37, generator=gen)
    ref = _grads(None, 1.0, g_logp, torch.zeros(37), dtype=torch.float32)
    got = _grads(7, 1.0, g_logp, torch.zeros(37), dtype=torch.float32)
    for a, b in zip(ref[:2] + tuple(ref[2]), got[:2] + tuple(got[2]), strict=True):
        assert torch.allclose(a, b, atol=2e-5, rtol=1e-4)
    # Only the log-probs enter the loss (entropy coefficient 0): same gradients.
    hidden, weight, b, targets = _inputs(dtype=torch.float32)
    logp, _ = token_scores(hidden, weight, b, targets, chunk_tokens=7)
    grads = torch.autograd.grad((g_logp * logp).sum(), [hidden, weight, b])
    for a, c in zip(got[2], grads, strict=True):
        assert torch.allclose(a, c, atol=1e-6)


def test_no_tensor_with_a_row_per_token_and_vocabulary_entry_is_kept_for_backward() -> None:
    """What autograd saves: the chunked path keeps O(N*H + V*H + N) numbers, the
    materialized path at least N*V (the memory the chunked head exists to avoid)."""
    n, h, v = 64, 8, 500

    def saved_numel(chunk: int | None) -> int:
        gen = torch.Generator().manual_seed(3)
        hidden = torch.randn(n, h, generator=gen).requires_grad_()
        weight = torch.randn(v, h, generator=gen).requires_grad_()
        sizes: list[int] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logp, ent = token_scores(
                hidden, weight, None, torch.zeros(n, dtype=torch.long), chunk_tokens=chunk
            )
            (logp.sum() + ent.sum()).backward()
        return max(sizes)

    assert saved_numel(16) <= v * h  # the weight itself is the largest
    assert saved_numel(None) >= n * v


def test_bad_shapes_and_chunk_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"need hidden \[N, H\]"):
        token_scores(torch.zeros(2, 3, 4), torch.zeros(5, 4), None, torch.zeros(2, 3).long())
    with pytest.raises(ValueError, match="chunk_tokens must be > 0"):
        token_scores(
            torch.zeros(2, 4), torch.zeros(5, 4), None, torch.zeros(2).long(), chunk_tokens=0
        )


def test_the_weight_gradient_accumulates_bf16_products_in_fp32(monkeypatch) -> None:
    """add_matmul: fp32 inputs; bf16 inputs widened (CPU); the CUDA kernel path
    (addmm with out_dtype) checked on meta tensors, which have that kernel's shapes."""
    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(5, 3, generator=gen), torch.randn(3, 4, generator=gen)
    acc = torch.ones(5, 4)
    add_matmul(acc, a, b)
    assert torch.allclose(acc, 1 + a @ b)
    acc = torch.zeros(5, 4)
    add_matmul(acc, a.bfloat16(), b.bfloat16())
    assert acc.dtype == torch.float32
    assert torch.allclose(acc, a.bfloat16().float() @ b.bfloat16().float(), atol=1e-5)
    monkeypatch.setattr(lm_head, "FP32_OUT_MATMUL_DEVICES", ("meta",))
    meta = torch.zeros(5, 4, device="meta")
    add_matmul(meta, a.bfloat16().to("meta"), b.bfloat16().to("meta"))
    assert meta.dtype == torch.float32 and meta.shape == (5, 4)


def test_head_scores_runs_through_the_heads_own_method_once_given() -> None:
    """The method FSDP2 hooks on an untied head (or1.distributed.fsdp.shard_model) computes
    what the plain call does, and the call goes through it."""
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 11, bias=False)
    hidden, targets = torch.randn(5, 8), torch.randint(0, 11, (5,))
    plain = head_scores(head, hidden, targets, temperature=0.7, chunk_tokens=2)
    give_scores_method(head)
    calls = []
    method = getattr(head, SCORES_METHOD)
    setattr(head, SCORES_METHOD, lambda *a, **k: calls.append(k) or method(*a, **k))
    through = head_scores(head, hidden, targets, temperature=0.7, chunk_tokens=2)
    assert calls == [{"temperature": 0.7, "chunk_tokens": 2}]
    for a, b in zip(plain, through, strict=True):
        assert torch.equal(a, b)
    expected = torch.log_softmax(hidden @ head.weight.T / 0.7, -1)[torch.arange(5), targets]
    assert torch.allclose(through[0], expected, atol=1e-6)
