"""Offline difficulty filter (RECIPE.md "Data"): keep prompts the model to be trained
solves sometimes, never always or never.

Per prompt, N samples from the model (16 for math, 8 for code; temperature 1.0), scored
by the reward registry; the pass rate c/N goes into ``extra_info.model_difficulty`` and
``or1.algo.keep_by_pass_rate`` drops 0/N and N/N. A prompt whose ``model_difficulty``
already holds a value for this model is not sampled again (Skywork-OR1-RL-Data ships
one per base model: a mapping from model name to the count of correct samples of 16).

Written values: a pass rate in [0, 1] under ``model_difficulty[<key>]`` (key: the model
directory name by default; a bare number there is replaced by the mapping). Reused
integer counts are converted to rates too, so one output file holds one kind of value
per key.

Resumable: progress goes to ``<work_dir>/progress.jsonl`` one shard of prompts at a time
(one write + fsync per shard); a killed run started again with the same command skips
what is done. Each shard samples with its own seed (run seed, shard index), so a resumed
run gives the same result as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from or1.algo import keep_by_pass_rate
from or1.config import OfflineFilterConfig
from or1.data.problem import Problem
from or1.data.rows import problem_to_row
from or1.data.sources import write_rows
from or1.engine.rollout import SamplingParams
from or1.errors import ConfigError
from or1.progress import progress_bar
from or1.rewards import RewardSet, score_rollouts

logger = logging.getLogger("or1.data")

PROGRESS, META = "progress.jsonl", "meta.json"


@dataclass
class FilterSummary:
    total: int
    kept: int
    dropped_unsolved: int  # pass rate <= low (0/N by default)
    dropped_solved: int  # pass rate >= high (N/N by default)
    reused: int  # pass rates taken from extra_info.model_difficulty
    sampled: int  # prompts sampled in this invocation (not resumed, not reused)
    resumed: int  # prompts whose result was already in the progress file
    out_path: str
    work_dir: str
    seconds: float


@dataclass(frozen=True)
class Record:
    """The result of one prompt: ``correct`` of ``n`` samples (or a reused count)."""

    uid: str
    correct: int
    n: int
    pass_rate: float
    source: str  # sampled | reused


# --------------------------------------------------------------------------- difficulty


def stored_pass_rate(extra_info: dict[str, Any], *, key: str, scale: int = 16) -> float | None:
    """The pass rate recorded in ``extra_info.model_difficulty`` for ``key``, if any.

    A mapping is looked up by ``key``; a bare number applies to any model. An int (or an
    integral float > 1) is a count of correct samples out of ``scale``; a float in
    [0, 1] is a pass rate. Anything else counts as absent.

    Example:
        >>> stored_pass_rate({"model_difficulty": {"m": 4}}, key="m")
        0.25
    """
    value = extra_info.get("model_difficulty")
    if isinstance(value, dict):
        value = value.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) or (value > 1 and float(value).is_integer()):
        return value / scale if 0 <= value <= scale else None
    return float(value) if 0.0 <= value <= 1.0 else None


def with_pass_rate(extra_info: dict[str, Any], *, key: str, rate: float) -> dict[str, Any]:
    """``extra_info`` with the pass rate written into ``model_difficulty``."""
    current = extra_info.get("model_difficulty")
    others = current if isinstance(current, dict) else {}  # a bare number has no model name
    return {**extra_info, "model_difficulty": {**others, key: float(rate)}}


# --------------------------------------------------------------------------- progress


class ProgressFile:
    """Append-only record of finished prompts; a torn last line (a kill mid-write) is
    dropped on open."""

    def __init__(self, work_dir: Path, fingerprint: dict[str, Any], *, restart: bool) -> None:
        self.path = work_dir / PROGRESS
        work_dir.mkdir(parents=True, exist_ok=True)
        meta_path = work_dir / META
        if restart:
            self.path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
        if meta_path.is_file():
            stored = json.loads(meta_path.read_text())
            if stored != fingerprint:
                diff = sorted(k for k in fingerprint if stored.get(k) != fingerprint[k])
                raise ConfigError(
                    f"{work_dir} holds the progress of a different filter run (it differs "
                    f"in: {', '.join(diff) or 'settings'}).",
                    hint="pass --restart to discard it, or choose another --work-dir.",
                )
        else:
            meta_path.write_text(json.dumps(fingerprint, indent=1))
        self.records = self._read()

    def _read(self) -> dict[str, Record]:
        if not self.path.is_file():
            return {}
        records: dict[str, Record] = {}
        good = 0
        with open(self.path, "rb") as fh:
            for line in fh:
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("torn line")
                    record = Record(**json.loads(line))
                except (ValueError, TypeError):
                    break
                records[record.uid] = record
                good += len(line)
        if good != self.path.stat().st_size:
            logger.warning("%s: dropping a partial last record (interrupted run)", self.path)
            with open(self.path, "rb+") as fh:
                fh.truncate(good)
        return records

    def append(self, records: Sequence[Record]) -> None:
        data = "".join(json.dumps(asdict(r)) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        for r in records:
            self.records[r.uid] = r


# --------------------------------------------------------------------------- sampling


@dataclass
class Sampler:
    """What the filter needs from a model: an engine and the prompt codec."""

    engine: Any  # a RolloutEngine with set_rng_state({"generator": state})
    encode: Callable[[Problem], list[int]]
    decode: Callable[[list[list[int]]], list[str]]
    reward_workers: int = 0
    rewards: RewardSet | None = None  # None: the registry's (a run's: rewards_from_config)


def shard_seed(seed: int, shard: int) -> int:
    return seed * 1_000_003 + shard


def score_shard(
    problems: Sequence[Problem],
    sampler: Sampler,
    cfg: OfflineFilterConfig,
    *,
    max_tokens: int,
    seed: int,
) -> list[Record]:
    """Sample N responses per problem (N by ability) and count the correct ones."""
    generator = torch.Generator().manual_seed(seed)
    sampler.engine.set_rng_state({"generator": generator.get_state()})
    by_n: dict[int, list[Problem]] = {}
    for p in problems:
        by_n.setdefault(cfg.samples.get(p.ability, cfg.default_samples), []).append(p)
    records: dict[str, Record] = {}
    for n, group in by_n.items():
        params = SamplingParams(
            n=n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=max_tokens
        )
        rollouts = sampler.engine.generate([sampler.encode(p) for p in group], params)
        texts = sampler.decode(rollouts.response_ids)
        verdicts = score_rollouts(
            group,
            rollouts.group_ids,
            texts,
            rewards=sampler.rewards,
            workers=sampler.reward_workers,
        )
        correct = [0] * len(group)
        for g, verdict in zip(rollouts.group_ids, verdicts, strict=True):
            correct[g] += int(verdict.reward >= 1.0)
        for p, c in zip(group, correct, strict=True):
            records[p.uid] = Record(p.uid, c, n, c / n, "sampled")
    return [records[p.uid] for p in problems]


# --------------------------------------------------------------------------- the filter


def offline_filter(
    problems: Sequence[Problem],
    sampler: Sampler,
    cfg: OfflineFilterConfig,
    *,
    key: str,
    max_tokens: int,
    out_path: str | Path,
    work_dir: str | Path,
    seed: int = 0,
    fingerprint: dict[str, Any] | None = None,
    restart: bool = False,
    show: bool = True,
    on_shard: Callable[[int], None] | None = None,
) -> FilterSummary:
    """Score every problem (resumably), keep ``low < pass rate < high``, write the rows.

    Args:
        problems: the problems, in a fixed order (shards are positions in it).
        sampler: engine + encode/decode of the model to be trained.
        cfg: samples per ability, temperature, top-p, bounds, shard size, reuse.
        key: the model's key in ``extra_info.model_difficulty``.
        max_tokens: response length cap while sampling.
        out_path: the kept rows (parquet, or jsonl by suffix), with pass rates.
        work_dir: progress and metadata of this run (resumed when present).
        seed: sampling seed (per shard: ``shard_seed(seed, shard)``).
        fingerprint: what identifies the run (inputs, model, settings); a work_dir with
            another fingerprint is refused.
        restart: discard the progress in ``work_dir``.
        on_shard: called with the shard index after each shard is recorded.

    Returns:
        A FilterSummary (also written to ``<work_dir>/summary.json``).
    """
    start = time.perf_counter()
    work_dir = Path(work_dir)
    meta = {
        **(fingerprint or {}),
        "settings": cfg.model_dump(),
        "key": key,
        "max_tokens": max_tokens,
        "seed": seed,
        "uids": _digest([p.uid for p in problems]),
    }
    progress = ProgressFile(work_dir, meta, restart=restart)
    resumed = sum(p.uid in progress.records for p in problems)
    counts = {"sampled": 0, "reused": 0}
    with progress_bar("offline filter", len(problems), show=show) as bar:
        bar.advance(resumed)
        for shard, begin in enumerate(range(0, len(problems), cfg.shard_size)):
            todo = [
                p for p in problems[begin : begin + cfg.shard_size] if p.uid not in progress.records
            ]
            if not todo:
                continue
            records = _shard_records(
                todo, sampler, cfg, key=key, max_tokens=max_tokens, seed=shard_seed(seed, shard)
            )
            progress.append(records)
            for r in records:
                counts[r.source] += 1
            bar.advance(len(todo))
            if on_shard is not None:
                on_shard(shard)
    summary = _write_kept(problems, progress.records, cfg, key=key, out_path=Path(out_path))
    summary.update(
        sampled=counts["sampled"],
        resumed=resumed,
        work_dir=str(work_dir),
        seconds=time.perf_counter() - start,
    )
    result = FilterSummary(**summary)
    (work_dir / "summary.json").write_text(json.dumps(asdict(result), indent=1))
    return result


def _shard_records(
    todo: list[Problem],
    sampler: Sampler,
    cfg: OfflineFilterConfig,
    *,
    key: str,
    max_tokens: int,
    seed: int,
) -> list[Record]:
    reused: dict[str, Record] = {}
    if cfg.reuse:
        for p in todo:
            rate = stored_pass_rate(p.extra_info, key=key, scale=cfg.difficulty_scale)
            if rate is not None:
                c = round(rate * cfg.difficulty_scale)
                reused[p.uid] = Record(p.uid, c, cfg.difficulty_scale, rate, "reused")
    to_sample = [p for p in todo if p.uid not in reused]
    sampled = (
        score_shard(to_sample, sampler, cfg, max_tokens=max_tokens, seed=seed) if to_sample else []
    )
    by_uid = {**reused, **{r.uid: r for r in sampled}}
    return [by_uid[p.uid] for p in todo]


def _write_kept(
    problems: Sequence[Problem],
    records: dict[str, Record],
    cfg: OfflineFilterConfig,
    *,
    key: str,
    out_path: Path,
) -> dict[str, Any]:
    rates = torch.tensor([records[p.uid].pass_rate for p in problems], dtype=torch.float64)
    keep = keep_by_pass_rate(rates, low=cfg.low, high=cfg.high)
    rows = []
    for p, kept in zip(problems, keep.tolist(), strict=True):
        if kept:
            row = problem_to_row(p)
            row["extra_info"] = with_pass_rate(
                row["extra_info"], key=key, rate=records[p.uid].pass_rate
            )
            rows.append(row)
    write_rows(rows, out_path)
    return {
        "total": len(problems),
        "kept": len(rows),
        "dropped_unsolved": int((rates <= cfg.low).sum()),
        "dropped_solved": int((rates >= cfg.high).sum()),
        "reused": sum(records[p.uid].source == "reused" for p in problems),
        "out_path": str(out_path),
    }


def _digest(uids: list[str]) -> str:
    import hashlib

    return hashlib.sha1("\n".join(uids).encode()).hexdigest()[:16]
