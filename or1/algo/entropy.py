"""Full-vocabulary token entropy and the entropy-coefficient controllers.

``token_entropy`` is the entropy bonus of RECIPE.md step 6 (loss = pg_loss -
alpha_k * mean token entropy), computed in row chunks so memory stays bounded. When
gradients are needed each chunk is recomputed in the backward pass
(``torch.utils.checkpoint``) instead of keeping a [B*T, V] softmax alive.

``AdaptiveEntropyController`` is the paper's adaptive entropy control (step 7):
c_0 = ``initial`` (0); at step k, with entropy e_k measured on the rollout buffer,
alpha_k = c_k if e_k < target else 0, then
c_{k+1} = clip(c_k + delta if e_k < target else c_k - delta, coef_min, coef_max).
Paper: delta 0.005, no upper cap (``paper()``); released code: delta 1e-4, c_max 0.005,
c_min 0 (``released_code()``). Both use target 0.2. The controller refuses a NaN/inf
entropy (a broken step should not silently move the coefficient).

Gate timing (``gate``). "current" (the paper): step k's alpha_k is gated by e_k, measured
before the update. "previous" (the released code, which updates its controller after the
actor step): alpha_k = c_k if e_{k-1} < target else 0 (the gate is open before the first
update), and e_k moves the coefficient after step k. The coefficient's recursion is the
same in both; only the gate's entropy differs. A trainer calls ``begin_step(e)`` before
the update (e may be None with "previous") and ``end_step(e)`` after it.
"""

import math
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

GATES = ("current", "previous")
"""Gate timings of ``AdaptiveEntropyController``: "current" is the paper's."""


def _entropy_rows(logits: Tensor) -> Tensor:
    """[N, V] logits -> [N] entropies in nats, computed in at least float32."""
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    # Entropy is shift invariant; shifting by the row max keeps logsumexp(x) and
    # sum(p * x) small, so their difference does not cancel catastrophically.
    x = x - x.detach().amax(dim=-1, keepdim=True)
    return torch.logsumexp(x, dim=-1) - (torch.softmax(x, dim=-1) * x).sum(dim=-1)


