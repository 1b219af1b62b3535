"""Entropy diagnosis: a target set from the run's own entropy, and a collapse alarm.

Not in the paper (which fixes the target at 0.2 nats). A fixed target never triggers on a
model whose entropy starts far above it and always on one that starts below (TRL
documents the same trap), so ``AutoTargetEntropyController`` measures the entropy e_k of
the first ``steps`` updates and sets target = ``fraction`` x their mean; from the
``steps``-th update on it is the paper's adaptive controller with that target. While
it measures, alpha is 0 and c stays at c_0 (the paper's controller also starts at
alpha_0 = c_0 = 0).

``EntropyCollapseAlarm`` watches for the paper's failure mode: entropy falling below
``fraction`` of its start within ``within`` steps. Start = the mean of the first
``window`` measured entropies; current = the mean of the last ``window``; it fires once,
at the first step <= ``within`` whose current/start ratio is below ``fraction``.
``likely_causes`` names the likely reasons from the run's own signals (RECIPE.md
findings): N_SGD > 1 (off-policy updates), the clip fraction on the high side (ratio
clipped at 1 + clip_high for positive advantages: tokens cannot rise, clip-higher is the
paper's fix) or the low side (ratio under 1 - clip_low for negative advantages: the
policy moved far from the one that sampled), a sampling temperature below 1, a KL
penalty, no entropy term.

Pure: floats in, floats and strings out; the trainer logs, the report draws.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# A clip side counts as a signal once this share of response tokens is clipped on it
# (0.1%): with N_SGD = 1 both sides are exactly 0 on the first optimizer step.
CLIP_SIGNAL_MIN = 1e-3
# ... and it is "the" side when it clips at least this many times the other.
CLIP_SIDE_RATIO = 2.0


class EntropyController(Protocol):
    """What a coefficient controller offers (``AdaptiveEntropyController``)."""

    @property
    def coef(self) -> float: ...

    @property
    def value(self) -> float: ...

    def update(self, entropy: float) -> float: ...

    def begin_step(self, entropy: float | None) -> float: ...

    def end_step(self, entropy: float | None) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _finite(entropy: float) -> float:
    e = float(entropy)
    if not math.isfinite(e):
        raise ValueError(f"entropy must be finite, got {e}")
    return e


class AutoTargetEntropyController:
    """The adaptive controller with target = ``fraction`` x mean entropy of the first
    ``steps`` updates (``algo.entropy.target: auto``).

    Args:
        make: Builds the controller for a target (e.g. ``AdaptiveEntropyController``
            with the run's delta and caps); called once, when the target is known.
        fraction: Share of the measured entropy the target is set to (0.5).
        steps: Updates measured before the target is set (>= 1).
        gate: The inner controller's gate timing (``AdaptiveEntropyController``):
            "current" measures e_k in ``begin_step``, "previous" in ``end_step``.

    Example:
        >>> from or1.algo import AdaptiveEntropyController
        >>> ctl = AutoTargetEntropyController(
        ...     lambda t: AdaptiveEntropyController(target=t, delta=0.01), fraction=0.5, steps=2)
        >>> ctl.update(0.4), ctl.target  # measuring
        (0.0, None)
        >>> ctl.update(0.2), round(ctl.target, 6)  # target 0.5 * 0.3; 0.2 is above it
        (0.0, 0.15)
        >>> ctl.update(0.1), ctl.update(0.1)  # below: alpha = c_k = 0, then 0.01
        (0.0, 0.01)
    """

    def __init__(
        self,
        make: Callable[[float], EntropyController],
        *,
        fraction: float,
        steps: int,
        gate: str = "current",
    ) -> None:
        if fraction <= 0:
            raise ValueError(f"fraction must be > 0, got {fraction}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.make, self.fraction, self.steps = make, float(fraction), int(steps)
        self.gate = gate
        self.measured: list[float] = []
        self.target: float | None = None
        self.inner: EntropyController | None = None

    @property
    def coef(self) -> float:
        """alpha_k of the last update (0 while measuring)."""
        return 0.0 if self.inner is None else self.inner.coef

    @property
    def value(self) -> float:
        """The internal coefficient c (c_0 = 0 while measuring)."""
        return 0.0 if self.inner is None else self.inner.value

    def update(self, entropy: float) -> float:
        """Record e_k; return alpha_k (0 until the target is set)."""
        e = _finite(entropy)
        if self.inner is None:
            self.measured.append(e)
            if len(self.measured) < self.steps:
                return 0.0
            self._set_target()
        assert self.inner is not None
        return self.inner.update(e)

    def _measured_enough(self, entropy: float) -> bool:
        """Record one measurement; True once the target is set."""
        self.measured.append(_finite(entropy))
        if len(self.measured) >= self.steps:
            self._set_target()
        return self.inner is not None

    def begin_step(self, entropy: float | None) -> float:
        """alpha_k before step k's update (the trainer's call; see ``AdaptiveEntropyController
        .begin_step``). Gate "current": as ``update``; "previous": 0 until the target is set."""
        if self.gate == "current":
            if entropy is None:
                raise ValueError("gate 'current' needs this step's entropy before the update")
            return self.update(entropy)
        return 0.0 if self.inner is None else self.inner.begin_step(None)

    def end_step(self, entropy: float | None) -> None:
        """After step k: gate "previous" measures e_k here (then moves the coefficient)."""
        if self.gate == "current":
            return
        if entropy is None:
            raise ValueError("gate 'previous' needs the step's entropy after the update")
        if self.inner is None and not self._measured_enough(entropy):
            return
        assert self.inner is not None
        self.inner.end_step(entropy)

    def _set_target(self) -> None:
        self.target = self.fraction * sum(self.measured) / len(self.measured)
        self.inner = self.make(self.target)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able: the measured entropies, the target and the inner controller."""
        inner = None if self.inner is None else self.inner.state_dict()
        return {"measured": list(self.measured), "target": self.target, "inner": inner}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state written by ``state_dict``."""
        self.measured = [float(e) for e in state["measured"]]
        self.target, self.inner = None, None
        if state["inner"] is not None:
            self._set_target()
            assert self.inner is not None
            self.inner.load_state_dict(state["inner"])


class EntropyCollapseAlarm:
    """Fires once when entropy falls below ``fraction`` of its start within ``within``
    steps (see the module docstring).

    Args:
        fraction: The alarm's share of the start entropy (0.5: halved).
        within: Steps (1-based, counted from the run's first) in which a fall counts;
            None: the whole run.
        window: Entropies averaged for the start and for the current value.

    Example:
        >>> alarm = EntropyCollapseAlarm(fraction=0.5, within=10, window=2)
        >>> [alarm.update(s, e) for s, e in enumerate([0.4, 0.2, 0.2, 0.05], start=1)]
        [False, False, False, True]
        >>> round(alarm.start, 3), round(alarm.ratio, 3), alarm.fired_step  # 0.125 / 0.3
        (0.3, 0.417, 4)
    """

    def __init__(self, *, fraction: float = 0.5, within: int | None = 100, window: int = 5):
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.fraction, self.within, self.window = float(fraction), within, int(window)
        self.first: list[float] = []  # the first `window` entropies (the start)
        self.recent: list[float] = []  # the last `window`
        self.fired_step: int | None = None

    @property
    def start(self) -> float | None:
        """Mean entropy of the first ``window`` measurements (None before)."""
        return sum(self.first) / self.window if len(self.first) == self.window else None

    @property
    def ratio(self) -> float | None:
        """Mean of the last ``window`` entropies over ``start`` (None before the start
        is known or when it is 0)."""
        start = self.start
        if start is None or start <= 0:
            return None
        return sum(self.recent) / len(self.recent) / start

    def update(self, step: int, entropy: float) -> bool:
        """Record global step ``step``'s entropy; True on the step the alarm fires."""
        e = _finite(entropy)
        if len(self.first) < self.window:
            self.first.append(e)
        self.recent = [*self.recent, e][-self.window :]
        ratio = self.ratio
        in_time = self.within is None or step <= self.within
        if self.fired_step is None and ratio is not None and ratio < self.fraction and in_time:
            self.fired_step = step
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"first": list(self.first), "recent": list(self.recent), "fired": self.fired_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state written by ``state_dict``."""
        self.first = [float(e) for e in state["first"]]
        self.recent = [float(e) for e in state["recent"]]
        self.fired_step = None if state["fired"] is None else int(state["fired"])


@dataclass(frozen=True)
class CollapseSignals:
    """The run's signals up to the alarm (means over the logged steps) and settings."""

    n_sgd: float  # optimizer steps per rollout batch
    clip_frac_low: float  # share of response tokens clipped at 1 - clip_low (A < 0)
    clip_frac_high: float  # ... clipped at 1 + clip_high (A > 0)
    temperature: float  # rollout sampling temperature
    kl_beta: float
    clip_high: float = 0.2
    entropy_mode: str = "adaptive"


def likely_causes(s: CollapseSignals) -> list[tuple[str, str]]:
    """The likely causes of an entropy collapse, as (key, explanation), most likely first.

    Example:
        >>> [k for k, _ in likely_causes(CollapseSignals(4, 0.0, 0.02, 0.6, 0.0))]
        ['n_sgd', 'clip_high_side', 'temperature']
    """
    causes = []
    if s.n_sgd > 1:
        causes.append(
            (
                "n_sgd",
                f"N_SGD = {s.n_sgd:g} > 1: off-policy updates (mini_batch_size < batch_size or "
                "reuse_epochs > 1), the paper's main cause of premature collapse; use N_SGD 1",
            )
        )
    high, low = s.clip_frac_high, s.clip_frac_low
    if high >= CLIP_SIGNAL_MIN and high >= CLIP_SIDE_RATIO * low:
        causes.append(
            (
                "clip_high_side",
                f"clipping on the high side ({high:.2%} of tokens at 1 + clip_high = "
                f"{1 + s.clip_high:g}): positive-advantage tokens cannot rise, so "
                "low-probability tokens never grow; try clip-higher (clip_high 0.25-0.265)",
            )
        )
    elif low >= CLIP_SIGNAL_MIN and low >= CLIP_SIDE_RATIO * high:
        causes.append(
            (
                "clip_low_side",
                f"clipping on the low side ({low:.2%} of tokens under 1 - clip_low): the "
                "policy moves far from the one that sampled; fewer optimizer steps per batch "
                "or a lower learning rate",
            )
        )
    if s.temperature < 1:
        causes.append(
            (
                "temperature",
                f"rollout temperature {s.temperature:g} < 1 samples a sharpened policy: the "
                "paper's temperature 0.6 starts near zero entropy and stagnates; use 1.0",
            )
        )
    if s.kl_beta > 0:
        causes.append(
            (
                "kl",
                f"KL penalty on (kl_beta = {s.kl_beta:g}): the paper's ablation with it pulls "
                "the actor back and stalls accuracy; the recipe uses none",
            )
        )
    if s.entropy_mode == "off":
        causes.append(("entropy_off", "no entropy term (algo.entropy.mode = off)"))
    return causes
