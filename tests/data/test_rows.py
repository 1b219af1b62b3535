"""Rows in the real datasets' shapes (tests/data/shapes.py): each loads from jsonl and
parquet into the right Problem, its correct response scores 1 and its wrong one 0 on
the reward path training uses, and `or1 data check` accepts them all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from or1.cli import main
from or1.data.sources import load_problems, write_parquet
from or1.errors import DataError
from or1.rewards import score_problems

from .shapes import CODE_SHAPES, MATH_SHAPES, SHAPES, Shape, skywork_math


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("make", SHAPES, ids=lambda m: m.__name__)
def test_each_shape_loads_and_scores_right(make, tmp_path: Path) -> None:
    shape: Shape = make()
    for path in (
        write_jsonl(tmp_path / "rows.jsonl", [make(0).row, make(1).row]),
        write_parquet([make(0).row, make(1).row], tmp_path / "rows.parquet"),
    ):
        problems = load_problems(path)
        assert [p.ability for p in problems] == [shape.ability] * 2
        assert [p.uid for p in problems] == ["rows-0", "rows-1"]
        assert problems[0].question.strip()
        verdicts = score_problems([(problems[0], shape.good), (problems[0], shape.bad)])
        assert [v.reward for v in verdicts] == [1.0, 0.0], (path.suffix, verdicts)


def test_math_ground_truths_keep_the_released_form() -> None:
    """Skywork's JSON-list strings stay as they are (the reward decodes them); a list
    column becomes that same JSON string; DAPO's "MATH" becomes "math"."""
    by_name = {make.__name__: make() for make in MATH_SHAPES}
    rows = {name: shape.row for name, shape in by_name.items()}
    rows["listed"] = skywork_math().row | {"reward_model": {"ground_truth": ["3", 3.5]}}
    problems = {}
    for name, row in rows.items():
        [problems[name]] = load_problems_from(row)
    assert problems["skywork_math"].ground_truth == '["3"]'
    assert problems["listed"].ground_truth == '["3", "3.5"]'
    assert problems["dapo_math"].ability == "math"
    assert problems["verl_gsm8k"].data_source == "openai/gsm8k"
    assert problems["dapo_math"].extra_info["index"].startswith("9a9b6eb4")
    assert problems["skywork_math"].extra_info["model_difficulty"]["DeepSeek-R1-Distill-Qwen-7B"]
    listed = problems["listed"]
    assert [v.reward for v in score_problems([(listed, "\\boxed{3.5}"), (listed, "4")])] == [
        1.0,
        0.0,
    ]


def load_problems_from(row: dict, tmp: Path | None = None) -> list:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return load_problems(write_jsonl(Path(d) / "one.jsonl", [row]))


def test_taco_rows_become_code_prompts_in_livecodebench_form(tmp_path: Path) -> None:
    from .shapes import taco_call, taco_stdin

    stdin, call = (load_problems_from(make().row)[0] for make in (taco_stdin, taco_call))
    assert "Read the inputs from stdin" in stdin.question
    assert "```python\ndef sum_even(xs):" in call.question
    assert "### Answer: (use the provided format with backticks)" in call.question
    assert json.loads(call.ground_truth)["fn_name"] == "sum_even"


def test_or1_data_check_accepts_every_shape(tmp_path: Path, capsys) -> None:
    paths = []
    for make in SHAPES:
        paths.append(write_jsonl(tmp_path / f"{make.__name__}.jsonl", [make(0).row, make(1).row]))
    assert main(["data", "check", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    assert out.count("2 of 2 rows loaded") == len(SHAPES)
    assert out.count("abilities: code 2") == len(CODE_SHAPES)


BAD_TESTS = [
    # (tests, the words of the reason)
    ({"inputs": ["1\n", "2\n"], "outputs": ["1\n"]}, "2 inputs for 1 outputs"),
    ({"fn_name": "f x", "inputs": [[1]], "outputs": [1]}, "not an identifier"),
    ({"test_code": "def check(candidate):\n    assert (", "entry_point": "f"}, "does not parse"),
    ({"tests": "nope"}, "unknown format"),
]


@pytest.mark.parametrize(("tests", "why"), BAD_TESTS)
def test_tests_that_cannot_be_parsed_name_file_row_field_and_reason(
    tmp_path: Path, tests: dict, why: str
) -> None:
    from .shapes import skywork_code_stdin

    good = skywork_code_stdin().row
    bad = good | {"reward_model": {"ground_truth": json.dumps(tests), "style": "rule"}}
    path = write_jsonl(tmp_path / "code.jsonl", [good, good, bad])
    with pytest.raises(DataError) as info:
        load_problems(path)
    message = str(info.value)
    assert f"{path}: line 3 (row 2): field 'reward_model.ground_truth': " in message
    assert "not a test specification" in message and why in message


def test_a_taco_row_with_broken_input_output_names_that_column(tmp_path: Path) -> None:
    from .shapes import taco_stdin

    row = taco_stdin().row | {"input_output": '{"inputs": ["1"'}
    path = write_jsonl(tmp_path / "taco.jsonl", [row])
    with pytest.raises(DataError, match=r"line 1 \(row 0\): field 'input_output': not valid JSON"):
        load_problems(path)


def test_skip_bad_rows_skips_bad_tests_and_malformed_lines_with_line_numbers(
    tmp_path: Path, capsys
) -> None:
    from .shapes import skywork_code_stdin

    good = json.dumps(skywork_code_stdin().row)
    bad_tests = json.dumps(
        skywork_code_stdin().row | {"reward_model": {"ground_truth": '{"inputs": []}'}}
    )
    lines = [good, "", '{"prompt": [', good, bad_tests, "[1, 2]", good]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"mixed.jsonl: line 3 \(row 1\): not valid JSON"):
        load_problems(path)
    problems = load_problems(path, skip_bad_rows=True)
    # Rows keep their index (blank lines do not count, bad rows do): uids are stable.
    assert [p.uid for p in problems] == ["mixed-0", "mixed-2", "mixed-5"]
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "3 of 6 rows loaded; skipped 3 bad rows" in out
    assert "<line>: not valid JSON: 1" in out and "<row>: not a JSON object: 1" in out
    assert f"e.g. {path}: line 3 (row 1): not valid JSON (" in out
    assert f"e.g. {path}: line 5 (row 3): field 'reward_model.ground_truth'" in out
    assert f"e.g. {path}: line 6 (row 4): field '<row>': not a JSON object (list)." in out
