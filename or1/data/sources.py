"""Problems from files: verl/Skywork parquet, jsonl, Hugging Face ``datasets``
(row validation: or1/data/rows.py).

Accepted row shapes (one per row, mixed freely inside a file):

- verl / Skywork-OR1-RL-Data: ``prompt`` (chat list of ``{role, content}``), ``ability``
  ("math" | "code" | a registered reward, any case: DAPO-Math-17k's "MATH"),
  ``reward_model.ground_truth`` (math: a string, a number, a JSON list of acceptable
  answers ``'["3", "4"]'`` or an actual list; code: the tests as a JSON string or an
  object), ``extra_info`` (mapping, e.g. ``index``, ``model_difficulty``),
  ``data_source``. verl's gsm8k/MATH preprocess outputs have this shape.
- plain: ``{question, answer}`` (also ``problem``/``solution`` is not guessed: only these
  two names). The question becomes one user message; for math the recipe's suffix
  ("Let's think step by step and output the final answer within \\boxed{}.") is
  appended when absent.
- TACO / APPS: ``{question, input_output}`` (+ ``starter_code``): a code problem whose
  tests are ``input_output`` (stdin/stdout, or call-based with ``fn_name``), prompted in
  LiveCodeBench's format (or1/data/prompts.py).

Sources: a ``.parquet`` file, a ``.jsonl`` file, a directory written by
``datasets.save_to_disk``, any other directory (``datasets.load_dataset`` on it), or
``hf:owner/name[:split]`` (the hub, when online). Every row is validated; a bad row is a
``DataError`` naming file, row, field and reason, or, with ``skip_bad_rows``, skipped and
counted (a warning with the counts by reason is logged at the end). In a jsonl file a
line that is not JSON is a bad row too; messages about jsonl rows give the 1-based line
number and the 0-based row (``line 3 (row 2)``), parquet/datasets rows the 0-based row.
Row indices count every non-blank line, bad ones included, so a row keeps its index (and
its uid) whether or not bad rows are skipped.

uids: a row's ``uid`` (or ``extra_info.uid``) when present, else ``<file stem>-<row>``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from or1.config import EvalConfig
from or1.data.packaged import PACKAGED_BENCHMARKS, packaged_benchmark
from or1.data.problem import Problem
from or1.data.rows import BadRow, Row, row_to_problem
from or1.data.writers import write_jsonl as write_jsonl  # re-exported
from or1.data.writers import write_parquet as write_parquet
from or1.data.writers import write_rows as write_rows
from or1.errors import ConfigError, DataError

logger = logging.getLogger("or1.data")

TABLE_SUFFIXES = (".parquet", ".jsonl", ".json")
HUB_PREFIX = "hf:"
# The repository's sibling shared/ holds the evaluation sets (a fallback for eval.data_dir).
REPO_EVAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "eval"


@dataclass
class LoadReport:
    """What one load read: rows seen, problems kept, bad rows skipped by reason."""

    source: str
    rows: int = 0
    loaded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few bad-row messages

    def summary(self) -> str:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in self.skipped.most_common())
        return f"{self.source}: {self.loaded} of {self.rows} rows loaded" + (
            f"; skipped {sum(self.skipped.values())} bad rows ({reasons})" if reasons else ""
        )


# --------------------------------------------------------------------------- public API


def load_problems(
    source: str | Path | Sequence[str | Path],
    *,
    skip_bad_rows: bool = False,
    prompt_suffix: str | None = None,
    split: str | None = None,
    abilities: Collection[str] | None = None,
) -> list[Problem]:
    """Problems of one source or several (in order; uids must be unique across them).

    Args:
        source: a path (``.parquet``, ``.jsonl``, a datasets directory), ``hf:owner/name``
            or a list of them.
        skip_bad_rows: skip and count bad rows instead of raising.
        prompt_suffix: append this to the last user message of every row lacking it
            (evaluation sets); None leaves verl prompts untouched.
        split: the split of a datasets source (None: all splits, concatenated).
        abilities: the known abilities (None: the reward registry's; a run passes its
            ``rewards.by_ability`` names too).

    Raises:
        DataError: a missing or unreadable source, a bad row (file, row, field, reason),
            duplicate uids.

    Example:
        >>> problems = load_problems("aime24.parquet")  # doctest: +SKIP
        >>> problems[0].uid, problems[0].ground_truth
        ('aime24-0', '204')
    """
    problems, _ = load_problems_with_report(
        source,
        skip_bad_rows=skip_bad_rows,
        prompt_suffix=prompt_suffix,
        split=split,
        abilities=abilities,
    )
    return problems


def load_problems_with_report(
    source: str | Path | Sequence[str | Path],
    *,
    skip_bad_rows: bool = False,
    prompt_suffix: str | None = None,
    split: str | None = None,
    abilities: Collection[str] | None = None,
) -> tuple[list[Problem], list[LoadReport]]:
    """``load_problems`` plus one ``LoadReport`` per source."""
    sources = [source] if isinstance(source, str | Path) else list(source)
    if not sources:
        raise DataError("no data source given.", hint="set data.train to a file or a list.")
    problems: list[Problem] = []
    reports: list[LoadReport] = []
    for src in sources:
        report = LoadReport(str(src))
        for _, problem in iter_problems(
            src,
            skip_bad_rows=skip_bad_rows,
            prompt_suffix=prompt_suffix,
            split=split,
            report=report,
            abilities=abilities,
        ):
            problems.append(problem)
        reports.append(report)
        if report.skipped:
            logger.warning("%s", report.summary())
    _check_unique(problems, sources)
    return problems, reports


def iter_problems(
    source: str | Path,
    *,
    skip_bad_rows: bool = False,
    prompt_suffix: str | None = None,
    split: str | None = None,
    report: LoadReport | None = None,
    abilities: Collection[str] | None = None,
) -> Iterator[tuple[int, Problem]]:
    """(row index, Problem) of one source, validated row by row."""
    report = report if report is not None else LoadReport(str(source))
    name = source_name(source)
    for index, line, row in read_rows(source, split=split):
        report.rows += 1
        try:
            problem = row_to_problem(
                row, name=name, index=index, prompt_suffix=prompt_suffix, abilities=abilities
            )
        except BadRow as bad:
            message = bad_row_message(source, index, line, bad)
            if not skip_bad_rows:
                raise DataError(
                    message,
                    hint="fix the row, or set data.skip_bad_rows=true to skip and count bad rows.",
                ) from None
            report.skipped[f"{bad.field}: {bad.reason}"] += 1
            if len(report.examples) < 5:
                report.examples.append(message)
            continue
        report.loaded += 1
        yield index, problem


def row_location(index: int, line: int | None) -> str:
    """``line 3 (row 2)`` for a jsonl row (1-based line), ``row 2`` otherwise."""
    return f"line {line} (row {index})" if line is not None else f"row {index}"


def bad_row_message(source: str | Path, index: int, line: int | None, bad: BadRow) -> str:
    """``FILE: line 3 (row 2): field 'answer': missing (detail).``"""
    field = "" if bad.field == "<line>" else f"field '{bad.field}': "  # <line>: not JSON
    detail = f" ({bad.detail})" if bad.detail else ""
    return f"{source}: {row_location(index, line)}: {field}{bad.reason}{detail}."


def source_name(source: str | Path) -> str:
    """A short name of a source: the file stem, or the dataset name."""
    text = str(source)
    if text.startswith(HUB_PREFIX):
        return text[len(HUB_PREFIX) :].split(":")[0].rsplit("/", 1)[-1]
    return Path(text).stem if Path(text).suffix in TABLE_SUFFIXES else Path(text).name


# --------------------------------------------------------------------------- reading


def read_rows(
    source: str | Path, *, split: str | None = None
) -> Iterator[tuple[int, int | None, Row]]:
    """Raw rows (dicts) of a source: (0-based row index, 1-based jsonl line or None, row);
    no validation. A jsonl line that is not JSON comes as ``{"<line>": reason}``."""
    text = str(source)
    if text.startswith(HUB_PREFIX):
        rows: Iterator[Row] = _hub_rows(text[len(HUB_PREFIX) :], split)
    else:
        path = Path(text)
        if not path.exists():
            raise DataError(
                f"data source {path} does not exist.",
                hint="give a .parquet or .jsonl file, a datasets directory, or hf:owner/name.",
            )
        if path.suffix in (".jsonl", ".json") and not path.is_dir():
            yield from _jsonl_rows(path)
            return
        if path.is_dir():
            rows = _dataset_dir_rows(path, split)
        elif path.suffix == ".parquet":
            rows = _parquet_rows(path)
        else:
            raise DataError(
                f"data source {path}: unknown file type '{path.suffix}'.",
                hint="use .parquet (verl format) or .jsonl.",
            )
    for index, row in enumerate(rows):
        yield index, None, row


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
        for batch in file.iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable parquet file ({err}).") from None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, int, Row]]:
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 (a with block follows)
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}).") from None
    with fh:
        index = -1
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            index += 1
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as err:
                yield index, number, {"<line>": str(err)}
                continue
            yield index, number, row if isinstance(row, dict) else {"<row>": row}


def _datasets_module() -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError(
            "reading a Hugging Face dataset needs the 'datasets' package.",
            hint="pip install 'or1[datasets]', or convert the data to parquet/jsonl.",
        ) from None
    return datasets


def _dataset_dir_rows(path: Path, split: str | None) -> Iterator[Row]:
    datasets = _datasets_module()
    saved = (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
    try:
        data = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path))
    except Exception as err:  # datasets raises many types for a bad directory
        raise DataError(f"{path}: not a readable dataset directory ({err}).") from None
    yield from _splits(data, split, str(path))


def _hub_rows(name: str, split: str | None) -> Iterator[Row]:
    datasets = _datasets_module()
    repo, _, hub_split = name.partition(":")
    chosen = split or hub_split or None
    try:
        data = datasets.load_dataset(repo, split=chosen) if chosen else datasets.load_dataset(repo)
    except Exception as err:  # offline: ConnectionError; unknown name: FileNotFoundError
        raise DataError(
            f"could not load the dataset '{repo}' from the Hugging Face hub "
            f"({type(err).__name__}: {str(err)[:200]}).",
            hint="is this machine online? Otherwise download the dataset where it is "
            "(e.g. `hf download --repo-type dataset NAME --local-dir DIR`) and point "
            "data.train at the local directory or its parquet files.",
        ) from None
    yield from _splits(data, None, f"{HUB_PREFIX}{repo}")


def _splits(data: Any, split: str | None, where: str) -> Iterator[Row]:
    if not hasattr(data, "keys"):  # a single Dataset
        yield from data
        return
    names = [split] if split else list(data.keys())
    for name in names:
        if name not in data:
            raise DataError(
                f"{where}: no split '{name}'.", hint=f"splits: {', '.join(data.keys())}."
            )
        yield from data[name]


def _check_unique(problems: list[Problem], sources: Sequence[str | Path]) -> None:
    seen: dict[str, int] = {}
    for i, problem in enumerate(problems):
        if problem.uid in seen:
            raise DataError(
                f"duplicate uid '{problem.uid}' in {', '.join(map(str, sources))} "
                f"(problems {seen[problem.uid]} and {i}).",
                hint="give each row a unique 'uid', or give the files different names.",
            )
        seen[problem.uid] = i


# --------------------------------------------------------------------------- benchmarks


def eval_data_dir(cfg: EvalConfig) -> Path | None:
    """``eval.data_dir``, else ``$OR1_EVAL_DATA``, else shared/data/eval beside the repo."""
    configured = cfg.data_dir or os.environ.get("OR1_EVAL_DATA")
    if configured:
        return Path(configured)
    return REPO_EVAL_DIR if REPO_EVAL_DIR.is_dir() else None


def resolve_benchmark(name: str, cfg: EvalConfig, cache_root: Path | None = None) -> Path:
    """The file of a benchmark: a name (aime24) or a path.

    ``eval.benchmark_paths[name]`` wins; a benchmark shipped in a PyPI package
    (``or1.data.packaged``) is converted into ``cache_root/benchmarks`` on first use;
    else ``<data dir>/<name>.parquet`` (or .jsonl).

    Raises:
        ConfigError: no file found (the message says where it looked).
    """
    if name in cfg.benchmark_paths:
        candidates = [Path(cfg.benchmark_paths[name])]
    elif name in PACKAGED_BENCHMARKS:
        if cache_root is None:
            raise ValueError(f"benchmark {name} is packaged: pass the cache_root to convert it in")
        candidates = [packaged_benchmark(name, cache_root)]
    elif Path(name).suffix in TABLE_SUFFIXES or os.sep in name:
        candidates = [Path(name)]
    else:
        root = eval_data_dir(cfg)
        candidates = [root / f"{name}{s}" for s in TABLE_SUFFIXES] if root else []
    for path in candidates:
        if path.exists():
            return path
    looked = ", ".join(map(str, candidates)) or "no data directory"
    raise ConfigError(
        f"benchmark '{name}': no file found (looked at {looked}).",
        hint="set eval.data_dir or $OR1_EVAL_DATA to the directory holding "
        f"{name}.parquet, or eval.benchmark_paths.{name}=FILE.",
    )


def load_benchmark(
    name: str,
    cfg: EvalConfig,
    cache_root: Path | None = None,
    *,
    abilities: Collection[str] | None = None,
) -> list[Problem]:
    """The problems of a benchmark, with the eval prompt suffix ensured on its math
    problems (see ``resolve_benchmark`` for where it is looked for)."""
    path = resolve_benchmark(name, cfg, cache_root)
    problems = load_problems(path, prompt_suffix=cfg.prompt_suffix or None, abilities=abilities)
    if not problems:
        raise DataError(f"benchmark '{name}' ({path}) has no rows.")
    return problems
