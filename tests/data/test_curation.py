"""Dedup (exact, MinHash near duplicates) and decontamination against AIME24/25."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from or1.cli import main
from or1.config import RECIPE_PROMPT_SUFFIX, DedupConfig
from or1.data.curation import (
    CONTAMINATION,
    EXACT,
    NEAR,
    Item,
    curate,
    decontaminate,
    dedup_exact,
    dedup_near,
    words,
)
from or1.data.problem import Problem
from or1.data.rows import problem_to_row
from or1.data.sources import load_problems, write_parquet
from or1.errors import ConfigError

EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "eval"
AIME24, AIME25 = EVAL_DIR / "aime24.parquet", EVAL_DIR / "aime25.parquet"

# Distinct problems, long enough for shingles; written by hand so that no two are alike.
TOPICS = [
    "A farmer has {n} cows and buys twice as many goats at the market on Monday morning",
    "The perimeter of a rectangle is {n} meters and its length exceeds the width by three",
    "A train leaves the station at noon travelling {n} kilometres per hour towards the coast",
    "Alice writes the integers from one to {n} on a blackboard and erases every prime",
    "How many subsets of a set with {n} elements contain no two consecutive integers at all",
    "A regular polygon has {n} sides; compute the number of its diagonals that avoid the centre",
]


def problem(uid: str, text: str, answer: str = "1") -> Problem:
    return Problem(uid, [{"role": "user", "content": text}], answer)


def items(problems: list[Problem], source: str = "train.parquet") -> list[Item]:
    return [Item(source, i, p) for i, p in enumerate(problems)]


def distinct(count: int) -> list[Problem]:
    return [problem(f"p{i}", TOPICS[i % len(TOPICS)].format(n=17 + i)) for i in range(count)]


def test_words_drop_the_recipe_suffix_case_and_markup() -> None:
    text = f"Find $m+n$, IF x=3. {RECIPE_PROMPT_SUFFIX}"
    assert words(text) == ["find", "m", "+", "n", "if", "x", "=", "3"]


def test_operators_make_problems_different() -> None:
    kept, removed = dedup_exact(
        items([problem("a", "What is 4+5+3?"), problem("b", "What is 4+5-3?")])
    )
    assert removed == [] and len(kept) == 2


def test_exact_duplicates_ignore_case_whitespace_and_punctuation() -> None:
    a = problem("a", "What is  2+3?")
    b = problem("b", "what is 2 + 3")
    c = problem("c", "What is 2+4?")
    kept, removed = dedup_exact(items([a, b, c]))
    assert [i.problem.uid for i in kept] == ["a", "c"]
    assert [(r.uid, r.reason, r.match, r.row) for r in removed] == [("b", EXACT, "a", 1)]


def test_near_duplicates_are_found_and_distinct_problems_kept() -> None:
    base = distinct(6)
    reworded = problem("near", base[0].question.replace("Monday", "Tuesday"))
    kept, removed = dedup_near(items([*base, reworded]), threshold=0.7, shingle_words=3)
    assert [i.problem.uid for i in kept] == [p.uid for p in base]
    assert len(removed) == 1 and removed[0].uid == "near" and removed[0].match == "p0"
    assert removed[0].reason == NEAR
    similarity = float(removed[0].detail.rsplit(" ", 1)[-1])
    assert 0.7 <= similarity < 1.0


def test_near_dedup_threshold_controls_what_counts() -> None:
    base = distinct(2)
    edited = problem("edit", base[0].question.replace("cows", "sheep").replace("goats", "hens"))
    _, strict = dedup_near(items([*base, edited]), threshold=0.95, shingle_words=3)
    _, loose = dedup_near(items([*base, edited]), threshold=0.3, shingle_words=3)
    assert strict == [] and [r.uid for r in loose] == ["edit"]


def test_aime_copies_are_contamination_and_boilerplate_is_not() -> None:
    aime24 = load_problems(AIME24)
    aime25 = load_problems(AIME25)
    copied = problem("copy", aime24[5].question.replace(RECIPE_PROMPT_SUFFIX, "").upper())
    # The same problem with a different final sentence is still contaminated.
    edited = problem("edit", aime25[3].question.rsplit(".", 2)[0] + ". Find the answer mod 7.")
    # AIME boilerplate alone ("... relatively prime positive integers. Find m+n") is not.
    boilerplate = problem(
        "boiler",
        "A bag holds 4 red and 6 blue marbles; two are drawn. The probability that both are "
        "red is m/n, where m and n are relatively prime positive integers. Find m+n.",
    )
    train = [*distinct(4), copied, edited, boilerplate]
    kept, removed = decontaminate(items(train), {"aime24": aime24, "aime25": aime25})
    assert {r.uid: r.match for r in removed} == {
        "copy": f"aime24:{aime24[5].uid}",
        "edit": f"aime25:{aime25[3].uid}",
    }
    assert all(r.reason == CONTAMINATION and "13-grams shared" in r.detail for r in removed)
    assert [i.problem.uid for i in kept] == ["p0", "p1", "p2", "p3", "boiler"]


def test_aime24_is_not_contaminated_by_aime25_but_is_by_itself() -> None:
    aime24 = load_problems(AIME24)
    kept, removed = decontaminate(items(aime24), {"aime25": load_problems(AIME25)})
    assert len(kept) == 30 and removed == []
    kept, removed = decontaminate(items(aime24), {"aime24": aime24})
    assert kept == [] and len(removed) == 30


def test_short_texts_match_by_containment() -> None:
    short_eval = problem("e", "Compute 17 times 23.")
    train = [problem("t", "First, compute 17 times 23. Then add five."), problem("u", "Compute")]
    kept, removed = decontaminate(items(train), {"tiny": [short_eval]})
    assert [r.uid for r in removed] == ["t", "u"]
    assert [i.problem.uid for i in kept] == []


def test_curate_runs_all_passes_in_order_and_reports_counts() -> None:
    aime24 = load_problems(AIME24)
    base = distinct(5)
    train = [
        *base,
        problem("dup", base[1].question.lower()),
        problem("near", base[3].question.replace("prime", "square")),
        problem("aime", aime24[0].question),
    ]
    result = curate(items(train), {"aime24": aime24}, DedupConfig(near_threshold=0.6))
    assert result.counts() == {CONTAMINATION: 1, EXACT: 1, NEAR: 1}
    assert [i.problem.uid for i in result.kept] == [p.uid for p in base]
    report = result.report()
    assert report["total"] == 8 and report["kept"] == 5 and report["removed"] == 3
    assert {r["uid"]: r["reason"] for r in report["removals"]} == {
        "aime": CONTAMINATION,
        "dup": EXACT,
        "near": NEAR,
    }
    assert report["settings"]["eval_sets"] == {"aime24": 30}
    assert "8 problems in, 5 kept, 3 removed" in result.text()
    off = curate(items(train), {"aime24": aime24}, DedupConfig(decontaminate=False, near=False))
    assert off.counts() == {CONTAMINATION: 0, EXACT: 1, NEAR: 0}


def test_cli_dedup_writes_kept_rows_and_report(tmp_path: Path) -> None:
    aime25 = load_problems(AIME25)
    base = distinct(4)
    rows = [problem_to_row(p) for p in [*base, base[0], aime25[7]]]
    first = write_parquet(rows[:3], tmp_path / "a.parquet")
    second = write_parquet(rows[3:], tmp_path / "b.parquet")
    out = tmp_path / "clean.parquet"
    code = main(
        [
            "data",
            "dedup",
            "--input",
            str(first),
            str(second),
            "--out",
            str(out),
            "--quiet",
            f"eval.data_dir={EVAL_DIR}",
        ]
    )
    assert code == 0
    assert [p.uid for p in load_problems(out)] == ["p0", "p1", "p2", "p3"]
    report = json.loads((tmp_path / "clean.parquet.dedup.json").read_text())
    assert report["by_reason"] == {CONTAMINATION: 1, EXACT: 1, NEAR: 0}
    assert report["inputs"] == [str(first), str(second)]
    removed = {r["uid"]: (r["source"], r["row"]) for r in report["removals"]}
    assert removed == {"p0": (str(second), 1), aime25[7].uid: (str(second), 2)}
    assert "contamination: 1" in (tmp_path / "clean.parquet.dedup.txt").read_text()


def test_near_dedup_without_datasketch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasketch", None)  # the optional extra or1[dedup]
    with pytest.raises(ConfigError, match=r"datasketch.*or1\[dedup\].*data.dedup.near=false"):
        dedup_near(items(distinct(2)), threshold=0.7, shingle_words=3)
