from __future__ import annotations

import json
from pathlib import Path

import pytest

from or1.config import Config, load_config
from or1.rewards.verdict import Verdict
from or1.stages import stage_of
from or1.trainer import Trainer, make_entropy_controller


def test_stage_of_maps_steps_to_stages() -> None:
    stages = load_config("tiny-arith", ["stages.0.steps=2", "stages.1.steps=3"]).stages
    assert [stage_of(stages, s) for s in range(1, 6)] == [0, 0, 1, 1, 1]


def test_entropy_modes() -> None:
    adaptive = make_entropy_controller(load_config("tiny-arith", ["algo.entropy.target=0.3"]))
    assert adaptive.update(0.1) == 0.0 and adaptive.update(0.1) == 0.005  # c_0 = 0, then delta
    fixed = make_entropy_controller(
        load_config("tiny-arith", ["algo.entropy.mode=fixed", "algo.entropy.coef=0.01"])
    )
    assert fixed.update(5.0) == 0.01
    off = make_entropy_controller(load_config("tiny-arith", ["algo.entropy.mode=off"]))
    assert off.update(0.0) == 0.0


def test_online_filter_drops_prompts_solved_in_the_previous_stage(
    small_config: Config, tmp_path: Path
) -> None:
    trainer = Trainer(small_config, tmp_path / "run", show_progress=False)
    solved, half = trainer.sampler.active[:2]
    trainer.stage_accuracy = {solved: 1.0, half: 0.5}
    before = len(trainer.sampler.active)
    trainer.enter_stage(1)
    assert solved not in trainer.sampler.active and half in trainer.sampler.active
    assert len(trainer.sampler.active) == before - 1
    assert trainer.stage_accuracy == {} and trainer.stage_index == 1
    # With the filter off, nothing is dropped.
    off = small_config.model_copy(deep=True)
    off.algo.online_filter = False
    trainer = Trainer(off, tmp_path / "run2", show_progress=False)
    trainer.stage_accuracy = {trainer.sampler.active[0]: 1.0}
    trainer.enter_stage(1)
    assert len(trainer.sampler.active) == before


@pytest.mark.parametrize("mode", ["zero", "graded"])
def test_truncated_responses_keep_reward_zero(
    small_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """RECIPE step 2: a response cut off at the limit keeps reward 0 even if graded correct
    (here every response is graded correct); ``graded`` keeps the grade."""
    monkeypatch.setattr(
        "or1.trainer.score_rollouts", lambda problems, ids, texts, **_: [Verdict(1.0)] * len(texts)
    )
    cfg = small_config.model_copy(deep=True)
    cfg.stages[0].max_response_length = 2  # nearly every response is cut off
    cfg.algo.truncated_reward = mode
    trainer = Trainer(cfg, tmp_path / mode, show_progress=False)
    trainer.step = 1
    metrics = trainer.train_step(cfg.stages[0])
    truncated = metrics["truncation_ratio"]
    assert truncated > 0.5 and metrics["truncated_correct_ratio"] == truncated
    expected = 1.0 - truncated if mode == "zero" else 1.0
    assert abs(metrics["reward_mean"] - expected) < 1e-6
    rows = [json.loads(line) for line in (tmp_path / mode / "samples" / "step_1.jsonl").open()]
    assert any(r["truncated"] for r in rows)
    for r in rows:
        assert r["reward"] == (0.0 if r["truncated"] and mode == "zero" else 1.0)


def test_the_trainer_as_a_context_manager_stops_its_rollout_workers(
    small_config: Config, tmp_path: Path
) -> None:
    cfg = small_config.model_copy(deep=True)
    cfg.rollout.hf.processes = 2
    with Trainer(cfg, tmp_path / "run", show_progress=False) as trainer:
        procs = list(trainer.engine.pool._procs)
        assert len(procs) == 2 and all(p.is_alive() for p in procs)
    assert trainer.engine.processes == 0 and not any(p.is_alive() for p in procs)
    trainer.close()  # idempotent


@pytest.mark.slow
def test_benchmarks_are_scored_at_every_evaluation(small_config: Config, tmp_path: Path) -> None:
    """eval.benchmarks are scored next to the test split at base, every N steps and final,
    logged with their name and summed up in summary.json."""
    from or1.config import ArithConfig
    from or1.data.rows import problem_to_row
    from or1.data.sources import write_rows
    from or1.data.tasks import arith

    _, held_out = arith.generate_splits(ArithConfig(n_train=1, n_test=5), seed=123)
    bench = write_rows(map(problem_to_row, held_out), tmp_path / "mini.jsonl")
    cfg = small_config.model_copy(deep=True)
    cfg.eval.benchmarks = ["mini"]
    cfg.eval.benchmark_paths = {"mini": str(bench)}
    cfg.eval.every = 2
    cfg.stages = cfg.stages[:1]
    with Trainer(cfg, tmp_path / "run", show_progress=False) as trainer:
        summary = trainer.run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "eval.jsonl").open()]
    marks = [(r["step"], r["label"], r.get("benchmark")) for r in rows]
    assert marks == [
        (0, "base", None),
        (0, "base", "mini"),
        (2, "step_2", None),
        (2, "step_2", "mini"),
        (3, "final", None),
        (3, "final", "mini"),
    ]
    mini = [r for r in rows if r.get("benchmark") == "mini"]
    assert all(r["problems"] == 5 and r["k"] == cfg.eval.samples for r in mini)
    assert summary["benchmarks"]["mini"] == {
        "base_avg_at_k": mini[0]["avg_at_k"],
        "final_avg_at_k": mini[-1]["avg_at_k"],
    }
    assert summary["final_avg_at_k"] == rows[-2]["avg_at_k"]
    eval_dir = tmp_path / "run" / "eval"
    assert (eval_dir / "final_mini_samples.jsonl").exists()
    assert (eval_dir / "final_problems.csv").exists()
    from or1.report import write_report

    html = write_report(tmp_path / "run").read_text()
    assert "<td>mini</td>" in html  # the evaluations table names the benchmark


def test_a_missing_benchmark_fails_before_training(small_config: Config, tmp_path: Path) -> None:
    from or1.errors import ConfigError

    cfg = small_config.model_copy(deep=True)
    cfg.eval.benchmarks = ["no-such-benchmark"]
    with pytest.raises(ConfigError, match="no-such-benchmark"):
        Trainer(cfg, tmp_path / "run", show_progress=False)
