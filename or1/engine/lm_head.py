"""The LM head, token log-probs and full-vocabulary entropy, in chunks of tokens.

A policy update needs, for every response token, log p(token) and the entropy of the
full next-token distribution (RECIPE.md steps 5-6). Computing them from materialized
logits costs V floats per token, kept by autograd with their gradient and softmax
temporaries: 2.4 MB per token at Qwen's V = 151,936, ~78 GB for one 32K response.

``token_scores`` computes both from the final hidden states [N, H] and the head's weight
[V, H] over chunks of ``chunk_tokens`` tokens. Forward keeps, per token, only three
floats (log p of the target, the log-sum-exp, the entropy); backward recomputes each
chunk's logits and forms their gradient in place:

    d logp_t / d z_v = [v = t] - p_v
    d H / d z_v      = -p_v (log p_v + H)
    z = (h W^T + b) / temperature

so the extra memory is two [chunk_tokens, V] float32 buffers at any time, whatever the
number of tokens, and the cost is one more LM-head matmul per chunk (the recomputation).
``chunk_tokens=None`` is the plain path (materialized logits, autograd), kept as the
reference the tests and ``bench/memory.py`` compare against.

Mixed precision: the matmuls run in the hidden states' dtype (bf16 under autocast or
FSDP2's param_dtype); softmax, log-probs, entropy and the weight's gradient accumulate
in float32; the weight's gradient is returned in the weight's own dtype (fp32 masters).
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Tokens per chunk by default (train.logits_chunk_tokens): at Qwen's V = 151,936 two
# [512, V] fp32 buffers are 0.62 GB, whatever the response length.
DEFAULT_CHUNK_TOKENS = 512
# The method ``give_scores_method`` adds to an LM-head module: FSDP2 registers it as a
# forward method, so a sharded head is gathered while it computes (or1.distributed.fsdp).
SCORES_METHOD = "or1_token_scores"


def head_scores(
    head: nn.Module,
    hidden: Tensor,
    targets: Tensor,
    *,
    temperature: float = 1.0,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
) -> tuple[Tensor, Tensor]:
    """``token_scores`` with the weight and bias of ``head`` (a linear LM head), through
    its ``SCORES_METHOD`` when it has one."""
    method = getattr(head, SCORES_METHOD, None)
    if method is not None:
        return method(hidden, targets, temperature=temperature, chunk_tokens=chunk_tokens)
    return _scores_of(head, hidden, targets, temperature=temperature, chunk_tokens=chunk_tokens)


def _scores_of(
    head: nn.Module, hidden: Tensor, targets: Tensor, **kw: Any
) -> tuple[Tensor, Tensor]:
    return token_scores(hidden, head.weight, head.bias, targets, **kw)


def give_scores_method(head: nn.Module) -> None:
    """Make ``head_scores`` run through a method of ``head`` (this instance only): a
    module's forward method is what FSDP2 hooks to gather its parameters."""
    setattr(head, SCORES_METHOD, types.MethodType(_scores_of, head))


def token_scores(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    *,
    temperature: float = 1.0,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
) -> tuple[Tensor, Tensor]:
    """Log-probability of each target token and the entropy of each distribution.

    Args:
        hidden: [N, H] final hidden states of the positions that predict ``targets``.
        weight: [V, H] the LM head's weight; bias: [V] or None.
        targets: [N] long, the token each position predicts.
        temperature: logits are divided by it (the sampling temperature).
        chunk_tokens: tokens per chunk; None materializes the [N, V] logits.

    Returns:
        (logp [N], entropy [N]), float32, differentiable with respect to ``hidden``,
        ``weight`` and ``bias``; entropy in nats.

    Example:
        >>> h, w = torch.zeros(1, 2), torch.zeros(4, 2)  # uniform over 4 tokens
        >>> token_scores(h, w, None, torch.tensor([1]), chunk_tokens=8)
        (tensor([-1.3863]), tensor([1.3863]))
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"need hidden [N, H] and targets [N], got {tuple(hidden.shape)}, {tuple(targets.shape)}"
        )
    if chunk_tokens is None:
        return _dense(hidden, weight, bias, targets, 1.0 / temperature)
    if chunk_tokens <= 0:
        raise ValueError(f"chunk_tokens must be > 0 or None, got {chunk_tokens}")
    return _ChunkedScores.apply(hidden, weight, bias, targets, 1.0 / temperature, chunk_tokens)


def _dense(
    hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, inv_temp: float
) -> tuple[Tensor, Tensor]:
    """The reference: [N, V] logits, autograd through log_softmax."""
    acc = torch.promote_types(hidden.dtype, torch.float32)
    z = F.linear(hidden, weight.to(hidden.dtype), _cast(bias, hidden.dtype)).to(acc)
    if inv_temp != 1.0:
        z = z * inv_temp
    logp_all = torch.log_softmax(z, dim=-1)
    logp = logp_all.gather(-1, targets[:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def _cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return t if t is None or t.dtype == dtype else t.to(dtype)


# Devices with a kernel for addmm into a wider out dtype (bf16 inputs, fp32 result).
FP32_OUT_MATMUL_DEVICES = ("cuda",)


def add_matmul(acc: Tensor, a: Tensor, b: Tensor) -> None:
    """``acc += a @ b`` in ``acc``'s (fp32) precision, for bf16 ``a``/``b`` too.

    The weight's gradient sums one product per chunk: rounding each product to bf16
    before the sum would add a rounding error per chunk to the master gradient. CUDA
    accumulates bf16 inputs into an fp32 result directly; elsewhere (CPU, where bf16 is
    emulated anyway) the inputs are widened first.
    """
    if a.dtype == acc.dtype and b.dtype == acc.dtype:
        acc.addmm_(a, b)
    elif acc.device.type in FP32_OUT_MATMUL_DEVICES:
        torch.addmm(acc, a, b, out_dtype=acc.dtype, out=acc)
    else:
        acc.addmm_(a.to(acc.dtype), b.to(acc.dtype))


def _chunk_logits(h: Tensor, w: Tensor, b: Tensor | None, inv_temp: float) -> Tensor:
    """[C, V] logits of one chunk: matmul in ``h``'s dtype, the result in at least fp32."""
    z = F.linear(h, w, b).to(torch.promote_types(h.dtype, torch.float32))
    return z.mul_(inv_temp) if inv_temp != 1.0 else z


