"""``or1 data ...``: check, filter (offline difficulty filter), dedup (+ decontamination),
score (grade given responses with the training reward path)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

OVERRIDES_HELP = "settings as dotted key=value overrides, e.g. data.filter.shard_size=64"


def add_data_commands(subparsers: Any) -> None:
    """Register ``or1 data {check,filter,dedup,score}`` on the top-level subparsers."""
    data = subparsers.add_parser("data", help="data tools: check, filter, dedup, score")
    sub = data.add_subparsers(
        dest="data_command", required=True, metavar="{check,filter,dedup,score}"
    )

    check = sub.add_parser("check", help="validate every row of data sources; count bad rows")
    check.add_argument("inputs", nargs="+", help=".parquet/.jsonl files, dataset dirs, hf:NAME")

    filt = sub.add_parser(
        "filter",
        help="offline difficulty filter: N samples per prompt, drop 0/N and N/N",
        description="Sample N responses per prompt (data.filter.samples: 16 math, 8 code) "
        "from the model to be trained (model.path), write the pass rate into "
        "extra_info.model_difficulty and the kept rows to --out. Resumable: run the same "
        "command again after an interruption.",
    )
    _common(filt)
    filt.add_argument("--out", type=Path, required=True, help="kept rows (.parquet or .jsonl)")
    filt.add_argument("--work-dir", type=Path, help="progress directory (default: OUT.work)")
    filt.add_argument("--restart", action="store_true", help="discard earlier progress")
    filt.add_argument("--limit", type=int, help="only the first N problems")
    filt.add_argument("--quiet", action="store_true", help="no progress bar")

    dedup = sub.add_parser(
        "dedup",
        help="exact + near-duplicate removal and decontamination against eval sets",
        description="Drop problems sharing a word n-gram with an eval set (data.dedup.ngram, "
        "AIME24/25 by default), exact duplicates, then MinHash near duplicates; write the "
        "kept rows to --out and a report (JSON + text) of every removal.",
    )
    _common(dedup)
    dedup.add_argument("--out", type=Path, required=True, help="kept rows (.parquet or .jsonl)")
    dedup.add_argument("--report", type=Path, help="report JSON (default: OUT.dedup.json)")
    dedup.add_argument(
        "--eval",
        nargs="*",
        dest="eval_sets",
        help="eval sets: names or files (default: "
        "data.dedup.eval_sets); no value: no decontamination",
    )
    dedup.add_argument("--quiet", action="store_true", help="no progress bar")

    score = sub.add_parser(
        "score",
        help="grade given responses with the reward path training uses",
        description='RESPONSES is jsonl, one {"row": i, "response": "..."} per line '
        '(i: the 0-based row of DATA). --out gets each line plus "reward" and "reason"; '
        'the last stdout line is {"scored": n, "mean_reward": m}. The preset\'s rewards '
        "section applies (rewards.by_ability, rewards.code.*).",
    )
    # argparse matches positionals in one run, so overrides after "--out FILE" would be
    # unrecognized: the words after --out's file are overrides too (_OutThenOverrides).
    score.add_argument(
        "paths",
        nargs="+",
        metavar="DATA RESPONSES [key=value ...]",
        help='the problems (.parquet, .jsonl, dataset dir), the jsonl of {"row": i, '
        '"response": "..."}, then settings as overrides, e.g. rewards.code.timeout_s=10',
    )
    score.add_argument(
        "--out",
        nargs="+",
        required=True,
        action=_OutThenOverrides,
        metavar="FILE [key=value ...]",
        help="graded lines (.jsonl); overrides may follow",
    )
    score.add_argument("--preset", default="tiny-arith", help="preset name or YAML file")
    score.add_argument(
        "--workers",
        type=int,
        default=0,
        help="reward processes (0: score in this process; N: a pool of N, e.g. one per core)",
    )


class _OutThenOverrides(argparse.Action):
    """``--out FILE [key=value ...]``: the file, then overrides (added to ``paths``)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        namespace.out = Path(values[0])
        namespace.paths = [*(getattr(namespace, "paths", None) or []), *values[1:]]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny-arith", help="preset name or YAML file")
    parser.add_argument(
        "--input", nargs="+", dest="inputs", help="data sources (default: data.train)"
    )
    parser.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)


def cmd_data(args: argparse.Namespace) -> int:
    handlers = {"check": cmd_check, "filter": cmd_filter, "dedup": cmd_dedup, "score": cmd_score}
    return handlers[args.data_command](args)


# --------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    """Validate every row; print counts by ability and bad rows by reason."""
    from or1.data.sources import LoadReport, iter_problems

    bad = 0
    for source in args.inputs:
        report = LoadReport(str(source))
        abilities = Counter(
            p.ability for _, p in iter_problems(source, skip_bad_rows=True, report=report)
        )
        print(report.summary())
        print("  abilities: " + ", ".join(f"{a} {n}" for a, n in abilities.most_common()))
        for example in report.examples:
            print(f"  e.g. {example}")
        bad += sum(report.skipped.values())
    return 1 if bad else 0


# --------------------------------------------------------------------------- filter


