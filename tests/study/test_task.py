"""The study's task (preset study-arith) and settings: what docs/study.md states of them
holds for the generated problems, and the full / quick studies train what they say."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from or1.build.start import tiny_tokenizer
from or1.config import load_config
from or1.data.tasks.arith import generate_splits, teacher_solution
from or1.study import VARIANTS, Study, StudySettings
from or1.study.curve import heldout_table, main, plot_learning_curve
from or1.study.variants import LONG


def _solution_lengths(preset: str, merge_rate: float = 0.0) -> list[tuple[int, int]]:
    """(terms, tokens with the end-of-turn token) of the teacher's correct solutions of
    the train split, in the tokenizer the task's model is built with."""
    cfg = load_config(preset)
    tokenizer = tiny_tokenizer(cfg)
    train, _ = generate_splits(cfg.data.arith, seed=0)
    rng = random.Random(0)
    return [
        (
            len(p.extra_info["terms"]),
            len(tokenizer(teacher_solution(p, rng, 0.0, merge_rate=merge_rate))["input_ids"]) + 1,
        )
        for p in train
    ]


def _cut(lengths: list[tuple[int, int]], limit: int, terms: int) -> float:
    """The share of the ``terms``-term solutions longer than ``limit`` tokens."""
    chains = [n for t, n in lengths if t == terms]
    return sum(n > limit for n in chains) / len(chains)


def test_study_task_is_harder_and_fits_the_full_study_lengths() -> None:
    study, easy = load_config("study-arith"), load_config("tiny-arith")
    assert study.data.arith.min_terms > easy.data.arith.min_terms  # longer chains
    assert study.data.arith.max_terms > easy.data.arith.max_terms
    # Everything but the task's difficulty and the stage is tiny-arith's.
    for section in ("model", "warmup", "optim", "algo"):
        assert getattr(study, section) == getattr(easy, section), section
    full = StudySettings()
    lengths = _solution_lengths("study-arith")
    assert max(n for _, n in lengths) <= full.max_response_length  # cuts no solution
    quick = StudySettings.quick()
    assert max(n for _, n in _solution_lengths("tiny-arith")) <= quick.max_response_length


@pytest.mark.parametrize(("preset", "quick"), [("study-arith", False), ("tiny-arith", True)])
def test_the_truncation_stage_cuts_the_long_form_and_not_the_merged_one(
    preset: str, quick: bool
) -> None:
    s = StudySettings.quick() if quick else StudySettings()
    longest = 3 if quick else 4  # terms of the longest chains
    one_per_line = _solution_lengths(preset)
    merged = _solution_lengths(preset, merge_rate=1.0)
    # One step per line, most of the longest chains overflow; written with two steps on
    # one line, almost none: a shorter, harder answer is the way to stay inside.
    assert _cut(one_per_line, s.truncation_length, longest) > 0.6
    assert _cut(merged, s.truncation_length, longest) < 0.1
    shorter = {t for t, _ in one_per_line if t < longest}
    assert shorter and max(_cut(one_per_line, s.truncation_length, t) for t in shorter) < 0.1


def test_full_study_trains_study_arith_and_quick_tiny_arith() -> None:
    full = Study(StudySettings(), Path("unused"))
    quick = Study(StudySettings.quick(), Path("unused"))
    assert {r.preset for r in full.runs} == {"study-arith"}
    assert {r.preset for r in quick.runs} == {"tiny-arith"}
    chosen = Study(StudySettings(), Path("unused"), preset="tiny-arith")  # --preset wins
    assert {r.preset for r in chosen.runs} == {"tiny-arith"}
    s = full.settings
    cfgs = {r.variant: load_config(r.preset, list(r.overrides)) for r in full.runs if r.seed == 0}
    on, trunc = cfgs["on-policy"], cfgs["trunc-mask"]
    assert on.data.arith.max_terms == 4 and len(on.stages) == 1
    assert on.stages[0].steps == s.steps and on.stages[0].batch_size == s.batch_size
    assert on.stages[0].max_response_length == on.eval.max_tokens == s.max_response_length
    assert trunc.stages[0].max_response_length == s.truncation_length
    assert trunc.eval.max_tokens == s.max_response_length  # held-out evals at full length
    ends = {r.variant: r.segment_ends[-1] for r in full.runs}
    assert ends["on-policy"] == s.steps and ends["on-policy-long"] == LONG * s.steps
    assert len(full.runs) == len(VARIANTS) * len(s.seeds)