class _ChunkedScores(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        inv_temp: float,
        chunk: int,
    ) -> tuple[Tensor, Tensor]:
        n = hidden.shape[0]
        acc = torch.promote_types(hidden.dtype, torch.float32)
        logp = torch.empty(n, dtype=acc, device=hidden.device)
        lse = torch.empty_like(logp)
        entropy = torch.empty_like(logp)
        w, b = weight.to(hidden.dtype), _cast(bias, hidden.dtype)
        with torch.no_grad():
            for s in range(0, n, chunk):
                e = min(s + chunk, n)
                z = _chunk_logits(hidden[s:e], w, b, inv_temp)
                lse[s:e] = torch.logsumexp(z, dim=-1)
                logp[s:e] = z.gather(-1, targets[s:e, None]).squeeze(-1) - lse[s:e]
                z.sub_(lse[s:e, None])  # log p
                entropy[s:e] = -(z.exp() * z).sum(-1)
        ctx.save_for_backward(hidden, weight, bias, targets, lse, entropy)
        ctx.inv_temp, ctx.chunk = inv_temp, chunk
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx: Any, g_logp: Tensor | None, g_entropy: Tensor | None) -> tuple:  # type: ignore[override]
        hidden, weight, bias, targets, lse, entropy = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        if g_logp is None and g_entropy is None:
            return None, None, None, None, None, None
        grad_h = torch.zeros_like(hidden) if need_h else None
        acc = torch.promote_types(hidden.dtype, torch.float32)
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device)
        grad_b = torch.zeros(weight.shape[0], dtype=acc, device=weight.device)
        w, b = weight.to(hidden.dtype), _cast(bias, hidden.dtype)
        for s in range(0, hidden.shape[0], ctx.chunk):
            e = min(s + ctx.chunk, hidden.shape[0])
            grad_z = _chunk_grad(
                _chunk_logits(hidden[s:e], w, b, ctx.inv_temp),
                lse[s:e],
                entropy[s:e],
                targets[s:e],
                None if g_logp is None else g_logp[s:e],
                None if g_entropy is None else g_entropy[s:e],
            )
            grad_z.mul_(ctx.inv_temp)  # dz / d(logits) = 1 / temperature
            gz = grad_z.to(hidden.dtype)
            if need_h:
                grad_h[s:e] = gz @ w
            if need_w:
                add_matmul(grad_w, gz.t(), hidden[s:e])
            if need_b:
                grad_b.add_(grad_z.sum(0))
        return (
            grad_h,
            grad_w.to(weight.dtype) if need_w else None,
            grad_b.to(bias.dtype) if need_b and bias is not None else None,
            None,
            None,
            None,
        )


def _chunk_grad(
    z: Tensor,
    lse: Tensor,
    entropy: Tensor,
    targets: Tensor,
    g_logp: Tensor | None,
    g_entropy: Tensor | None,
) -> Tensor:
    """d loss / d z for one chunk, in place over ``z`` (two [C, V] buffers in all)."""
    z.sub_(lse[:, None])  # log p
    p = z.exp()
    if g_entropy is not None:
        z.add_(entropy[:, None]).mul_(p).mul_(-g_entropy[:, None])  # -g_H p (log p + H)
    else:
        z.zero_()
    if g_logp is not None:
        p.mul_(-g_logp[:, None]).scatter_add_(-1, targets[:, None], g_logp[:, None].to(p.dtype))
        z.add_(p)  # + g_logp ([v = t] - p)
    return z
