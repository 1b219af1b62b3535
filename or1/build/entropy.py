"""The entropy-coefficient controller of ``algo.entropy`` (adaptive, fixed or off)."""

from __future__ import annotations

from or1.algo import AdaptiveEntropyController, FixedEntropyCoef
from or1.config import Config


def make_entropy_controller(cfg: Config) -> AdaptiveEntropyController | FixedEntropyCoef:
    """The controller ``algo.entropy.mode`` names (``off`` = a fixed coefficient of 0),
    with ``algo.entropy.gate``'s timing."""
    e = cfg.algo.entropy
    if e.mode == "adaptive":
        return AdaptiveEntropyController(
            target=e.target, delta=e.delta, coef_min=e.coef_min, coef_max=e.coef_max, gate=e.gate
        )
    return FixedEntropyCoef(e.coef if e.mode == "fixed" else 0.0)