def _fake_run(run_dir: Path, heldout: dict[int, float], steps: int) -> Path:
    run_dir.mkdir(parents=True)
    rows = [
        {"step": i, "accuracy": i / steps, "entropy_full": 0.1 - i / 1000}
        for i in range(1, steps + 1)
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    evals = [{"step": s, "avg_at_k": v} for s, v in heldout.items()]
    evals.append({"step": steps, "avg_at_k": 0.9, "benchmark": "aime24"})  # not the test split
    (run_dir / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    return run_dir


def test_learning_curve_plot_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _fake_run(tmp_path / "a", {0: 0.2, 10: 0.3, 20: 0.35}, 20)
    b = _fake_run(tmp_path / "b", {0: 0.25, 20: 0.4}, 20)
    assert heldout_table([a, b]) == [(0, [0.2, 0.25]), (10, [0.3, None]), (20, [0.35, 0.4])]
    png = plot_learning_curve([a, b], tmp_path / "curve.png", "t")
    assert png.stat().st_size > 1000
    assert main([str(a), str(b), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "| 10 | 0.300 | - |" in out and "| 20 | 0.350 | 0.400 |" in out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nothing"), "--out", str(tmp_path / "d.png")])


def test_runs_are_ordered_seed_by_seed_finding_by_finding() -> None:
    from or1.study import FINDINGS
    from or1.study.runner import run_order

    study = Study(StudySettings(seeds=(2, 0)), Path("unused"))
    order = run_order(study)
    assert [seed for seed, _ in order] == [2, 0]  # the seeds as given
    for seed, specs in order:
        keys = [r.variant for r in specs]
        assert {r.seed for r in specs} == {seed} and len(keys) == len(VARIANTS) == len(set(keys))
        assert keys[:4] == ["on-policy-long", "off-mini-long", "off-reuse-long", "on-policy"]
        for finding in FINDINGS:  # each finding's runs are done before the next one's start
            done = max(keys.index(k) for k, _ in finding.variants)
            later = FINDINGS[FINDINGS.index(finding) + 1 :]
            assert all(
                keys.index(k) > done
                for f in later
                for k, _ in f.variants
                if k
                not in {v for g in FINDINGS[: FINDINGS.index(finding) + 1] for v, _ in g.variants}
            )


def test_parallel_execution_trains_the_seeds_in_the_order_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seed 1 (given first) has the slow warm-up: seed 0's, ready first, waits for it."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from or1.study import runner

    events: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def warmup(preset: str, overrides: tuple[str, ...]) -> float:
        seed = int(next(o for o in overrides if o.startswith("train.seed="))[11:])
        time.sleep(0.3 if seed == 1 else 0.0)
        with lock:
            events.append(("warmup", seed, ""))
        return 0.0

    def train(spec: runner.RunSpec) -> dict:
        with lock:
            events.append(("run", spec.seed, spec.variant))
        return {"skipped": True}

    monkeypatch.setattr(runner, "prepare_warmup", warmup)
    monkeypatch.setattr(runner, "train_run", train)
    study = Study(StudySettings(seeds=(1, 0, 2)), Path("unused"))
    said: list[str] = []
    runner.execute(study, jobs=2, say=said.append, make_pool=ThreadPoolExecutor)
    runs = [(seed, key) for kind, seed, key in events if kind == "run"]
    n = len(VARIANTS)
    assert [seed for seed, _ in runs] == [1] * n + [0] * n + [2] * n
    assert [key for _, key in runs[:n]] == [r.variant for r in runner.run_order(study)[0][1]]
    warmups = [seed for kind, seed, _ in events if kind == "warmup"]
    # Two warm-ups per seed, one after the other: the shared base and the truncation
    # finding's (Variant.warmup); seeds 1 and 0 at once, seed 2's after.
    assert sorted(warmups) == [0, 0, 1, 1, 2, 2]
    assert list(dict.fromkeys(warmups)) == [0, 1, 2]
    assert events.index(("warmup", 2, "")) > events.index(("run", 1, "on-policy"))
    assert sum("already done" in m for m in said) == 3 * n
