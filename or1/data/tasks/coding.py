"""tiny-code: a verifiable Python task small enough to run code RL on a CPU.

A problem asks for one small function, e.g. ``Write a Python function f(xs) that returns
the sum of the even numbers in xs.``, from a few dozen templates over lists of ints,
ints and strings (``coding_specs.py``) with parameters, function and argument names drawn
from a seed. Its ground truth is a call-based test specification in or1's code-test
format (``{"fn_name", "inputs", "outputs"}``: each input a one-argument list), scored by
the real code reward in the sandbox; the ability is "code". The prompt ends with an
instruction to answer in a ```python block, as LiveCodeBench-style prompts do.

Hidden tests: ``n_tests`` inputs, chosen so that every teacher slip of the template, the
identity and every constant answer fail at least one (edge inputs such as [] or an
element equal to K first, then random ones); expected outputs come from the template's
reference body. The reference and slip bodies are the package's own trusted code, run
in-process here only to compute and check expected values.

The warm-up teacher is imperfect as in tiny-arith: an R1-style solution (``<think>`` a
one-line plan ``</think>`` then the ```python block) whose body is, with probability
``teacher_error_rate``, one of the template's slips instead of the reference. Train and
test splits are disjoint by problem (template, parameters, function and argument name);
the templates themselves are shared, as tiny-arith's operators are.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from or1.config import CodeConfig
from or1.data.problem import Problem
from or1.data.tasks.coding_specs import ARG_NAMES, FUNCTION_NAMES, LETTERS, SPECS, Spec
from or1.data.tasks.coding_specs import SPECS_BY_NAME as SPECS_BY_NAME
from or1.errors import ConfigError
from or1.rewards.code_tests import values_match

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
FENCE_OPEN, FENCE_CLOSE = "```python", "```"
PROMPT_SUFFIX = "Answer with the function in a ```python block."
DATA_SOURCE = "tiny-code"
# Bump when problems, tests or teacher solutions change: it keys the warm-up cache.
TASK_VERSION = 1
# BPE vocabulary for tiny-code and tiny-mix: code needs merges for its words (" return",
# " for") and indents; at 1,024 a teacher solution is ~32 tokens (~45 at tiny-arith's 384).
VOCAB_SIZE = 1024
RANDOM_INPUTS = 40
MAX_MISSES = 2000  # random candidates per problem, besides the edge inputs
TEST_STRING_LETTERS = LETTERS + "iou"  # letter parameters, plus every vowel


def fill(template: str, params: dict[str, Any], arg: str) -> str:
    """``template`` with ``{a}``, the parameters and their neighbours filled in."""
    values: dict[str, Any] = {"a": arg}
    for key, value in params.items():
        values[key] = value
        if isinstance(value, int):
            values[key + "p"], values[key + "m"] = value + 1, value - 1
        else:
            values[key + "n"] = chr(ord(value) + 1)
    return template.format(**values)


def render_function(fn: str, arg: str, body: str) -> str:
    """The source of ``def fn(arg):`` with ``body`` (already filled) indented under it."""
    lines = "\n".join("    " + line for line in body.split("\n"))
    return f"def {fn}({arg}):\n{lines}\n"


def _compile(fn: str, arg: str, body: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(render_function(fn, arg, body), namespace)  # trusted: the package's own templates
    return namespace[fn]


def _outcome(func: Any, value: Any) -> tuple[bool, Any]:
    """(raised, result) of calling ``func`` on a copy of ``value``."""
    try:
        return False, func(json.loads(json.dumps(value)))
    except Exception:  # a slip may crash (max of []): that is a failed test
        return True, None


def _edge_inputs(spec: Spec, params: dict[str, Any]) -> list[Any]:
    k = params.get("K", 3)
    if spec.kind == "list":
        return [[], [0], [k], [k, k], [k - 1, k, k + 1], [k - 1, k, k + 1, k - 2], [-1, 2]]
    if spec.kind == "int":
        low, high = spec.int_range
        return [v for v in (0, 1, 2, k - 1, k, k + 1, 2 * k, low, high) if low <= v <= high]
    c = params.get("C", "a")
    return ["", c, c + c, c + "b" + c, "aeiou", "abca", "abba", c + "bc"]


def _random_input(spec: Spec, rng: random.Random) -> Any:
    if spec.kind == "list":
        xs = [rng.randint(-10, 20) for _ in range(rng.randint(1, 7))]
        return sorted(xs) if rng.random() < 0.2 else xs
    if spec.kind == "int":
        return rng.randint(*spec.int_range)
    return "".join(rng.choice(TEST_STRING_LETTERS) for _ in range(rng.randint(1, 8)))


def _candidates(spec: Spec, params: dict[str, Any], rng: random.Random) -> list[Any]:
    """Distinct candidate inputs in order: the edge ones, then random ones."""
    pool = _edge_inputs(spec, params) + [_random_input(spec, rng) for _ in range(RANDOM_INPUTS)]
    return list({json.dumps(v): v for v in pool}.values())


def choose_tests(
    spec: Spec, params: dict[str, Any], rng: random.Random, n_tests: int
) -> list[tuple[Any, Any]]:
    """(input, expected output) pairs that every slip, the identity and every constant
    answer fail at least once: a failing input per slip first, then random ones until
    there are ``n_tests`` and at least two distinct outputs."""
    ref = _compile("f", "a", fill(spec.body, params, "a"))
    slips = [_compile("f", "a", fill(s, params, "a")) for s in spec.slips]
    pool = _candidates(spec, params, rng)
    want = {json.dumps(v): _outcome(ref, v)[1] for v in pool}

    def fails(wrong: Any, value: Any) -> bool:
        raised, got = _outcome(wrong, value)
        return raised or not values_match(got, want[json.dumps(value)])

    chosen: list[Any] = []
    for i, wrong in enumerate([*slips, lambda a: a]):  # the last: echo the argument
        if any(fails(wrong, v) for v in chosen):
            continue
        hit = next((v for v in pool if fails(wrong, v)), None)
        if hit is None and i < len(slips):
            raise ValueError(f"tiny-code {spec.name}: slip {i} passes every candidate input")
        if hit is not None:
            chosen.append(hit)
    rest = [v for v in pool if v not in chosen]
    rng.shuffle(rest)
    for v in rest:
        outputs = {json.dumps(want[json.dumps(c)]) for c in chosen}
        if len(chosen) >= n_tests and len(outputs) >= 2:
            break
        if len(chosen) < n_tests or json.dumps(want[json.dumps(v)]) not in outputs:
            chosen.append(v)
    return [(v, want[json.dumps(v)]) for v in chosen]


def _problem(spec: Spec, params: dict[str, Any], fn: str, arg: str, ground_truth: str) -> Problem:
    key = "-".join([spec.name, *(f"{k}{v}" for k, v in sorted(params.items())), fn, arg])
    question = f"Write a Python function {fn}({arg}) that returns {fill(spec.text, params, arg)}."
    return Problem(
        uid=f"tiny-code-{key}",
        prompt=[{"role": "user", "content": f"{question} {PROMPT_SUFFIX}"}],
        ground_truth=ground_truth,
        ability="code",
        data_source=DATA_SOURCE,
        extra_info={"spec": spec.name, "params": params, "fn": fn, "arg": arg},
    )


def make_problem(spec: Spec, params: dict[str, Any], fn: str, arg: str, *, n_tests: int) -> Problem:
    """The problem for one template instance; its hidden tests are fixed by its uid."""
    uid = _problem(spec, params, fn, arg, "").uid
    tests = choose_tests(spec, params, random.Random(uid), n_tests)
    ground_truth = {
        "fn_name": fn,
        "inputs": [[x] for x, _ in tests],
        "outputs": [y for _, y in tests],
    }
    return _problem(spec, params, fn, arg, json.dumps(ground_truth))


def _draw(rng: random.Random) -> tuple[Spec, dict[str, Any], str, str]:
    spec = rng.choice(SPECS)
    return spec, spec.params(rng), rng.choice(FUNCTION_NAMES), rng.choice(ARG_NAMES[spec.kind])


def generate_splits(cfg: CodeConfig, seed: int) -> tuple[list[Problem], list[Problem]]:
    """Disjoint train and test problems, fixed by ``seed``."""
    rng = random.Random(f"tiny-code-{seed}")
    seen: set[tuple[Any, ...]] = set()
    drawn: list[tuple[Spec, dict[str, Any], str, str]] = []
    want = cfg.n_train + cfg.n_test
    misses = 0  # draws in a row that gave nothing new: the task has run out of problems
    while len(drawn) < want and misses < MAX_MISSES:
        spec, params, fn, arg = _draw(rng)
        key = (spec.name, tuple(sorted(params.items())), fn, arg)
        misses = misses + 1 if key in seen else 0
        if key not in seen:
            seen.add(key)
            drawn.append((spec, params, fn, arg))
    if len(drawn) < want:
        raise ConfigError(
            f"data.code: only {len(drawn)} distinct tiny-code problems for the {want} asked.",
            hint="lower data.code.n_train or data.code.n_test.",
        )
    # Shuffled before the split: templates with few instances run out first, so the
    # last drawn problems alone would under-represent them in the test split.
    rng.shuffle(drawn)
    problems = [make_problem(*d, n_tests=cfg.n_tests) for d in drawn]
    return problems[: cfg.n_train], problems[cfg.n_train :]


def solution(problem: Problem, body: str) -> str:
    """An R1-style response to ``problem`` whose function has ``body`` (a template body,
    placeholders unfilled): the plan in ``<think>``, then the ```python block."""
    info = problem.extra_info
    plan = fill(SPECS_BY_NAME[info["spec"]].plan, info["params"], info["arg"])
    code = render_function(info["fn"], info["arg"], fill(body, info["params"], info["arg"]))
    return f"{THINK_OPEN}\n{plan}\n{THINK_CLOSE}\n{FENCE_OPEN}\n{code}{FENCE_CLOSE}"


def teacher_solution(problem: Problem, rng: random.Random, error_rate: float) -> str:
    """The teacher's solution; with probability ``error_rate`` its body is a slip."""
    spec = SPECS_BY_NAME[problem.extra_info["spec"]]
    return solution(problem, rng.choice(spec.slips) if rng.random() < error_rate else spec.body)


def warmup_examples(
    problems: list[Problem], n: int, *, error_rate: float, seed: int
) -> Iterator[tuple[Problem, str]]:
    """``n`` (problem, teacher solution) pairs drawn from ``problems``."""
    rng = random.Random(f"code-teacher-{seed}")
    for _ in range(n):
        problem = rng.choice(problems)
        yield problem, teacher_solution(problem, rng, error_rate)


def tokenizer_corpus(cfg: CodeConfig) -> list[str]:
    """Prompts and teacher solutions (slips included) of every template, to train the
    tiny tokenizer on."""
    rng = random.Random("tiny-code-corpus")
    texts = [THINK_OPEN, THINK_CLOSE, FENCE_OPEN]
    for _ in range(2000):
        spec, params, fn, arg = _draw(rng)
        problem = _problem(spec, params, fn, arg, "")  # tests are not part of the text
        texts.append(problem.question)
        texts.append(teacher_solution(problem, rng, 0.5))
    return texts
