"""`or1 data score DATA RESPONSES --out FILE`: the training reward path on given
responses, reasons per line, the summary as the last stdout line, bad input named by
line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from or1.cli import main

from .shapes import SHAPES, skywork_math, verl_gsm8k


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data.jsonl", [make(i).row for i, make in enumerate(SHAPES)])


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["data", "score", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_scores_every_line_with_reward_and_reason(data: Path, tmp_path: Path, capsys) -> None:
    lines = []
    for i, make in enumerate(SHAPES):
        shape = make()
        lines += [
            {"row": i, "response": shape.good, "id": f"g{i}"},
            {"row": i, "response": shape.bad},
        ]
    responses = write_jsonl(tmp_path / "responses.jsonl", lines)
    out = tmp_path / "graded.jsonl"
    code, stdout, _ = run([str(data), str(responses), "--out", str(out)], capsys)
    assert code == 0
    graded = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["reward"] for g in graded] == [1.0, 0.0] * len(SHAPES)
    assert all(
        {**line, "reward": g["reward"], "reason": g["reason"]} == g
        for line, g in zip(lines, graded, strict=True)
    )
    reasons = {g["reason"] for g in graded}
    assert {"", "wrong answer", "test failed", "wrong output"} <= reasons
    assert json.loads(stdout.splitlines()[-1]) == {"scored": 2 * len(SHAPES), "mean_reward": 0.5}
    assert stdout.splitlines()[0].startswith("reasons: passed ")


def test_the_pool_gives_the_same_reasons_and_hack_flags(data: Path, tmp_path: Path, capsys) -> None:
    """--workers 2 scores in the reward pool: every line's reward, reason and hack flag as
    in this process (the pool used to send back the reward only)."""
    from or1.rewards import shutdown_pool

    leetcode = next(i for i, make in enumerate(SHAPES) if "test_code" in str(make().row))
    lines = []
    for i, make in enumerate(SHAPES):
        shape = make()
        lines += [{"row": i, "response": shape.good}, {"row": i, "response": shape.bad}]
    lines.append({"row": leetcode, "response": "```python\nimport os\nos._exit(0)\n```"})
    responses = write_jsonl(tmp_path / "responses.jsonl", lines)
    graded = {}
    try:
        for workers in ("0", "2"):
            out = tmp_path / f"graded-{workers}.jsonl"
            args = [str(data), str(responses), "--out", str(out), "--workers", workers]
            assert run(args, capsys)[0] == 0
            graded[workers] = [json.loads(x) for x in out.read_text().splitlines()]
    finally:
        shutdown_pool()
    assert graded["2"] == graded["0"]
    reasons = [g["reason"] for g in graded["2"]]
    assert {"wrong answer", "test failed", "wrong output"} <= set(reasons)
    assert graded["2"][-1]["reason"].startswith("hack attempt: ") and graded["2"][-1]["hack"]


def test_reasons_for_unparsable_and_codeless_responses(data: Path, tmp_path: Path, capsys) -> None:
    code_row = next(i for i, make in enumerate(SHAPES) if make().ability == "code")
    lines = [{"row": 0, "response": "I have no idea."}, {"row": code_row, "response": "print(1)"}]
    out = tmp_path / "graded.jsonl"
    args = [str(data), str(write_jsonl(tmp_path / "r.jsonl", lines)), "--out", str(out)]
    assert run(args, capsys)[0] == 0
    graded = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(g["reward"], g["reason"]) for g in graded] == [
        (0.0, "no answer found"),
        (0.0, "no code block"),
    ]


def test_the_rewards_section_applies(data: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """Exactly the training path: the preset's rewards.by_ability replaces a reward."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "rewards"))
    row = SHAPES.index(verl_gsm8k)  # ground truth "72"
    question = verl_gsm8k().row["prompt"][0]["content"]
    lines = [
        {"row": row, "response": f"72 {question.split()[-1]}"},
        {"row": row, "response": "\\boxed{72}"},  # right for Math-Verify, not for the judge
    ]
    out = tmp_path / "graded.jsonl"
    args = [str(data), str(write_jsonl(tmp_path / "r.jsonl", lines)), "--out", str(out)]
    code, _, _ = run([*args, "rewards.by_ability.math=reward_helpers:judge"], capsys)
    assert code == 0
    graded = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(g["reward"], g["reason"]) for g in graded] == [
        (1.0, "judged correct"),
        (0.0, "judged wrong"),
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"row": 0, "response": "x"}', "", '{"row": 99, "response": "x"}'],
            f"line 3: row 99 is out of range (DATA has {len(SHAPES)} rows, 0 to {len(SHAPES) - 1})",
        ),
        (['{"row": 0, "response": "x"}', '{"row": 1, "response": '], "line 2: not valid JSON"),
        (['{"row": "0", "response": "x"}'], "line 1: 'row' must be an integer"),
        (['{"row": 0}'], "line 1: 'response' must be a string"),
        (['[0, "x"]'], "line 1: a JSON list, not an object"),
        (['{"row": -1, "response": "x"}'], "line 1: row -1 is out of range"),
    ],
)
def test_bad_responses_are_one_clear_error(
    data: Path, tmp_path: Path, capsys, lines: list[str], message: str
) -> None:
    responses = tmp_path / "r.jsonl"
    responses.write_text("\n".join(lines) + "\n")
    out = tmp_path / "graded.jsonl"
    code, stdout, err = run([str(data), str(responses), "--out", str(out)], capsys)
    assert code == 2 and not out.exists() and stdout == ""
    expected = message.replace("DATA", str(data))
    assert err.startswith("or1: error: ") and f"{responses}: {expected}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_response_to_a_bad_row_names_both(tmp_path: Path, capsys) -> None:
    bad = skywork_math().row | {"ability": "chemistry"}
    data = write_jsonl(tmp_path / "data.jsonl", [skywork_math().row, bad])
    responses = write_jsonl(
        tmp_path / "r.jsonl", [{"row": 0, "response": "\\boxed{3}"}, {"row": 1, "response": "x"}]
    )
    code, _, err = run([str(data), str(responses), "--out", str(tmp_path / "o.jsonl")], capsys)
    assert code == 2
    assert f"{responses}: line 2: row 1 of {data} is not a usable problem" in err
    assert f"{data}: line 2 (row 1): field 'ability': unknown" in err


def test_data_and_responses_are_both_needed(data: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run([str(data), "--out", str(tmp_path / "o.jsonl")], capsys)
    assert code == 2 and "takes DATA and RESPONSES, got 1 paths" in err
