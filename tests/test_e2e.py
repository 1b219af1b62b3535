"""End-to-end: the whole loop on a small tiny-arith config, crash + resume, the CLI."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from or1.trainer import TIMING_METRICS

from .cli_runs import read_metrics, run_or1

pytestmark = pytest.mark.slow


def _assert_same_metrics(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in b] == [r["step"] for r in a]
    for ra, rb in zip(a, b, strict=True):
        for key, va in ra.items():
            if key in TIMING_METRICS or va is None:
                continue
            assert math.isclose(va, rb[key], rel_tol=1e-5, abs_tol=1e-6), (
                ra["step"],
                key,
                va,
                rb[key],
            )


def test_train_writes_summary_report_checkpoints(small_args: list[str], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = run_or1(["train", "--quiet", *small_args, "name=full"])
    assert result.returncode == 0, result.stderr[-3000:]
    run = runs / "full"
    summary = json.loads((run / "summary.json").read_text())
    for key in ("preset", "k", "base_avg_at_k", "final_avg_at_k", "steps", "wall_seconds"):
        assert key in summary
    assert summary["preset"] == "tiny-arith" and summary["steps"] == 6 and summary["k"] == 2
    assert 0.0 <= summary["base_avg_at_k"] <= 1.0 and 0.0 <= summary["final_avg_at_k"] <= 1.0
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert [r["stage"] for r in rows] == [0, 0, 0, 1, 1, 1]
    assert [r["max_response_length"] for r in rows] == [32] * 3 + [64] * 3
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 6
    assert os.readlink(run / "ckpt" / "latest") == "step_6"
    assert (run / "ckpt" / "step_6" / "model" / "config.json").is_file()
    assert (run / "eval" / "final_problems.csv").is_file()
    # or1 eval on the checkpoint reproduces the final eval's settings and writes a table.
    out = tmp_path / "eval-out"
    ev = run_or1(["eval", "--quiet", "--checkpoint", str(run), "--out", str(out), *small_args])
    assert ev.returncode == 0, ev.stderr[-3000:]
    table = (out / "eval_problems.csv").read_text().splitlines()
    assert table[0].startswith("uid,") and len(table) == 1 + 12
    # or1 export: a clean model directory with the run's final evaluation in its card.
    exported = tmp_path / "export"
    ex = run_or1(["export", str(run), str(exported)])
    assert ex.returncode == 0, ex.stderr[-3000:]
    assert not {"optimizer.pt", "rng.pt", "state.json"} & {p.name for p in exported.iterdir()}
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(exported).config.model_type == "qwen2"
    card = (exported / "README.md").read_text()
    assert f"| 6 | final | held-out split | 12 | 2 | {summary['final_avg_at_k']:.4f} |" in card


@pytest.mark.parametrize("processes", [1, 2])
def test_killed_run_resumes_exactly(small_args: list[str], tmp_path: Path, processes: int) -> None:
    """Also with rollouts decoded by 2 worker processes (rollout.hf.processes=2), whose
    sampling seeds come from the checkpointed generator of the driver."""
    runs = tmp_path / "runs"
    # The small model rarely solves a problem, so groups are often uniform: keep them and
    # add a fixed entropy term so that every step really updates the weights.
    args = [
        "train",
        "--quiet",
        *small_args,
        f"rollout.hf.processes={processes}",
        "eval.every=2",
        "algo.reject_uniform_groups=false",
        "algo.entropy.mode=fixed",
        "algo.entropy.coef=0.05",
        "optim.lr=1e-2",
    ]
    full = run_or1([*args, "name=straight"])
    assert full.returncode == 0, full.stderr[-3000:]
    killed = run_or1([*args, "name=crashed"], env={"OR1_KILL_AFTER_STEP": "5"})
    # SIGKILL after step 5; checkpoints at 2, 3 (stage end), 4: resume redoes step 5.
    assert killed.returncode == -9
    crashed = runs / "crashed"
    assert os.readlink(crashed / "ckpt" / "latest") == "step_4"
    assert [r["step"] for r in read_metrics(crashed)] == [1, 2, 3, 4, 5]
    resumed = run_or1(["train", "--quiet", "--resume", str(crashed)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = read_metrics(runs / "straight"), read_metrics(crashed)
    assert all(r["grad_norm"] > 0 for r in a)  # every step updated the policy
    assert a[0]["entropy_sampled"] != a[-1]["entropy_sampled"]
    _assert_same_metrics(a, b)
    sa = json.loads((runs / "straight" / "summary.json").read_text())
    sb = json.loads((crashed / "summary.json").read_text())
    assert sa["final_avg_at_k"] == sb["final_avg_at_k"]
    evals_a = (runs / "straight" / "eval.jsonl").read_text().splitlines()
    evals_b = (crashed / "eval.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in evals_b] == [0, 2, 4, 6]
    for ea, eb in zip(evals_a, evals_b, strict=True):
        assert json.loads(ea)["avg_at_k"] == json.loads(eb)["avg_at_k"]


def test_cli_errors_are_one_paragraph_without_traceback() -> None:
    bad = run_or1(["train", "algo.clip_hgh=0.3"])
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "algo.clip_hgh" in bad.stderr and "clip_high" in bad.stderr
    missing = run_or1(["eval", "--checkpoint", "/nonexistent/run"])
    assert missing.returncode == 2 and "no checkpoint found" in missing.stderr


def test_a_run_killed_during_its_first_checkpoint_resumes_or_restarts(
    small_args: list[str], tmp_path: Path
) -> None:
    """Issue 18: a kill during the first checkpoint left a run that neither resumed nor
    restarted. Killed while step_2 is half written, it resumes from the start and ends
    as an uninterrupted run does; killed again, it restarts under its name."""
    runs = tmp_path / "runs"
    args = ["train", "--quiet", *small_args, "train.max_steps=3", "eval.after=false"]
    straight = run_or1([*args, "name=straight"])
    assert straight.returncode == 0, straight.stderr[-3000:]
    for name in ("resumed", "restarted"):
        killed = run_or1([*args, f"name={name}"], env={"OR1_KILL_DURING_CHECKPOINT": "2"})
        assert killed.returncode == -9
        run = runs / name
        assert (run / "ckpt" / "step_2.tmp" / "model").is_dir()
        assert not (run / "ckpt" / "step_2").exists() and not (run / "ckpt" / "latest").exists()
        assert [r["step"] for r in read_metrics(run)] == [1, 2]
    resumed = run_or1(["train", "--quiet", "--resume", str(runs / "resumed")])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "no complete checkpoint: it starts again at step 0" in resumed.stderr
    _assert_same_metrics(read_metrics(runs / "straight"), read_metrics(runs / "resumed"))
    evals = (runs / "resumed" / "eval.jsonl").read_text().splitlines()
    assert [json.loads(x)["label"] for x in evals] == ["base"]  # once, not twice
    restarted = run_or1([*args, "name=restarted"])
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    _assert_same_metrics(read_metrics(runs / "straight"), read_metrics(runs / "restarted"))
    assert not list((runs / "restarted" / "ckpt").glob("*.tmp"))
