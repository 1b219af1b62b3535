"""Resume that cannot break a run: refused changes leave the run directory untouched,
allowed ones are recorded, a damaged checkpoint falls back only when asked."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from or1.cli import main
from or1.config import Config, load_config
from or1.errors import ConfigError
from or1.resume import RESUMES_FILE, check_resume, config_changes, flatten
from or1.trainer import Trainer

QUICK = ["eval.before=false", "eval.after=false", "logging.tensorboard=false"]


def _snapshot(run: Path) -> dict[str, str]:
    """Every file of a run directory with its sha256 (what "unchanged" means here)."""
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()]


def test_check_resume_names_every_change_it_refuses(small_config: Config) -> None:
    new = small_config.model_copy(deep=True)
    new.model.tiny.hidden_size = 96
    new.data.arith.n_train = 10
    new.optim.lr = 1.0
    new.stages[0].steps = 5  # finished: the checkpoint is in stage 1
    new.train.max_steps = 99  # allowed
    with pytest.raises(ConfigError) as err:
        check_resume(small_config, new, stage_index=1, step=4, where=Path("runs/x"))
    message = err.value.message
    for key in ("model.tiny.hidden_size", "data.arith.n_train", "optim.lr", "stages.0.steps"):
        assert key in message
    assert "train.max_steps" not in message.split("A resume may change")[0]
    assert "stage 0 is finished at step 4" in message and "nothing was changed" in message
    assert "\n" not in str(err.value)


def test_check_resume_returns_the_allowed_changes(small_config: Config) -> None:
    new = small_config.model_copy(deep=True)
    new.train.max_steps = 9
    new.eval.samples = 4
    new.logging.tensorboard = False
    new.distributed.workers = 2  # the sharded state reshards on load
    new.stages[1].steps = 7  # the current stage
    changes = check_resume(small_config, new, stage_index=1, step=4, where=Path("r"))
    assert changes == {
        "distributed.workers": [1, 2],
        "eval.samples": [2, 4],
        "logging.tensorboard": [True, False],
        "stages.1.steps": [3, 7],
        "train.max_steps": [None, 9],
    }
    assert config_changes(small_config, small_config) == {}
    assert flatten({"a": {"b": 1}, "s": [{"x": 1}], "v": [1, 2]}) == {
        "a.b": 1,
        "s.0.x": 1,
        "v": [1, 2],
    }


@pytest.fixture
def ran(small_args: list[str], tmp_path: Path) -> Path:
    """A finished 2-step run with checkpoints at steps 1 and 2."""
    cfg = load_config(
        "tiny-arith", [*small_args, *QUICK, "train.max_steps=2", "train.checkpoint_every=1"]
    )
    run = tmp_path / "runs" / "r"
    with Trainer(cfg, run, show_progress=False) as trainer:
        trainer.run()
    return run


@pytest.mark.slow
def test_a_refused_resume_changes_nothing_and_an_allowed_one_is_recorded(
    ran: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18: a failed --resume rewrote config.yaml first, so even a plain --resume
    failed afterwards."""
    before = _snapshot(ran)
    code = main(["train", "--quiet", "--resume", str(ran), "optim.lr=0.5", "algo.clip_high=0.3"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("or1: error: cannot resume") and err.count("\n") == 1
    assert "optim.lr" in err and "algo.clip_high" in err and "Traceback" not in err
    assert _snapshot(ran) == before  # config.yaml included
    # A plain resume with an allowed change continues the run and records the change.
    assert main(["train", "--quiet", "--resume", str(ran), "train.max_steps=3"]) == 0
    assert _steps(ran) == [1, 2, 3]
    rows = [json.loads(line) for line in (ran / RESUMES_FILE).open()]
    assert len(rows) == 1 and rows[0]["checkpoint"] == "step_2" and rows[0]["step"] == 2
    assert rows[0]["changes"] == {"train.max_steps": [2, 3]} and rows[0]["time"]
    assert "max_steps: 3" in (ran / "config.yaml").read_text()


@pytest.mark.slow
def test_a_damaged_checkpoint_resumes_from_the_verified_one_only_when_asked(
    ran: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = ran / "ckpt" / "step_2" / "model" / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.seek(weights.stat().st_size // 2)
        fh.write(os.urandom(4096))
    before = _snapshot(ran)
    assert main(["train", "--quiet", "--resume", str(ran)]) == 2
    err = capsys.readouterr().err
    assert str(weights) in err and "--fallback-to-verified" in err and "step_1" in err
    assert _snapshot(ran) == before
    assert main(["train", "--quiet", "--resume", str(ran), "--fallback-to-verified"]) == 0
    assert _steps(ran) == [1, 2]  # step 2 redone from step 1's checkpoint
    assert (ran / "ckpt" / "step_2.damaged").is_dir()  # kept for inspection
    assert os.readlink(ran / "ckpt" / "latest") == "step_2"
    rows = [json.loads(line) for line in (ran / RESUMES_FILE).open()]
    assert rows[-1]["checkpoint"] == "step_1"


def test_fallback_without_resume_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--fallback-to-verified"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_the_trainer_refuses_a_fresh_start_over_checkpoints(small_config: Config) -> None:
    run = Path(small_config.runs_dir) / "busy"
    step = run / "ckpt" / "step_1"
    step.mkdir(parents=True)
    (step / "state.json").write_text('{"step": 1}')
    trainer = Trainer(small_config, run, show_progress=False)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        trainer.run()
    assert not (run / "config.yaml").exists()
