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
  (`IMPORT_PREFIX`; the row's "import_prefix" replaces it), ending in
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
import contextlib
import copy
import functools
import json
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from or1.errors import RewardError
from or1.rewards import sandbox
from or1.rewards.math import answer_text

logger = logging.getLogger("or1.rewards")

FLOAT_TOL = 1e-6  # absolute or relative tolerance for non-integer numbers
STARTUP_S = 1.0  # wall-time allowance per sandbox start (interpreter + harness)
PER_TEST_SLACK_S = 0.5  # wall-time allowance per test on top of its timeout
MIN_RUN_S = 0.5  # do not start a process with less budget than this
POOL_TIMEOUT_S = 120.0  # hard deadline per item in the process pool (60 s cap + starts)
MEMORY_MB = 2048
OUTPUT_FILE_MB = 16  # largest stdout of one test (RLIMIT_FSIZE on the capture file)
IMPORT_PREFIX = (
    "import sys, os, re, math, heapq, bisect, itertools, functools, collections, string\n"
    "import datetime, random, statistics, copy, operator, fractions, decimal\n"
    "from typing import *\nfrom collections import *\nfrom heapq import *\n"
    "from bisect import *\nfrom itertools import *\nfrom functools import *\n"
    "from math import *\nfrom string import *\nfrom operator import *\nfrom copy import *\n"
    "from builtins import *\ninf = float('inf')\n"
)
_FENCE = re.compile(r"```(?:python3?|py)[ \t]*[^\n`]*\n", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_HARNESS = Path(__file__).with_name("_harness.py")


@dataclass(frozen=True)
class TestSpec:
    """A normalised test specification.

    Attributes:
        mode: "stdio", "call" or "assert".
        inputs: per test: stdin text (stdio), {"args", "kwargs"} (call) or code (assert).
        expected: per test: expected stdout (stdio), acceptable return values (call),
            None (assert).
        prefix: code run before the solution (imports).
        suffix: code run after the solution (assert mode: helpers of the test code).
        fn_name: function to call (call mode).
    """

    __test__ = False  # not a pytest test class

    mode: str
    inputs: list[Any]
    expected: list[Any]
    prefix: str = IMPORT_PREFIX
    suffix: str = ""
    fn_name: str | None = None


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


# --------------------------------------------------------------------------- test specs


def parse_tests(tests: dict | str | list) -> TestSpec:
    """Normalise a test specification (dict, list or JSON string) into a `TestSpec`.

    Raises:
        RewardError: not JSON, an unknown format, mismatched or empty test lists.
    """
    if isinstance(tests, str):
        return _parse_json_tests(tests)
    if isinstance(tests, list):
        return _parse_lcb(tests, None)
    if not isinstance(tests, dict):
        raise _spec_error(f"expected a dict or a JSON string, got {type(tests).__name__}")
    if "input_output" in tests:  # APPS/TACO rows nest the JSON once more
        inner = tests["input_output"]
        return parse_tests(json.loads(inner) if isinstance(inner, str) else inner)
    if "inputs" in tests:
        return _parse_io(tests)
    if "tests" in tests and isinstance(tests["tests"], list):
        return _parse_lcb(tests["tests"], tests.get("fn_name"))
    if "test_code" in tests:
        return _parse_check(tests)
    if "assert_case" in tests:
        return _parse_asserts(tests)
    raise _spec_error(f"unknown format with keys {sorted(tests)[:8]}")


@functools.lru_cache(maxsize=32)  # a batch repeats each problem group_size times
def _parse_json_tests(text: str) -> TestSpec:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise _spec_error(f"not valid JSON ({err})") from None
    if isinstance(data, str):  # doubly encoded
        return _parse_json_tests(data)
    return parse_tests(data)


def _spec_error(reason: str) -> RewardError:
    return RewardError(
        f"bad code test specification: {reason}",
        hint="use {'inputs': [...], 'outputs': [...]} (optionally 'fn_name'), "
        "{'test_code': ..., 'entry_point': ...} or {'assert_case': [...]}.",
    )


def _parse_io(tests: dict) -> TestSpec:
    inputs, outputs = tests.get("inputs"), tests.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise _spec_error("'inputs' and 'outputs' must be lists")
    if len(inputs) != len(outputs) or not inputs:
        raise _spec_error(f"{len(inputs)} inputs for {len(outputs)} outputs")
    fn_name = tests.get("fn_name")
    if fn_name:
        if not isinstance(fn_name, str) or not fn_name.isidentifier():
            raise _spec_error(f"'fn_name' {fn_name!r} is not an identifier")
        return TestSpec(
            "call",
            [_call_args(x) for x in inputs],
            [_acceptable(y) for y in outputs],
            fn_name=fn_name,
        )
    return TestSpec("stdio", [_text(x) for x in inputs], [_text(y) for y in outputs])


def _parse_lcb(rows: list, fn_name: str | None) -> TestSpec:
    if not rows or not all(isinstance(r, dict) and "input" in r and "output" in r for r in rows):
        raise _spec_error("a test list needs {'input', 'output'} objects")
    functional = any(r.get("testtype") == "functional" for r in rows)
    if functional and not fn_name:
        raise _spec_error("functional tests need 'fn_name'")
    return _parse_io(
        {
            "inputs": [r["input"] for r in rows],
            "outputs": [r["output"] for r in rows],
            "fn_name": fn_name if functional else None,
        }
    )


def _parse_check(tests: dict) -> TestSpec:
    entry, test_code = tests.get("entry_point"), tests["test_code"]
    if not isinstance(entry, str) or not entry.isidentifier() or not isinstance(test_code, str):
        raise _spec_error("'test_code' needs a string and 'entry_point' an identifier")
    try:
        tree = ast.parse(test_code)
    except SyntaxError as err:
        raise _spec_error(f"'test_code' does not parse ({err})") from None
    prefix = tests.get("import_prefix") or IMPORT_PREFIX
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    others = [n for n in tree.body if n not in checks]
    call = f"\ncheck({entry})\n"
    if len(checks) != 1 or not all(isinstance(s, ast.Assert) for s in checks[0].body):
        return TestSpec("assert", [test_code + call], [None], prefix=prefix)
    check = checks[0]
    chunks = []
    for stmt in check.body:  # one test per assert, as the Skywork code splits them
        one = copy.copy(check)
        one.body = [stmt]
        chunks.append(ast.unparse(one) + call)
    suffix = ast.unparse(ast.Module(body=others, type_ignores=[]))
    return TestSpec("assert", chunks, [None] * len(chunks), prefix=prefix, suffix=suffix)


def _parse_asserts(tests: dict) -> TestSpec:
    cases = tests["assert_case"]
    if not isinstance(cases, list) or not cases or not all(isinstance(c, str) for c in cases):
        raise _spec_error("'assert_case' must be a non-empty list of strings")
    prefix = tests.get("import_prefix") or IMPORT_PREFIX
    return TestSpec("assert", list(cases), [None] * len(cases), prefix=prefix)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return value if isinstance(value, str) else str(value)


def _call_args(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):  # LiveCodeBench: one JSON value per line
        try:
            return {
                "args": [json.loads(line) for line in raw.split("\n") if line.strip()],
                "kwargs": {},
            }
        except ValueError:
            return {"args": [raw], "kwargs": {}}
    if isinstance(raw, list):
        return {"args": raw, "kwargs": {}}
    if isinstance(raw, dict):
        return {"args": [], "kwargs": raw}
    return {"args": [raw], "kwargs": {}}


def _acceptable(raw: Any) -> list[Any]:
    """Return values that count as correct for one expected output."""
    values = [raw]
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            values.insert(0, json.loads(raw))
    if isinstance(raw, list) and len(raw) == 1:  # TACO wraps the return value
        values.append(raw[0])
    return values


# --------------------------------------------------------------------------- comparison


def outputs_match(actual: str, expected: str) -> bool:
    """Token-wise comparison of program output (whitespace-normalised, float tolerance)."""
    got, want = actual.split(), expected.split()
    return len(got) == len(want) and all(map(_tokens_match, got, want))


def _tokens_match(a: str, b: str) -> bool:
    if a == b:
        return True
    if not (_NUMBER.fullmatch(a) and _NUMBER.fullmatch(b)):
        return False
    if _INTEGER.fullmatch(a) and _INTEGER.fullmatch(b):
        return _integer_key(a) == _integer_key(b)  # exact, and no int() digit limit
    return _close(float(a), float(b))


def _integer_key(token: str) -> tuple[bool, str]:
    digits = token.lstrip("+-").lstrip("0") or "0"
    return (token.startswith("-") and digits != "0", digits)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=FLOAT_TOL, abs_tol=FLOAT_TOL)


def values_match(actual: Any, expected: Any) -> bool:
    """Recursive equality of JSON-like values with float tolerance (tuples as lists)."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual == expected
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        if isinstance(actual, int) and isinstance(expected, int):
            return actual == expected
        return _close(float(actual), float(expected))
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(actual) == len(expected) and all(map(values_match, actual, expected))
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            values_match(actual[k], expected[k]) for k in actual
        )
    return actual == expected


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
