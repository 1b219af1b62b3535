"""Throughput of the rewards: math and code rewards per second, in-process and pooled.

    .venv/bin/python bench/rewards.py [--math N] [--code N] [--repeats R]

Items are distinct (so `score_batch`'s deduplication and Math-Verify's parse caches do
not help; every repeat gets fresh items) and half of them are correct. Code items are
stdin/stdout programs with 5 tests each, run in the sandbox. Pool start-up is excluded
(the pool is warmed first); configurations alternate and the median of the repeats is
reported. `math_cpu_ms_per_item` is the CPU time of one in-process math reward: unlike
the rates it hardly depends on how busy the machine is. Progress goes
to stderr; the result is one JSON object, the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
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


def measure(items: list[tuple[str, str, str]], workers: int) -> tuple[float, float]:
    """Wall and CPU seconds per item of one batch (a pool is started and warmed first).
    The CPU time is this process's only: meaningful in-process (workers=0) for math."""
    score_batch(items[:1], workers=workers)
    wall, cpu = time.perf_counter(), time.process_time()
    score_batch(items[1:], workers=workers)
    n = len(items) - 1
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def rates(make: Callable[[], list], repeats: int) -> tuple[dict[str, float], float]:
    """Items per second per worker count, and CPU ms per item in-process. Configurations
    alternate and the median of the repeats counts (the load of a shared machine drifts)."""
    score_batch(make()[:10])  # warm this process's imports
    walls: dict[int, list[float]] = {0: [], 1: [], 2: []}
    cpus: list[float] = []
    for _ in range(repeats):
        for workers, times in walls.items():
            wall, cpu = measure(make(), workers)
            times.append(wall)
            if workers == 0:
                cpus.append(cpu)
    per_s = {str(w): round(1.0 / statistics.median(t), 1) for w, t in walls.items()}
    return per_s, round(1000 * statistics.median(cpus), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--math", type=int, default=300, help="math items per batch")
    parser.add_argument("--code", type=int, default=40, help="code items per batch")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs")
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
        "load_avg_1m_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "math_items": args.math,
        "code_items": args.code,
        "code_tests_per_item": 5,
    }
    for name, make in makers.items():
        per_workers, cpu_ms = rates(make, args.repeats)
        result[f"{name}_per_s"] = per_workers
        if name == "math":  # code runs in sandboxed processes that cannot be accounted here
            result["math_cpu_ms_per_item"] = cpu_ms
        print(f"{name}: per second by workers {per_workers}", file=sys.stderr)
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    shutdown_pool()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
