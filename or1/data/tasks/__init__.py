"""Built-in tasks by name (``data.task``): problems generated from a seed and, for the
tasks that build their own tiny model, its tokenizer corpus and warm-up examples.

``TASKS[name]`` is a `Task`; `or1.build.problems` calls ``generate_splits`` and
`or1.build.start` the tiny-model hooks, so a new task is one module plus one entry here
(and its name in ``DataConfig.task``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from or1.config import DataConfig
from or1.data.problem import Problem
from or1.data.tasks import arith, coding, mix, reasoning_gym
from or1.errors import ConfigError

Splits = tuple[list[Problem], list[Problem]]
WarmupPairs = Iterator[tuple[Problem, str]]  # (problem, teacher solution)


@dataclass(frozen=True)
class TinyModelHooks:
    """What a task gives the tiny model it trains from scratch.

    Attributes:
        tokenizer_corpus: texts covering every character and word the task uses.
        warmup_examples: ``(train problems, n, data config, seed)`` -> n teacher pairs.
        cache_parts: the part of the data config that fixes the warmed-up model (with
            the model and warm-up settings and the seed, it keys the cache).
        extra_tokens: tokens added whole (``<think>``, ``</think>``).
        vocab_size: BPE vocabulary of the tokenizer (the corpus may use fewer).
    """

    tokenizer_corpus: Callable[[DataConfig], list[str]]
    warmup_examples: Callable[[list[Problem], int, DataConfig, int], WarmupPairs]
    cache_parts: Callable[[DataConfig], Any]
    extra_tokens: tuple[str, ...] = (arith.THINK_OPEN, arith.THINK_CLOSE)
    vocab_size: int = 384


@dataclass(frozen=True)
class Task:
    """A built-in task: ``generate_splits(data config, seed)`` -> (train, test), and
    ``tiny`` when the task builds its own tiny model (None: it needs ``model.path``)."""

    generate_splits: Callable[[DataConfig, int], Splits]
    tiny: TinyModelHooks | None = None


def _arith_warmup(train: list[Problem], n: int, data: DataConfig, seed: int) -> WarmupPairs:
    return arith.warmup_examples(
        train,
        n,
        error_rate=data.arith.teacher_error_rate,
        seed=seed,
        merge_rate=data.arith.teacher_merge_rate,
    )


def arith_cache_parts(data: DataConfig) -> dict[str, Any]:
    """The tiny-arith settings that fix a warmed-up model. Without merges it is the key
    tiny-arith caches always had (``teacher_merge_rate`` did not exist), so a default
    run still finds the warm-up it built before."""
    if data.arith.teacher_merge_rate == 0.0:
        return data.arith.model_dump(exclude={"teacher_merge_rate"})
    return data.arith.model_dump()


def _code_warmup(train: list[Problem], n: int, data: DataConfig, seed: int) -> WarmupPairs:
    return coding.warmup_examples(train, n, error_rate=data.code.teacher_error_rate, seed=seed)


TASKS: dict[str, Task] = {
    "tiny-arith": Task(
        lambda data, seed: arith.generate_splits(data.arith, seed),
        TinyModelHooks(
            lambda data: arith.tokenizer_corpus(data.arith),
            _arith_warmup,
            arith_cache_parts,
        ),
    ),
    "tiny-code": Task(
        lambda data, seed: coding.generate_splits(data.code, seed),
        TinyModelHooks(
            lambda data: coding.tokenizer_corpus(data.code),
            _code_warmup,
            lambda data: {"code": data.code.model_dump(), "version": coding.TASK_VERSION},
            vocab_size=coding.VOCAB_SIZE,
        ),
    ),
    "tiny-mix": Task(
        mix.generate_splits,
        TinyModelHooks(
            mix.tokenizer_corpus,
            mix.warmup_examples,
            lambda data: {
                "arith": arith_cache_parts(data),
                "code": data.code.model_dump(),
                "version": coding.TASK_VERSION,
            },
            vocab_size=coding.VOCAB_SIZE,
        ),
    ),
    "reasoning-gym": Task(
        lambda data, seed: reasoning_gym.generate_splits(data.reasoning_gym, seed)
    ),
}


def get_task(name: str) -> Task:
    """The task called ``name``; ConfigError listing the known ones otherwise."""
    if name not in TASKS:
        raise ConfigError(
            f"data.task: unknown task '{name}'.", hint=f"one of {', '.join(sorted(TASKS))}."
        )
    return TASKS[name]
