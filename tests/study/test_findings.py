"""The study's findings as paired tests on hand-made runs (or1/study/findings.py)."""

from __future__ import annotations

import numpy as np
import pytest

from or1.study import FINDINGS, PairedTest, RunData, evaluate_finding
from or1.study.stats import window_steps

UIDS = [f"p{i}" for i in range(120)]


def _run(
    rng: np.random.Generator,
    *,
    entropy: float,
    accuracy: float,
    steps: int = 50,
    drift: float = 0.0,
    skip: tuple[int, ...] = (),
    truncation: float = 0.0,
) -> RunData:
    """A run whose entropy is ``entropy`` (+ ``drift`` per step) with step noise and whose
    final held-out avg@8 per problem is ``accuracy`` in probability."""
    rows = []
    for step in range(1, steps + 1):
        row = {"step": step, "accuracy": 0.5, "truncation_ratio": truncation}
        if step not in skip:
            row["entropy_full"] = entropy + drift * step + rng.normal(0, 0.004)
        rows.append(row)
    base = {u: float(rng.binomial(8, 0.4) / 8) for u in UIDS}
    final = {u: float(rng.binomial(8, accuracy) / 8) for u in UIDS}
    evals = [{"step": 0, "avg_at_k": 0.4}, {"step": steps, "avg_at_k": accuracy}]
    return RunData(rows, evals, {0: base, steps: final})


def _finding(key: str):
    return next(f for f in FINDINGS if f.key == key)


def _off_policy_runs(off_entropy: float, off_accuracy: float, seeds: int = 3) -> dict:
    rng = np.random.default_rng(7)
    return {
        "on-policy-long": {s: _run(rng, entropy=0.10, accuracy=0.6) for s in range(seeds)},
        "off-mini-long": {
            s: _run(rng, entropy=off_entropy, accuracy=off_accuracy) for s in range(seeds)
        },
        "off-reuse-long": {
            s: _run(rng, entropy=off_entropy, accuracy=off_accuracy) for s in range(seeds)
        },
    }


def test_windows_are_the_first_and_last_fifth_of_the_steps() -> None:
    series = {s: float(s) for s in range(1, 21) if s != 20}  # 19 steps: ceil(3.8) = 4
    assert window_steps(series, "final") == [16, 17, 18, 19]
    assert window_steps(series, "initial") == [1, 2, 3, 4]
    assert window_steps({}, "final") == []


def test_pairing_by_problem_and_by_step() -> None:
    rng = np.random.default_rng(0)
    a = _run(rng, entropy=0.1, accuracy=0.5, steps=10, skip=(10,))
    b = _run(rng, entropy=0.2, accuracy=0.5, steps=10)
    del b.problems[10]["p0"]  # a problem one run did not evaluate is left out of the pair
    heldout = PairedTest("h", "a", "b", "heldout", "diff", ">").paired({"a": {0: a}, "b": {0: b}})
    assert len(heldout.variant[0]) == len(UIDS) - 1
    assert heldout.variant[0][0] == a.problems[10]["p1"]
    entropy = PairedTest("e", "a", "b", "entropy", "ratio", "<").paired({"a": {0: a}, "b": {0: b}})
    # steps both runs measured: 1..9; final window ceil(0.9) = 2 steps
    assert entropy.variant[0].tolist() == [a.series("entropy_full")[s] for s in (8, 9)]
    assert entropy.reference[0].tolist() == [b.series("entropy_full")[s] for s in (8, 9)]
    change = PairedTest("c", "a", "a", "entropy", "ratio", ">", window="change")
    pairs = change.paired({"a": {0: a}})
    assert pairs.variant[0].tolist() == [a.series("entropy_full")[s] for s in (8, 9)]
    assert pairs.reference[0].tolist() == [a.series("entropy_full")[s] for s in (1, 2)]
    # Seeds are paired: a seed only one side has is left out.
    one = PairedTest("h", "a", "b", "heldout", "diff", ">").paired({"a": {0: a, 1: a}, "b": {0: b}})
    assert one.seeds == (0,)


def test_off_policy_collapse_is_found() -> None:
    entry = evaluate_finding(_finding("off_policy"), _off_policy_runs(0.05, 0.45))
    assert [t["verdict"] for t in entry["tests"]] == ["reproduced"] * 4
    assert entry["verdict"] == "reproduced" and entry["reproduced"] is True
    ratio = entry["tests"][0]
    assert ratio["estimate"] == pytest.approx(0.5, abs=0.03)
    assert ratio["low"] < ratio["estimate"] < ratio["high"] < 1
    assert ratio["seeds"] == 3 and ratio["units"] == 3 * 10  # 20% of 50 steps, 3 seeds
    assert entry["tests"][2]["units"] == 3 * len(UIDS)
    means = entry["variants"]["off-mini-long"]["mean"]
    assert means["final_entropy"] == pytest.approx(0.05, abs=0.005)


