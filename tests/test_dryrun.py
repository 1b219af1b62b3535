"""`or1 train --dry-run`: every input a run needs is checked; nothing is trained, loaded
or created; failures come back as one paragraph with exit code 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import transformers

from or1.build.models import build_tiny_model, build_tiny_tokenizer
from or1.cli import main
from or1.config import RECIPE_PROMPT_SUFFIX, TinyModelConfig, load_config, save_config
from or1.errors import ConfigError

CORPUS = [f"What is {i} + {i}? {RECIPE_PROMPT_SUFFIX} \\boxed{{{2 * i}}}" for i in range(40)]


def _row(i: int) -> dict[str, object]:
    return {
        "data_source": "synthetic",
        "prompt": [{"role": "user", "content": f"What is {i} + {i}? {RECIPE_PROMPT_SUFFIX}"}],
        "ability": "math",
        "reward_model": {"ground_truth": str(2 * i), "style": "rule"},
    }


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> tuple[Path, int]:
    """A saved tiny Qwen2 directory with a chat-template tokenizer, and its parameter count."""
    tokenizer = build_tiny_tokenizer(CORPUS, vocab_size=300)
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_layers=1), tokenizer)
    path = tmp_path / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, sum(p.numel() for p in model.parameters())


@pytest.fixture
def no_weight_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading any model's weights fail: the dry run must not do it."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dry run loaded model weights")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr("or1.build.models.load_pretrained", refuse)
    monkeypatch.setattr("or1.build.start.load_pretrained", refuse)


def _files_args(tmp_path: Path, model: Path, train: Path) -> list[str]:
    return [
        "--preset",
        "skywork-or1-7b",
        f"runs_dir={tmp_path / 'runs'}",
        f"cache_dir={tmp_path / 'cache'}",
        f"model.path={model}",
        f"data.train={train}",
        "eval.benchmarks=[]",
        "model.gradient_checkpointing=false",
        "name=probe",
        "rollout.engine=hf",  # the preset's vllm + ray are not installed/needed here
        "distributed.backend=local",
    ]


def test_dry_run_of_files_reads_every_row_and_no_weights(
    tmp_path: Path,
    model_dir: tuple[Path, int],
    no_weight_loading: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, params = model_dir
    train = _jsonl(tmp_path / "train.jsonl", [_row(i) for i in range(7)])
    test = _jsonl(tmp_path / "test.jsonl", [_row(i) for i in range(100, 103)])
    bench = _jsonl(tmp_path / "mybench.jsonl", [_row(i) for i in range(200, 205)])
    args = [*_files_args(tmp_path, model, train), f"data.test={test}", f"eval.benchmarks=[{bench}]"]
    assert main(["train", "--dry-run", *args]) == 0
    out = capsys.readouterr().out
    assert "data       train 7 problems, test 3" in out
    assert "benchmarks mybench 5 problems" in out
    assert f"Qwen2ForCausalLM, {params / 1e6:.2f}M parameters in 1 safetensors files" in out
    assert "fit rollout.max_prompt_length=2048: train 7, test 3, benchmark mybench 5" in out
    assert "3 stages" not in out and "steps in all" in out
    assert "trackers   metrics.jsonl, tensorboard\n" in out
    assert re.search(r"\nmemory     fits: peak [\d.]+ of \d+ GiB \(cpu\); `or1 plan`", out)
    # Nothing was written: no run directory, no cache.
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_a_bad_row_anywhere_is_the_training_error(
    tmp_path: Path, model_dir: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [_row(i) for i in range(50)]
    rows[41] = {**_row(41), "reward_model": {"style": "rule"}}  # no ground truth
    train = _jsonl(tmp_path / "train.jsonl", rows)
    assert main(["train", "--dry-run", *_files_args(tmp_path, model_dir[0], train)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("or1: error: ") and err.count("\n") == 1
    assert "train.jsonl" in err and "ground_truth" in err and "Traceback" not in err


def test_every_failed_check_is_named_in_one_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = [
        "--preset",
        "skywork-or1-7b",
        f"runs_dir={blocker / 'runs'}",  # below a regular file: cannot be created
        f"model.path={tmp_path / 'nowhere'}",
        f"data.train={tmp_path / 'missing.parquet'}",
        "eval.benchmarks=[no-such-benchmark]",
        "rollout.engine=hf",  # the preset's vLLM is not installed here: a fifth problem
    ]
    assert main(["train", "--dry-run", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the dry run found 4 problems" in err
    assert f"{blocker} is a file" in err
    assert "missing.parquet does not exist" in err
    assert "benchmark 'no-such-benchmark'" in err
    assert "nowhere is not a Hugging Face model directory" in err


def test_damaged_weights_and_missing_chat_template_are_errors(
    tmp_path: Path, model_dir: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = model_dir
    train = _jsonl(tmp_path / "train.jsonl", [_row(1)])
    args = ["train", "--dry-run", *_files_args(tmp_path, model, train)]
    assert main(args) == 0
    capsys.readouterr()
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    (model / "chat_template.jinja").unlink(missing_ok=True)
    assert main(args) == 2
    assert "has no chat template" in capsys.readouterr().err
    weights = model / "model.safetensors"
    weights.write_bytes(b"\x00" * 4096)  # garbage where the header should be
    assert main(args) == 2
    assert f"weight file {weights} is damaged" in capsys.readouterr().err
    weights.unlink()
    assert main(args) == 2
    assert "has a config.json but no weight files" in capsys.readouterr().err


def test_tiny_arith_dry_run_creates_nothing(
    tmp_path: Path, small_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_cache = tmp_path / "fresh-cache"
    args = [*small_args, f"cache_dir={fresh_cache}", "name=probe", "logging.wandb.mode=offline"]
    args += [
        "logging.wandb.enabled=true",
        "logging.mlflow.enabled=true",
        "logging.mlflow.experiment=e1",
    ]
    args += [f"logging.mlflow.tracking_uri={(tmp_path / 'mlruns').as_uri()}"]
    assert main(["train", "--dry-run", *args]) == 0
    out = capsys.readouterr().out
    assert "train 64 problems, test 12 (task tiny-arith)" in out
    assert "warm-up of 40 steps runs first" in out
    assert "1) 3 steps x 4 prompts x 4 samples, 32 tokens" in out
    assert "6 steps in all" in out
    assert "wandb (project or1, run probe, offline), mlflow (experiment e1 at file:" in out
    assert not (tmp_path / "runs").exists() and not fresh_cache.exists()


def test_prompts_longer_than_the_limit_fail_as_in_training(
    small_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--dry-run", *small_args, "rollout.max_prompt_length=4"]) == 2
    assert "every prompt is longer than rollout.max_prompt_length=4" in capsys.readouterr().err


def test_resume_dry_run_needs_a_checkpoint(
    tmp_path: Path, small_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "runs" / "half"
    run.mkdir(parents=True)
    save_config(load_config("tiny-arith", small_args), run / "config.yaml")
    assert main(["train", "--dry-run", "--resume", str(run)]) == 2
    assert f"no checkpoint found at {run}" in capsys.readouterr().err


def test_the_vllm_engine_gets_the_runtime_check_training_starts_with(
    tmp_path: Path,
    model_dir: tuple[Path, int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[bool] = []

    def check(*, distributed: bool = False) -> None:  # vLLM itself is not installed here
        calls.append(distributed)
        raise ConfigError("rollout.engine=vllm needs a GPU: vLLM found no device.")

    monkeypatch.setattr("or1.engine.vllm_rollout.check_vllm_runtime", check)
    train = _jsonl(tmp_path / "train.jsonl", [_row(1)])
    args = [*_files_args(tmp_path, model_dir[0], train), "rollout.engine=vllm"]
    assert main(["train", "--dry-run", *args]) == 2
    assert calls == [False] and "vLLM found no device" in capsys.readouterr().err
