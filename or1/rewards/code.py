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
  * assert-style: {"test_code": "def check(candidate): ...", "entry_point": expr,
    "import_prefix": optional}, run as the released harness does: `check(entry_point)`
    after the prefix and the solution, where the entry point may be an expression such
    as "Solution().sumArray" (LeetCode rows); each top-level `assert` of `check` is one
    test when `check` is only asserts, else the whole `check` is one test;
    {"assert_case": [str]} runs each snippet (names it does not define are the
    solution's);
  * LiveCodeBench rows: a list of {"input", "output", "testtype"} (with "fn_name" for
    functional tests use {"tests": [...], "fn_name": ...}).
- Like LiveCodeBench, the solution runs after a prefix of common imports
  (`code_tests.IMPORT_PREFIX`; the row's "import_prefix" replaces it), ending in
  `from builtins import *` so `pow`, `open`, ... are the builtins again.
- stdout is compared token-wise (whitespace-normalised, so line breaks do not matter);
  two numeric tokens, at least one non-integer, match within 1e-6 absolute or relative.
  Return values compare the same way, recursively (tuples as lists). Problems with
  several valid outputs cannot be judged by exact match (the recipe says so too).
- No pass without the tests passing (code_run.py, _harness.py): stdin/stdout tests run
  one sandboxed process each and the host compares the output; call and assert tests run
  the candidate in one sandbox and the tests in another (the judge), which calls the
  candidate's functions remotely and gets back only plain data it rebuilds with its own
  types. Expected values never enter the candidate's sandbox, and the candidate has no
  channel to the host, so exiting early, always-equal objects, forged records, patched
  builtins or reading another process's memory cannot pass a test; the attempts the
  harness notices are reported (`Verdict.hack`).
- The first failure stops the run (reward 0) unless `fractional=True`.
- Time limits are a `CodeLimits` (default: the paper's ~6 s per test, 60 s per response;
  `RELEASED_CODE_LIMITS`: the released code's 6 s per stdin test, 2 s per assert test,
  min(7n + 5, 300) s per response). The released harness also counts a program that
  exits with status 0 before its asserts ran as a pass; or1 does not.
- A malformed test specification is the caller's fault: `RewardError`; so is a machine
  where no sandbox can isolate programs (see sandbox.py). Anything the model's program
  does gives a verdict, never an exception.
"""

from __future__ import annotations

import ast
import logging
import re
from dataclasses import dataclass, replace

from or1.rewards.code_run import STARTUP_S, run_tests
from or1.rewards.code_tests import parse_tests
from or1.rewards.math import answer_text
from or1.rewards.verdict import Verdict

logger = logging.getLogger("or1.rewards")

__all__ = [
    "RELEASED_CODE_LIMITS",
    "STARTUP_S",
    "CodeLimits",
    "code_reward",
    "code_verdict",
    "extract_code",
]
POOL_TIMEOUT_S = 330.0  # hard deadline per item in the process pool (300 s cap + starts)
_FENCE = re.compile(r"```(?:python3?|py)[ \t]*[^\n`]*\n", re.IGNORECASE)


@dataclass(frozen=True)
class CodeLimits:
    """Time and memory limits of the code reward (defaults: the paper's, RECIPE.md).

    Attributes:
        stdin_test_s: wall-clock seconds per stdin/stdout test.
        call_test_s: per call-based (`fn_name`) test.
        assert_test_s: per assert test.
        total_base_s, total_per_test_s, total_max_s: the global cap of one response,
            min(total_base_s + total_per_test_s * n, total_max_s) for n tests.
        memory_mb: address space of each sandboxed process, MiB.
    """

    stdin_test_s: float = 6.0
    call_test_s: float = 6.0
    assert_test_s: float = 6.0
    total_base_s: float = 60.0
    total_per_test_s: float = 0.0
    total_max_s: float = 60.0
    memory_mb: int = 2048

    def per_test_s(self, mode: str) -> float:
        """The per-test limit of a test mode ("stdio", "call", "assert")."""
        return {"stdio": self.stdin_test_s, "call": self.call_test_s}.get(mode, self.assert_test_s)

    def total_s(self, n_tests: int) -> float:
        """The global cap for a response with n_tests tests."""
        return min(self.total_base_s + self.total_per_test_s * n_tests, self.total_max_s)


# The released Skywork-OR1 code: 6 s per stdin test, 2 s per assert test (call-based
# tests go through the stdin/stdout runner's 6 s), global min(7n + 5, 300) s.
RELEASED_CODE_LIMITS = CodeLimits(
    stdin_test_s=6.0,
    call_test_s=6.0,
    assert_test_s=2.0,
    total_base_s=5.0,
    total_per_test_s=7.0,
    total_max_s=300.0,
)


def code_verdict(
    response: str,
    tests: dict | str | list,
    *,
    limits: CodeLimits | None = None,
    fractional: bool = False,
    timeout_s: float | None = None,
    total_timeout_s: float | None = None,
) -> Verdict:
    """Reward of a code response and the reason (see or1/rewards/verdict.py).

    Args:
        response: the model's full response (reasoning and a ```python block).
        tests: the test specification, a dict or its JSON string (see module docstring).
        limits: time/memory limits (default `CodeLimits()`, the paper's).
        fractional: reward the fraction of tests passed instead of all-or-nothing.
        timeout_s, total_timeout_s: if given, one per-test limit for every kind of test
            and a fixed global cap, in place of those of `limits`.

    Returns:
        A `Verdict`: reward 1.0 (or the fraction) and "" when every test passed.

    Raises:
        RewardError: the test specification is malformed, or no sandbox backend can
            isolate programs on this machine.

    Example:
        >>> code_verdict("```python\\nprint(int(input()) * 2)\\n```",
        ...              {"inputs": ["21\\n"], "outputs": ["42\\n"]})
        Verdict(reward=1.0, reason='', hack=False)
    """
    from or1.rewards import sandbox

    limits = _with_overrides(limits or CodeLimits(), timeout_s, total_timeout_s)
    spec = parse_tests(tests)
    code = extract_code(response)
    if code is None:
        has_block = isinstance(response, str) and bool(
            _fenced_blocks(answer_text(response, limit=None))
        )
        return Verdict(0.0, "syntax error" if has_block else "no code block")
    sandbox.get_backend()  # refuse before running anything where nothing isolates programs
    try:
        out = run_tests(
            spec,
            code,
            timeout_s=limits.per_test_s(spec.mode),
            total_s=limits.total_s(len(spec.inputs)),
            memory_mb=limits.memory_mb,
            fractional=fractional,
        )
    except (OSError, RuntimeError) as err:  # the sandbox failed: not the model's fault
        logger.error("code reward: sandbox failure (%s); reward 0", err)
        return Verdict(0.0, "sandbox refusal")
    reason = next((r for r in out.reasons if r), "")
    if fractional:
        return Verdict(sum(out.passed) / len(out.passed), reason, out.hack)
    return Verdict(1.0 if all(out.passed) else 0.0, reason, out.hack)


def code_reward(
    response: str,
    tests: dict | str,
    *,
    fractional: bool = False,
    limits: CodeLimits | None = None,
    timeout_s: float | None = None,
    total_timeout_s: float | None = None,
) -> float:
    """Reward of a code response: 1.0 if its program passes every test, else 0.0.

    The reward of `code_verdict` (same arguments); a float in [0, 1].

    Example:
        >>> code_reward("```python\\nprint(int(input()) * 2)\\n```",
        ...             {"inputs": ["21\\n"], "outputs": ["42\\n"]})
        1.0
    """
    return code_verdict(
        response,
        tests,
        limits=limits,
        fractional=fractional,
        timeout_s=timeout_s,
        total_timeout_s=total_timeout_s,
    ).reward


def _with_overrides(
    limits: CodeLimits, timeout_s: float | None, total_timeout_s: float | None
) -> CodeLimits:
    if timeout_s is not None:
        limits = replace(
            limits, stdin_test_s=timeout_s, call_test_s=timeout_s, assert_test_s=timeout_s
        )
    if total_timeout_s is not None:
        limits = replace(
            limits, total_base_s=total_timeout_s, total_per_test_s=0.0, total_max_s=total_timeout_s
        )
    return limits


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
