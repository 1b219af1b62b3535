"""The paper's entropy findings as paired statistical tests, and deciding them.

A finding is one or more *tests*; each test compares a variant with a reference run of the
same seed (``or1/study/bootstrap.py``: paired per-problem or per-step data, a bootstrap
interval, a decision). A finding is reproduced when every one of its tests is.

Tests by measure:

- ``heldout``: per held-out problem, final avg@k of the variant minus the reference's
  (``diff``), pooled over seeds.
- ``entropy`` / ``truncation``: per training step of a window (``final`` = the last
  ``TAIL_FRACTION`` (20%) of the steps, ``initial`` = the first), the step's value under the
  variant and the reference, paired by step (same seed: same prompts at that step).
  ``window="change"`` compares one run with itself: its final window against its initial
  window (paired by position), e.g. "entropy ends below where it started".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from or1.study.bootstrap import Paired, bootstrap, decide
from or1.study.stats import RunData, mean_stats, window_steps
from or1.study.variants import (
    CLIP_N_SGD,
    ENTROPY_COLUMN,
    FIXED_LARGE,
    FIXED_SMALL,
    HOT_LR,
    LONG,
    SAME_BAND,
    TARGET,
)

MEASURES = {"entropy": ENTROPY_COLUMN, "truncation": "truncation_ratio"}


@dataclass(frozen=True)
class PairedTest:
    """One paired comparison: ``kind`` of ``variant`` against ``reference``.

    ``direction`` is the paper's: ``">"`` (the statistic exceeds no effect), ``"<"``, or
    ``"within"`` (``band``: a claim of no change).
    """

    name: str
    variant: str
    reference: str
    measure: str  # "heldout", "entropy", "truncation"
    kind: str  # "diff", "ratio", "closer"
    direction: str
    window: str = "final"  # "final", "initial", "change" (series measures only)
    band: tuple[float, float] | None = None
    target: float | None = None

    def rule(self) -> str:
        what = self.measure if self.measure == "heldout" else f"{self.measure} ({self.window})"
        if self.measure == "heldout":
            what = "final held-out avg@k per problem"
        left = f"{self.variant}" if self.window != "change" else f"{self.variant} final window"
        right = f"{self.reference}" if self.window != "change" else "its initial window"
        if self.kind == "closer":
            return f"{what}: |{right} - {self.target:g}| - |{left} - {self.target:g}| > 0"
        op = {"diff": "-", "ratio": "/"}[self.kind]
        if self.direction == "within":
            assert self.band is not None
            return f"{what}: {left} {op} {right} within [{self.band[0]:.3g}, {self.band[1]:.3g}]"
        null = 0 if self.kind == "diff" else 1
        return f"{what}: {left} {op} {right} {self.direction} {null}"

    def paired(self, runs: Mapping[str, Mapping[int, RunData]]) -> Paired:
        """This test's paired units from the runs ``{variant: {seed: RunData}}``."""
        var, ref = runs.get(self.variant, {}), runs.get(self.reference, {})
        seeds = sorted(set(var) & set(ref))
        pairs = [self._pair(var[s], ref[s]) for s in seeds]
        return Paired.of([p[0] for p in pairs], [p[1] for p in pairs], seeds)

    def _pair(self, var: RunData, ref: RunData) -> tuple[list[float], list[float]]:
        if self.measure == "heldout":
            a, b = var.final_problems(), ref.final_problems()
            uids = sorted(set(a) & set(b))
            return [a[u] for u in uids], [b[u] for u in uids]
        column = MEASURES[self.measure]
        if self.window == "change":
            series = var.series(column)
            final = [series[s] for s in window_steps(series, "final")]
            first = [series[s] for s in window_steps(series, "initial")]
            n = min(len(final), len(first))
            return final[len(final) - n :], first[:n]
        a, b = var.series(column), ref.series(column)
        both = {s: a[s] for s in a if s in b}
        steps = window_steps(both, self.window)
        return [a[s] for s in steps], [b[s] for s in steps]

    def evaluate(self, runs: Mapping[str, Mapping[int, RunData]]) -> dict[str, Any]:
        interval = bootstrap(self.paired(runs), self.kind, name=self.name, target=self.target)
        verdict = decide(interval, kind=self.kind, direction=self.direction, band=self.band)
        return {"test": self.name, "rule": self.rule(), **interval, "verdict": verdict}


