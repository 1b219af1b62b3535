"""Bad inputs as clear errors before anything is written, no empty run directory after a
failed start, and a run that never completed a checkpoint restarts or resumes cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from or1.cli import main
from or1.config import Config
from or1.errors import ConfigError
from or1.resume import RESUMES_FILE
from or1.rundir import clear_outputs, probe_writable, write_config
from or1.trainer import Trainer


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("or1: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("name", ["../x", "/tmp/abs", "a/b", ".."])
def test_a_run_name_cannot_leave_runs_dir(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", f"runs_dir={tmp_path / 'runs'}", f"name={name}"]) == 2
    assert "a run name is one directory name inside runs_dir" in _error(capsys)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("seed", [2**63, 2**32, -1])
def test_a_seed_out_of_range_is_a_config_error(
    seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", f"train.seed={seed}"]) == 2
    assert "train.seed" in _error(capsys)


def test_an_unwritable_run_directory_fails_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where runs_dir should be")
    assert main(["train", f"runs_dir={blocker / 'runs'}", "name=x"]) == 2
    assert f"cannot write the run directory {blocker / 'runs' / 'x'}" in _error(capsys)
    with pytest.raises(ConfigError, match="runs_dir="):
        probe_writable(blocker / "runs" / "x")


def test_the_writability_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    probe_writable(tmp_path / "runs" / "deep" / "x")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    probe_writable(tmp_path / "kept")
    assert (tmp_path / "kept").is_dir() and list((tmp_path / "kept").iterdir()) == []


def test_a_failed_start_leaves_no_run_directory(
    small_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--quiet", *small_args, "name=f", "eval.benchmarks=[no-such-benchmark]"]
    assert main(args) == 2
    assert "no-such-benchmark" in _error(capsys)
    assert not (tmp_path / "runs").exists()


def test_lengths_beyond_the_model_positions_fail_before_anything_is_written(
    small_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = [
        "warmup.enabled=false",  # the model is built, not trained: this is about its size
        "model.tiny.max_position_embeddings=40",
        "stages.0.max_response_length=8",
        "stages.1.max_response_length=30",
        "name=long",
    ]
    assert main(["train", "--quiet", *small_args, *long]) == 2
    err = _error(capsys)
    assert "stages.1.max_response_length=30" in err and "eval.max_tokens=30" in err
    assert "stages.0.max_response_length" not in err and "40 positions" in err
    assert not (tmp_path / "runs").exists()
    # A length that cannot fit even an empty prompt is refused when the config loads.
    assert main(["train", *small_args, "stages.0.max_response_length=2000"]) == 2
    assert "model.tiny.max_position_embeddings=1024" in _error(capsys)


def _killed_during_first_checkpoint(run: Path) -> None:
    """What a run SIGKILLed while writing its first checkpoint leaves (see test_e2e)."""
    (run / "ckpt" / "step_2.tmp" / "model").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    (run / "samples").mkdir()
    (run / "notes.txt").write_text("a file or1 did not write")


def test_a_run_killed_in_its_first_checkpoint_restarts_under_its_name(
    small_config: Config,
) -> None:
    cfg = small_config.model_copy(deep=True)
    cfg.train.max_steps, cfg.eval.before, cfg.eval.after = 2, False, False
    run = Path(cfg.runs_dir) / "again"
    run.mkdir(parents=True)
    _killed_during_first_checkpoint(run)
    with Trainer(cfg, run, show_progress=False) as trainer:
        trainer.run()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == [1, 2] and "reward_mean" in rows[0]
    assert not (run / "ckpt" / "step_2.tmp").exists() and (run / "ckpt" / "step_2").is_dir()
    assert (run / "notes.txt").exists()  # only or1's own outputs are cleared
    assert not (run / RESUMES_FILE).exists()


def test_a_run_killed_in_its_first_checkpoint_resumes_from_the_start(
    small_config: Config,
) -> None:
    cfg = small_config.model_copy(deep=True)
    cfg.train.max_steps, cfg.eval.before, cfg.eval.after = 2, False, False
    run = Path(cfg.runs_dir) / "resumed"
    run.mkdir(parents=True)
    _killed_during_first_checkpoint(run)
    saved = cfg.model_copy(deep=True)  # the config it started with
    saved.train.max_steps = 1
    write_config(run, saved)
    with Trainer(cfg, run, show_progress=False) as trainer:
        trainer.run(resume=run)
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").open()] == [1, 2]
    rows = [json.loads(line) for line in (run / RESUMES_FILE).open()]
    assert rows == [
        {
            "time": rows[0]["time"],
            "checkpoint": None,
            "step": 0,
            "changes": {"train.max_steps": [1, 2]},
        }
    ]


def test_clear_outputs_removes_only_what_or1_writes(tmp_path: Path) -> None:
    for name in ("metrics.jsonl", "summary.json", "user.csv"):
        (tmp_path / name).write_text("x")
    for name in ("tb", "ckpt", "eval", "mine"):
        (tmp_path / name).mkdir()
    clear_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "user.csv"]
