"""``or1 study entropy``: running a whole study, and its command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from or1.errors import ConfigError
from or1.study.document import write_findings
from or1.study.findings import FINDINGS
from or1.study.report import findings_markdown, plot_finding, write_report
from or1.study.runner import Study, collect, execute
from or1.study.variants import StudySettings


def run_study(
    study: Study,
    *,
    jobs: int = 2,
    say: Callable[[str], None] = print,
    train: bool = True,
) -> dict[str, Any]:
    """Train what is missing (unless ``train`` is False: a report of the runs done so
    far, e.g. of a study still running), then write findings.json, findings.md (the
    tables as Markdown, to paste into a page), plots and report.html."""
    study.out.mkdir(parents=True, exist_ok=True)
    wall = execute(study, jobs=jobs, say=say) if train else 0.0
    runs = collect(study)
    doc = write_findings(study, runs, wall_seconds=wall)
    for finding in study.findings:
        plot_finding(finding, runs, study.out / "plots" / f"{finding.key}.png")
    write_report(study, doc)
    (study.out / "findings.md").write_text(findings_markdown(doc) + "\n", encoding="utf-8")
    return doc


# -- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``or1 study`` arguments (the CLI's subparser calls this)."""
    parser.add_argument("study", choices=["entropy"], help="which study")
    parser.add_argument("--quick", action="store_true", help="small runs, < 15 min on 2 cores")
    parser.add_argument("--seeds", type=int, help="number of seeds (quick 2, full 3)")
    parser.add_argument("--out", type=Path, default=Path("runs/study-entropy"))
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument(
        "--preset", help="the task's preset (default: full study-arith, quick tiny-arith)"
    )
    parser.add_argument(
        "--only",
        help="comma-separated findings to run (default all): " + ",".join(f.key for f in FINDINGS),
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: findings, plots and report of the runs finished so far",
    )
    parser.add_argument("overrides", nargs="*", help="dotted overrides applied to every run")


def main(args: argparse.Namespace) -> int:
    """``or1 study entropy``: run the study, print the table, return 0."""
    settings = StudySettings.quick() if args.quick else StudySettings()
    if args.seeds is not None:
        if args.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {args.seeds}.")
        settings = replace(settings, seeds=tuple(range(args.seeds)))
    findings = FINDINGS
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        known = {f.key: f for f in FINDINGS}
        bad = [w for w in wanted if w not in known]
        if bad:
            raise ConfigError(
                f"unknown finding(s) {', '.join(bad)}.", hint=f"choose from {', '.join(known)}."
            )
        findings = tuple(known[w] for w in wanted)
    study = Study(settings, args.out, args.preset, tuple(args.overrides), findings)
    say = lambda m: print(m, flush=True)  # noqa: E731
    doc = run_study(study, jobs=args.jobs, say=say, train=not args.report_only)
    if doc["runs_done"] < doc["runs_planned"]:
        print(f"{doc['runs_done']} of {doc['runs_planned']} runs done: findings are partial")
    print(findings_markdown(doc))
    out = study.out
    print(
        f"findings: {out / 'findings.json'}, {out / 'findings.md'}  report: {out / 'report.html'}"
    )
    print(f"wall time: {doc['wall_seconds']:.0f} s", file=sys.stderr)
    return 0
