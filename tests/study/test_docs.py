"""docs/study.md's results tables are the committed findings.json, not an older run's."""

from __future__ import annotations

import json
from pathlib import Path

from or1.study.report import findings_markdown

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- results table -->\n", "<!-- /results table -->"


def test_the_study_pages_tables_are_the_committed_findings() -> None:
    doc = json.loads((ROOT / "docs/study/study-arith/findings.json").read_text())
    page = (ROOT / "docs/study.md").read_text()
    section = page[page.index(START) + len(START) : page.index(END)].strip()
    assert section == findings_markdown(doc), (
        "docs/study.md: the tables between the 'results table' markers differ from "
        "findings_markdown(docs/study/study-arith/findings.json); paste the study's "
        "findings.md (`or1 study entropy --report-only` writes it)"
    )


def test_the_readme_verdicts_are_the_findings_verdicts() -> None:
    doc = json.loads((ROOT / "docs/study/study-arith/findings.json").read_text())
    reproduced = sum(entry["reproduced"] for entry in doc["findings"].values())
    readme = (ROOT / "README.md").read_text()
    assert f"**{reproduced} of {len(doc['findings'])} reproduced**" in readme
