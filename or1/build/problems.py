"""The problems of a run and their chat prompts: the configured task or data files."""

from __future__ import annotations

import logging
from collections.abc import Callable

from transformers import PreTrainedTokenizerBase

from or1.config import Config
from or1.data.problem import Problem
from or1.data.tasks import get_task
from or1.errors import ConfigError, DataError

logger = logging.getLogger("or1.build")


def load_problems(cfg: Config) -> tuple[list[Problem], list[Problem]]:
    """(train, test) problems of the configured task or files."""
    if cfg.data.train is not None:
        from or1.data.sources import load_problems as load_files  # issue: real data
        from or1.rewards import REWARDS

        skip = cfg.data.skip_bad_rows
        known = {*REWARDS, *cfg.rewards.by_ability}  # abilities with a reward
        train = load_files(cfg.data.train, skip_bad_rows=skip, abilities=known)
        test = (
            load_files(cfg.data.test, skip_bad_rows=skip, abilities=known) if cfg.data.test else []
        )
        return train, test
    if cfg.data.task is not None:
        return get_task(cfg.data.task).generate_splits(cfg.data, cfg.train.seed)
    raise ConfigError("no training data: set data.task or data.train.")


def fit_prompts(
    problems: list[Problem],
    encode: Callable[[Problem], list[int]],
    max_prompt_length: int,
    *,
    split: str,
) -> tuple[list[Problem], dict[str, list[int]]]:
    """The problems whose chat prompt fits ``max_prompt_length`` tokens, and their ids.

    Longer prompts are dropped with one warning naming how many and the first one (verl's
    ``filter_overlong_prompts``): truncating a problem statement would train on a question
    the model cannot read. Raises DataError when nothing is left.
    """
    kept: list[Problem] = []
    ids: dict[str, list[int]] = {}
    too_long: list[tuple[str, int]] = []
    for problem in problems:
        prompt = encode(problem)
        if len(prompt) > max_prompt_length:
            too_long.append((problem.uid, len(prompt)))
            continue
        kept.append(problem)
        ids[problem.uid] = prompt
    if too_long:
        uid, length = too_long[0]
        logger.warning(
            "%s: dropped %d of %d problems whose prompt is longer than "
            "rollout.max_prompt_length=%d tokens (e.g. %s: %d tokens)",
            split,
            len(too_long),
            len(problems),
            max_prompt_length,
            uid,
            length,
        )
    if problems and not kept:
        uid, length = too_long[0]
        raise DataError(
            f"{split}: every prompt is longer than rollout.max_prompt_length="
            f"{max_prompt_length} tokens (e.g. {uid}: {length} tokens).",
            hint="raise rollout.max_prompt_length or shorten the prompts.",
        )
    return kept, ids


def encode_prompt(tokenizer: PreTrainedTokenizerBase, problem: Problem) -> list[int]:
    """Token ids of the problem's chat prompt with the assistant turn opened."""
    encoded = tokenizer.apply_chat_template(
        problem.prompt, add_generation_prompt=True, tokenize=True
    )
    ids = encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
    return list(ids)