def test_no_effect_is_not_a_finding_and_the_opposite_is_named() -> None:
    entry = evaluate_finding(_finding("off_policy"), _off_policy_runs(0.10, 0.6))
    assert {t["verdict"] for t in entry["tests"]} == {"inconclusive"}
    assert entry["verdict"] == "not reproduced" and entry["reproduced"] is False
    # Off-policy learning *more* (what the 0.8M miniature did on the easy task).
    entry = evaluate_finding(_finding("off_policy"), _off_policy_runs(0.05, 0.8))
    verdicts = [t["verdict"] for t in entry["tests"]]
    assert verdicts == ["reproduced", "reproduced", "opposite", "opposite"]
    assert entry["verdict"] == "not reproduced"


def test_a_missing_variant_is_not_measured() -> None:
    runs = _off_policy_runs(0.05, 0.45)
    del runs["off-reuse-long"]
    entry = evaluate_finding(_finding("off_policy"), runs)
    assert entry["tests"][1]["verdict"] == "not measured"
    assert entry["tests"][1]["estimate"] is None
    assert entry["verdict"] == "not measured"


def test_entropy_control_tests() -> None:
    rng = np.random.default_rng(8)
    runs = {
        "on-policy": {s: _run(rng, entropy=0.10, drift=-0.001, accuracy=0.6) for s in range(2)},
        "fixed-small": {s: _run(rng, entropy=0.10, drift=-0.001, accuracy=0.6) for s in range(2)},
        "fixed-large": {s: _run(rng, entropy=0.10, drift=0.01, accuracy=0.1) for s in range(2)},
        "adaptive": {s: _run(rng, entropy=0.10, accuracy=0.6) for s in range(2)},
    }
    entry = evaluate_finding(_finding("entropy_control"), runs)
    assert [t["verdict"] for t in entry["tests"]] == ["reproduced"] * 3
    # adaptive stays at 0.1 (target 0.1); no term ends near 0.1 - 0.045
    closer = entry["tests"][2]
    assert closer["estimate"] == pytest.approx(0.045, abs=0.005)
    # An adaptive run that sits as far from the target as no term at all is no evidence.
    runs["adaptive"] = {s: _run(rng, entropy=0.10, drift=-0.001, accuracy=0.6) for s in range(2)}
    entry = evaluate_finding(_finding("entropy_control"), runs)
    assert entry["tests"][2]["verdict"] == "inconclusive"


def test_batch_group_equivalence_and_truncation() -> None:
    rng = np.random.default_rng(9)
    runs = {
        "on-policy": {s: _run(rng, entropy=0.10, accuracy=0.55) for s in range(3)},
        "batch-2x": {s: _run(rng, entropy=0.10, accuracy=0.7) for s in range(3)},
        "group-2x": {s: _run(rng, entropy=0.06, accuracy=0.7) for s in range(3)},
    }
    entry = evaluate_finding(_finding("batch_group"), runs)
    assert [t["verdict"] for t in entry["tests"]] == [
        "reproduced",  # 1.0 inside the band
        "opposite",  # 0.6: the whole interval below the band
        "reproduced",
        "reproduced",
    ]
    runs = {
        "trunc-keep": {s: _run(rng, entropy=0.1, accuracy=0.5, truncation=0.2) for s in range(2)},
        "trunc-mask": {s: _run(rng, entropy=0.1, accuracy=0.5, truncation=0.3) for s in range(2)},
    }
    for run in runs["trunc-mask"].values():  # noisy truncation ratios, mask above keep
        for row in run.rows:
            row["truncation_ratio"] += rng.normal(0, 0.03)
    entry = evaluate_finding(_finding("truncation"), runs)
    assert entry["tests"][0]["estimate"] == pytest.approx(0.1, abs=0.02)
    assert entry["verdict"] == "reproduced"


def test_every_finding_names_known_variants_and_valid_tests() -> None:
    from or1.study import VARIANTS

    for finding in FINDINGS:
        keys = {k for k, _ in finding.variants}
        for test in finding.tests:
            assert {test.variant, test.reference} <= keys <= set(VARIANTS)
            assert test.measure in {"heldout", "entropy", "truncation"}
            assert test.direction in {">", "<", "within"}
            assert (test.direction == "within") == (test.band is not None)
            assert test.rule()
