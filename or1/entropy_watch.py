"""The trainer's side of the entropy diagnosis (or1/algo/entropy_diagnosis.py).

``EntropyWatch`` feeds each step's sampled entropy e_k to the collapse alarm, keeps the
run's signals (N_SGD, clip fraction per side) since the first step, and on the step the
alarm fires logs one warning naming the likely causes. Its per-step metrics:
``entropy_vs_start`` (windowed entropy / start), ``entropy_collapse`` (0, then 1 from the
step the alarm fired) and ``entropy_target`` (the target, once ``target: auto`` set it).

``collapse_signals`` builds the causes' input from logged metric rows and the config,
so the report names the same causes from ``metrics.jsonl`` and ``config.yaml``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from or1.algo import (
    AdaptiveEntropyController,
    AutoTargetEntropyController,
    CollapseSignals,
    EntropyCollapseAlarm,
    FixedEntropyCoef,
    likely_causes,
)
from or1.config import Config

log = logging.getLogger("or1.trainer")

SIGNAL_COLUMNS = ("n_sgd", "clip_frac_low", "clip_frac_high")
Controller = AdaptiveEntropyController | AutoTargetEntropyController | FixedEntropyCoef


def entropy_target(controller: Controller) -> dict[str, float]:
    """``{"entropy_target": t}`` once an adaptive controller has a target, else {}."""
    target = getattr(controller, "target", None)
    return {"entropy_target": target} if isinstance(target, float) else {}


def _mean(rows: Sequence[Mapping[str, Any]], key: str, default: float) -> float:
    values = [float(r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return sum(values) / len(values) if values else default


def collapse_signals(
    rows: Sequence[Mapping[str, Any]], setting: Callable[[str], Any]
) -> CollapseSignals:
    """The signals of ``rows`` (metric rows up to the alarm) and the run's settings.

    Args:
        rows: Logged metric rows (``n_sgd``, ``clip_frac_low``, ``clip_frac_high``).
        setting: A config value by dotted key (None when absent).
    """

    def number(key: str, default: float) -> float:
        value = setting(key)
        return float(value) if isinstance(value, int | float) else default

    return CollapseSignals(
        n_sgd=_mean(rows, "n_sgd", 1.0),
        clip_frac_low=_mean(rows, "clip_frac_low", 0.0),
        clip_frac_high=_mean(rows, "clip_frac_high", 0.0),
        temperature=number("rollout.temperature", 1.0),
        kl_beta=number("algo.kl_beta", 0.0),
        clip_high=number("algo.clip_high", 0.2),
        entropy_mode=str(setting("algo.entropy.mode") or "adaptive"),
    )


def config_setting(cfg: Config) -> Callable[[str], Any]:
    """``setting(dotted key)`` over a Config (None when absent)."""

    def setting(key: str) -> Any:
        node: Any = cfg
        for part in key.split("."):
            node = getattr(node, part, None)
        return node

    return setting


class EntropyWatch:
    """The collapse alarm over a run (see the module docstring); JSON-able state."""

    def __init__(self, cfg: Config) -> None:
        a = cfg.algo.entropy.alarm
        self.enabled = a.enabled
        self.alarm = EntropyCollapseAlarm(fraction=a.fraction, within=a.within, window=a.window)
        self.setting = config_setting(cfg)
        self.rows: list[dict[str, float]] = []  # the signals of each step until the alarm

    def observe(self, step: int, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Record one step's metrics (a skipped update has no ``entropy_sampled``);
        return the alarm's metrics for the step."""
        if not self.enabled or "entropy_sampled" not in metrics:
            return {}
        if self.alarm.fired_step is None:
            self.rows.append({k: float(metrics[k]) for k in SIGNAL_COLUMNS if k in metrics})
        if self.alarm.update(step, float(metrics["entropy_sampled"])):
            log.warning("step %d: %s", step, self.message())
        out = {"entropy_collapse": float(self.alarm.fired_step is not None)}
        if self.alarm.ratio is not None:
            out["entropy_vs_start"] = self.alarm.ratio
        return out

    def causes(self) -> list[tuple[str, str]]:
        """The likely causes from the signals up to the alarm."""
        return likely_causes(collapse_signals(self.rows, self.setting))

    def message(self) -> str:
        """The warning: how far entropy fell, how fast, and the likely causes."""
        a = self.alarm
        start, ratio = a.start or 0.0, a.ratio or 0.0
        causes = "; ".join(text for _, text in self.causes()) or (
            "none of the known signals (N_SGD 1, little clipping, temperature 1, no KL); "
            "check the learning rate and the entropy control"
        )
        within = f" within {a.within} steps" if a.within else ""
        return (
            f"entropy collapse: the sampled entropy fell to {ratio:.0%} of its start "
            f"({start:.3g} -> {start * ratio:.3g} nats/token, averaged over {a.window} "
            f"steps){within}. Likely causes: {causes}"
        )

    def summary(self) -> dict[str, Any] | None:
        """For summary.json: the alarm's step and causes (None: it did not fire)."""
        if self.alarm.fired_step is None:
            return None
        return {"step": self.alarm.fired_step, "causes": [key for key, _ in self.causes()]}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for a checkpoint."""
        return {"alarm": self.alarm.state_dict(), "rows": list(self.rows)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state written by ``state_dict``."""
        self.alarm.load_state_dict(state["alarm"])
        self.rows = [dict(r) for r in state["rows"]]
