"""The released code's loss weighting and entropy-gate timing (pure parts), against
hand-computed numbers (docs/recipe.md)."""

from __future__ import annotations

import json

import pytest
import torch

from or1.algo import AdaptiveEntropyController, micro_token_mean_normalizer


def test_micro_token_mean_normalizer_is_tokens_times_mini_rows_over_rows() -> None:
    m = torch.tensor([[1, 1, 1], [1, 0, 0]])  # 2 rows, 4 tokens
    assert micro_token_mean_normalizer(m, mini_batch_rows=8) == 4 * 8 / 2
    padded = torch.tensor([[1, 1, 0], [0, 0, 0]])  # a shard's padding row does not count
    assert micro_token_mean_normalizer(padded, mini_batch_rows=4) == 2 * 4 / 1
    assert micro_token_mean_normalizer(torch.zeros(2, 3), mini_batch_rows=4) == 1.0
    with pytest.raises(ValueError, match="mini_batch_rows"):
        micro_token_mean_normalizer(m, mini_batch_rows=0)


ENTROPIES = [0.1, 0.3, 0.1, 0.1]  # target 0.2: below, above, below, below


def _alphas(gate: str) -> tuple[list[float], float]:
    ctl = AdaptiveEntropyController(target=0.2, delta=0.005, gate=gate)
    alphas = []
    for e in ENTROPIES:
        alphas.append(ctl.begin_step(e if gate == "current" else None))
        ctl.end_step(e)
    return alphas, ctl.value


def test_gate_current_is_the_paper_alpha_k_gated_by_e_k() -> None:
    # c: 0 -> .005 -> 0 -> .005 -> .01; alpha_k = c_k if e_k < target
    alphas, value = _alphas("current")
    assert alphas == pytest.approx([0.0, 0.0, 0.0, 0.005]) and value == pytest.approx(0.01)


def test_gate_previous_is_the_released_alpha_k_gated_by_e_k_minus_1() -> None:
    # same c recursion; alpha_k = c_k if e_{k-1} < target (open before the first step)
    alphas, value = _alphas("previous")
    assert alphas == pytest.approx([0.0, 0.005, 0.0, 0.005]) and value == pytest.approx(0.01)


def test_gate_previous_resumes_with_its_gate() -> None:
    ctl = AdaptiveEntropyController(target=0.2, delta=0.005, gate="previous")
    for e in (0.1, 0.1, 0.3):  # c: .005, .01, then .005 with the gate closed
        ctl.begin_step(None)
        ctl.end_step(e)
    state = json.loads(json.dumps(ctl.state_dict()))
    resumed = AdaptiveEntropyController(target=0.2, delta=0.005, gate="previous")
    resumed.load_state_dict(state)
    assert resumed.value == pytest.approx(0.005) and resumed.begin_step(None) == 0.0
    del state["open"]  # a checkpoint written before the setting: gate open
    old = AdaptiveEntropyController(target=0.2, delta=0.005, gate="previous")
    old.load_state_dict(state)
    assert old.begin_step(None) == pytest.approx(0.005)
    assert "open" not in AdaptiveEntropyController().state_dict()  # paper state unchanged


def test_gate_errors_name_what_is_missing() -> None:
    with pytest.raises(ValueError, match="gate must be"):
        AdaptiveEntropyController(gate="next")
    with pytest.raises(ValueError, match="needs this step's entropy"):
        AdaptiveEntropyController().begin_step(None)
    with pytest.raises(ValueError, match="finite"):
        AdaptiveEntropyController(gate="previous").end_step(float("nan"))
