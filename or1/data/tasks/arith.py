"""tiny-arith: a verifiable arithmetic task small enough to run the whole recipe on a CPU.

A problem is a chain of integer additions and subtractions, e.g. ``Compute 47+38-19.``;
the answer goes in ``\\boxed{}``. Solutions for the supervised warm-up come from an
*imperfect teacher*: R1-style (``<think>`` one line per step ``</think>`` then the boxed
answer), and at each step it slips with probability ``teacher_error_rate`` (a dropped
carry or borrow: the result is off by 1 or 10), carrying the wrong value on. A model
distilled from it imitates the slips, which makes the base imperfect in the way a
distilled reasoning model is (its mistakes are plausible, sampled, and fixable by RL),
instead of merely undertrained. Train and test splits are disjoint by expression.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from or1.config import ArithConfig
from or1.data.problem import Problem

PROMPT_SUFFIX = "Let's think step by step and output the final answer within \\boxed{}."
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def _expression(rng: random.Random, cfg: ArithConfig) -> tuple[list[int], list[str]]:
    n_terms = rng.randint(cfg.min_terms, cfg.max_terms)
    terms = [rng.randint(1, cfg.max_operand) for _ in range(n_terms)]
    ops = [rng.choice("+-") for _ in range(n_terms - 1)]
    return terms, ops


def render_expression(terms: list[int], ops: list[str]) -> str:
    return str(terms[0]) + "".join(f"{op}{t}" for op, t in zip(ops, terms[1:], strict=True))


def apply(value: int, op: str, term: int) -> int:
    """One step of a chain: ``value op term`` (op ``+`` or ``-``)."""
    return value + term if op == "+" else value - term


def evaluate(terms: list[int], ops: list[str]) -> int:
    value = terms[0]
    for op, term in zip(ops, terms[1:], strict=True):
        value = apply(value, op, term)
    return value


def make_problem(terms: list[int], ops: list[str], index: int) -> Problem:
    expr = render_expression(terms, ops)
    return Problem(
        uid=f"tiny-arith-{expr}",
        prompt=[{"role": "user", "content": f"Compute {expr}. {PROMPT_SUFFIX}"}],
        ground_truth=str(evaluate(terms, ops)),
        ability="math",
        data_source="tiny-arith",
        extra_info={"index": index, "terms": terms, "ops": ops},
    )


def generate_splits(cfg: ArithConfig, seed: int) -> tuple[list[Problem], list[Problem]]:
    """Disjoint train and test problems, fixed by ``seed``."""
    rng = random.Random(f"tiny-arith-{seed}")
    seen: set[str] = set()
    problems: list[Problem] = []
    want = cfg.n_train + cfg.n_test
    for _ in range(want * 50):
        terms, ops = _expression(rng, cfg)
        expr = render_expression(terms, ops)
        if expr in seen:
            continue
        seen.add(expr)
        problems.append(make_problem(terms, ops, len(problems)))
        if len(problems) == want:
            break
    else:
        raise ValueError(f"tiny-arith: only {len(problems)} distinct problems for {want} asked")
    return problems[: cfg.n_train], problems[cfg.n_train :]


def _slip(value: int, rng: random.Random) -> int:
    return value + rng.choice((-10, -1, 1, 10))


def _step(value: int, op: str, term: int, rng: random.Random, error_rate: float) -> int:
    result = apply(value, op, term)
    return _slip(result, rng) if rng.random() < error_rate else result


def teacher_solution(
    problem: Problem, rng: random.Random, error_rate: float, *, merge_rate: float = 0.0
) -> str:
    """A step-by-step R1-style solution; each step slips with probability ``error_rate``.

    With probability ``merge_rate`` a step and the next are written on one line
    (``7-3+5=9``): each operation still slips at ``error_rate``, so the teacher is as
    accurate either way, but the shorter form asks more of a model in one line.
    ``merge_rate`` 0 draws nothing more from ``rng``: the teacher it always was.
    """
    terms, ops = problem.extra_info["terms"], problem.extra_info["ops"]
    lines = []
    value, i = terms[0], 0
    while i < len(ops):
        line, i_next = f"{value}{ops[i]}{terms[i + 1]}", i + 1
        value = _step(value, ops[i], terms[i + 1], rng, error_rate)
        if merge_rate > 0.0 and i_next < len(ops) and rng.random() < merge_rate:
            line += f"{ops[i_next]}{terms[i_next + 1]}"
            value = _step(value, ops[i_next], terms[i_next + 1], rng, error_rate)
            i_next += 1
        lines.append(f"{line}={value}")
        i = i_next
    thoughts = "\n".join(lines)
    return f"{THINK_OPEN}\n{thoughts}\n{THINK_CLOSE}\n\\boxed{{{value}}}"


def warmup_examples(
    problems: list[Problem], n: int, *, error_rate: float, seed: int, merge_rate: float = 0.0
) -> Iterator[tuple[Problem, str]]:
    """``n`` (problem, teacher solution) pairs cycling over ``problems``."""
    rng = random.Random(f"teacher-{seed}")
    for i in range(n):
        problem = problems[i % len(problems)] if i >= len(problems) else rng.choice(problems)
        yield problem, teacher_solution(problem, rng, error_rate, merge_rate=merge_rate)


def tokenizer_corpus(cfg: ArithConfig) -> list[str]:
    """Texts covering every character the task uses, to train the tiny tokenizer on."""
    rng = random.Random("tiny-arith-corpus")
    texts = [f"Compute 1+2. {PROMPT_SUFFIX}", THINK_OPEN, THINK_CLOSE]
    for _ in range(2000):
        terms, ops = _expression(rng, cfg)
        problem = make_problem(terms, ops, 0)
        texts.append(problem.question)
        texts.append(teacher_solution(problem, rng, 0.5))
    return texts
