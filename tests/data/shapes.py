"""Rows in the exact shapes of the datasets people train on, with a correct and a wrong
response for each: Skywork-OR1-RL-Data (math and code), verl's gsm8k and MATH
preprocess outputs, DAPO-Math-17k, TACO (stdin/stdout and call-based) and LeetCode-style
rows (LeetCodeDataset, as in Skywork's code split).

The shapes are read from the datasets' own files and preprocessing scripts: column names,
nesting, value types (a Skywork math ground truth is a JSON *string* of a list; a TACO
``input_output`` is a JSON string; DAPO writes ``ability: "MATH"`` and a string uuid as
``extra_info.index``). The problems themselves are small stand-ins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from or1.config import RECIPE_PROMPT_SUFFIX

DIFFICULTY = {  # Skywork-OR1-RL-Data: correct samples of 16 per base model
    "DeepSeek-R1-Distill-Qwen-1.5B": 3,
    "DeepSeek-R1-Distill-Qwen-32B": 15,
    "DeepSeek-R1-Distill-Qwen-7B": 9,
}
LEETCODE_PREFIX = (  # LeetCodeDataset's prompt prefix (abridged): imports + helper classes
    "import random\nimport functools\nimport collections\nimport string\nimport math\n"
    "from typing import *\nfrom functools import *\nfrom collections import *\n"
    "from itertools import *\nfrom heapq import *\nfrom bisect import *\n"
    "from string import *\nfrom operator import *\nfrom math import *\n"
    "inf = float('inf')\n\n"
    "class ListNode:\n    def __init__(self, val=0, next=None):\n"
    "        self.val = val\n        self.next = next\n\n"
)


@dataclass(frozen=True)
class Shape:
    """One dataset row with a response that must score 1 and one that must score 0."""

    name: str
    row: dict[str, Any]
    ability: str  # what or1 must read it as
    good: str
    bad: str


def _user(text: str) -> list[dict[str, str]]:
    return [{"content": text, "role": "user"}]  # parquet struct field order: content, role


def skywork_math(i: int = 0) -> Shape:
    row = {
        "data_source": "train-math-numinamath1.5_olympiads",
        "prompt": _user(f"What is $1 + 2$? {RECIPE_PROMPT_SUFFIX}"),
        "ability": "math",
        "reward_model": {"ground_truth": '["3"]', "style": "rule"},
        "extra_info": {"index": i, "model_difficulty": DIFFICULTY},
    }
    return Shape("skywork-math", row, "math", "</think>So \\boxed{3}.", "</think>\\boxed{4}")


def skywork_math_escaped(i: int = 0) -> Shape:
    """A JSON list with escaped LaTeX and a thousands separator among its answers."""
    row = skywork_math(i).row | {
        "reward_model": {"ground_truth": json.dumps(["\\frac{1}{2}", "1,000"]), "style": "rule"}
    }
    return Shape("skywork-math-latex", row, "math", "\\boxed{0.5}", "\\boxed{\\frac{1}{3}}")


def skywork_code_stdin(i: int = 0) -> Shape:
    tests = {"inputs": ["3\n1 2 3\n", "1\n5\n"], "outputs": ["6\n", "5\n"]}
    row = {
        "data_source": "train-code-taco-medium",
        "prompt": _user("Read n and n integers; print their sum."),
        "ability": "code",
        "reward_model": {"ground_truth": json.dumps(tests), "style": "rule"},
        "extra_info": {"index": i, "model_difficulty": DIFFICULTY},
    }
    good = "</think>\n```python\ninput()\nprint(sum(map(int, input().split())))\n```"
    bad = "</think>\n```python\ninput()\nprint(max(map(int, input().split())))\n```"
    return Shape("skywork-code-stdin", row, "code", good, bad)


def skywork_code_leetcode(i: int = 0) -> Shape:
    """Skywork's LeetCode rows: the released harness runs ``import_prefix`` + solution +
    ``check(Solution().sumArray)`` (one process per assert line)."""
    tests = {
        "import_prefix": LEETCODE_PREFIX,
        "test_code": "def check(candidate):\n    assert candidate(nums = [1, 2, 3]) == 6\n"
        "    assert candidate(nums = [5]) == 5\n    assert candidate(nums = []) == 0\n",
        "entry_point": "Solution().sumArray",
    }
    row = {
        "data_source": "train-code-leetcode-Easy",
        "prompt": _user("Return the sum of nums.\nclass Solution:\n    def sumArray(self, nums"),
        "ability": "code",
        "reward_model": {"ground_truth": json.dumps(tests), "style": "rule"},
        "extra_info": {"index": i, "model_difficulty": DIFFICULTY},
    }
    good = (
        "```python\nclass Solution:\n    def sumArray(self, nums: List[int]) -> int:\n"
        "        return sum(nums)\n```"
    )
    bad = (
        "```python\nclass Solution:\n    def sumArray(self, nums: List[int]) -> int:\n"
        "        return max(nums, default=0)\n```"
    )
    return Shape("skywork-code-leetcode", row, "code", good, bad)


def verl_gsm8k(i: int = 0) -> Shape:
    """examples/data_preprocess/gsm8k.py: the '####' instruction, answer after '####'."""
    question = "Natalia sold 48 clips in April and half as many in May. How many in total?"
    row = {
        "data_source": "openai/gsm8k",
        "prompt": [
            {
                "role": "user",
                "content": question
                + ' Let\'s think step by step and output the final answer after "####".',
            }
        ],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": "72"},
        "extra_info": {
            "split": "train",
            "index": i,
            "answer": "Natalia sold 48/2 = 24 clips in May.\n48+24 = 72\n#### 72",
            "question": question,
        },
    }
    return Shape("verl-gsm8k", row, "math", "48 + 24 = 72, so \\boxed{72}", "\\boxed{24}")


def verl_math(i: int = 0) -> Shape:
    """examples/data_preprocess/math_dataset.py (MATH-lighteval)."""
    row = {
        "data_source": "DigitalLearningGmbH/MATH-lighteval",
        "prompt": [
            {"role": "user", "content": f"Simplify $\\frac{{2}}{{4}}$. {RECIPE_PROMPT_SUFFIX}"}
        ],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": "\\frac{1}{2}"},
        "extra_info": {"split": "test", "index": i},
    }
    return Shape("verl-math", row, "math", "\\boxed{\\dfrac{1}{2}}", "\\boxed{2}")


def dapo_math(i: int = 0) -> Shape:
    """BytedTsinghua-SIA/DAPO-Math-17k: ability "MATH", an 'Answer:' instruction."""
    row = {
        "data_source": "math_dapo",
        "prompt": _user(
            "Solve the following math problem step by step. The last line of your response "
            "should be of the form Answer: $Answer (without quotes) where $Answer is the "
            "answer to the problem.\n\nWhat is $17 \\cdot 2$?\n\nRemember to put your answer "
            'on its own line after "Answer:".'
        ),
        "ability": "MATH",
        "reward_model": {"ground_truth": "34", "style": "rule-lighteval/MATH_v2"},
        "extra_info": {"index": f"9a9b6eb4-a1cb-49d1-8c1e-62eaf2f7407{i % 10}"},
    }
    return Shape("dapo-math", row, "math", "17 * 2 = 34\nAnswer: 34", "Answer: 35")


def _taco(question: str, io: dict[str, Any], starter: str) -> dict[str, Any]:
    """A BAAI/TACO row: every column, the JSON ones as strings."""
    return {
        "question": question,
        "solutions": json.dumps(["..."]),
        "starter_code": starter,
        "input_output": json.dumps(io),
        "difficulty": "EASY",
        "raw_tags": "['Implementation']",
        "name": None,
        "source": "codewars" if starter else "codeforces",
        "tags": "['Implementation']",
        "skill_types": "[]",
        "url": "https://example.invalid/problem",
        "Expected Auxiliary Space": None,
        "time_limit": "1 second" if not starter else None,
        "date": None,
        "picture_num": "0",
        "memory_limit": "256 megabytes" if not starter else None,
        "Expected Time Complexity": None,
    }


def taco_stdin(i: int = 0) -> Shape:
    io = {"inputs": ["2 3\n", "10 -4\n"], "outputs": ["5\n", "6\n"]}
    row = _taco("Read a and b, print a + b.", io, "")
    good = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    bad = "```python\na, b = map(int, input().split())\nprint(a * b)\n```"
    return Shape("taco-stdin", row, "code", good, bad)


def taco_call(i: int = 0) -> Shape:
    """A call-based TACO row: ``fn_name``, inputs as argument lists, outputs wrapped."""
    io = {
        "fn_name": "sum_even",
        "inputs": [[[1, 2, 3, 4]], [[]], [[7]]],
        "outputs": [[6], [0], [0]],
    }
    row = _taco("Return the sum of the even numbers of xs.", io, "def sum_even(xs):\n\t")
    good = "```python\ndef sum_even(xs):\n    return sum(x for x in xs if x % 2 == 0)\n```"
    bad = "```python\ndef sum_even(xs):\n    return sum(xs)\n```"
    return Shape("taco-call", row, "code", good, bad)


def verl_call(i: int = 0) -> Shape:
    """A call-based problem in a verl row (PRIME / Skywork style ground truth)."""
    io = {"fn_name": "twice", "inputs": [[2], [-1]], "outputs": [[4], [-2]]}
    row = {
        "data_source": "train-code-taco-easy",
        "prompt": _user("Write twice(x) returning 2 * x."),
        "ability": "code",
        "reward_model": {"ground_truth": json.dumps(io), "style": "rule"},
        "extra_info": {"index": i},
    }
    good = "```python\ndef twice(x):\n    return 2 * x\n```"
    bad = "```python\ndef twice(x):\n    return x + 2\n```"
    return Shape("verl-call", row, "code", good, bad)


MATH_SHAPES = (skywork_math, skywork_math_escaped, verl_gsm8k, verl_math, dapo_math)
CODE_SHAPES = (skywork_code_stdin, skywork_code_leetcode, taco_stdin, taco_call, verl_call)
SHAPES = MATH_SHAPES + CODE_SHAPES
