"""tiny-mix: tiny-arith and tiny-code problems in one run, one tokenizer and one model for
both, as Skywork-OR1-7B trains one policy on math and code together.

The splits are the two tasks' splits (``data.arith``, ``data.code``) shuffled together, so
a batch mixes the abilities in proportion to their ``n_train`` and an evaluation capped
by ``eval.max_problems`` still sees both. The warm-up examples are split between the two
teachers in the same proportion; the tokenizer is trained on both corpora.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from or1.config import DataConfig
from or1.data.problem import Problem
from or1.data.tasks import arith, coding


def generate_splits(data: DataConfig, seed: int) -> tuple[list[Problem], list[Problem]]:
    """(train, test): tiny-arith's and tiny-code's, shuffled together (fixed by ``seed``)."""
    math_train, math_test = arith.generate_splits(data.arith, seed)
    code_train, code_test = coding.generate_splits(data.code, seed)
    rng = random.Random(f"tiny-mix-{seed}")
    train, test = math_train + code_train, math_test + code_test
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def warmup_examples(
    train: list[Problem], n: int, data: DataConfig, seed: int
) -> Iterator[tuple[Problem, str]]:
    """``n`` teacher pairs, each ability's share of ``n`` its share of ``train``."""
    code = [p for p in train if p.ability == "code"]
    math = [p for p in train if p.ability != "code"]
    n_code = round(n * len(code) / max(len(train), 1))
    if math:
        yield from arith.warmup_examples(
            math,
            n - n_code,
            error_rate=data.arith.teacher_error_rate,
            seed=seed,
            merge_rate=data.arith.teacher_merge_rate,
        )
    if code:
        yield from coding.warmup_examples(
            code, n_code, error_rate=data.code.teacher_error_rate, seed=seed
        )


def tokenizer_corpus(data: DataConfig) -> list[str]:
    """Both tasks' tokenizer corpora."""
    return arith.tokenizer_corpus(data.arith) + coding.tokenizer_corpus(data.code)
