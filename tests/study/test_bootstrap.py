"""Paired bootstrap intervals and decisions on hand-made data (or1/study/bootstrap.py)."""

from __future__ import annotations

import numpy as np
import pytest

from or1.study.bootstrap import NULL, Paired, bootstrap, decide


def _problems(rng: np.random.Generator, effect: float, seeds: int = 3, n: int = 200) -> Paired:
    """Per seed, n problems: reference avg@8 per problem, variant = reference + effect
    in probability, both sampled 8 times (the noise of a real avg@8)."""
    var, ref = [], []
    for _ in range(seeds):
        p = rng.uniform(0.1, 0.8, n)  # each problem's difficulty, shared by both runs
        ref.append(rng.binomial(8, p) / 8)
        var.append(rng.binomial(8, np.clip(p + effect, 0, 1)) / 8)
    return Paired.of(var, ref)


def test_estimates_by_hand() -> None:
    data = Paired.of([[1.0, 0.5], [0.0]], [[0.5, 0.5], [0.5]])
    # pooled over seeds and units: v mean 0.5, r mean 0.5
    assert bootstrap(data, "diff", name="a")["estimate"] == pytest.approx(0.0)
    data = Paired.of([[0.2, 0.4]], [[0.4, 0.8]])
    out = bootstrap(data, "ratio", name="b")
    assert out["estimate"] == pytest.approx(0.5)
    assert out["seeds"] == 1 and out["units"] == 2 and out["resamples"] == 10_000
    assert out["low"] <= 0.5 <= out["high"]
    closer = bootstrap(Paired.of([[0.11, 0.09]], [[0.05, 0.05]]), "closer", name="c", target=0.1)
    assert closer["estimate"] == pytest.approx(0.05)  # |0.05 - 0.1| - |0.10 - 0.1|


def test_a_known_effect_is_found_and_covered() -> None:
    out = bootstrap(_problems(np.random.default_rng(0), 0.08), "diff", name="effect")
    assert decide(out, kind="diff", direction=">") == "reproduced"
    assert out["low"] < 0.08 < out["high"]
    # The same data read the other way round is the opposite of the claim.
    assert decide(out, kind="diff", direction="<") == "opposite"


def test_a_null_effect_is_not_found() -> None:
    out = bootstrap(_problems(np.random.default_rng(1), 0.0), "diff", name="null")
    assert out["low"] < 0.0 < out["high"]
    assert decide(out, kind="diff", direction=">") == "inconclusive"
    assert decide(out, kind="diff", direction="<") == "inconclusive"


def test_false_positive_rate_under_the_null_and_power_under_an_effect() -> None:
    rng = np.random.default_rng(2)
    found_null = found_effect = 0
    trials = 60
    for i in range(trials):
        null = bootstrap(_problems(rng, 0.0, 2, 60), "diff", name=f"n{i}", resamples=800)
        effect = bootstrap(_problems(rng, 0.15, 2, 60), "diff", name=f"e{i}", resamples=800)
        found_null += decide(null, kind="diff", direction=">") == "reproduced"
        found_effect += decide(effect, kind="diff", direction=">") == "reproduced"
    # One-sided 2.5% nominal; 2 seeds make the seed level coarse: allow up to 10%.
    assert found_null <= 0.10 * trials
    assert found_effect >= 0.9 * trials


def test_seeds_that_disagree_widen_the_interval() -> None:
    """Within every seed the difference is clear, but the seeds disagree in sign: the
    seed level of the bootstrap must keep that from looking like an effect."""
    rng = np.random.default_rng(3)
    shifts = (0.12, -0.10, 0.10)
    ref = [rng.uniform(0.2, 0.6, 300) for _ in shifts]
    var = [r + s + rng.normal(0, 0.02, 300) for r, s in zip(ref, shifts, strict=True)]
    by_seed = bootstrap(Paired.of(var, ref), "diff", name="seeds")
    pooled = bootstrap(
        Paired.of([np.concatenate(var)], [np.concatenate(ref)]), "diff", name="seeds"
    )
    assert by_seed["estimate"] == pytest.approx(pooled["estimate"])
    assert decide(pooled, kind="diff", direction=">") == "reproduced"  # units only: fooled
    assert decide(by_seed, kind="diff", direction=">") == "inconclusive"
    assert by_seed["high"] - by_seed["low"] > 5 * (pooled["high"] - pooled["low"])


def test_ratio_of_paired_steps() -> None:
    rng = np.random.default_rng(4)
    ref = [0.1 + rng.normal(0, 0.01, 30) for _ in range(3)]
    half = bootstrap(Paired.of([r * 0.5 for r in ref], ref), "ratio", name="half")
    assert half["estimate"] == pytest.approx(0.5)
    assert decide(half, kind="ratio", direction="<") == "reproduced"
    same = [r + rng.normal(0, 0.01, 30) for r in ref]
    equal = bootstrap(Paired.of(same, ref), "ratio", name="same")
    assert decide(equal, kind="ratio", direction="<") == "inconclusive"
    assert decide(equal, kind="ratio", direction="within", band=(0.8, 1.25)) == "reproduced"
    assert decide(half, kind="ratio", direction="within", band=(0.8, 1.25)) == "opposite"


def test_intervals_are_reproducible_per_test_name() -> None:
    data = _problems(np.random.default_rng(5), 0.02, 2, 40)
    a = bootstrap(data, "diff", name="x", resamples=500)
    assert bootstrap(data, "diff", name="x", resamples=500) == a
    assert bootstrap(data, "diff", name="y", resamples=500)["low"] != a["low"]


def test_decide_every_branch() -> None:
    def iv(low: float | None, high: float | None) -> dict:
        return {"estimate": None if low is None else 0.0, "low": low, "high": high}

    assert NULL == {"diff": 0.0, "ratio": 1.0, "closer": 0.0}
    assert decide(iv(0.01, 0.2), kind="diff", direction=">") == "reproduced"
    assert decide(iv(-0.01, 0.2), kind="diff", direction=">") == "inconclusive"
    assert decide(iv(-0.2, -0.01), kind="diff", direction=">") == "opposite"
    assert decide(iv(0.5, 0.9), kind="ratio", direction="<") == "reproduced"
    assert decide(iv(1.1, 1.3), kind="ratio", direction="<") == "opposite"
    assert decide(iv(0.9, 1.4), kind="ratio", direction="within", band=(0.8, 1.25)) == (
        "inconclusive"
    )
    assert decide(iv(None, None), kind="diff", direction=">") == "not measured"
    with pytest.raises(ValueError):
        decide(iv(0.1, 0.2), kind="diff", direction="within")


def test_empty_and_mismatched_data() -> None:
    out = bootstrap(Paired.of([[]], [[]]), "diff", name="empty")
    assert out["estimate"] is None and out["seeds"] == 0
    with pytest.raises(ValueError, match="equally long"):
        Paired.of([[1.0, 2.0]], [[1.0]])
