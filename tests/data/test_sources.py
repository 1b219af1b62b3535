"""Data sources: the shared AIME parquet files, generated verl/jsonl/datasets fixtures,
code rows, and deliberately broken rows (DataError or skip-and-count)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from or1.config import RECIPE_PROMPT_SUFFIX, EvalConfig, load_config
from or1.data import sources
from or1.data.rows import problem_to_row
from or1.data.sources import (
    load_benchmark,
    load_problems,
    load_problems_with_report,
    resolve_benchmark,
    write_parquet,
)
from or1.errors import ConfigError, DataError
from or1.rewards import code_reward

EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "eval"
AIME24, AIME25 = EVAL_DIR / "aime24.parquet", EVAL_DIR / "aime25.parquet"

CODE_TESTS = {"inputs": ["3\n", "10\n"], "outputs": ["6\n", "20\n"]}
CODE_SOLUTION = "```python\nprint(2 * int(input()))\n```"


def verl_row(i: int, **changes: Any) -> dict[str, Any]:
    row = {
        "data_source": "synthetic",
        "prompt": [{"role": "user", "content": f"What is {i} + {i}? {RECIPE_PROMPT_SUFFIX}"}],
        "ability": "math",
        "reward_model": {"ground_truth": str(2 * i), "style": "rule"},
        "extra_info": {"index": i, "model_difficulty": {"DeepSeek-R1-Distill-Qwen-7B": 5}},
    }
    row.update(changes)
    return row


def code_row(i: int, tests: Any = None) -> dict[str, Any]:
    return verl_row(
        i,
        ability="code",
        prompt=[{"role": "user", "content": "Read n, print 2n."}],
        reward_model={"ground_truth": json.dumps(tests or CODE_TESTS), "style": "rule"},
    )


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------- shared AIME


def test_aime_parquet_files_load_as_verl_rows() -> None:
    aime24 = load_problems(AIME24)
    aime25 = load_problems(AIME25)
    assert len(aime24) == 30 and len(aime25) == 30
    first = aime24[0]
    assert first.uid == "aime24-0" and first.ground_truth == "204"
    assert first.ability == "math" and first.data_source == "test-math-aime24"
    assert first.prompt[0]["role"] == "user" and "Aya" in first.question
    assert first.extra_info == {"index": 0, "split": "test"}
    assert aime25[0].ground_truth == "70" and aime25[0].extra_info["id"] == 0


def test_two_sources_concatenate_in_order_with_unique_uids() -> None:
    both = load_problems([AIME24, AIME25])
    assert [p.uid for p in both[29:31]] == ["aime24-29", "aime25-0"]
    with pytest.raises(DataError, match="duplicate uid 'aime24-0'"):
        load_problems([AIME24, AIME24])


def test_benchmark_prompt_suffix_is_added_once() -> None:
    cfg = EvalConfig(data_dir=str(EVAL_DIR))
    aime25 = load_benchmark("aime25", cfg)  # ships without the suffix
    aime24 = load_benchmark("aime24", cfg)  # ships with it
    assert aime25[0].question.endswith(RECIPE_PROMPT_SUFFIX)
    assert all(p.question.count(RECIPE_PROMPT_SUFFIX) == 1 for p in aime24 + aime25)
    raw = load_problems(AIME25)
    assert RECIPE_PROMPT_SUFFIX not in raw[0].question


def test_benchmark_names_resolve_by_setting_env_and_repo_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OR1_EVAL_DATA", raising=False)
    assert resolve_benchmark("aime24", EvalConfig()) == sources.REPO_EVAL_DIR / "aime24.parquet"
    custom = write_parquet([verl_row(1)], tmp_path / "mine.parquet")
    monkeypatch.setenv("OR1_EVAL_DATA", str(tmp_path))
    assert resolve_benchmark("mine", EvalConfig()) == custom
    mapped = EvalConfig(benchmark_paths={"aime24": str(custom)})
    assert resolve_benchmark("aime24", mapped) == custom
    with pytest.raises(ConfigError, match=r"benchmark 'aime26'.*OR1_EVAL_DATA"):
        resolve_benchmark("aime26", EvalConfig())


# --------------------------------------------------------------------------- formats


def test_parquet_roundtrip_keeps_fields_and_uids(tmp_path: Path) -> None:
    path = write_parquet([verl_row(i) for i in range(3)] + [code_row(3)], tmp_path / "t.parquet")
    problems = load_problems(path)
    assert [p.uid for p in problems] == ["t-0", "t-1", "t-2", "t-3"]
    assert problems[1].ground_truth == "2" and problems[1].data_source == "synthetic"
    assert problems[1].extra_info["model_difficulty"] == {"DeepSeek-R1-Distill-Qwen-7B": 5}
    again = load_problems(write_parquet(map(problem_to_row, problems), tmp_path / "u.parquet"))
    assert [p.uid for p in again] == ["t-0", "t-1", "t-2", "t-3"]  # uid kept in extra_info
    assert [(p.prompt, p.ground_truth, p.ability) for p in again] == [
        (p.prompt, p.ground_truth, p.ability) for p in problems
    ]


def test_extra_info_of_mixed_types_is_written_as_json_and_read_back(tmp_path: Path) -> None:
    rows = [verl_row(0), verl_row(1, extra_info={"index": 1, "model_difficulty": 0.5})]
    problems = load_problems(write_parquet(rows, tmp_path / "mixed.parquet"))
    assert [p.extra_info for p in problems] == [r["extra_info"] for r in rows]
    assert pq.read_table(tmp_path / "mixed.parquet").schema.field("extra_info").type == pa.string()


def test_code_rows_keep_json_tests_that_the_code_reward_runs(tmp_path: Path) -> None:
    tests_as_object = code_row(1)
    tests_as_object["reward_model"] = {"ground_truth": CODE_TESTS}  # jsonl with parsed JSON
    path = write_jsonl(tmp_path / "code.jsonl", [code_row(0), tests_as_object])
    problems = load_problems(path)
    assert [p.ability for p in problems] == ["code", "code"]
    assert json.loads(problems[1].ground_truth) == CODE_TESTS
    assert code_reward(CODE_SOLUTION, problems[0].ground_truth) == 1.0


def test_bare_question_rows_become_suffixed_user_messages(tmp_path: Path) -> None:
    rows = [
        {"question": "What is 2 + 3?", "answer": 5},
        {"question": f"What is 1 + 1? {RECIPE_PROMPT_SUFFIX}", "answer": "2", "uid": "q-2"},
    ]
    problems = load_problems(write_jsonl(tmp_path / "qa.jsonl", rows))
    assert problems[0].prompt == [
        {"role": "user", "content": f"What is 2 + 3? {RECIPE_PROMPT_SUFFIX}"}
    ]
    assert problems[0].ground_truth == "5" and problems[0].ability == "math"
    assert problems[0].data_source == "qa" and problems[0].uid == "qa-0"
    assert problems[1].question.count(RECIPE_PROMPT_SUFFIX) == 1 and problems[1].uid == "q-2"


def test_datasets_directories_load_all_splits_or_one(tmp_path: Path) -> None:
    import datasets

    table = {
        "math": datasets.Dataset.from_list([verl_row(i) for i in range(3)]),
        "code": datasets.Dataset.from_list([code_row(i) for i in range(3, 5)]),
    }
    datasets.DatasetDict(table).save_to_disk(str(tmp_path / "saved"))
    everything = load_problems(tmp_path / "saved")
    assert [p.ability for p in everything] == ["math"] * 3 + ["code"] * 2
    assert [p.uid for p in everything] == [f"saved-{i}" for i in range(5)]
    assert len(load_problems(tmp_path / "saved", split="code")) == 2
    with pytest.raises(DataError, match="no split 'test'"):
        load_problems(tmp_path / "saved", split="test")


def test_hub_names_load_through_datasets_with_a_split(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls: list[tuple[Any, ...]] = []

    def fake_hub(name: str, **kwargs: Any) -> Any:
        calls.append((name, kwargs))
        return datasets.Dataset.from_list([verl_row(0), code_row(1)])

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    problems = load_problems("hf:Skywork/Skywork-OR1-RL-Data:math")
    assert calls == [("Skywork/Skywork-OR1-RL-Data", {"split": "math"})]
    assert [p.uid for p in problems] == ["Skywork-OR1-RL-Data-0", "Skywork-OR1-RL-Data-1"]
    assert [p.ability for p in problems] == ["math", "code"]


def test_hub_names_fail_clearly_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Couldn't reach 'Skywork/Skywork-OR1-RL-Data' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as info:
        load_problems("hf:Skywork/Skywork-OR1-RL-Data")
    message = str(info.value)
    assert "Skywork/Skywork-OR1-RL-Data" in message and "ConnectionError" in message
    assert "online" in message and "local" in message


def test_missing_file_and_unknown_suffix_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_problems(tmp_path / "nope.parquet")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"unknown file type '\.csv'"):
        load_problems(tmp_path / "x.csv")


# --------------------------------------------------------------------------- bad rows

BAD_ROWS = [
    ({"ability": "math", "reward_model": {"ground_truth": "1"}}, "prompt", "missing"),
    (verl_row(0, prompt=[]), "prompt", "not a non-empty chat list"),
    (verl_row(0, prompt=[{"role": "robot", "content": "hi"}]), "prompt[0].role", "unknown role"),
    (verl_row(0, prompt=[{"role": "user", "content": "  "}]), "prompt[0].content", "empty"),
    (verl_row(0, prompt=[{"role": "system", "content": "x"}]), "prompt", "no user message"),
    (verl_row(0, reward_model=None), "reward_model", "missing"),
    (verl_row(0, reward_model={"style": "rule"}), "reward_model.ground_truth", "missing"),
    (
        verl_row(0, reward_model={"ground_truth": {"answer": "1"}}),
        "reward_model.ground_truth",
        "not a string, number or list",
    ),
    (verl_row(0, reward_model={"ground_truth": []}), "reward_model.ground_truth", "an empty list"),
    (
        verl_row(0, reward_model={"ground_truth": '["3", ""]'}),
        "reward_model.ground_truth",
        "a JSON list without a usable answer",
    ),
    (verl_row(0, ability="chemistry"), "ability", "unknown"),
    (verl_row(0, extra_info=[1, 2]), "extra_info", "not a mapping"),
    (
        verl_row(0, ability="code", reward_model={"ground_truth": "{not json"}),
        "reward_model.ground_truth",
        "not valid JSON",
    ),
    (
        code_row(0, tests={"inputs": ["1"], "outputs": []}),
        "reward_model.ground_truth",
        "not a test specification",
    ),
    ({"question": "2+2?"}, "answer", "missing"),
]


@pytest.mark.parametrize(("row", "field", "reason"), BAD_ROWS)
def test_a_bad_row_names_file_row_field_and_reason(
    tmp_path: Path, row: dict[str, Any], field: str, reason: str
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [verl_row(1), verl_row(2), row])
    with pytest.raises(DataError) as info:
        load_problems(path)
    message = str(info.value)
    assert f"{path}: line 3 (row 2): field '{field}': {reason}" in message
    assert "data.skip_bad_rows" in message


def test_skip_bad_rows_counts_them_by_reason_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chemistry = verl_row(0, ability="chemistry")
    rows = [verl_row(0), BAD_ROWS[0][0], verl_row(2), BAD_ROWS[0][0], chemistry, code_row(5)]
    path = write_parquet([problem_like(r) for r in rows], tmp_path / "mixed.parquet")
    with caplog.at_level(logging.WARNING, logger="or1.data"):
        problems, [report] = load_problems_with_report(path, skip_bad_rows=True)
    assert [p.uid for p in problems] == ["mixed-0", "mixed-2", "mixed-5"]
    assert report.rows == 6 and report.loaded == 3
    assert report.skipped == {"prompt: missing": 2, "ability: unknown": 1}
    assert "skipped 3 bad rows (prompt: missing: 2, ability: unknown: 1)" in caplog.text


def problem_like(row: dict[str, Any]) -> dict[str, Any]:
    """Rows of one parquet file share a schema: fill the fields a broken row lacks."""
    return {"prompt": None, "ability": "math", "reward_model": None, **row}


def test_broken_jsonl_line_and_broken_parquet_are_data_errors(tmp_path: Path) -> None:
    path = tmp_path / "torn.jsonl"
    path.write_text(json.dumps(verl_row(0)) + '\n{"prompt": [\n')
    with pytest.raises(DataError, match=r"torn.jsonl: line 2 \(row 1\): not valid JSON"):
        load_problems(path)
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_problems(tmp_path / "junk.parquet")


def test_config_train_paths_feed_the_build_loader(tmp_path: Path) -> None:
    from or1.build import load_problems as build_load

    good = write_parquet([verl_row(i) for i in range(4)], tmp_path / "good.parquet")
    bad = write_jsonl(tmp_path / "bad.jsonl", [verl_row(9), {"question": "x"}])
    cfg = load_config(
        "tiny-arith", [f"data.train=[{good},{bad}]", f"data.test={AIME24}", "data.task=null"]
    )
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2 \(row 1\): field 'answer'"):
        build_load(cfg)
    cfg = load_config(
        "tiny-arith",
        [f"data.train=[{good},{bad}]", f"data.test={AIME24}", "data.skip_bad_rows=true"],
    )
    train, test = build_load(cfg)
    assert len(train) == 5 and len(test) == 30
    pq.read_table(good)  # the writer produced a plain parquet file
    assert isinstance(pq.read_table(good).schema.field("prompt").type, pa.ListType)
