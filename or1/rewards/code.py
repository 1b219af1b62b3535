"""Code reward: run the model's program against the problem's tests in the sandbox.

Recipe (Skywork-OR1, RECIPE.md "Rewards"): take the last ```python block that parses,
run the tests in an isolated process (per-test timeout ~6 s, global cap), reward 1 only
if every test passes; the fraction passed is optional (`fractional=True`).

Choices and departures, stated once:
- The code block is searched in the text after the last `</think>` (the whole text if
  there is none), as the released Skywork code does for code problems. Fences
  ```python, ```py and ```python3 (any case) count; the block must be closed.
- Test formats (ground truth is a JSON string or a dict), as found in
  Skywork-OR1-RL-Data / LiveCodeBench / TACO / HumanEval-style data:
  * stdin/stdout: {"inputs": [str], "outputs": [str]} (a list of lines is joined by "\\n");
  * call-based: the same plus "fn_name": calls `Solution().fn_name(*args)` when the code
    defines `class Solution` (LeetCode), else the top-level function. An input is a list
    of arguments (TACO) or a string of newline-separated JSON values (LiveCodeBench); an
    output is a value, a JSON string (LiveCodeBench) or a one-element list wrapping the
    value (TACO);
  * assert-style: {"test_code": "def check(candidate): ...", "entry_point": name,
    "import_prefix": optional}: each top-level `assert` of `check` is one test when
    `check` is only asserts, else the whole `check(entry_point)` is one test;
    {"assert_case": [str]} runs each snippet after the solution;
  * LiveCodeBench rows: a list of {"input", "output", "testtype"} (with "fn_name" for
    functional tests use {"tests": [...], "fn_name": ...}).
- Like LiveCodeBench, the solution runs after a prefix of common imports
  (`code_tests.IMPORT_PREFIX`; the row's "import_prefix" replaces it), ending in
  `from builtins import *` so `pow`, `open`, ... are the builtins again.
- stdout is compared token-wise (whitespace-normalised, so line breaks do not matter);
  two numeric tokens, at least one non-integer, match within 1e-6 absolute or relative.
  Return values compare the same way, recursively (tuples as lists). Problems with
  several valid outputs cannot be judged by exact match (the recipe says so too).
- Expected outputs never enter the sandbox; results come back tagged with a nonce.
- All tests of one response run in one sandboxed process (fast); when that process dies
  (crash, os._exit, timeout swallowed by the program) the test it was on fails and, with
  `fractional=True`, a fresh process continues with the next test. Without
  `fractional`, the first failure stops the run (reward 0).
- A malformed test specification is the caller's fault: `RewardError`. Anything the
  model's program does gives a reward, never an exception.
"""

from __future__ import annotations

import ast
import functools
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from or1.rewards import sandbox
from or1.rewards.code_tests import TestSpec, outputs_match, parse_tests, values_match
from or1.rewards.math import answer_text

logger = logging.getLogger("or1.rewards")

STARTUP_S = 1.0  # wall-time allowance per sandbox start (interpreter + harness)
PER_TEST_SLACK_S = 0.5  # wall-time allowance per test on top of its timeout
MIN_RUN_S = 0.5  # do not start a process with less budget than this
POOL_TIMEOUT_S = 120.0  # hard deadline per item in the process pool (60 s cap + starts)
MEMORY_MB = 2048
OUTPUT_FILE_MB = 16  # largest stdout of one test (RLIMIT_FSIZE on the capture file)
_FENCE = re.compile(r"```(?:python3?|py)[ \t]*[^\n`]*\n", re.IGNORECASE)
_HARNESS = Path(__file__).with_name("_harness.py")


def code_reward(
    response: str,
    tests: dict | str,
    *,
    fractional: bool = False,
    timeout_s: float = 6.0,
    total_timeout_s: float = 60.0,
) -> float:
    """Reward of a code response: 1.0 if its program passes every test, else 0.0.

    Args:
        response: the model's full response (reasoning and a ```python block).
        tests: the test specification, a dict or its JSON string (see module docstring).
        fractional: return the fraction of tests passed instead of all-or-nothing.
        timeout_s: wall-clock limit per test.
        total_timeout_s: wall-clock cap for the whole response.

    Returns:
        A float in [0, 1].

    Raises:
        RewardError: the test specification is malformed (the caller's fault).

    Example:
        >>> code_reward("```python\\nprint(int(input()) * 2)\\n```",
        ...             {"inputs": ["21\\n"], "outputs": ["42\\n"]})
        1.0
    """
    spec = parse_tests(tests)
    code = extract_code(response)
    if code is None:
        return 0.0
    try:
        passed = _run_all(
            spec, code, fractional=fractional, timeout_s=timeout_s, total_timeout_s=total_timeout_s
        )
    except (OSError, RuntimeError) as err:  # the sandbox could not start: not the model's fault
        logger.error("code reward: sandbox failure (%s); reward 0", err)
        return 0.0
    if fractional:
        return sum(passed) / len(passed)
    return 1.0 if all(passed) else 0.0


