"""`or1 eval eval.benchmarks=[aime24,aime25]` on the shared AIME parquet files with a
tiny random model directory: scores are ~0, but every step of the path runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from or1.build.models import build_tiny_model, build_tiny_tokenizer
from or1.cli import main
from or1.config import RECIPE_PROMPT_SUFFIX, TinyModelConfig
from or1.evaluate import EvalResult, benchmark_rows, write_benchmark_table

EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    tok = build_tiny_tokenizer(["Find the number of minutes. \\boxed{204} $x^2$"] * 10)
    dims = TinyModelConfig(hidden_size=32, num_layers=1, intermediate_size=64)
    path = tmp_path_factory.mktemp("tiny-model")
    build_tiny_model(dims, tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_eval_benchmarks_writes_tables_and_samples(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--preset",
        "skywork-or1-7b",
        "--out",
        str(out),
        "--quiet",
        f"model.path={model_dir}",
        "rollout.engine=hf",  # the preset's vLLM is not installed here
        f"eval.data_dir={EVAL_DIR}",
        "eval.samples=2",
        "eval.max_tokens=3",
        "eval.max_problems=10",
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["benchmarks"]) == ["aime24", "aime25"]
    # The preset's sampling (temperature 1.0, top-p 1.0) with the overridden n/max tokens.
    assert printed["sampling"] == {"n": 2, "temperature": 1.0, "top_p": 1.0, "max_tokens": 3}
    # The summaries break the scores down by ability and by data source.
    aime24 = printed["benchmarks"]["aime24"]
    assert aime24["avg_at_k/math"] == aime24["avg_at_k/src/test-math-aime24"] == 0.0
    assert aime24["truncation_ratio/math"] == aime24["truncation_ratio"]
    assert aime24["mean_response_length/src/test-math-aime24"] <= 3
    with open(out / "benchmarks.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["benchmark"] for r in rows] == ["aime24", "aime25"]
    assert all(r["problems"] == "10" and r["k"] == "2" for r in rows)
    assert all(float(r["avg@2"]) == 0.0 for r in rows)  # a random model, 3 tokens
    markdown = (out / "benchmarks.md").read_text().splitlines()
    assert markdown[0].startswith("| benchmark | problems | k | avg@2 | pass@1 | pass@2 |")
    assert markdown[2].startswith("| aime24 | 10 | 2 | 0.0 |") and len(markdown) == 4
    for name in ("aime24", "aime25"):
        samples = [json.loads(x) for x in (out / f"{name}_samples.jsonl").read_text().splitlines()]
        assert len(samples) == 20 and {s["uid"] for s in samples} == {
            f"{name}-{i}" for i in range(10)
        }
        assert all(s["tokens"] <= 3 and s["reward"] == 0.0 for s in samples)
        assert {s["reason"] for s in samples} <= {"wrong answer", "no answer found"}
        with open(out / f"{name}_problems.csv") as fh:
            problems = list(csv.DictReader(fh))
        assert len(problems) == 10 and problems[0]["ground_truth"] in {"204", "70"}


def test_a_missing_benchmark_fails_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "eval",
        "--preset",
        "skywork-or1-7b",
        "--out",
        str(tmp_path),
        "--quiet",
        "model.path=/nonexistent/model",
        f"eval.data_dir={EVAL_DIR}",
        "eval.benchmarks=[aime24,hmmt25]",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "benchmark 'hmmt25'" in err and "hmmt25.parquet" in err and "model.path" not in err


def test_benchmark_table_reports_percentages() -> None:
    results = [
        EvalResult("aime24", 4, 0.25, {1: 0.25, 4: 0.5}, per_problem=[{}] * 30, seconds=1.26),
        EvalResult("aime25", 4, 0.1, {1: 0.1, 4: 0.3}, per_problem=[{}] * 30),
    ]
    rows = benchmark_rows(results)
    assert rows[0]["avg@4"] == 25.0 and rows[0]["pass@4"] == 50.0 and rows[0]["seconds"] == 1.3
    assert rows[1]["problems"] == 30


def test_the_eval_prompt_suffix_reaches_the_model_input(model_dir: Path, tmp_path: Path) -> None:
    from or1.config import EvalConfig
    from or1.data.sources import load_benchmark

    problems = load_benchmark("aime25", EvalConfig(data_dir=str(EVAL_DIR)))
    assert problems[0].question.endswith(RECIPE_PROMPT_SUFFIX)
    table = write_benchmark_table(
        [EvalResult("aime25", 1, 0.0, {1: 0.0}, per_problem=[{}])], tmp_path
    )
    assert table.splitlines()[2] == ("| aime25 | 1 | 1 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 |")


def test_eval_code_benchmarks_prints_the_table(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`or1 eval eval.benchmarks=[humaneval,leetcode]`: both install offline, load with
    their LiveCodeBench prompts and are scored by the code reward (a random model's
    3 tokens hold no code block)."""
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--preset",
        "skywork-or1-7b",
        "--out",
        str(out),
        "--quiet",
        f"model.path={model_dir}",
        f"cache_dir={tmp_path / 'cache'}",
        "rollout.engine=hf",
        "eval.benchmarks=[humaneval,leetcode]",
        "eval.samples=2",
        "eval.max_tokens=3",
        "eval.max_problems=2",
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["benchmarks"]) == ["humaneval", "leetcode"]
    assert printed["benchmarks"]["humaneval"]["avg_at_k/code"] == 0.0
    table = (out / "benchmarks.md").read_text().splitlines()
    assert table[0].startswith("| benchmark | problems | k | avg@2 | pass@1 | pass@2 |")
    assert table[2].startswith("| humaneval | 2 | 2 | 0.0 |")
    assert table[3].startswith("| leetcode | 2 | 2 | 0.0 |")
    samples = [json.loads(x) for x in (out / "leetcode_samples.jsonl").read_text().splitlines()]
    assert {s["reason"] for s in samples} == {"no code block"}
