"""The entropy-coefficient controller of ``algo.entropy`` (adaptive, fixed or off)."""

from __future__ import annotations

from or1.algo import AdaptiveEntropyController, AutoTargetEntropyController, FixedEntropyCoef
from or1.config import Config

Controller = AdaptiveEntropyController | AutoTargetEntropyController | FixedEntropyCoef


def make_entropy_controller(cfg: Config) -> Controller:
    """The controller ``algo.entropy.mode`` names (``off`` = a fixed coefficient of 0),
    with ``algo.entropy.gate``'s timing; ``target: auto`` measures the target over the
    first ``auto_steps`` updates (or1/algo/entropy_diagnosis.py)."""
    e = cfg.algo.entropy
    if e.mode != "adaptive":
        return FixedEntropyCoef(e.coef if e.mode == "fixed" else 0.0)

    def adaptive(target: float) -> AdaptiveEntropyController:
        return AdaptiveEntropyController(
            target=target, delta=e.delta, coef_min=e.coef_min, coef_max=e.coef_max, gate=e.gate
        )

    if e.target == "auto":  # target = auto_fraction x mean e_k of the first auto_steps
        return AutoTargetEntropyController(
            adaptive, fraction=e.auto_fraction, steps=e.auto_steps, gate=e.gate
        )
    return adaptive(e.target)