def extract_code(response: str) -> str | None:
    """The last closed, non-empty ```python block (after the last `</think>`) that parses."""
    if not isinstance(response, str):
        return None
    for block in reversed(_fenced_blocks(answer_text(response, limit=None))):
        if not block.strip():
            continue
        try:
            ast.parse(block)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        return block
    return None


def _fenced_blocks(text: str) -> list[str]:
    """Closed ```python blocks in order, like re.findall but linear: an unclosed fence
    ends the search (a non-greedy regex would rescan the tail from every later fence)."""
    blocks, pos = [], 0
    while (opening := _FENCE.search(text, pos)) is not None:
        end = text.find("```", opening.end())
        if end < 0:
            break
        blocks.append(text[opening.end() : end])
        pos = end + 3
    return blocks


# --------------------------------------------------------------------------- running


@dataclass
class _Collector:
    """Receives result lines from the harness; decides pass/fail per test."""

    spec: TestSpec
    nonce: str
    passed: list[bool]
    stop_on_failure: bool
    reported: int = -1  # highest test index with a result
    exited_after: int = -2  # the harness announced it stops after this test
    setup_failed: bool = False
    failures: list[int] = field(default_factory=list)

    def on_line(self, line: bytes) -> bool:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            return True
        if not isinstance(record, dict) or record.get("nonce") != self.nonce:
            return True  # not ours (the program wrote to our channel)
        i = record.get("i")
        if i == -1:
            self.setup_failed = True
            return False
        if not isinstance(i, int) or not self.reported < i < len(self.passed):
            return True
        self.reported = i
        if record.get("exit"):
            self.exited_after = i
        self.passed[i] = record.get("status") == "ok" and self._correct(i, record)
        if not self.passed[i]:
            self.failures.append(i)
            return not self.stop_on_failure
        return True

    def _correct(self, i: int, record: dict) -> bool:
        if self.spec.mode == "stdio":
            return isinstance(record.get("out"), str) and outputs_match(
                record["out"], self.spec.expected[i]
            )
        if self.spec.mode == "call":
            return "value" in record and any(
                values_match(record["value"], want) for want in self.spec.expected[i]
            )
        return True


def _run_all(
    spec: TestSpec, code: str, *, fractional: bool, timeout_s: float, total_timeout_s: float
) -> list[bool]:
    n = len(spec.inputs)
    collector = _Collector(spec, secrets.token_hex(8), [False] * n, not fractional)
    source = spec.prefix + "\n" + code + "\n" + spec.suffix
    deadline = time.monotonic() + total_timeout_s
    start = 0
    while start < n:
        budget = deadline - time.monotonic()
        if budget < MIN_RUN_S:
            break
        wall = min(budget, (n - start) * (timeout_s + PER_TEST_SLACK_S) + STARTUP_S)
        _run_harness(spec, source, start, collector, timeout_s=timeout_s, wall_s=wall)
        if collector.setup_failed or (collector.failures and not fractional):
            break
        # Tests up to `reported` have results. Unless the harness said it stops there,
        # the process died (or was killed) during the next one: that test fails.
        start = collector.reported + (1 if collector.exited_after == collector.reported else 2)
    return collector.passed


def _run_harness(
    spec: TestSpec,
    source: str,
    start: int,
    collector: _Collector,
    *,
    timeout_s: float,
    wall_s: float,
) -> sandbox.SandboxResult:
    job = {
        "mode": spec.mode,
        "code": source,
        "tests": spec.inputs[start:],
        "offset": start,
        "timeout_s": timeout_s,
        "fn_name": spec.fn_name,
        "nonce": collector.nonce,
    }
    limits = sandbox.Limits(
        wall_s=wall_s, cpu_s=wall_s + 1.0, memory_mb=MEMORY_MB, file_size_mb=OUTPUT_FILE_MB
    )
    collector.reported = max(collector.reported, start - 1)
    return sandbox.run_python(
        _harness_source(),
        files={"job.json": json.dumps(job)},
        limits=limits,
        on_line=collector.on_line,
    )


@functools.lru_cache(maxsize=1)
def _harness_source() -> str:
    return _HARNESS.read_text(encoding="utf-8")