@dataclass(frozen=True)
class Finding:
    """A claim of the paper, the variants that show it, and the tests that decide it."""

    key: str
    claim: str
    variants: tuple[tuple[str, str], ...]  # (variant key, label in this finding)
    tests: tuple[PairedTest, ...]
    third_panel: str = "accuracy"  # the metrics column of the plot's third panel
    note: str = ""
    target: float | None = None  # drawn on the entropy panel


def _entropy(name: str, variant: str, reference: str, direction: str, **kw: Any) -> PairedTest:
    return PairedTest(name, variant, reference, "entropy", "ratio", direction, **kw)


def _better(name: str, winner: str, loser: str) -> PairedTest:
    return PairedTest(name, winner, loser, "heldout", "diff", ">")


FINDINGS: tuple[Finding, ...] = (
    Finding(
        "off_policy",
        "Off-policy updates (N_SGD 2-4, by smaller mini-batches or data reuse) collapse "
        "entropy fast and stall test accuracy; on-policy does not.",
        (
            ("on-policy-long", "on-policy (N_SGD 1)"),
            ("off-mini-long", "N_SGD 4 by mini-batches"),
            ("off-reuse-long", "N_SGD 4 by reuse, 4 epochs"),
        ),
        (
            _entropy("off-mini entropy", "off-mini-long", "on-policy-long", "<"),
            _entropy("off-reuse entropy", "off-reuse-long", "on-policy-long", "<"),
            _better("on-policy beats off-mini", "on-policy-long", "off-mini-long"),
            _better("on-policy beats off-reuse", "on-policy-long", "off-reuse-long"),
        ),
        note=f"Runs of {LONG} x the study's steps (at 200 steps accuracy had not stalled yet; "
        f"at lr {HOT_LR:g} it stalls but entropy does not fall below on-policy's: "
        "docs/study.md).",
    ),
    Finding(
        "temperature",
        "Temperature 0.6 starts with near-zero entropy and stagnates; 1.0 learns more.",
        (("on-policy", "temperature 1.0"), ("temp-0.6", "temperature 0.6")),
        (
            _entropy("0.6 starts lower", "temp-0.6", "on-policy", "<", window="initial"),
            _better("1.0 beats 0.6", "on-policy", "temp-0.6"),
        ),
        note="Held-out avg@k is sampled at the eval temperature (1.0) for both.",
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
            _entropy("fixed small still falls", "fixed-small", "fixed-small", "<", window="change"),
            _entropy("fixed large explodes", "fixed-large", "fixed-large", ">", window="change"),
            PairedTest(
                "adaptive nearer the target",
                "adaptive",
                "on-policy",
                "entropy",
                "closer",
                ">",
                target=TARGET,
            ),
        ),
        target=TARGET,
    ),
    Finding(
        "clip_higher",
        "Clip-higher with eps_high 0.25-0.265 prevents collapse; 0.28 makes entropy spike.",
        (
            ("clip-0.2", f"eps_high 0.2 (N_SGD {CLIP_N_SGD}, lr {HOT_LR:g})"),
            ("clip-0.265", f"eps_high 0.265 (N_SGD {CLIP_N_SGD}, lr {HOT_LR:g})"),
            ("clip-0.28", f"eps_high 0.28 (N_SGD {CLIP_N_SGD}, lr {HOT_LR:g})"),
        ),
        (
            _entropy("0.265 keeps more entropy", "clip-0.265", "clip-0.2", ">"),
            _entropy("0.28 rises", "clip-0.28", "clip-0.28", ">", window="change"),
        ),
        note=f"Measured off-policy (N_SGD {CLIP_N_SGD} by mini-batches, lr {HOT_LR:g}): at "
        "N_SGD 1 the ratio is 1, and at lr 5e-5 no ratio reaches 1.2.",
    ),
    Finding(
        "kl",
        "A KL penalty (beta 1e-3) pulls the actor back and stalls accuracy.",
        (("on-policy", "beta 0"), ("kl-1e-3", "beta 1e-3")),
        (_better("beta 0 beats 1e-3", "on-policy", "kl-1e-3"),),
    ),
    Finding(
        "truncation",
        "Masking truncated responses raises the truncation ratio (a form of reward hacking).",
        (("trunc-keep", "truncated kept (reward 0)"), ("trunc-mask", "truncated masked")),
        (
            PairedTest(
                "mask raises truncation", "trunc-mask", "trunc-keep", "truncation", "diff", ">"
            ),
        ),
        third_panel="truncation_ratio",
        note=(
            "Stage length truncation_length; the base's teacher writes two steps on one line "
            "with probability MERGE_RATE (shorter, harder), else one per line (longer, "
            "truncated more often)."
        ),
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
            _entropy("2x batch same entropy", "batch-2x", "on-policy", "within", band=SAME_BAND),
            _entropy("2x group same entropy", "group-2x", "on-policy", "within", band=SAME_BAND),
            _better("2x batch beats base", "batch-2x", "on-policy"),
            _better("2x group beats base", "group-2x", "on-policy"),
        ),
        note="On a CPU the larger batch/group costs ~2x wall time (no idle parallel "
        "hardware to fill); the wall-time half of the claim is not testable here.",
    ),
)