def _inputs(args: argparse.Namespace, cfg: Any) -> list[str]:
    from or1.errors import ConfigError

    if args.inputs:
        return [str(x) for x in args.inputs]
    if cfg.data.train is not None:
        return [cfg.data.train] if isinstance(cfg.data.train, str) else list(cfg.data.train)
    raise ConfigError(
        "no input data: pass --input FILE ... or set data.train.",
        hint="e.g. or1 data filter --input train.parquet --out filtered.parquet "
        "model.path=/models/R1-Distill-Qwen-7B",
    )


def cmd_filter(args: argparse.Namespace) -> int:
    """Run the offline difficulty filter and print its summary."""
    import torch

    from or1.build import encode_prompt, load_model, load_problems, seed_everything
    from or1.config import load_config
    from or1.data.offline_filter import Sampler, offline_filter
    from or1.data.sources import load_problems as load_files
    from or1.engine.factory import local_rollout_engine
    from or1.rewards import REWARDS, rewards_from_config

    cfg = load_config(args.preset, args.overrides)
    seed_everything(cfg.train.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    task_train = [] if cfg.model.path else load_problems(cfg)[0]  # a task's model warms up on it
    if args.inputs or cfg.data.train is not None or not cfg.data.task:
        inputs = _inputs(args, cfg)
        known = {*REWARDS, *cfg.rewards.by_ability}
        problems = load_files(inputs, skip_bad_rows=cfg.data.skip_bad_rows, abilities=known)
    else:  # a built-in task: filter its generated training split
        inputs, problems = [f"task:{cfg.data.task}"], task_train or load_problems(cfg)[0]
    problems = problems[: args.limit] if args.limit else problems
    show = not args.quiet and cfg.logging.progress
    loaded = load_model(cfg, task_train, show=show)
    model, tokenizer = loaded.model, loaded.tokenizer
    engine = local_rollout_engine(cfg, model, tokenizer)
    sampler = Sampler(
        engine,
        encode=lambda p: encode_prompt(tokenizer, p),
        decode=lambda r: tokenizer.batch_decode(r, skip_special_tokens=True),
        rewards=rewards_from_config(cfg.rewards),
    )
    f = cfg.data.filter
    key = f.difficulty_key or (Path(cfg.model.path).name if cfg.model.path else cfg.preset)
    summary = offline_filter(
        problems,
        sampler,
        f,
        key=key,
        max_tokens=f.max_tokens or cfg.stages[0].max_response_length,
        out_path=args.out,
        work_dir=args.work_dir or args.out.with_name(args.out.name + ".work"),
        seed=cfg.train.seed,
        restart=args.restart,
        show=show,
        fingerprint={"inputs": inputs, "limit": args.limit, "model": str(cfg.model.path or key)},
    )
    print(json.dumps(summary.__dict__, indent=1))
    return 0


# --------------------------------------------------------------------------- dedup


def cmd_dedup(args: argparse.Namespace) -> int:
    """Decontaminate and dedup; write kept rows and the report."""
    from or1.config import load_config
    from or1.data.curation import Item, curate
    from or1.data.rows import problem_to_row
    from or1.data.sources import iter_problems, load_benchmark, write_rows
    from or1.progress import progress_bar

    cfg = load_config(args.preset, args.overrides)
    items = [
        Item(src, row, problem)
        for src in _inputs(args, cfg)
        for row, problem in iter_problems(src, skip_bad_rows=cfg.data.skip_bad_rows)
    ]
    names = cfg.data.dedup.eval_sets if args.eval_sets is None else args.eval_sets
    if not cfg.data.dedup.decontaminate:
        names = []
    eval_sets = {name: load_benchmark(name, cfg.eval, cfg.cache_path) for name in names}
    show = not args.quiet and cfg.logging.progress
    with progress_bar("dedup (near duplicates)", len(items), show=show) as bar:
        result = curate(items, eval_sets, cfg.data.dedup, progress=bar.advance)
    write_rows([problem_to_row(item.problem) for item in result.kept], args.out)
    report_path = args.report or args.out.with_name(args.out.name + ".dedup.json")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report = {**result.report(), "inputs": _inputs(args, cfg), "out": str(args.out)}
    report_path.write_text(json.dumps(report, indent=1))
    text = result.text()
    report_path.with_suffix(".txt").write_text(text + "\n")
    print(text)
    print(f"kept rows: {args.out}\nreport: {report_path} (+ .txt)")
    return 0


# --------------------------------------------------------------------------- score


def cmd_score(args: argparse.Namespace) -> int:
    """Grade RESPONSES against DATA; counts by reason, then the summary JSON line."""
    from or1.config import load_config
    from or1.data.score import score_responses
    from or1.errors import ConfigError

    files = [p for p in args.paths if "=" not in p]
    if len(files) != 2:
        raise ConfigError(
            f"or1 data score takes DATA and RESPONSES, got {len(files)} paths: {files}.",
            hint="or1 data score data.parquet responses.jsonl --out graded.jsonl [key=value ...]",
        )
    cfg = load_config(args.preset, [p for p in args.paths if "=" in p])
    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}.")
    summary = score_responses(cfg, Path(files[0]), Path(files[1]), args.out, workers=args.workers)
    reasons = summary.pop("reasons")
    print("reasons: " + (", ".join(f"{r} {n}" for r, n in reasons.items()) or "-"))
    print(f"graded lines: {args.out}")
    print(json.dumps(summary))
    return 0
