"""Code RL end to end in the miniature: the tiny-mix preset trains math and code in one
run, its code rewards come from the real sandbox, and a machine where the sandbox cannot
isolate programs stops the run at start with the reason (never a silent fallback)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from or1.cli import main
from or1.rewards import Verdict, code_verdict, sandbox

pytestmark = pytest.mark.slow


def mix_overrides(cache: Path, runs: Path) -> list[str]:
    """tiny-mix small enough for a test, same code path as the preset: a warm-up long
    enough that the model writes closed ```python blocks, so the sandbox runs them."""
    return [
        f"cache_dir={cache}",
        f"runs_dir={runs}",
        "data.arith.n_train=64",
        "data.arith.n_test=8",
        "data.code.n_train=64",
        "data.code.n_test=8",
        "model.tiny.hidden_size=64",
        "model.tiny.num_layers=2",
        "model.tiny.intermediate_size=128",
        "warmup.steps=150",
        "warmup.batch_size=32",
        "warmup.n_examples=512",
        "stages.0.steps=3",
        "stages.0.batch_size=8",
        "stages.0.mini_batch_size=8",
        "stages.0.group_size=2",
        "eval.samples=2",
        "train.checkpoint_every=3",
        "train.save_samples=8",  # every group: the test counts every program
        "logging.progress=false",
    ]


NOT_RUN = ("no code block", "syntax error")  # verdicts given without running anything


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _eval_samples(eval_dir: Path, label: str) -> list[dict]:
    """An evaluation's samples, each with its problem's ground truth."""
    with open(eval_dir / f"{label}_problems.csv", newline="") as fh:
        truth = {row["uid"]: row["ground_truth"] for row in csv.DictReader(fh)}
    samples = _jsonl(eval_dir / f"{label}_samples.jsonl")
    return [{**s, "ground_truth": truth[s["uid"]]} for s in samples]


def _verdict(sample: dict) -> Verdict:
    return code_verdict(sample["response"], sample["ground_truth"])


def test_tiny_mix_trains_math_and_code_with_rewards_from_the_sandbox(
    cache_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, torch_threads
) -> None:
    ran: list[str] = []  # the backend of every candidate + judge run of a code test
    real = sandbox.run_procs

    def counted(procs, **kwargs):  # run_procs, counted
        out = real(procs, **kwargs)
        ran.append(sandbox.get_backend().name)
        return out

    monkeypatch.setattr(sandbox, "run_procs", counted)
    # One thread: at load ~14 on 2 cores the same run took 3 min with one thread (CLI) and
    # over 15 min with the two the test process has (its threads wait for each other).
    argv = ["train", "--quiet", "--preset", "tiny-mix", "name=mix", "train.threads=1"]
    with torch_threads(1):  # the test process's thread count is restored after
        assert main([*argv, *mix_overrides(cache_root, tmp_path / "runs")]) == 0
    run = tmp_path / "runs" / "mix"
    rows = _jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:  # both abilities in every batch, each with its own metrics
        for key in ("accuracy", "reward_mean", "response_length_mean", "truncation_ratio"):
            assert f"{key}/math" in row and f"{key}/code" in row, key
    # Every distinct program (a parseable ```python block) of every scoring call ran in the
    # sandbox once, on a backend that isolates programs: training steps (all groups saved)
    # and the base and final evaluations.
    assert set(ran) <= set(sandbox.STRONG)
    steps = [_jsonl(f) for f in sorted((run / "samples").glob("step_*.jsonl"))]
    evals = [_eval_samples(run / "eval", label) for label in ("base", "final")]
    sandboxed, expected = len(ran), 0
    monkeypatch.setattr(sandbox, "run_procs", real)  # re-scoring below is not counted
    for samples, zero_cut in [*((s, True) for s in steps), *((s, False) for s in evals)]:
        code = [s for s in samples if s["uid"].startswith("tiny-code-")]
        verdicts = {(s["uid"], s["response"]): _verdict(s) for s in code}
        expected += sum(v.reason not in NOT_RUN for v in verdicts.values())
        for s in code:  # the logged reward is the sandboxed tests' (training: 0 if cut off)
            want = verdicts[(s["uid"], s["response"])].reward
            assert s["reward"] == (0.0 if zero_cut and s["truncated"] else want), s
    assert expected > 0, "the warmed-up model should write ```python blocks that parse"
    assert sandboxed == expected
    summaries = {
        label: json.loads((run / "eval" / f"{label}_summary.json").read_text())
        for label in ("base", "final")
    }
    for label, summary in summaries.items():
        assert {"avg_at_k/math", "avg_at_k/code"} <= set(summary), label


def test_tiny_mix_stops_at_start_where_the_sandbox_cannot_isolate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sandbox, "_BACKENDS", {})
    monkeypatch.delenv(sandbox.INSECURE_ENV, raising=False)
    monkeypatch.setenv("OR1_SANDBOX_BACKEND", "bwrap")
    monkeypatch.setattr(shutil, "which", lambda name: None)  # bubblewrap not installed
    argv = ["train", "--preset", "tiny-mix", *mix_overrides(tmp_path / "cache", tmp_path / "runs")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("or1: error: this run has code problems")
    assert "bwrap: bwrap not found" in err and "refuse to run" in err and "Hint:" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()
    # The dry run says the same, as one of its checks.
    assert main([*argv, "--dry-run"]) == 2
    assert "this run has code problems" in capsys.readouterr().err