# -- deciding the findings ----------------------------------------------------------------


def _verdict(tests: Sequence[dict[str, Any]]) -> str:
    verdicts = {t["verdict"] for t in tests}
    if verdicts == {"reproduced"}:
        return "reproduced"
    if "not measured" in verdicts:
        return "not measured"
    return "not reproduced"


@dataclass
class FindingResult:
    """A finding's entry of findings.json (``as_dict``)."""

    finding: Finding
    tests: list[dict[str, Any]]
    stats: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        verdict = _verdict(self.tests)
        return {
            "claim": self.finding.claim,
            "note": self.finding.note,
            "variants": {
                key: {
                    "label": label,
                    "seeds": {str(s): v for s, v in sorted(self.stats.get(key, {}).items())},
                    "mean": mean_stats(self.stats.get(key, {})),
                }
                for key, label in self.finding.variants
            },
            "rule": "reproduced = every test's interval excludes no effect in the "
            "paper's direction (within its band for a no-change claim)",
            "tests": self.tests,
            "verdict": verdict,
            "reproduced": verdict == "reproduced",
        }


def evaluate_finding(
    finding: Finding,
    runs: Mapping[str, Mapping[int, RunData]],
) -> dict[str, Any]:
    """The tests, verdict and per-run statistics of one finding.

    Args:
        finding: The finding.
        runs: ``{variant: {seed: RunData}}`` of the finished runs.

    Returns:
        The finding's entry of findings.json.
    """
    keys = [key for key, _ in finding.variants]
    stats = {k: {s: run.stats() for s, run in runs.get(k, {}).items()} for k in keys}
    tests = [t.evaluate(runs) for t in finding.tests]
    for t in tests:  # JSON has no NaN: a statistic that could not be formed is None
        for key in ("estimate", "low", "high"):
            if isinstance(t[key], float) and not math.isfinite(t[key]):
                t[key] = None
    return FindingResult(finding, tests, stats).as_dict()


def evaluate_findings(
    findings: Sequence[Finding], runs: Mapping[str, Mapping[int, RunData]]
) -> dict[str, Any]:
    return {f.key: evaluate_finding(f, runs) for f in findings}
