"""What a code problem's tests are and when one passes: the accepted test formats (see
or1/rewards/code.py) parsed into a `TestSpec`, and the output comparison."""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from or1.errors import RewardError

FLOAT_TOL = 1e-6  # absolute or relative tolerance for non-integer numbers
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
IMPORT_PREFIX = (
    "import sys, os, re, math, heapq, bisect, itertools, functools, collections, string\n"
    "import datetime, random, statistics, copy, operator, fractions, decimal\n"
    "from typing import *\nfrom collections import *\nfrom heapq import *\n"
    "from bisect import *\nfrom itertools import *\nfrom functools import *\n"
    "from math import *\nfrom string import *\nfrom operator import *\nfrom copy import *\n"
    "from builtins import *\ninf = float('inf')\n"
)


@dataclass(frozen=True)
class TestSpec:
    """A normalised test specification.

    Attributes:
        mode: "stdio", "call" or "assert".
        inputs: per test: stdin text (stdio), {"args", "kwargs"} (call) or test code
            (assert: a `check(candidate)` function, or a snippet when `entry` is None).
        expected: per test: expected stdout (stdio), acceptable return values (call),
            None (assert).
        prefix: code run before the solution, and before the test code (imports, and
            in LeetCode rows the ListNode/TreeNode helpers).
        suffix: assert mode: the test code's statements other than `check` (helpers).
        fn_name: function to call (call mode).
        entry: assert mode: the expression `check` is called with, evaluated in the
            solution's namespace (a name, or e.g. "Solution().sumArray").
    """

    __test__ = False  # not a pytest test class

    mode: str
    inputs: list[Any]
    expected: list[Any]
    prefix: str = IMPORT_PREFIX
    suffix: str = ""
    fn_name: str | None = None
    entry: str | None = None


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
    """`check(candidate)` test code, as the released harness runs it: `check({entry_point})`
    after `import_prefix` and the solution. One test per top-level `assert` of `check`
    when `check` is only asserts (the Skywork code splits them so), else one test."""
    entry, test_code = tests.get("entry_point"), tests["test_code"]
    if not isinstance(test_code, str) or not _is_expression(entry):
        raise _spec_error("'test_code' needs a string and 'entry_point' an expression")
    try:
        tree = ast.parse(test_code)
    except SyntaxError as err:
        raise _spec_error(f"'test_code' does not parse ({err})") from None
    prefix = tests.get("import_prefix") or IMPORT_PREFIX
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:  # plain asserts naming the solution's functions: one test
        return TestSpec("assert", [test_code], [None], prefix=prefix)
    if len(checks) > 1:
        raise _spec_error(f"'test_code' defines {len(checks)} functions named check")
    others = [n for n in tree.body if n not in checks]
    suffix = ast.unparse(ast.Module(body=others, type_ignores=[]))
    check = checks[0]
    if not all(isinstance(s, ast.Assert) for s in check.body):
        return TestSpec(
            "assert", [ast.unparse(check)], [None], prefix=prefix, suffix=suffix, entry=entry
        )
    chunks = []
    for stmt in check.body:
        one = copy.copy(check)
        one.body = [stmt]
        chunks.append(ast.unparse(one))
    return TestSpec(
        "assert", chunks, [None] * len(chunks), prefix=prefix, suffix=suffix, entry=entry
    )


def _is_expression(text: object) -> bool:
    if not isinstance(text, str) or not text.strip():
        return False
    try:
        ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return False
    return True


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
