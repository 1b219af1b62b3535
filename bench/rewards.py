"""Throughput of the rewards: math and code rewards per second, in-process and pooled.

    .venv/bin/python bench/rewards.py [--math N] [--code N] [--repeats R]

Items are distinct (so `score_batch`'s deduplication and Math-Verify's parse caches do
not help; every repeat gets fresh items) and half of them are correct. Code items are
stdin/stdout programs with 5 tests each, run in the sandbox. Pool start-up is excluded
(the pool is warmed first). Progress goes to stderr; the result is one JSON object, the
last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from collections.abc import Callable

from or1.rewards import sandbox, score_batch, shutdown_pool

MATH_TEMPLATES = [
    ("Adding up, the total is $\\boxed{{{a}}}$.", "{a}"),
    ("<think>{a}/{b}...</think>So the ratio is $\\boxed{{\\frac{{{a}}}{{{b}}}}}$.", "{a}/{b}"),
    ("The probability is \\boxed{{0.{a}}}", "\\frac{{{a}}}{{{p}}}"),
    ("We get $x \\in \\boxed{{[{a}, {b})}}$", "[{a},{b})"),
    ("Hence \\boxed{{\\sqrt{{{a}}}}} is the length.", "\\sqrt{{{a}}}"),
]
CODE_TESTS = json.dumps(
    {
        "inputs": [f"{n}\n{' '.join(str(i) for i in range(n))}\n" for n in (1, 5, 10, 100, 1000)],
        "outputs": [f"{n * (n - 1) // 2}\n" for n in (1, 5, 10, 100, 1000)],
    }
)
GOOD = "```python\n# variant {k}\nn = int(input())\nprint(sum(map(int, input().split())))\n```"
BAD = "```python\n# variant {k}\nn = int(input())\nprint(n)\n```"


def math_items(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    items = []
    for k in range(n):
        template, gold = MATH_TEMPLATES[k % len(MATH_TEMPLATES)]
        a, b = rng.randint(2, 999), rng.randint(1000, 1999)
        values = {"a": a, "b": b, "p": 10 ** len(str(a))}
        wrong = {"a": a + 1, "b": b, "p": values["p"]} if k % 2 else values
        items.append(("math", template.format(**wrong), gold.format(**values)))
    return items


def code_items(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    tag = rng.getrandbits(32)
    return [
        ("code", (GOOD if k % 2 == 0 else BAD).format(k=f"{tag}-{k}"), CODE_TESTS) for k in range(n)
    ]


def rate(make: Callable[[], list[tuple[str, str, str]]], workers: int, repeats: int) -> float:
    if workers:
        score_batch(make()[:workers], workers=workers)  # start and warm the pool
    best = float("inf")
    for _ in range(repeats):
        items = make()
        start = time.perf_counter()
        score_batch(items, workers=workers)
        best = min(best, (time.perf_counter() - start) / len(items))
    return 1.0 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--math", type=int, default=300, help="math items per batch")
    parser.add_argument("--code", type=int, default=40, help="code items per batch")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    rng = random.Random(0)
    makers = {
        "math": lambda: math_items(args.math, rng),
        "code": lambda: code_items(args.code, rng),
    }
    result: dict[str, object] = {
        "backend": sandbox.get_backend().describe(),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "math_items": args.math,
        "code_items": args.code,
        "code_tests_per_item": 5,
    }
    for name, make in makers.items():
        per_workers = {}
        for workers in (0, 1, 2):
            per_workers[str(workers)] = round(rate(make, workers, args.repeats), 1)
            print(f"{name} workers={workers}: {per_workers[str(workers)]}/s", file=sys.stderr)
        result[f"{name}_per_s"] = per_workers
    shutdown_pool()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
