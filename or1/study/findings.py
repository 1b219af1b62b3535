"""The paper's entropy findings as stated checks on seed-mean run statistics, and
deciding them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from or1.study.stats import mean_stats
from or1.study.variants import (
    ACC_MARGIN,
    COLLAPSE_FACTOR,
    FIXED_LARGE,
    FIXED_SMALL,
    SAME_BAND,
    SPIKE_FACTOR,
    TARGET,
    TRUNC_MARGIN,
)

# -- findings and their rules -------------------------------------------------------------

Ref = tuple[str, str]  # (variant key, statistic)


@dataclass(frozen=True)
class Check:
    """``left op factor * right + offset``; ``right`` is a statistic or a constant.

    With ``around`` set, statistics are replaced by their distance to it
    (``|x - around|``), e.g. "closer to the target than".
    """

    left: Ref
    op: str  # "<" or ">"
    right: Ref | float
    factor: float = 1.0
    offset: float = 0.0
    around: float | None = None

    def rule(self) -> str:
        def name(ref: Ref) -> str:
            text = f"{ref[1]}[{ref[0]}]"
            return text if self.around is None else f"|{text} - {self.around:g}|"

        right = name(self.right) if isinstance(self.right, tuple) else f"{self.right:g}"
        if self.factor != 1.0:
            right = f"{self.factor:.3g} x {right}"
        if self.offset:
            right = f"{right} + {self.offset:g}"
        return f"{name(self.left)} {self.op} {right}"

    def evaluate(self, stats: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The two sides and whether the inequality holds (False if a side is missing)."""
        left = self._value(stats, self.left)
        base = self._value(stats, self.right) if isinstance(self.right, tuple) else self.right
        right = None if base is None else self.factor * base + self.offset
        if left is None or right is None:
            return {"left": left, "right": right, "passed": False, "note": "not measured"}
        passed = left < right if self.op == "<" else left > right
        return {"left": left, "right": right, "passed": bool(passed)}

    def _value(self, stats: Mapping[str, Mapping[str, Any]], ref: Ref) -> float | None:
        value = stats.get(ref[0], {}).get(ref[1])
        if value is None or self.around is None:
            return value
        return abs(value - self.around)


@dataclass(frozen=True)
class Finding:
    """A claim of the paper, the variants that test it, and the checks that decide it."""

    key: str
    claim: str
    variants: tuple[tuple[str, str], ...]  # (variant key, label in this finding)
    checks: tuple[Check, ...]
    third_panel: str = "accuracy"  # the metrics column of the plot's third panel
    note: str = ""
    target: float | None = None  # drawn on the entropy panel


def _band(left: Ref, right: Ref) -> tuple[Check, Check]:
    low, high = SAME_BAND
    return Check(left, ">", right, factor=low), Check(left, "<", right, factor=high)


def _better(winner: str, loser: str) -> Check:
    return Check((winner, "final_accuracy"), ">", (loser, "final_accuracy"), offset=ACC_MARGIN)


