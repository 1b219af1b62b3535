"""The entropy study: statistics and rules on synthetic metrics; a micro-study end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from or1.config import load_config
from or1.study import (
    FINDINGS,
    VARIANTS,
    Check,
    Finding,
    Study,
    StudySettings,
    evaluate_finding,
    findings_markdown,
    run_stats,
    run_study,
)
from or1.tracking import read_jsonl


def _rows(entropy: list[float | None], **columns: list[float]) -> list[dict]:
    rows = []
    for i, h in enumerate(entropy):
        row = {"step": i + 1, "entropy_full": h, "entropy_sampled": h}
        row.update({k: v[i] for k, v in columns.items()})
        rows.append(row)
    return rows


def test_run_stats_by_hand() -> None:
    # 20 steps, entropy 0.20, 0.19, ..., 0.01; tail = 10% = 2 steps.
    entropy = [round(0.2 - 0.01 * i, 4) for i in range(20)]
    trunc = [0.5] * 18 + [0.1, 0.3]
    acc = [0.0] * 18 + [0.5, 1.0]
    rows = _rows(entropy, truncation_ratio=trunc, accuracy=acc)
    rows[5]["entropy_full"] = None  # a step with no update: left out, not counted as 0
    evals = [
        {"step": 0, "avg_at_k": 0.4, "label": "base"},
        {"step": 10, "avg_at_k": 0.5, "label": "final"},
        {"step": 20, "avg_at_k": 0.7, "label": "final"},
    ]
    stats = run_stats(rows, evals)
    kept = [h for i, h in enumerate(entropy) if i != 5]  # 19 values; tail ceil(1.9) = 2
    assert stats["steps"] == 20
    assert stats["initial_entropy"] == pytest.approx((0.20 + 0.19) / 2)
    assert stats["final_entropy"] == pytest.approx((0.02 + 0.01) / 2)
    assert stats["entropy_auc"] == pytest.approx(sum(kept) / 19)
    assert stats["peak_entropy"] == pytest.approx((0.20 + 0.19) / 2)  # 2-step moving average
    assert stats["base_accuracy"] == 0.4 and stats["final_accuracy"] == 0.7
    assert stats["accuracy_gain"] == pytest.approx(0.3)
    assert stats["final_truncation"] == pytest.approx(0.2)
    assert stats["initial_truncation"] == pytest.approx(0.5)
    assert stats["final_train_accuracy"] == pytest.approx(0.75)


def test_run_stats_peak_finds_a_spike_and_missing_evals_are_none() -> None:
    entropy = [0.1] * 10 + [0.5, 0.7] + [0.1] * 8  # a 2-step spike in 20 steps
    stats = run_stats(_rows(entropy), [])
    assert stats["peak_entropy"] == pytest.approx(0.6)
    assert stats["initial_entropy"] == pytest.approx(0.1)
    assert stats["final_accuracy"] is None and stats["accuracy_gain"] is None


def test_check_rule_text_and_missing_values() -> None:
    check = Check(("off", "final_entropy"), "<", ("on", "final_entropy"), 0.5)
    assert check.rule() == "final_entropy[off] < 0.5 x final_entropy[on]"
    assert check.evaluate({"off": {"final_entropy": 0.04}, "on": {"final_entropy": 0.1}}) == {
        "left": 0.04,
        "right": 0.05,
        "passed": True,
    }
    assert not check.evaluate({"off": {"final_entropy": 0.06}, "on": {"final_entropy": 0.1}})[
        "passed"
    ]
    missing = check.evaluate({"on": {"final_entropy": 0.1}})
    assert missing["passed"] is False and missing["note"] == "not measured"
    margin = Check(("a", "final_accuracy"), ">", ("b", "final_accuracy"), offset=0.02)
    assert margin.rule() == "final_accuracy[a] > final_accuracy[b] + 0.02"
    assert not margin.evaluate({"a": {"final_accuracy": 0.61}, "b": {"final_accuracy": 0.6}})[
        "passed"
    ]


def test_check_around_compares_distances_to_a_target() -> None:
    closer = Check(("adaptive", "h"), "<", ("none", "h"), around=0.1)
    assert closer.rule() == "|h[adaptive] - 0.1| < |h[none] - 0.1|"
    result = closer.evaluate({"adaptive": {"h": 0.12}, "none": {"h": 0.07}})
    assert result["passed"] and result["left"] == pytest.approx(0.02)
    assert not closer.evaluate({"adaptive": {"h": 0.14}, "none": {"h": 0.07}})["passed"]


def _off_policy_stats(off_entropy: tuple[float, float]) -> dict:
    def one(h: float, acc: float) -> dict:
        return {"final_entropy": h, "final_accuracy": acc}

    return {
        "on-policy": {0: one(0.10, 0.70), 1: one(0.12, 0.66)},
        "off-mini": {0: one(off_entropy[0], 0.50), 1: one(off_entropy[1], 0.55)},
        "off-reuse": {0: one(0.02, 0.40), 1: one(0.03, 0.45)},
    }


def test_off_policy_finding_on_synthetic_stats() -> None:
    finding = next(f for f in FINDINGS if f.key == "off_policy")
    entry = evaluate_finding(finding, _off_policy_stats((0.03, 0.05)))
    # Seed means: on 0.11, off-mini 0.04 < 0.055, off-reuse 0.025; accuracies 0.68 vs 0.525.
    assert entry["reproduced"] is True
    assert [c["passed"] for c in entry["checks"]] == [True, True, True, True]
    assert entry["checks"][0]["left"] == pytest.approx(0.04)
    assert entry["checks"][0]["right"] == pytest.approx(0.055)
    # Seed 1 alone: off-mini 0.05 < 0.5 x 0.12 = 0.06 holds too.
    assert entry["reproduced_seeds"] == "2/2"
    assert entry["variants"]["off-mini"]["mean"]["final_entropy"] == pytest.approx(0.04)
    # A milder off-policy drop (0.07, 0.065 vs 0.11) is not a collapse by the rule.
    entry = evaluate_finding(finding, _off_policy_stats((0.07, 0.065)))
    assert entry["reproduced"] is False
    assert entry["checks"][0]["passed"] is False
    assert entry["reproduced_seeds"] == "0/2"
    # One seed reproducing alone is reported as such.
    entry = evaluate_finding(finding, _off_policy_stats((0.02, 0.09)))
    assert entry["reproduced_by_seed"] == {"0": True, "1": False}


def test_a_missing_variant_fails_its_checks() -> None:
    finding = next(f for f in FINDINGS if f.key == "kl")
    entry = evaluate_finding(finding, {"on-policy": {0: {"final_accuracy": 0.7}}})
    assert entry["reproduced"] is False
    assert entry["checks"][0]["note"] == "not measured"


def test_segments_and_plan() -> None:
    assert StudySettings(steps=40, eval_every=20).segment_ends() == [20, 40]
    assert StudySettings(steps=40, eval_every=15).segment_ends() == [15, 30, 40]
    study = Study(StudySettings.quick(), Path("unused"))
    keys = {key for f in FINDINGS for key, _ in f.variants}
    assert len(study.runs) == len(keys) * 2  # shared variants (on-policy, off-mini) run once
    assert all(key in VARIANTS for key in keys)


def test_every_variant_is_a_valid_config_doing_what_it_says() -> None:
    s = StudySettings.quick()
    study = Study(s, Path("unused"))
    cfgs = {
        spec.variant: load_config(spec.preset, list(spec.overrides))
        for spec in study.runs
        if spec.seed == 0
    }
    stage = {k: c.stages[0] for k, c in cfgs.items()}
    assert all(len(c.stages) == 1 and c.eval.max_tokens == 32 for c in cfgs.values())
    assert stage["on-policy"].batch_size == stage["on-policy"].mini_batch_size == 16
    assert cfgs["on-policy"].algo.entropy.mode == "off"
    assert stage["off-mini"].batch_size // stage["off-mini"].mini_batch_size == 4
    assert cfgs["off-reuse"].algo.reuse_epochs == 4
    assert cfgs["clip-0.28"].algo.clip_high == 0.28 and stage["clip-0.28"].mini_batch_size == 4
    assert cfgs["adaptive"].algo.entropy.mode == "adaptive"
    assert cfgs["fixed-large"].algo.entropy.coef > cfgs["fixed-small"].algo.entropy.coef > 0
    assert stage["trunc-mask"].max_response_length == s.truncation_length
    assert cfgs["trunc-mask"].algo.truncation == "mask"
    assert stage["group-2x"].group_size == 16 and stage["batch-2x"].batch_size == 32
    assert cfgs["kl-1e-3"].algo.kl_beta == 0.001 and cfgs["temp-0.6"].rollout.temperature == 0.6
    assert {c.train.seed for c in cfgs.values()} == {0}


MICRO = Finding(
    "micro",
    "off-policy halves the entropy",
    (("on-policy", "N_SGD 1"), ("off-mini", "N_SGD 4")),
    (Check(("off-mini", "final_entropy"), "<", ("on-policy", "final_entropy"), 0.5),),
)


@pytest.mark.slow
def test_micro_study_end_to_end(small_args: list[str], tmp_path: Path) -> None:
    settings = StudySettings(
        steps=4,
        batch_size=4,
        group_size=4,
        eval_every=2,
        eval_samples=2,
        eval_problems=4,
        seeds=(0,),
        mode="micro",
    )
    out = tmp_path / "study"
    # The micro model mostly fails every sample; keep uniform groups so every step updates.
    overrides = (*small_args, "algo.reject_uniform_groups=false")
    study = Study(settings, out, overrides=overrides, findings=(MICRO,))
    said: list[str] = []
    doc = run_study(study, jobs=1, say=said.append)

    on_file = json.loads((out / "findings.json").read_text())
    assert on_file["findings"].keys() == {"micro"} and on_file["mode"] == "micro"
    entry = on_file["findings"]["micro"]
    assert set(entry) >= {"claim", "variants", "checks", "rule", "reproduced", "plot"}
    assert isinstance(entry["reproduced"], bool)
    assert entry["reproduced"] == entry["checks"][0]["passed"]
    for key in ("on-policy", "off-mini"):
        run_dir = out / "runs" / "micro" / f"{key}-s0"
        rows, evals = read_jsonl(run_dir / "metrics.jsonl"), read_jsonl(run_dir / "eval.jsonl")
        assert [r["step"] for r in rows] == [1, 2, 3, 4]
        assert [e["step"] for e in evals] == [0, 2, 4]  # base + one eval per segment
        stats = entry["variants"][key]["seeds"]["0"]
        entropy = [r["entropy_full"] for r in rows if r.get("entropy_full") is not None]
        assert stats["final_entropy"] == pytest.approx(entropy[-1])  # tail of 4 steps = 1
        assert stats["entropy_auc"] == pytest.approx(sum(entropy) / len(entropy))
        assert stats["final_accuracy"] == pytest.approx(evals[-1]["avg_at_k"])
        assert stats["base_accuracy"] == pytest.approx(evals[0]["avg_at_k"])
        assert stats["final_truncation"] == pytest.approx(rows[-1]["truncation_ratio"])
    off_rows = read_jsonl(out / "runs" / "micro" / "off-mini-s0" / "metrics.jsonl")
    assert {r["n_sgd"] for r in off_rows} == {4}  # 4 groups of 4 prompts, mini-batch 1
    check = entry["checks"][0]
    means = {k: v["mean"]["final_entropy"] for k, v in entry["variants"].items()}
    assert check["left"] == means["off-mini"] and check["right"] == 0.5 * means["on-policy"]
    assert (out / "plots" / "micro.png").stat().st_size > 1000
    assert "micro" in (out / "report.html").read_text()
    assert "| micro | N_SGD 4 |" in findings_markdown(doc)
    assert not math.isnan(doc["wall_seconds"])

    # Done runs are skipped; the findings are recomputed from the same files.
    said.clear()
    again = run_study(study, jobs=1, say=said.append)
    assert sum("already done" in m for m in said) == 2
    assert again["findings"]["micro"]["checks"] == entry["checks"]
