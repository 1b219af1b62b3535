"""Paired bootstrap confidence intervals for the study's comparisons (pure numpy).

Every comparison of the study is *paired*: a variant and its reference share the seed,
hence the warmed-up base, the held-out problems and the training prompts of every step.
Its data is, per seed ``s``, two equally long arrays ``v_s`` and ``r_s`` of paired units:
held-out problems (the final avg@k of each problem under the variant and the reference)
or training steps (the entropy, or truncation ratio, of a step of a window).

Resampling (``BOOTSTRAP_RESAMPLES`` draws): when there are several seeds, draw the seeds
with replacement, then within each drawn seed draw its units with replacement (a
two-level bootstrap: the seed-to-seed spread of training and the unit-to-unit spread
both enter the interval); with one seed, only units are drawn. Units are drawn jointly
for ``v`` and ``r`` (they are paired). Every statistic is a function of the pooled means
``m_v = sum v / n`` and ``m_r = sum r / n`` of one draw:

- ``diff``:   m_v - m_r                       (no effect: 0)
- ``ratio``:  m_v / m_r                       (no effect: 1)
- ``closer``: |m_r - target| - |m_v - target| (no effect: 0; > 0: v is nearer the target)

The interval is the percentile interval (``CONFIDENCE``, 95%) of the draws. The random
generator of each test is ``numpy.random.default_rng([BOOTSTRAP_SEED, crc32(name)])``,
so a test's interval does not depend on which other tests ran.

A decision (``decide``) is ``"reproduced"`` when the interval excludes no effect in the
paper's direction, ``"opposite"`` when it excludes it in the other direction and
``"inconclusive"`` otherwise. A claim of *no change* ("batch size does not change the
entropy dynamics") is an equivalence test: reproduced when the whole interval lies inside
a stated band, opposite when it lies wholly outside, inconclusive otherwise.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20261201
CONFIDENCE = 0.95
NULL = {"diff": 0.0, "ratio": 1.0, "closer": 0.0}


@dataclass(frozen=True)
class Paired:
    """Per seed, the variant's and the reference's values of the same units.

    ``variant[i]`` and ``reference[i]`` are 1-D arrays of one seed, equally long.
    """

    variant: tuple[np.ndarray, ...]
    reference: tuple[np.ndarray, ...]
    seeds: tuple[int, ...] = ()

    @classmethod
    def of(
        cls,
        variant: Sequence[Sequence[float]],
        reference: Sequence[Sequence[float]],
        seeds: Sequence[int] = (),
    ) -> Paired:
        v = tuple(np.asarray(x, dtype=np.float64) for x in variant)
        r = tuple(np.asarray(x, dtype=np.float64) for x in reference)
        shapes_differ = any(a.shape != b.shape or a.ndim != 1 for a, b in zip(v, r, strict=False))
        if len(v) != len(r) or shapes_differ:
            raise ValueError("paired data: one 1-D array per seed, equally long on both sides")
        return cls(v, r, tuple(seeds))

    @property
    def units(self) -> int:
        return sum(len(a) for a in self.variant)

    def nonempty(self) -> Paired:
        keep = [i for i, a in enumerate(self.variant) if len(a)]
        return Paired(
            tuple(self.variant[i] for i in keep),
            tuple(self.reference[i] for i in keep),
            tuple(self.seeds[i] for i in keep) if self.seeds else (),
        )


def statistic(kind: str, m_v: np.ndarray, m_r: np.ndarray, target: float | None) -> np.ndarray:
    """The statistic ``kind`` of pooled means (elementwise over draws)."""
    if kind == "diff":
        return m_v - m_r
    if kind == "ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            return m_v / m_r
    if kind == "closer":
        if target is None:
            raise ValueError("a 'closer' statistic needs a target")
        return np.abs(m_r - target) - np.abs(m_v - target)
    raise ValueError(f"unknown statistic kind {kind!r}")


def _resampled_means(
    data: Paired, rng: np.random.Generator, resamples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled means of ``v`` and ``r`` over ``resamples`` two-level draws: [resamples] each."""
    n_seeds = len(data.variant)
    sum_v = np.zeros(resamples)
    sum_r = np.zeros(resamples)
    count = np.zeros(resamples)
    # Which seed fills each of the n_seeds slots of every draw: [resamples, n_seeds].
    slots = rng.integers(0, n_seeds, (resamples, n_seeds)) if n_seeds > 1 else None
    for i, (v, r) in enumerate(zip(data.variant, data.reference, strict=True)):
        times = (slots == i).sum(axis=1) if slots is not None else np.ones(resamples, int)
        # Each time seed i is drawn, its units are drawn anew: [resamples, max(times), n].
        most = int(times.max())
        if most == 0:
            continue
        idx = rng.integers(0, len(v), (resamples, most, len(v)))
        used = np.arange(most)[None, :] < times[:, None]  # [resamples, most]
        sum_v += (v[idx].sum(axis=2) * used).sum(axis=1)
        sum_r += (r[idx].sum(axis=2) * used).sum(axis=1)
        count += times * len(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sum_v / count, sum_r / count


def bootstrap(
    data: Paired,
    kind: str,
    *,
    name: str,
    target: float | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> dict[str, float | int | None]:
    """Point estimate and percentile interval of ``kind`` on paired data.

    Args:
        data: The paired units per seed.
        kind: ``diff``, ``ratio`` or ``closer`` (see the module docstring).
        name: Names the test; seeds its random generator.
        target: The target of ``closer``.
        resamples: Bootstrap draws.
        confidence: Coverage of the interval.

    Returns:
        ``{"estimate", "low", "high", "seeds", "units", "resamples"}``; the three numbers
        are None when there is no data.

    Example:
        >>> d = Paired.of([[1.0, 1.0, 0.0, 1.0]], [[0.0, 1.0, 0.0, 0.0]])
        >>> round(bootstrap(d, "diff", name="doc")["estimate"], 3)
        0.5
    """
    data = data.nonempty()
    out: dict[str, float | int | None] = {
        "estimate": None,
        "low": None,
        "high": None,
        "seeds": len(data.variant),
        "units": data.units,
        "resamples": resamples,
    }
    if not data.variant:
        return out
    v_all, r_all = np.concatenate(data.variant), np.concatenate(data.reference)
    estimate = statistic(kind, np.array([v_all.mean()]), np.array([r_all.mean()]), target)[0]
    rng = np.random.default_rng([BOOTSTRAP_SEED, zlib.crc32(name.encode())])
    m_v, m_r = _resampled_means(data, rng, resamples)
    draws = statistic(kind, m_v, m_r, target)
    draws = draws[np.isfinite(draws)]
    if not np.isfinite(estimate) or not len(draws):
        return out
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    out.update(estimate=float(estimate), low=float(low), high=float(high))
    return out


def decide(
    interval: dict[str, float | int | None],
    *,
    kind: str,
    direction: str,
    band: tuple[float, float] | None = None,
) -> str:
    """``reproduced`` / ``opposite`` / ``inconclusive`` / ``not measured`` (see module doc).

    Args:
        interval: A ``bootstrap`` result.
        kind: The statistic's kind (gives the no-effect value).
        direction: ``">"`` or ``"<"`` (the paper's direction against no effect), or
            ``"within"`` (an equivalence claim, with ``band``).
        band: ``(low, high)`` of ``"within"``.
    """
    low, high = interval["low"], interval["high"]
    if low is None or high is None:
        return "not measured"
    if direction == "within":
        if band is None:
            raise ValueError("an equivalence test needs a band")
        if band[0] < low and high < band[1]:
            return "reproduced"
        return "opposite" if high < band[0] or low > band[1] else "inconclusive"
    null = NULL[kind]
    if direction == ">":
        return "reproduced" if low > null else "opposite" if high < null else "inconclusive"
    if direction == "<":
        return "reproduced" if high < null else "opposite" if low > null else "inconclusive"
    raise ValueError(f"unknown direction {direction!r}")
