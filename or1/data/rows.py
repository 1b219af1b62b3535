"""One table row <-> one `Problem`: validation of the accepted row shapes (see
or1/data/sources.py) and the inverse, a verl/Skywork row of a Problem.

Normalisation, so that every consumer sees one form:
- ``ability`` is matched case-insensitively against the known rewards (DAPO-Math-17k
  writes "MATH") and stored as the registered name;
- a math ground truth given as a list (a parquet/jsonl list column) is stored as the
  JSON string of its answers, the form Skywork-OR1-RL-Data uses (``'["3", "4"]'``); the
  math reward accepts any of them;
- code tests given as an object are stored as their JSON string.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from or1.config import RECIPE_PROMPT_SUFFIX
from or1.data.problem import Problem
from or1.errors import RewardError

ROLES = ("system", "user", "assistant")

Row = dict[str, Any]


class BadRow(Exception):
    """A row that fails validation: the field and the reason (short, countable)."""

    def __init__(self, field_name: str, reason: str, detail: str = "") -> None:
        self.field, self.reason, self.detail = field_name, reason, detail
        super().__init__(f"{field_name}: {reason}")


def row_to_problem(
    row: Row,
    *,
    name: str,
    index: int,
    prompt_suffix: str | None = None,
    abilities: Collection[str] | None = None,
) -> Problem:
    """Validate one raw row into a Problem; raises ``BadRow`` naming the field.

    Args:
        row: the raw row.
        name: the source's short name (uids ``<name>-<index>``, default data_source).
        index: the row's 0-based index in its source.
        prompt_suffix: appended to the last user message of a math row lacking it.
        abilities: the known abilities (None: the reward registry's names).
    """
    if "<line>" in row:  # a jsonl line that is not JSON (or1/data/sources.py)
        raise BadRow("<line>", "not valid JSON", str(row["<line>"]))
    if "<row>" in row:
        raise BadRow("<row>", "not a JSON object", type(row["<row>"]).__name__)
    extra = _extra_info(row)
    ability = _ability(row, abilities)
    if row.get("prompt") is not None:
        prompt = _prompt(row["prompt"])
        truth = _ground_truth(row, ability)
    elif row.get("question") is not None:
        prompt, truth = _question_row(row, ability)
    else:
        raise BadRow("prompt", "missing", "a row needs 'prompt' (chat list) or 'question'")
    if prompt_suffix and ability == "math":  # the boxed-answer suffix is for math only
        prompt = _suffixed(prompt, prompt_suffix)
    source = row.get("data_source")
    if source is not None and not isinstance(source, str):
        raise BadRow("data_source", "not a string", type(source).__name__)
    uid = row.get("uid", extra.get("uid"))
    return Problem(
        uid=str(uid) if uid is not None else f"{name}-{index}",
        prompt=prompt,
        ground_truth=truth,
        ability=ability,
        data_source=source or name,
        extra_info=extra,
    )


def with_suffix(text: str, suffix: str) -> str:
    """``text`` ending with ``suffix`` (added after a space when absent)."""
    if not suffix or suffix in text:
        return text
    return f"{text.rstrip()} {suffix}"


def _suffixed(prompt: list[dict[str, str]], suffix: str) -> list[dict[str, str]]:
    last = max(i for i, m in enumerate(prompt) if m["role"] == "user")
    out = [dict(m) for m in prompt]
    out[last]["content"] = with_suffix(out[last]["content"], suffix)
    return out


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadRow(name, "not a string", type(value).__name__)
    if not value.strip():
        raise BadRow(name, "empty")
    return value


def _ability(row: Row, known: Collection[str] | None) -> str:
    if known is None:
        from or1.rewards import REWARDS

        known = REWARDS
    raw = row.get("ability")
    if raw is None:  # a TACO/APPS row carries its tests in input_output
        raw = "code" if row.get("input_output") is not None else "math"
    if not isinstance(raw, str):
        raise BadRow("ability", "not a string", type(raw).__name__)
    by_lower = {name.lower(): name for name in known}
    ability = by_lower.get(raw.strip().lower())
    if ability is None:
        raise BadRow(
            "ability",
            "unknown",
            f"'{raw}'; known (any case): {', '.join(sorted(known))}; a new one needs a "
            "reward (rewards.by_ability.<name>=module:function)",
        )
    return ability


def _question_row(row: Row, ability: str) -> tuple[list[dict[str, str]], str]:
    """A plain ``{question, answer}`` row, or a TACO/APPS ``{question, input_output}``
    code row (``starter_code`` shown in a LiveCodeBench-style prompt)."""
    question = _text(row["question"], "question")
    if ability == "code" and row.get("input_output") is not None:
        from or1.data.prompts import code_prompt

        starter = row.get("starter_code")
        starter = starter if isinstance(starter, str) and starter.strip() else None
        tests = _code_tests(row["input_output"], "input_output")
        return [{"role": "user", "content": code_prompt(question, starter)}], tests
    suffix = RECIPE_PROMPT_SUFFIX if ability == "math" else ""
    return [{"role": "user", "content": with_suffix(question, suffix)}], _answer(row, ability)


def _prompt(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):  # a bare string prompt: one user message
        return [{"role": "user", "content": _text(value, "prompt")}]
    if hasattr(value, "tolist"):  # numpy arrays from pandas-written parquet
        value = value.tolist()
    if not isinstance(value, list) or not value:
        raise BadRow("prompt", "not a non-empty chat list", type(value).__name__)
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise BadRow(f"prompt[{i}]", "not a {role, content} mapping")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise BadRow(f"prompt[{i}].role", "unknown role", f"{role!r}; use {'/'.join(ROLES)}")
        messages.append({"role": role, "content": _text(content, f"prompt[{i}].content")})
    if not any(m["role"] == "user" for m in messages):
        raise BadRow("prompt", "no user message")
    return messages


def _ground_truth(row: Row, ability: str) -> str:
    reward_model = row.get("reward_model")
    if reward_model is None:
        raise BadRow("reward_model", "missing")
    if not isinstance(reward_model, dict):
        raise BadRow("reward_model", "not a mapping", type(reward_model).__name__)
    if reward_model.get("ground_truth") is None:
        raise BadRow("reward_model.ground_truth", "missing")
    return _truth(reward_model["ground_truth"], ability, "reward_model.ground_truth")


def _answer(row: Row, ability: str) -> str:
    if row.get("answer") is not None:
        return _truth(row["answer"], ability, "answer")
    if isinstance(row.get("reward_model"), dict):
        return _ground_truth(row, ability)
    raise BadRow("answer", "missing", "a 'question' row needs 'answer'")


def _truth(value: Any, ability: str, name: str) -> str:
    if ability == "code":
        return _code_tests(value, name)
    if hasattr(value, "tolist"):  # numpy arrays from pandas-written parquet
        value = value.tolist()
    if isinstance(value, list):  # several acceptable answers: stored as a JSON list
        answers = [_answer_text(v, f"{name}[{i}]") for i, v in enumerate(value)]
        if not answers:
            raise BadRow(name, "an empty list of answers")
        return json.dumps(answers, ensure_ascii=False)
    text = _answer_text(value, name)
    if ability == "math":
        from or1.rewards.math import math_answers

        try:
            math_answers(text)
        except RewardError as err:
            raise BadRow(name, "a JSON list without a usable answer", err.message) from None
    return text


def _answer_text(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRow(name, "not a string, number or list", type(value).__name__)
    return _text(str(value), name)


def _code_tests(value: Any, name: str) -> str:
    """Code ground truth as a JSON string of tests that the code reward can run."""
    from or1.rewards.code_tests import parse_tests

    if isinstance(value, dict | list):
        value = json.dumps(value)
    text = _text(value, name)
    try:
        json.loads(text)
    except ValueError as err:
        raise BadRow(name, "not valid JSON", str(err)) from None
    try:
        parse_tests(text)
    except RewardError as err:
        raise BadRow(name, "not a test specification", err.message) from None
    return text


def _extra_info(row: Row) -> dict[str, Any]:
    extra = row.get("extra_info")
    if extra is None:
        return {}
    if isinstance(extra, str):  # some jsonl writers store it as a JSON string
        try:
            extra = json.loads(extra)
        except ValueError:
            raise BadRow("extra_info", "not a mapping", "a string that is not JSON") from None
    if not isinstance(extra, dict):
        raise BadRow("extra_info", "not a mapping", type(extra).__name__)
    return drop_nulls(extra)


def drop_nulls(value: Any) -> Any:
    """A mapping without None values, recursively (parquet structs fill missing keys)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def problem_to_row(problem: Problem) -> Row:
    """A verl/Skywork row of a Problem (the inverse of ``row_to_problem``)."""
    return {
        "data_source": problem.data_source,
        "prompt": [{"role": m["role"], "content": m["content"]} for m in problem.prompt],
        "ability": problem.ability,
        "reward_model": {"ground_truth": problem.ground_truth, "style": "rule"},
        "extra_info": {"uid": problem.uid, **problem.extra_info},
    }
