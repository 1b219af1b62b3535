"""Problems from files: verl/Skywork parquet, jsonl, Hugging Face ``datasets``
(row validation: or1/data/rows.py).

Accepted row shapes (one per row, mixed freely inside a file):

- verl / Skywork-OR1-RL-Data: ``prompt`` (chat list of ``{role, content}``), ``ability``
  ("math" | "code" | a registered reward), ``reward_model.ground_truth`` (string; for code
  a JSON string of tests), ``extra_info`` (mapping, e.g. ``index``, ``model_difficulty``),
  ``data_source``.
- plain: ``{question, answer}`` (also ``problem``/``solution`` is not guessed: only these
  two names). The question becomes one user message; for math the recipe's suffix
  ("Let's think step by step and output the final answer within \\boxed{}.") is
  appended when absent.

Sources: a ``.parquet`` file, a ``.jsonl`` file, a directory written by
``datasets.save_to_disk``, any other directory (``datasets.load_dataset`` on it), or
``hf:owner/name[:split]`` (the hub, when online). Every row is validated; a bad row is a
``DataError`` naming file, row, field and reason, or, with ``skip_bad_rows``, skipped and
counted (a warning with the counts by reason is logged at the end).

uids: a row's ``uid`` (or ``extra_info.uid``) when present, else ``<file stem>-<row>``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from or1.config import EvalConfig
from or1.data.packaged import PACKAGED_BENCHMARKS, packaged_benchmark
from or1.data.problem import Problem
from or1.data.rows import BadRow, Row, row_to_problem
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
) -> list[Problem]:
    """Problems of one source or several (in order; uids must be unique across them).

    Args:
        source: a path (``.parquet``, ``.jsonl``, a datasets directory), ``hf:owner/name``
            or a list of them.
        skip_bad_rows: skip and count bad rows instead of raising.
        prompt_suffix: append this to the last user message of every row lacking it
            (evaluation sets); None leaves verl prompts untouched.
        split: the split of a datasets source (None: all splits, concatenated).

    Raises:
        DataError: a missing or unreadable source, a bad row (file, row, field, reason),
            duplicate uids.

    Example:
        >>> problems = load_problems("aime24.parquet")  # doctest: +SKIP
        >>> problems[0].uid, problems[0].ground_truth
        ('aime24-0', '204')
    """
    problems, _ = load_problems_with_report(
        source, skip_bad_rows=skip_bad_rows, prompt_suffix=prompt_suffix, split=split
    )
    return problems


def load_problems_with_report(
    source: str | Path | Sequence[str | Path],
    *,
    skip_bad_rows: bool = False,
    prompt_suffix: str | None = None,
    split: str | None = None,
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
) -> Iterator[tuple[int, Problem]]:
    """(row index, Problem) of one source, validated row by row."""
    report = report if report is not None else LoadReport(str(source))
    name = source_name(source)
    for index, row in read_rows(source, split=split):
        report.rows += 1
        try:
            problem = row_to_problem(row, name=name, index=index, prompt_suffix=prompt_suffix)
        except BadRow as bad:
            message = (
                f"{source}: row {index}: field '{bad.field}': {bad.reason}"
                + (f" ({bad.detail})" if bad.detail else "")
                + "."
            )
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


def source_name(source: str | Path) -> str:
    """A short name of a source: the file stem, or the dataset name."""
    text = str(source)
    if text.startswith(HUB_PREFIX):
        return text[len(HUB_PREFIX) :].split(":")[0].rsplit("/", 1)[-1]
    return Path(text).stem if Path(text).suffix in TABLE_SUFFIXES else Path(text).name


# --------------------------------------------------------------------------- reading


def read_rows(source: str | Path, *, split: str | None = None) -> Iterator[tuple[int, Row]]:
    """Raw rows (dicts) of a source with their index; no validation."""
    text = str(source)
    if text.startswith(HUB_PREFIX):
        yield from enumerate(_hub_rows(text[len(HUB_PREFIX) :], split))
        return
    path = Path(text)
    if not path.exists():
        raise DataError(
            f"data source {path} does not exist.",
            hint="give a .parquet or .jsonl file, a datasets directory, or hf:owner/name.",
        )
    if path.is_dir():
        yield from enumerate(_dataset_dir_rows(path, split))
    elif path.suffix == ".parquet":
        yield from enumerate(_parquet_rows(path))
    elif path.suffix in (".jsonl", ".json"):
        yield from _jsonl_rows(path)
    else:
        raise DataError(
            f"data source {path}: unknown file type '{path.suffix}'.",
            hint="use .parquet (verl format) or .jsonl.",
        )


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
        for batch in file.iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable parquet file ({err}).") from None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Row]]:
    with open(path, encoding="utf-8") as fh:
        index = -1
        for line in fh:
            if not line.strip():
                continue
            index += 1
            try:
                row = json.loads(line)
            except ValueError as err:
                raise DataError(
                    f"{path}: row {index}: not valid JSON ({err}).",
                    hint="a .jsonl file holds one JSON object per line.",
                ) from None
            yield index, row if isinstance(row, dict) else {"<row>": row}


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


# --------------------------------------------------------------------------- writing


def write_parquet(rows: Iterable[Row], path: str | Path) -> Path:
    """Write verl rows to ``path`` atomically (a temp file renamed into place)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # extra_info whose values differ in type across rows has no struct schema: store
        # it as a JSON string (read back as a mapping by this module).
        logger.warning("%s: extra_info differs in type across rows; stored as JSON", path)
        rows = [{**r, "extra_info": json.dumps(r.get("extra_info") or {})} for r in rows]
        table = pa.Table.from_pylist(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def write_jsonl(rows: Iterable[Row], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def write_rows(rows: Iterable[Row], path: str | Path) -> Path:
    """Parquet or jsonl by the suffix of ``path``."""
    if Path(path).suffix in (".jsonl", ".json"):
        return write_jsonl(rows, path)
    return write_parquet(rows, path)


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


def load_benchmark(name: str, cfg: EvalConfig, cache_root: Path | None = None) -> list[Problem]:
    """The problems of a benchmark, with the eval prompt suffix ensured (see
    ``resolve_benchmark`` for where it is looked for)."""
    path = resolve_benchmark(name, cfg, cache_root)
    problems = load_problems(path, prompt_suffix=cfg.prompt_suffix or None)
    if not problems:
        raise DataError(f"benchmark '{name}' ({path}) has no rows.")
    return problems
