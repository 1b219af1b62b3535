"""The study's runs: one run's statistics, the plan of variants, a micro-study end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from or1.config import load_config
from or1.study import (
    FINDINGS,
    VARIANTS,
    Finding,
    PairedTest,
    Study,
    StudySettings,
    findings_markdown,
    run_stats,
    run_study,
)
from or1.study.runner import problems_file
from or1.study.stats import read_problems
from or1.study.variants import CLIP_N_SGD, HOT_LR, LONG, MERGE_RATE
from or1.tracking import read_jsonl


def _rows(entropy: list[float | None], **columns: list[float]) -> list[dict]:
    rows = []
    for i, h in enumerate(entropy):
        row = {"step": i + 1, "entropy_full": h, "entropy_sampled": h}
        row.update({k: v[i] for k, v in columns.items()})
        rows.append(row)
    return rows


def test_run_stats_by_hand() -> None:
    # 20 steps, entropy 0.20, 0.19, ..., 0.01; tail = 20% = 4 steps.
    entropy = [round(0.2 - 0.01 * i, 4) for i in range(20)]
    trunc = [0.5] * 16 + [0.5, 0.5, 0.1, 0.3]
    acc = [0.0] * 18 + [0.5, 1.0]
    rows = _rows(entropy, truncation_ratio=trunc, accuracy=acc)
    rows[5]["entropy_full"] = None  # a step with no update: left out, not counted as 0
    evals = [
        {"step": 0, "avg_at_k": 0.4, "label": "base"},
        {"step": 10, "avg_at_k": 0.5, "label": "final"},
        {"step": 20, "avg_at_k": 0.7, "label": "final"},
    ]
    stats = run_stats(rows, evals)
    kept = [h for i, h in enumerate(entropy) if i != 5]  # 19 values; tail ceil(3.8) = 4
    assert stats["steps"] == 20
    assert stats["initial_entropy"] == pytest.approx((0.20 + 0.19 + 0.18 + 0.17) / 4)
    assert stats["final_entropy"] == pytest.approx((0.04 + 0.03 + 0.02 + 0.01) / 4)
    assert stats["entropy_auc"] == pytest.approx(sum(kept) / 19)
    assert stats["peak_entropy"] == pytest.approx(0.185)  # 4-step moving average
    assert stats["base_accuracy"] == 0.4 and stats["final_accuracy"] == 0.7
    assert stats["accuracy_gain"] == pytest.approx(0.3)
    assert stats["final_truncation"] == pytest.approx(0.35)
    assert stats["initial_truncation"] == pytest.approx(0.5)
    assert stats["final_train_accuracy"] == pytest.approx(0.375)


def test_run_stats_peak_finds_a_spike_and_missing_evals_are_none() -> None:
    entropy = [0.1] * 10 + [0.5, 0.7, 0.7, 0.5] + [0.1] * 6  # a 4-step spike in 20 steps
    stats = run_stats(_rows(entropy), [])
    assert stats["peak_entropy"] == pytest.approx(0.6)
    assert stats["initial_entropy"] == pytest.approx(0.1)
    assert stats["final_accuracy"] is None and stats["accuracy_gain"] is None


def test_segments_and_plan() -> None:
    assert StudySettings(steps=40, eval_every=20).segment_ends() == [20, 40]
    assert StudySettings(steps=40, eval_every=15).segment_ends() == [15, 30, 40]
    study = Study(StudySettings.quick(), Path("unused"))
    keys = {key for f in FINDINGS for key, _ in f.variants}
    assert len(study.runs) == len(keys) * 2  # a variant shared by findings (on-policy) runs once
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
    on_long, mini_long = stage["on-policy-long"], stage["off-mini-long"]
    assert on_long.batch_size == on_long.mini_batch_size == 16
    assert mini_long.batch_size // mini_long.mini_batch_size == 4
    assert cfgs["off-reuse-long"].algo.reuse_epochs == 4
    assert stage["off-reuse-long"].batch_size == stage["off-reuse-long"].mini_batch_size
    # The off-policy runs are LONG x the study's steps, evaluated LONG x as far apart.
    long = {k for k, c in cfgs.items() if c.stages[0].steps == LONG * s.steps}
    assert long == {"on-policy-long", "off-mini-long", "off-reuse-long"}
    assert {c.stages[0].steps for k, c in cfgs.items() if k not in long} == {s.steps}
    ends = {spec.variant: spec.segment_ends for spec in study.runs}
    assert ends["off-mini-long"] == tuple(LONG * e for e in ends["on-policy"])
    for key, eps in (("clip-0.2", 0.2), ("clip-0.265", 0.265), ("clip-0.28", 0.28)):
        assert cfgs[key].algo.clip_high == eps
        assert stage[key].batch_size // stage[key].mini_batch_size == CLIP_N_SGD
    hot = {k for k, c in cfgs.items() if c.optim.lr == HOT_LR}
    assert hot == {"clip-0.2", "clip-0.265", "clip-0.28"}
    assert cfgs["on-policy"].optim.lr < HOT_LR
    assert cfgs["adaptive"].algo.entropy.mode == "adaptive"
    assert cfgs["fixed-large"].algo.entropy.coef > cfgs["fixed-small"].algo.entropy.coef > 0
    assert stage["trunc-mask"].max_response_length == s.truncation_length
    assert cfgs["trunc-mask"].algo.truncation == "mask"
    trunc = {k for k, c in cfgs.items() if c.data.arith.teacher_merge_rate == MERGE_RATE}
    assert trunc == {"trunc-keep", "trunc-mask"}  # the rest train from the usual base
    assert {c.data.arith.teacher_merge_rate for k, c in cfgs.items() if k not in trunc} == {0}
    assert stage["group-2x"].group_size == 16 and stage["batch-2x"].batch_size == 32
    assert cfgs["kl-1e-3"].algo.kl_beta == 0.001 and cfgs["temp-0.6"].rollout.temperature == 0.6
    assert {c.train.seed for c in cfgs.values()} == {0}


def test_a_variant_with_its_own_warmup_gets_one_per_seed() -> None:
    study = Study(StudySettings.quick(), Path("unused"))
    assert {k for k, v in VARIANTS.items() if v.warmup} == {"trunc-keep", "trunc-mask"}
    specs = study.warmup_specs()
    assert sorted(specs) == [0, 1]
    for seed, warmups in specs.items():  # the shared base first, then the truncation one
        cfgs = [load_config(preset, list(overrides)) for preset, overrides in warmups]
        assert [c.data.arith.teacher_merge_rate for c in cfgs] == [0.0, MERGE_RATE]
        assert {c.train.seed for c in cfgs} == {seed}


MICRO = Finding(
    "micro",
    "off-policy lowers the entropy and the accuracy",
    (("on-policy-long", "N_SGD 1"), ("off-mini-long", "N_SGD 4")),
    (
        PairedTest("entropy", "off-mini-long", "on-policy-long", "entropy", "ratio", "<"),
        PairedTest("accuracy", "on-policy-long", "off-mini-long", "heldout", "diff", ">"),
    ),
)


@pytest.mark.slow
def test_micro_study_end_to_end(small_args: list[str], tmp_path: Path) -> None:
    settings = StudySettings(
        preset="tiny-arith",  # small_args are overrides of tiny-arith's two stages
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
    assert on_file["tests"]["resamples"] == 10_000
    constants = on_file["constants"]
    assert (constants["off_policy_length"], constants["clip_lr"]) == (LONG, HOT_LR)
    assert on_file["runs_done"] == on_file["runs_planned"] == 2
    entry = on_file["findings"]["micro"]
    assert set(entry) >= {"claim", "variants", "tests", "rule", "verdict", "reproduced", "plot"}
    assert entry["reproduced"] == (entry["verdict"] == "reproduced")
    finals = {}
    for key in ("on-policy-long", "off-mini-long"):  # LONG (2) x 4 steps, evals 2 x as far apart
        run_dir = out / "runs" / "micro" / f"{key}-s0"
        rows, evals = read_jsonl(run_dir / "metrics.jsonl"), read_jsonl(run_dir / "eval.jsonl")
        assert [r["step"] for r in rows] == list(range(1, 9))
        assert [e["step"] for e in evals] == [0, 4, 8]  # base + one eval per segment
        # Each segment's per-problem table is kept (the trainer names every one "final").
        tables = {step: read_problems(problems_file(run_dir, step)) for step in (0, 4, 8)}
        for step, table in tables.items():
            assert len(table) == 4
            mean = sum(table.values()) / 4
            assert mean == pytest.approx(next(e["avg_at_k"] for e in evals if e["step"] == step))
        finals[key] = tables[8]
        stats = entry["variants"][key]["seeds"]["0"]
        entropy = [r["entropy_full"] for r in rows if r.get("entropy_full") is not None]
        tail = entropy[-math.ceil(0.2 * len(entropy)) :]  # 20% of 8 steps: 2
        assert stats["final_entropy"] == pytest.approx(sum(tail) / len(tail))
        assert stats["entropy_auc"] == pytest.approx(sum(entropy) / len(entropy))
        assert stats["final_accuracy"] == pytest.approx(evals[-1]["avg_at_k"])
        assert stats["base_accuracy"] == pytest.approx(evals[0]["avg_at_k"])
        trunc = [r["truncation_ratio"] for r in rows[-len(tail) :]]
        assert stats["final_truncation"] == pytest.approx(sum(trunc) / len(trunc))
    off_rows = read_jsonl(out / "runs" / "micro" / "off-mini-long-s0" / "metrics.jsonl")
    assert {r["n_sgd"] for r in off_rows} == {4}  # 4 groups of 4 prompts, mini-batch 1
    ratio, diff = entry["tests"]
    means = {k: v["mean"]["final_entropy"] for k, v in entry["variants"].items()}
    assert ratio["estimate"] == pytest.approx(means["off-mini-long"] / means["on-policy-long"])
    assert ratio["units"] == 2 and ratio["seeds"] == 1
    # The accuracy test is the mean per-problem difference of the two final tables.
    on, off = finals["on-policy-long"], finals["off-mini-long"]
    expected = sum(on[u] - off[u] for u in on)
    assert diff["estimate"] == pytest.approx(expected / 4)
    assert diff["units"] == 4 and diff["verdict"] in {"reproduced", "inconclusive", "opposite"}
    assert (out / "plots" / "micro.png").stat().st_size > 1000
    assert "micro" in (out / "report.html").read_text()
    markdown = findings_markdown(doc)
    assert "| micro | N_SGD 4 |" in markdown and "| accuracy |" in markdown
    assert (out / "findings.md").read_text() == markdown + "\n"
    assert not math.isnan(doc["wall_seconds"])

    # Done runs are skipped; the findings are recomputed from the same files.
    said.clear()
    again = run_study(study, jobs=1, say=said.append)
    assert sum("already done" in m for m in said) == 2
    assert again["findings"]["micro"]["tests"] == entry["tests"]


def test_report_only_trains_nothing_and_says_what_is_missing(tmp_path: Path) -> None:
    study = Study(StudySettings.quick(), tmp_path / "study")
    said: list[str] = []
    doc = run_study(study, jobs=1, say=said.append, train=False)
    assert not said and not (tmp_path / "study" / "runs").exists()  # nothing trained
    assert doc["runs_done"] == 0 and doc["runs_planned"] == len(study.runs) == 2 * len(VARIANTS)
    assert {f["verdict"] for f in doc["findings"].values()} == {"not measured"}
    assert (tmp_path / "study" / "findings.json").is_file()
    assert (tmp_path / "study" / "plots" / "off_policy.png").is_file()