def token_entropy(logits: Tensor, *, chunk_size: int = 1024) -> Tensor:
    """Entropy of the softmax over the full vocabulary at every position.

    H = logsumexp(z) - sum_v softmax(z)_v * z_v, evaluated ``chunk_size`` rows of the
    flattened [B*T, V] logits at a time. Differentiable; under autograd each chunk is
    checkpointed, so extra memory is one chunk's [chunk_size, V] temporaries. Logits
    must be finite (no -inf masking).

    Args:
        logits: [B, T, V] (any leading shape works) logits at temperature 1.
        chunk_size: Rows per chunk; results do not depend on it.

    Returns:
        [B, T] entropies in nats, in float32 (float64 if the logits are float64).

    Example:
        >>> token_entropy(torch.zeros(1, 1, 4))  # uniform over 4 tokens: ln 4
        tensor([[1.3863]])
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    lead, vocab = logits.shape[:-1], logits.shape[-1]
    rows = logits.reshape(-1, vocab)
    if rows.shape[0] == 0:
        return rows.new_zeros(lead, dtype=torch.promote_types(rows.dtype, torch.float32))
    use_checkpoint = torch.is_grad_enabled() and logits.requires_grad
    parts = [
        checkpoint(_entropy_rows, chunk, use_reentrant=False)
        if use_checkpoint
        else _entropy_rows(chunk)
        for chunk in rows.split(chunk_size)
    ]
    return torch.cat(parts).reshape(lead)


class AdaptiveEntropyController:
    """Adaptive entropy coefficient of Skywork-OR1 (MAGIC), see the module docstring.

    Args:
        target: Target entropy in nats (0.2 in the paper).
        delta: Step by which the internal coefficient moves each update.
        coef_min: Lower clip of the internal coefficient.
        coef_max: Upper clip; None means no cap (the paper).
        initial: c_0, the internal coefficient before the first update.
        gate: "current" (alpha_k gated by e_k, the paper) or "previous" (by e_{k-1},
            the released code); see the module docstring.

    Example:
        >>> ctl = AdaptiveEntropyController(delta=0.005)
        >>> ctl.update(0.1), ctl.value  # below target: alpha_0 = c_0 = 0, c_1 = 0.005
        (0.0, 0.005)
        >>> ctl.update(0.1), ctl.value  # alpha_1 = c_1, c_2 = 0.01
        (0.005, 0.01)
        >>> ctl.update(0.3), ctl.value  # above target: alpha_2 = 0, c_3 = 0.005
        (0.0, 0.005)
    """

    def __init__(
        self,
        target: float = 0.2,
        delta: float = 0.005,
        coef_min: float = 0.0,
        coef_max: float | None = None,
        initial: float = 0.0,
        gate: str = "current",
    ) -> None:
        if gate not in GATES:
            raise ValueError(f"gate must be one of {', '.join(GATES)}, got {gate!r}")
        if delta < 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if coef_max is not None and coef_max < coef_min:
            raise ValueError(f"coef_max ({coef_max}) must be >= coef_min ({coef_min})")
        self.target = float(target)
        self.delta = float(delta)
        self.coef_min = float(coef_min)
        self.coef_max = None if coef_max is None else float(coef_max)
        if self._clip(float(initial)) != initial:
            raise ValueError(f"initial ({initial}) must lie in [coef_min, coef_max]")
        self._value = float(initial)
        self._coef = 0.0
        self.gate = gate
        self._open = True  # gate "previous": e_{k-1} < target (open before any entropy)

    @classmethod
    def paper(cls, *, target: float = 0.2) -> "AdaptiveEntropyController":
        """The paper's setting: delta 0.005, coef_min 0, no upper cap."""
        return cls(target=target, delta=0.005, coef_min=0.0, coef_max=None)

    @classmethod
    def released_code(cls, *, target: float = 0.2) -> "AdaptiveEntropyController":
        """The released code's setting: delta 1e-4, coef_min 0, coef_max 0.005."""
        return cls(target=target, delta=1e-4, coef_min=0.0, coef_max=0.005)

    def _clip(self, value: float) -> float:
        value = max(value, self.coef_min)
        return value if self.coef_max is None else min(value, self.coef_max)

    @property
    def coef(self) -> float:
        """alpha_k, the coefficient for the current step's loss (0.0 before any update)."""
        return self._coef

    @property
    def value(self) -> float:
        """The internal coefficient c (c_{k+1} after the k-th update)."""
        return self._value

    def update(self, entropy: float | Tensor) -> float:
        """Record step k's measured entropy e_k; return alpha_k (also in ``.coef``)."""
        e = float(entropy)
        if not math.isfinite(e):
            raise ValueError(f"entropy must be finite, got {e}")
        below = e < self.target
        self._coef = self._value if below else 0.0
        self._value = self._clip(self._value + (self.delta if below else -self.delta))
        return self._coef

    def begin_step(self, entropy: float | Tensor | None) -> float:
        """alpha_k for the step about to run. Gate "current": ``update(entropy)`` (e_k is
        needed). Gate "previous": c_k if the last ``end_step``'s entropy was below target
        (or none was seen yet), else 0; ``entropy`` is ignored and may be None.

        Example:
            >>> ctl = AdaptiveEntropyController(delta=0.005, gate="previous")
            >>> ctl.begin_step(None)  # c_0 = 0, gate open
            0.0
            >>> ctl.end_step(0.1); ctl.begin_step(None)  # e_1 below: c_1 = 0.005, open
            0.005
            >>> ctl.end_step(0.3); ctl.begin_step(None)  # e_2 above: c_2 = 0, closed
            0.0
        """
        if self.gate == "current":
            if entropy is None:
                raise ValueError("gate 'current' needs this step's entropy before the update")
            return self.update(entropy)
        self._coef = self._value if self._open else 0.0
        return self._coef

    def end_step(self, entropy: float | Tensor | None) -> None:
        """After step k: with gate "previous", e_k moves the coefficient and sets the next
        step's gate; with "current" nothing (``begin_step`` did it)."""
        if self.gate == "current":
            return
        if entropy is None:
            raise ValueError("gate 'previous' needs the step's entropy after the update")
        e = float(entropy)
        if not math.isfinite(e):
            raise ValueError(f"entropy must be finite, got {e}")
        self._open = e < self.target
        self._value = self._clip(self._value + (self.delta if self._open else -self.delta))

    def state_dict(self) -> dict[str, float]:
        """JSON-serializable state: the internal value, the current alpha (and, with gate
        "previous", whether the next step's gate is open)."""
        state = {"value": self._value, "coef": self._coef}
        if self.gate == "previous":
            state["open"] = float(self._open)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by ``state_dict`` (a state without "open", written
        before the gate setting existed, leaves the gate open)."""
        self._value = float(state["value"])
        self._coef = float(state["coef"])
        self._open = bool(state.get("open", 1.0))


class FixedEntropyCoef:
    """A constant entropy coefficient (fixed-coefficient ablation), same interface.

    Example:
        >>> FixedEntropyCoef(0.001).update(0.5)
        0.001
    """

    def __init__(self, coef: float) -> None:
        self._coef = float(coef)

    @property
    def coef(self) -> float:
        """The fixed coefficient (also before any update)."""
        return self._coef

    @property
    def value(self) -> float:
        """Same as ``coef``."""
        return self._coef

    def update(self, entropy: float | Tensor) -> float:
        """No-op; returns the fixed coefficient."""
        del entropy
        return self._coef

    def begin_step(self, entropy: float | Tensor | None) -> float:
        """The fixed coefficient (``entropy`` is ignored)."""
        del entropy
        return self._coef

    def end_step(self, entropy: float | Tensor | None) -> None:
        """No-op."""
        del entropy

    def state_dict(self) -> dict[str, float]:
        """JSON-serializable state."""
        return {"coef": self._coef}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by ``state_dict``."""
        self._coef = float(state["coef"])
