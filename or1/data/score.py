"""``or1 data score DATA RESPONSES --out FILE``: grade given responses with the reward
path training uses (`rewards_from_config(cfg.rewards)` + `score_problems`), to debug
"why did this get 0" and to test the data path.

RESPONSES is jsonl, one ``{"row": i, "response": "..."}`` per line (``i``: the 0-based
row of DATA, as in its uids ``<stem>-<i>``; other keys are kept). FILE gets each input
line with ``"reward"`` and ``"reason"`` added (the verdict's: "" for a pass, else e.g.
"wrong answer", "no answer found", "no code block", "test failed", "wrong output",
"timeout", "sandbox refusal", "hack attempt: ..."; ``"hack": true`` when the grader
flagged an attempt). The last stdout line is ``{"scored": n, "mean_reward": m}``.

What training adds on top is not applied here: a response cut off at the length limit
gets reward 0 in training (``algo.truncated_reward``), whatever its grade.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from or1.config import Config
from or1.data.problem import Problem
from or1.data.rows import BadRow, row_to_problem
from or1.data.sources import bad_row_message, read_rows, source_name
from or1.data.writers import write_jsonl
from or1.errors import DataError


@dataclass
class IndexedData:
    """DATA by row index: the problems, and why the other rows are not problems."""

    source: str
    problems: dict[int, Problem] = field(default_factory=dict)
    bad: dict[int, str] = field(default_factory=dict)
    rows: int = 0


def index_problems(source: str | Path, abilities: set[str]) -> IndexedData:
    """Every row of ``source`` validated, kept by its 0-based index (bad rows too)."""
    data, name = IndexedData(str(source)), source_name(source)
    for index, line, row in read_rows(source):
        data.rows += 1
        try:
            data.problems[index] = row_to_problem(row, name=name, index=index, abilities=abilities)
        except BadRow as bad:
            data.bad[index] = bad_row_message(source, index, line, bad)
    return data


def read_responses(path: Path, data: IndexedData) -> list[tuple[dict[str, Any], Problem]]:
    """(input object, its problem) per non-blank line of RESPONSES.

    Raises:
        DataError: a line that is not a JSON object with an int ``row`` and a string
            ``response``, a row out of range or a bad row of DATA (names the line).
    """
    if not path.is_file():
        raise DataError(f"responses file {path} does not exist.")
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                out.append(_response_line(path, number, line, data))
    return out


def _response_line(
    path: Path, number: int, line: str, data: IndexedData
) -> tuple[dict[str, Any], Problem]:
    where = f"{path}: line {number}"
    hint = 'each line is {"row": <0-based row of DATA>, "response": "<text>"}.'
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as err:
        raise DataError(f"{where}: not valid JSON ({err}).", hint=hint) from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: a JSON {type(obj).__name__}, not an object.", hint=hint)
    row, response = obj.get("row"), obj.get("response")
    if isinstance(row, bool) or not isinstance(row, int):
        raise DataError(f"{where}: 'row' must be an integer, got {row!r:.40}.", hint=hint)
    if not isinstance(response, str):
        raise DataError(f"{where}: 'response' must be a string, got {response!r:.40}.", hint=hint)
    if not 0 <= row < data.rows:
        raise DataError(
            f"{where}: row {row} is out of range ({data.source} has {data.rows} rows, "
            f"0 to {data.rows - 1}).",
            hint="rows are 0-based, counted over the non-blank lines of a jsonl file.",
        )
    if row not in data.problems:
        raise DataError(
            f"{where}: row {row} of {data.source} is not a usable problem: {data.bad[row]}",
            hint="fix that row of DATA (or1 data check lists every bad row).",
        )
    return obj, data.problems[row]


def score_responses(
    cfg: Config, data_path: Path, responses: Path, out: Path, *, workers: int = 0
) -> dict[str, Any]:
    """Grade RESPONSES against DATA, write OUT; returns the summary (and reason counts).

    ``workers``: 0 scores in this process, N >= 1 in the reward pool of N processes (the
    same verdicts, reasons and hack flags included; hard per-item deadlines).

    Raises:
        DataError: bad DATA, RESPONSES lines (see ``read_responses``).
        ConfigError: a ``rewards.by_ability`` path that does not import.
    """
    from or1.rewards import REWARDS, rewards_from_config, score_problems

    rewards = rewards_from_config(cfg.rewards)
    data = index_problems(data_path, {*REWARDS, *cfg.rewards.by_ability})
    lines = read_responses(responses, data)
    pairs = [(p, obj["response"]) for obj, p in lines]
    verdicts = score_problems(pairs, rewards=rewards, workers=workers)
    rows = []
    for (obj, _), verdict in zip(lines, verdicts, strict=True):
        extra = {"hack": True} if verdict.hack else {}
        rows.append({**obj, "reward": verdict.reward, "reason": verdict.reason, **extra})
    write_jsonl(rows, out)
    mean = sum(v.reward for v in verdicts) / len(verdicts) if verdicts else None
    reasons = Counter(v.reason or "passed" for v in verdicts)
    return {"scored": len(verdicts), "mean_reward": mean, "reasons": dict(reasons.most_common())}
