"""`or1 train --dry-run`: every input a run needs is checked; nothing is trained, loaded
or created; failures come back as one paragraph with exit code 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import transformers

from or1.build import encode_prompt, load_problems
from or1.build.models import build_tiny_model, build_tiny_tokenizer, load_tokenizer
from or1.checkpoint import global_rng_state, save_checkpoint, training_state_writer
from or1.cli import main
from or1.config import RECIPE_PROMPT_SUFFIX, TinyModelConfig, load_config, save_config
from or1.dryrun import dry_run
from or1.errors import ConfigError
from or1.rundir import config_text
from or1.trainer import Trainer

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
    # R1-Distill-Qwen's 131,072 positions: the preset's 2K prompts + 32K responses fit.
    tiny = TinyModelConfig(hidden_size=32, num_layers=1, max_position_embeddings=131072)
    model = build_tiny_model(tiny, tokenizer)
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


# ---- --resume: what the resume itself would do ----------------------------------------
def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture
def saved_run(tmp_path: Path, small_args: list[str], small_policy) -> Path:
    """A run directory as training leaves it: config.yaml and verified checkpoints at
    steps 1 and 2 (written by the checkpoint code; a small model stands in for the
    run's, since the dry run reads no weights)."""
    cfg = load_config("tiny-arith", small_args)
    run = Path(cfg.runs_dir) / "saved"
    run.mkdir(parents=True)
    save_config(cfg, run / "config.yaml")
    policy = small_policy(4)
    for step in (1, 2):
        save_checkpoint(
            run / "ckpt",
            step=step,
            model=policy.model,
            tokenizer=build_tiny_tokenizer(CORPUS, vocab_size=300),
            write_training_state=training_state_writer(policy, step=step),
            rng={"global": global_rng_state(), "engine": {}},
            state={"stage_index": 0},
            config_text=config_text(cfg),
            keep=5,
        )
    return run


def test_resume_dry_run_verifies_the_checkpoint_as_the_resume_does(
    saved_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(saved_run)
    assert main(["train", "--dry-run", "--resume", str(saved_run)]) == 0
    assert "\nresume     from step_2 (step 2, verified)\n" in capsys.readouterr().out
    # An allowed change is listed; a refused one fails with the resume's own paragraph.
    assert main(["train", "--dry-run", "--resume", str(saved_run), "train.max_steps=9"]) == 0
    assert "changes: train.max_steps None -> 9" in capsys.readouterr().out
    assert main(["train", "--dry-run", "--resume", str(saved_run), "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume {saved_run} with these changes: optim.lr" in err
    # Garbage in the latest weights: the resume's CheckpointError, naming the file and
    # the flag; with the flag, the older verified checkpoint.
    weights = saved_run / "ckpt" / "step_2" / "model" / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.seek(weights.stat().st_size // 2)
        fh.write(b"\xff" * 4096)
    before[str(weights.relative_to(saved_run))] = weights.read_bytes()
    assert main(["train", "--dry-run", "--resume", str(saved_run)]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {weights.parent.parent} is damaged: {weights} is damaged" in err
    assert "--fallback-to-verified" in err and "step_1" in err
    args = ["train", "--dry-run", "--resume", str(saved_run), "--fallback-to-verified"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "from step_1 (step 1, verified); step_2 is damaged and would be set aside" in out
    assert _snapshot(saved_run) == before  # nothing written, nothing moved aside


def test_a_run_killed_during_its_first_checkpoint_dry_runs_as_a_restart(
    tmp_path: Path, small_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The real resume starts such a run again at step 0 (tests/test_rundir.py); the dry
    run says so instead of "no checkpoint"."""
    run = tmp_path / "runs" / "half"
    (run / "ckpt" / "step_2.tmp" / "model").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    save_config(load_config("tiny-arith", small_args), run / "config.yaml")
    assert main(["train", "--dry-run", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "resume     no complete checkpoint (killed during its first one?): the run " in out
    assert "starts again at step 0" in out
    # A new run under the same name starts there too (training clears or1's outputs).
    assert main(["train", "--dry-run", *small_args, "name=half"]) == 0
    assert "an earlier attempt's outputs (no checkpoint) are cleared" in capsys.readouterr().out
    assert (run / "ckpt" / "step_2.tmp").is_dir() and (run / "metrics.jsonl").is_file()


# ---- rewards.by_ability and the model's positions: the checks training starts with -----
def test_reward_import_paths_are_imported(
    tmp_path: Path,
    small_args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "myjudge.py").write_text("def score(problem, response):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    good = [*small_args, "rewards.by_ability.geometry=myjudge:score"]
    assert main(["train", "--dry-run", *good]) == 0
    assert "\nrewards    code, geometry (myjudge:score), math\n" in capsys.readouterr().out
    for path, says in [
        ("myjudge:scor", "'myjudge' has no 'scor'"),
        ("nosuchpkg.judge:score", "cannot import 'nosuchpkg.judge'"),
    ]:
        args = [*small_args, f"rewards.by_ability.math={path}"]
        assert main(["train", "--dry-run", *args]) == 2
        err = capsys.readouterr().err
        assert f"rewards.by_ability.math: {says}" in err
        # Exactly what training says when it starts (its first check).
        with pytest.raises(ConfigError) as training:
            Trainer(load_config("tiny-arith", args), tmp_path / "runs" / "r")
        assert training.value.message in err


def _positions(model: Path, n: int) -> None:
    config = json.loads((model / "config.json").read_text())
    config["max_position_embeddings"] = n
    (model / "config.json").write_text(json.dumps(config))


def test_lengths_beyond_the_models_positions_fail_as_in_training(
    tmp_path: Path, model_dir: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """The longest kept prompt + the longest response (the preset's 32,768 tokens)
    against max_position_embeddings: the same check, and message, as training's."""
    model, _ = model_dir
    rows = [_row(i) for i in (3, 12345)]  # prompts of two lengths: the longest counts
    train = _jsonl(tmp_path / "train.jsonl", rows)
    args = _files_args(tmp_path, model, train)
    cfg = load_config("skywork-or1-7b", args[2:])
    tokenizer = load_tokenizer(model, cfg.model)
    problems, _ = load_problems(cfg)
    prompt = max(len(encode_prompt(tokenizer, p)) for p in problems)
    _positions(model, 32768 + prompt)  # fits exactly
    assert main(["train", "--dry-run", *args]) == 0
    limit = 32768 + prompt
    assert f"longest prompt {prompt} + longest response 32768 = {limit} of {limit}" in (
        capsys.readouterr().out
    )
    _positions(model, 32768 + prompt - 1)
    with pytest.raises(ConfigError) as dry:
        dry_run(cfg, tmp_path / "runs" / "probe")
    assert "stages.1.max_response_length=32768, eval.max_tokens=32768" in dry.value.message
    assert f"longest prompt ({prompt} tokens)" in dry.value.message
    assert "stages.0" not in dry.value.message  # 16,384 still fits
    with pytest.raises(ConfigError) as training:
        Trainer(cfg, tmp_path / "runs" / "probe", show_progress=False)
    assert training.value.message == dry.value.message
    assert not (tmp_path / "runs").exists()