FINDINGS: tuple[Finding, ...] = (
    Finding(
        "off_policy",
        "Off-policy updates (N_SGD 2-4, by smaller mini-batches or data reuse) collapse "
        "entropy fast and stall test accuracy; on-policy does not.",
        (
            ("on-policy", "on-policy (N_SGD 1)"),
            ("off-mini", "N_SGD 4 by mini-batches"),
            ("off-reuse", "N_SGD 4 by reuse (4 epochs)"),
        ),
        (
            Check(("off-mini", "final_entropy"), "<", ("on-policy", "final_entropy"), 0.5),
            Check(("off-reuse", "final_entropy"), "<", ("on-policy", "final_entropy"), 0.5),
            _better("on-policy", "off-mini"),
            _better("on-policy", "off-reuse"),
        ),
    ),
    Finding(
        "temperature",
        "Temperature 0.6 starts with near-zero entropy and stagnates; 1.0 learns more.",
        (("on-policy", "temperature 1.0"), ("temp-0.6", "temperature 0.6")),
        (
            Check(
                ("temp-0.6", "initial_entropy"),
                "<",
                ("on-policy", "initial_entropy"),
                COLLAPSE_FACTOR,
            ),
            Check(
                ("on-policy", "accuracy_gain"), ">", ("temp-0.6", "accuracy_gain"), 1.0, ACC_MARGIN
            ),
        ),
        note="Held-out avg@k is measured at the eval temperature (1.0) for both.",
    ),
    Finding(
        "entropy_control",
        "Fixed entropy coefficients are brittle: too small still collapses, larger ones "
        "make entropy explode. The adaptive controller holds entropy near the target.",
        (
            ("on-policy", "no entropy term"),
            ("fixed-small", f"fixed {FIXED_SMALL:g}"),
            ("fixed-large", f"fixed {FIXED_LARGE:g}"),
            ("adaptive", f"adaptive, target {TARGET:g}"),
        ),
        (
            Check(("fixed-small", "final_entropy"), "<", TARGET),
            Check(
                ("fixed-large", "peak_entropy"),
                ">",
                ("fixed-large", "initial_entropy"),
                SPIKE_FACTOR,
            ),
            # Not vacuous: the controller must have acted (entropy fell below the target),
            # and ended nearer the target than the same run without an entropy term.
            Check(("adaptive", "mean_entropy_coef"), ">", 0.0),
            Check(
                ("adaptive", "final_entropy"), "<", ("on-policy", "final_entropy"), around=TARGET
            ),
            Check(("adaptive", "final_entropy"), ">", TARGET, SAME_BAND[0]),
            Check(("adaptive", "final_entropy"), "<", TARGET, SAME_BAND[1]),
        ),
        target=TARGET,
    ),
    Finding(
        "clip_higher",
        "Clip-higher with eps_high 0.25-0.265 prevents collapse; 0.28 makes entropy spike.",
        (
            ("off-mini", "eps_high 0.2 (N_SGD 4)"),
            ("clip-0.265", "eps_high 0.265 (N_SGD 4)"),
            ("clip-0.28", "eps_high 0.28 (N_SGD 4)"),
        ),
        (
            Check(("clip-0.265", "final_entropy"), ">", ("off-mini", "final_entropy"), 1.5),
            Check(
                ("clip-0.28", "peak_entropy"), ">", ("clip-0.28", "initial_entropy"), SPIKE_FACTOR
            ),
        ),
        note="Measured with N_SGD 4 by mini-batches: at N_SGD 1 the ratio is 1 and no clip acts.",
    ),
    Finding(
        "kl",
        "A KL penalty (beta 1e-3) pulls the actor back and stalls accuracy.",
        (("on-policy", "beta 0"), ("kl-1e-3", "beta 1e-3")),
        (_better("on-policy", "kl-1e-3"),),
    ),
    Finding(
        "truncation",
        "Masking truncated responses raises the truncation ratio (a form of reward hacking).",
        (("trunc-keep", "truncated kept (reward 0)"), ("trunc-mask", "truncated masked")),
        (
            Check(
                ("trunc-mask", "final_truncation"),
                ">",
                ("trunc-keep", "final_truncation"),
                offset=TRUNC_MARGIN,
            ),
        ),
        third_panel="truncation_ratio",
        note="Stage length truncation_length, where the base truncates about a third.",
    ),
    Finding(
        "batch_group",
        "Batch size and group size on-policy do not change entropy dynamics; with more "
        "compute, a larger batch or group gives better accuracy at similar wall time.",
        (
            ("on-policy", "batch x group (base)"),
            ("batch-2x", "2 x batch"),
            ("group-2x", "2 x group"),
        ),
        (
            *_band(("batch-2x", "final_entropy"), ("on-policy", "final_entropy")),
            *_band(("group-2x", "final_entropy"), ("on-policy", "final_entropy")),
            _better("batch-2x", "on-policy"),
            _better("group-2x", "on-policy"),
        ),
        note="On a CPU the larger batch/group costs ~2x wall time (no idle parallel "
        "hardware to fill); the wall-time half of the claim is not testable here.",
    ),
)


# -- deciding the findings ----------------------------------------------------------------


def evaluate_finding(
    finding: Finding, stats: Mapping[str, Mapping[int, Mapping[str, Any]]]
) -> dict[str, Any]:
    """Checks, ``reproduced`` and per-seed reproduction of one finding.

    Args:
        finding: The finding.
        stats: ``{variant: {seed: run_stats(...)}}``.

    Returns:
        The finding's entry of findings.json.
    """
    keys = [key for key, _ in finding.variants]
    means = {key: mean_stats(stats.get(key, {})) for key in keys}
    checks = [{"rule": c.rule(), **c.evaluate(means)} for c in finding.checks]
    seeds = sorted({s for key in keys for s in stats.get(key, {})})
    by_seed = {}
    for seed in seeds:
        one = {key: stats.get(key, {}).get(seed, {}) for key in keys}
        by_seed[str(seed)] = all(c.evaluate(one)["passed"] for c in finding.checks)
    return {
        "claim": finding.claim,
        "note": finding.note,
        "variants": {
            key: {
                "label": label,
                "seeds": {str(s): v for s, v in sorted(stats.get(key, {}).items())},
                "mean": means[key],
            }
            for key, label in finding.variants
        },
        "rule": "reproduced = every check below holds on the seed means",
        "checks": checks,
        "reproduced": all(c["passed"] for c in checks),
        "reproduced_by_seed": by_seed,
        "reproduced_seeds": f"{sum(by_seed.values())}/{len(by_seed)}",
    }


def evaluate_findings(
    findings: Sequence[Finding], stats: Mapping[str, Mapping[int, Mapping[str, Any]]]
) -> dict[str, Any]:
    return {f.key: evaluate_finding(f, stats) for f in findings}
