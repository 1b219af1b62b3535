"""reasoning-gym task: procedurally generated problems from the ``reasoning-gym`` package.

Any reasoning-gym dataset whose answers are numbers or expressions works with the math
reward (chain_sum, basic_arithmetic, gcd, lcm, leg_counting, ...): its ``answer`` becomes
the ground truth, which the math reward wraps in ``\\boxed{}`` and checks with
Math-Verify. Datasets with free-text answers (word sorting, ciphers) are rejected at
load: Math-Verify cannot judge them (``check_answers``).

The prompt is the dataset's question followed by ``prompt_suffix`` (default: the
recipe's "Let's think step by step and output the final answer within \\boxed{}."), as
one user message; the model's chat template adds its own system prompt.

Splits: one dataset seeded by ``data.reasoning_gym.seed`` (not ``train.seed``, so every
training seed is evaluated on the same held-out problems): its first ``n_train`` items
are train, the following ones test, dropping any question also in train.
"""

from __future__ import annotations

from typing import Any

from or1.config import ReasoningGymConfig
from or1.data.problem import Problem
from or1.data.tasks.arith import PROMPT_SUFFIX
from or1.errors import ConfigError

# Test problems are drawn from a larger pool so that dropping train duplicates (likely
# for easy settings: few distinct expressions) still leaves n_test problems.
TEST_POOL_FACTOR = 4
# Answers checked to verify against themselves at load (a cheap early failure).
CHECKED_ANSWERS = 8


def make_dataset(name: str, params: dict[str, Any], *, size: int, seed: int) -> Any:
    """A reasoning-gym dataset (a sequence of {question, answer, metadata})."""
    try:
        import reasoning_gym
    except ImportError:
        raise ConfigError(
            "data.task=reasoning-gym needs the reasoning-gym package.",
            hint="pip install -e '.[smol]' (or pip install reasoning-gym).",
        ) from None
    if name not in reasoning_gym.factory.DATASETS:
        raise ConfigError(
            f"data.reasoning_gym.dataset: unknown reasoning-gym dataset '{name}'.",
            hint="e.g. chain_sum, basic_arithmetic, gcd, leg_counting; see "
            "reasoning_gym.factory.DATASETS.",
        )
    try:
        return reasoning_gym.create_dataset(name, size=size, seed=seed, **params)
    except (TypeError, AssertionError, ValueError) as err:
        raise ConfigError(
            f"data.reasoning_gym.params for '{name}' are not accepted: {err}",
            hint=f"see the fields of the {name} config class in reasoning_gym.",
        ) from None


def to_problem(
    entry: dict[str, Any], *, name: str, index: int, suffix: str = PROMPT_SUFFIX
) -> Problem:
    """A Problem from one reasoning-gym entry."""
    question = entry["question"].rstrip()
    return Problem(
        uid=f"rg-{name}-{index}",
        prompt=[{"role": "user", "content": f"{question}\n{suffix}"}],
        ground_truth=str(entry["answer"]).strip(),
        ability="math",
        data_source=f"reasoning-gym/{name}",
        extra_info={"index": index, "question": question},
    )


def generate_splits(cfg: ReasoningGymConfig, seed: int = 0) -> tuple[list[Problem], list[Problem]]:
    """Disjoint (train, test) problems of ``cfg.dataset`` at the difficulty ``cfg.params``.

    ``seed`` (the training seed) is accepted for the task interface and ignored: the
    problems depend on ``cfg.seed`` only.

    Example:
        >>> train, test = generate_splits(ReasoningGymConfig(n_train=4, n_test=2))
        >>> train[0].ground_truth.lstrip("-").isdigit()
        True
    """
    del seed
    name = cfg.dataset
    # One dataset, split by position: reasoning-gym seeds item i with seed + i, so two
    # datasets with nearby seeds would share most items.
    size = cfg.n_train + cfg.n_test * TEST_POOL_FACTOR
    entries = make_dataset(name, cfg.params, size=size, seed=cfg.seed)
    suffix = PROMPT_SUFFIX if cfg.prompt_suffix is None else cfg.prompt_suffix
    train = [to_problem(entries[i], name=name, index=i, suffix=suffix) for i in range(cfg.n_train)]
    seen = {p.question for p in train}
    test: list[Problem] = []
    for i in range(cfg.n_train, size):
        problem = to_problem(entries[i], name=name, index=i, suffix=suffix)
        if problem.question not in seen and len(test) < cfg.n_test:
            seen.add(problem.question)
            test.append(problem)
    if len(test) < cfg.n_test:
        raise ConfigError(
            f"reasoning-gym {name}: only {len(test)} test problems not in train "
            f"(asked {cfg.n_test}); the settings {cfg.params} allow too few distinct problems.",
            hint="lower data.reasoning_gym.n_test/n_train or make the task harder.",
        )
    check_answers(train[:CHECKED_ANSWERS], name)
    return train, test


def check_answers(problems: list[Problem], name: str) -> None:
    """Raise unless a dataset's answers are numbers Math-Verify parses (free text such as
    a reversed word would only ever be judged by string equality)."""
    from math_verify import parse

    import or1.rewards.math  # noqa: F401  (quiets math_verify's logger)

    # No timeout (it needs SIGALRM, i.e. the main thread): the answers are short.
    for problem in problems:
        parsed = parse(f"\\boxed{{{problem.ground_truth}}}", parsing_timeout=None)
        value = parsed[0] if parsed else None
        if value is None or isinstance(value, str) or getattr(value, "free_symbols", True):
            raise ConfigError(
                f"reasoning-gym {name}: the math reward cannot verify its answers "
                f"(e.g. {problem.ground_truth!r} is not a number).",
                hint="choose a dataset with numeric answers (chain_sum, basic_arithmetic, gcd).",
            )
