"""Entropy diagnosis: auto target, collapse alarm, likely causes (hand-computed)."""

from __future__ import annotations

import json

import pytest

from or1.algo import AdaptiveEntropyController
from or1.algo.entropy_diagnosis import (
    AutoTargetEntropyController,
    CollapseSignals,
    EntropyCollapseAlarm,
    likely_causes,
)


def _auto(fraction: float = 0.5, steps: int = 3) -> AutoTargetEntropyController:
    return AutoTargetEntropyController(
        lambda t: AdaptiveEntropyController(target=t, delta=0.01), fraction=fraction, steps=steps
    )


def test_auto_target_is_the_fraction_of_the_first_steps_mean() -> None:
    ctl = _auto(fraction=0.4, steps=3)
    # measuring: alpha 0, c 0, no target
    assert [ctl.update(e) for e in (0.6, 0.3)] == [0.0, 0.0] and ctl.target is None
    # third update: mean (0.6 + 0.3 + 0.3) / 3 = 0.4, target 0.4 * 0.4 = 0.16; 0.3 above it
    assert ctl.update(0.3) == 0.0 and ctl.target == pytest.approx(0.16) and ctl.value == 0.0
    # below the target: alpha_k = c_k (0, then 0.01), c grows by delta
    assert ctl.update(0.1) == 0.0 and ctl.value == pytest.approx(0.01)
    assert ctl.update(0.1) == pytest.approx(0.01) and ctl.value == pytest.approx(0.02)
    assert ctl.update(0.2) == 0.0 and ctl.value == pytest.approx(0.01)  # above: back down


def test_auto_target_state_round_trips_at_every_step() -> None:
    entropies = [0.5, 0.4, 0.1, 0.05, 0.3, 0.1]
    straight = _auto()
    alphas = [straight.update(e) for e in entropies]
    for cut in range(len(entropies) + 1):
        first = _auto()
        for e in entropies[:cut]:
            first.update(e)
        resumed = _auto()
        resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
        assert [resumed.update(e) for e in entropies[cut:]] == alphas[cut:], cut
        assert resumed.state_dict() == straight.state_dict()


def test_auto_target_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        _auto().update(float("nan"))
    with pytest.raises(ValueError, match="steps"):
        _auto(steps=0)


def test_the_alarm_fires_once_when_entropy_halves_within_the_window() -> None:
    # window 2: start = (1.0 + 0.8) / 2 = 0.9; current means: 0.9, 0.6, 0.4 (0.44 < 0.5)
    alarm = EntropyCollapseAlarm(fraction=0.5, within=10, window=2)
    fired = [alarm.update(s, e) for s, e in enumerate([1.0, 0.8, 0.4, 0.4, 0.1], start=1)]
    assert fired == [False, False, False, True, False]
    assert alarm.start == pytest.approx(0.9) and alarm.fired_step == 4
    assert alarm.ratio == pytest.approx((0.4 + 0.1) / 2 / 0.9)


def test_the_alarm_ignores_a_slow_fall_after_its_window() -> None:
    alarm = EntropyCollapseAlarm(fraction=0.5, within=3, window=1)
    fired = [alarm.update(s, e) for s, e in enumerate([1.0, 0.9, 0.8, 0.1], start=1)]
    assert not any(fired) and alarm.ratio == pytest.approx(0.1)
    anytime = EntropyCollapseAlarm(fraction=0.5, within=None, window=1)
    assert [anytime.update(s, e) for s, e in enumerate([1.0, 0.9, 0.8, 0.1], start=1)][-1]


def test_the_alarm_state_round_trips() -> None:
    a = EntropyCollapseAlarm(window=2)
    for s, e in enumerate([1.0, 0.5, 0.2], start=1):
        a.update(s, e)
    b = EntropyCollapseAlarm(window=2)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.state_dict() == a.state_dict() and b.ratio == a.ratio
    assert b.update(4, 0.2) == a.update(4, 0.2)


@pytest.mark.parametrize(
    ("signals", "keys"),
    [
        (CollapseSignals(1, 0.0, 0.0, 1.0, 0.0), []),
        (CollapseSignals(4, 0.001, 0.03, 1.0, 0.0), ["n_sgd", "clip_high_side"]),
        (CollapseSignals(2, 0.03, 0.01, 1.0, 0.0), ["n_sgd", "clip_low_side"]),
        # both sides alike: neither is "the" side
        (CollapseSignals(2, 0.02, 0.02, 1.0, 0.0), ["n_sgd"]),
        # below CLIP_SIGNAL_MIN: not a signal
        (CollapseSignals(1, 0.0, 0.0009, 1.0, 0.0), []),
        (
            CollapseSignals(1, 0.0, 0.0, 0.6, 1e-3, entropy_mode="off"),
            ["temperature", "kl", "entropy_off"],
        ),
    ],
)
def test_likely_causes_from_the_signals(signals: CollapseSignals, keys: list[str]) -> None:
    causes = likely_causes(signals)
    assert [k for k, _ in causes] == keys
    assert all(text for _, text in causes)


def test_cause_texts_quote_the_run_values() -> None:
    (n_sgd, high) = likely_causes(CollapseSignals(4, 0.0, 0.025, 1.0, 0.0, clip_high=0.28))
    assert "N_SGD = 4" in n_sgd[1] and "2.50%" in high[1] and "1.28" in high[1]


def test_auto_target_with_the_released_gate_measures_after_each_step() -> None:
    """gate "previous": e_k arrives in end_step; alpha_k is gated by e_{k-1}."""
    ctl = AutoTargetEntropyController(
        lambda t: AdaptiveEntropyController(target=t, delta=0.01, gate="previous"),
        fraction=0.5,
        steps=2,
        gate="previous",
    )
    alphas = []
    for e in (0.4, 0.2, 0.1, 0.1):
        alphas.append(ctl.begin_step(None))
        ctl.end_step(e)
    # target after e_2: 0.5 * 0.3 = 0.15; e_2 = 0.2 above it closes the gate (c stays 0);
    # e_3 = 0.1 below: c_4 = 0.01, gate open for step 4; e_4 below: c_5 = 0.02.
    assert ctl.target == pytest.approx(0.15)
    assert alphas == pytest.approx([0.0, 0.0, 0.0, 0.01])
    assert ctl.begin_step(None) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="after the update"):
        ctl.end_step(None)
