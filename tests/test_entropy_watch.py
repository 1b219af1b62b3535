"""The trainer's side of the entropy diagnosis: the alarm over metric rows, its warning,
summary and state; the auto-target controller built from the config."""

from __future__ import annotations

import json
import logging

import pytest

from or1.algo import AutoTargetEntropyController
from or1.build import make_entropy_controller
from or1.config import load_config
from or1.entropy_watch import EntropyWatch, entropy_target

ALARM = ["algo.entropy.alarm.window=1", "algo.entropy.alarm.within=10"]


def _row(entropy: float, **more: float) -> dict[str, float]:
    return {
        "entropy_sampled": entropy,
        "n_sgd": 1,
        "clip_frac_low": 0.0,
        "clip_frac_high": 0.0,
    } | more


def test_the_watch_warns_once_with_the_causes(caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config("tiny-arith", [*ALARM, "rollout.temperature=0.6", "algo.kl_beta=0.001"])
    watch = EntropyWatch(cfg)
    with caplog.at_level(logging.WARNING, logger="or1.trainer"):
        out = [watch.observe(1, _row(0.4, n_sgd=4)), watch.observe(2, {"accuracy": 0.5})]
        out += [watch.observe(3, _row(0.1, n_sgd=2)), watch.observe(4, _row(0.1))]
    # a skipped update (no entropy_sampled) logs nothing; 0.1 / 0.4 = 0.25 < 0.5 fires
    assert out[1] == {} and out[0]["entropy_collapse"] == 0.0
    assert out[2] == {"entropy_collapse": 1.0, "entropy_vs_start": pytest.approx(0.25)}
    assert out[3]["entropy_collapse"] == 1.0  # stays 1 after the alarm
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("step 3: entropy collapse")
    assert (
        "25% of its start (0.4 -> 0.1 nats" in warnings[0] and "N_SGD = 3 > 1" in warnings[0]
    )  # (4 + 2) / 2
    assert "temperature 0.6" in warnings[0] and "kl_beta = 0.001" in warnings[0]
    assert watch.summary() == {"step": 3, "causes": ["n_sgd", "temperature", "kl"]}
    again = EntropyWatch(cfg)
    again.load_state_dict(json.loads(json.dumps(watch.state_dict())))
    assert again.summary() == watch.summary() and again.observe(5, _row(0.1)) == out[3]


def test_a_disabled_watch_logs_nothing() -> None:
    watch = EntropyWatch(load_config("tiny-arith", [*ALARM, "algo.entropy.alarm.enabled=false"]))
    assert watch.observe(1, _row(0.4)) == {} and watch.observe(2, _row(0.0)) == {}
    assert watch.summary() is None


def test_no_known_cause_says_so() -> None:
    watch = EntropyWatch(load_config("tiny-arith", ALARM))
    watch.observe(1, _row(0.4))
    watch.observe(2, _row(0.1))
    assert "none of the known signals" in watch.message()
    assert watch.summary() == {"step": 2, "causes": []}


@pytest.mark.parametrize("gate", ["current", "previous"])
def test_target_auto_builds_the_measuring_controller(gate: str) -> None:
    cfg = load_config(
        "tiny-arith",
        ["algo.entropy.target=auto", "algo.entropy.auto_steps=2", f"algo.entropy.gate={gate}"],
    )
    ctl = make_entropy_controller(cfg)
    assert isinstance(ctl, AutoTargetEntropyController) and ctl.gate == gate
    assert entropy_target(ctl) == {}
    for e in (0.3, 0.1):
        ctl.begin_step(e)
        ctl.end_step(e)
    assert entropy_target(ctl) == {"entropy_target": pytest.approx(0.5 * 0.2)}
    assert ctl.inner is not None and ctl.inner.gate == gate and ctl.inner.delta == 0.005
    assert entropy_target(make_entropy_controller(load_config("tiny-arith", []))) == {
        "entropy_target": 0.05  # the preset's fixed target
    }
