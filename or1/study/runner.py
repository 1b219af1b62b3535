"""Training the study's variant x seed runs: resumable, in parallel worker processes."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from or1.errors import ConfigError
from or1.study.findings import FINDINGS, Finding
from or1.study.stats import RunData, eval_points, read_problems
from or1.study.variants import DONE_FILE, VARIANTS, StudySettings

# -- running one variant x seed -----------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker process needs to train (or finish) one variant x seed."""

    variant: str
    seed: int
    run_dir: str
    preset: str
    overrides: tuple[str, ...]
    segment_ends: tuple[int, ...]
    cost: float = 1.0

    @property
    def fingerprint(self) -> str:
        blob = json.dumps([self.preset, self.overrides, self.segment_ends])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_done(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / DONE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _write_done(run_dir: Path, record: dict[str, Any]) -> None:
    tmp = run_dir / (DONE_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(run_dir / DONE_FILE)


def _checkpoint_step(run_dir: Path) -> int | None:
    from or1.checkpoint import load_checkpoint
    from or1.errors import CheckpointError

    try:
        return load_checkpoint(run_dir).step
    except CheckpointError:
        return None


def _evaluated_steps(run_dir: Path) -> set[int]:
    from or1.tracking import EVAL_FILE, read_jsonl

    return set(eval_points(read_jsonl(run_dir / EVAL_FILE)))


def problems_file(run_dir: Path, step: int) -> Path:
    """Where the study keeps the per-problem table of the held-out eval at ``step``."""
    return run_dir / "eval" / ("base_problems.csv" if step == 0 else f"step_{step}_problems.csv")


def _keep_problems(run_dir: Path, end: int) -> None:
    """Copy the segment's final per-problem table (the trainer names it ``final``, and the
    next segment overwrites it) to ``problems_file(run_dir, end)``."""
    target = problems_file(run_dir, end)
    source = run_dir / "eval" / "final_problems.csv"
    # eval.jsonl gets its row after the table is written: if ``end`` is the last step
    # evaluated, final_problems.csv is that evaluation's.
    if not target.is_file() and source.is_file() and max(_evaluated_steps(run_dir)) == end:
        shutil.copyfile(source, target)


def check_run_dir(spec: RunSpec) -> dict[str, Any] | None:
    """The run's record, if any; refuse a run dir made with other settings."""
    record = _read_done(Path(spec.run_dir))
    if record is not None and record.get("fingerprint") != spec.fingerprint:
        raise ConfigError(
            f"{spec.run_dir} holds a run made with other settings ({record.get('overrides')}).",
            hint="use another --out, or delete that directory to redo the run.",
        )
    return record


def _claim_run_dir(spec: RunSpec) -> dict[str, Any]:
    """Create or re-open the run dir (see ``check_run_dir``)."""
    run_dir = Path(spec.run_dir)
    record = check_run_dir(spec)
    if record is None:
        shutil.rmtree(run_dir, ignore_errors=True)  # a run killed before its first record
        run_dir.mkdir(parents=True)
        record = {"fingerprint": spec.fingerprint, "overrides": list(spec.overrides)}
        record.update(done=False, seconds=0.0)
        _write_done(run_dir, record)
    return record


def train_run(spec: RunSpec) -> dict[str, Any]:
    """Train one variant x seed in segments (held-out eval after each); skip if done.

    Returns:
        The run's ``study_run.json`` record plus ``skipped`` (True if it was done).
    """
    from or1.config import load_config
    from or1.trainer import Trainer

    run_dir = Path(spec.run_dir)
    record = _claim_run_dir(spec)
    if record["done"]:
        return {**record, "skipped": True}
    start = time.perf_counter()
    for end in spec.segment_ends:
        if end in _evaluated_steps(run_dir):
            _keep_problems(run_dir, end)  # a run killed between its eval and the copy
            continue
        step = _checkpoint_step(run_dir)
        if step is None:
            _restart(run_dir, record)  # fresh, or killed before its first checkpoint
        elif step > end:
            continue  # killed while evaluating a checkpoint that was then passed
        cfg = load_config(spec.preset, [*spec.overrides, f"train.max_steps={end}"])
        resume = None if step is None else run_dir
        with Trainer(cfg, run_dir, show_progress=False) as trainer:
            trainer.run(resume=resume)
        _keep_problems(run_dir, end)
        record["seconds"] += time.perf_counter() - start
        start = time.perf_counter()
        _write_done(run_dir, record)
    record.update(done=True, seconds=record["seconds"] + time.perf_counter() - start)
    _write_done(run_dir, record)
    return {**record, "skipped": False}


def _restart(run_dir: Path, record: dict[str, Any]) -> None:
    shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    _write_done(run_dir, record)


def prepare_warmup(preset: str, overrides: tuple[str, ...]) -> float:
    """Build (or find cached) the warmed-up base of one seed; returns seconds."""
    import torch

    from or1.build import load_model, load_problems
    from or1.config import load_config

    start = time.perf_counter()
    cfg = load_config(preset, list(overrides))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    train, _ = load_problems(cfg)
    load_model(cfg, train, show=False)
    return time.perf_counter() - start


def prepare_warmups(warmups: list[tuple[str, tuple[str, ...]]]) -> float:
    """``prepare_warmup`` of each (preset, overrides), one after another; returns seconds."""
    return sum(prepare_warmup(*warmup) for warmup in warmups)


def _worker_init() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# -- the study ----------------------------------------------------------------------------


@dataclass
class Study:
    """A planned study: which runs, where, and with what."""

    settings: StudySettings
    out: Path
    preset: str | None = None  # None: the settings' (full study-arith, quick tiny-arith)
    overrides: tuple[str, ...] = ()  # the user's, applied before the study's own
    findings: tuple[Finding, ...] = FINDINGS
    runs: list[RunSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        preset = self.preset = self.preset or s.preset
        keys = list(dict.fromkeys(k for f in self.findings for k, _ in f.variants))
        unknown = [k for k in keys if k not in VARIANTS]
        if unknown:
            raise ConfigError(f"unknown study variants: {', '.join(unknown)}.")
        for key in keys:
            variant = VARIANTS[key]
            vs = variant.settings(s)
            for seed in s.seeds:
                overrides = (
                    *self.overrides,
                    *vs.base_overrides(),
                    *variant.warmup,
                    *variant.overrides(vs),
                    f"train.seed={seed}",
                )
                run_dir = self.out / "runs" / s.mode / f"{key}-s{seed}"
                self.runs.append(
                    RunSpec(
                        key,
                        seed,
                        str(run_dir),
                        preset,
                        overrides,
                        tuple(vs.segment_ends()),
                        variant.cost * variant.length,
                    )
                )

    def warmup_specs(self) -> dict[int, list[tuple[str, tuple[str, ...]]]]:
        """Per seed, one (preset, overrides) per warm-up its variants train from: they
        share one, but a variant with ``Variant.warmup`` overrides has its own."""
        first: dict[int, dict[tuple[str, ...], tuple[str, tuple[str, ...]]]] = {}
        for spec in self.runs:
            own = VARIANTS[spec.variant].warmup
            first.setdefault(spec.seed, {}).setdefault(own, (spec.preset, spec.overrides))
        return {seed: list(specs.values()) for seed, specs in first.items()}


class _Progress:
    """Numbers the finished runs in the messages."""

    def __init__(self, total: int, say: Callable[[str], None]) -> None:
        self.total, self.done, self.say = total, 0, say

    def warmup(self, seed: int, seconds: float) -> None:
        self.say(f"warm-up of seed {seed}: ready in {seconds:.0f} s")

    def run(self, spec: RunSpec, record: dict[str, Any]) -> None:
        self.done += 1
        how = "already done" if record["skipped"] else f"{record['seconds']:.0f} s"
        self.say(f"[{self.done}/{self.total}] {spec.variant} seed {spec.seed}: {how}")


def run_order(study: Study) -> list[tuple[int, list[RunSpec]]]:
    """Seeds in the order given, each with its runs in the order they are trained: the
    variants of the first finding, then those the next one adds, and so on, so a study
    stopped early (or still running) has whole findings for its first seed."""
    rank: dict[str, int] = {}
    for finding in study.findings:
        for key, _ in finding.variants:
            rank.setdefault(key, len(rank))
    by_seed: dict[int, list[RunSpec]] = {}
    for spec in study.runs:
        by_seed.setdefault(spec.seed, []).append(spec)
    return [(seed, sorted(specs, key=lambda r: rank[r.variant])) for seed, specs in by_seed.items()]


def _execute_serial(
    order: list[tuple[int, list[RunSpec]]],
    warmups: dict[int, list[tuple[str, tuple[str, ...]]]],
    progress: _Progress,
) -> None:
    for seed, specs in order:
        progress.warmup(seed, prepare_warmups(warmups[seed]))
        for spec in specs:
            progress.run(spec, train_run(spec))


def _process_pool(jobs: int) -> Executor:
    return ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init)


def execute(
    study: Study,
    *,
    jobs: int = 2,
    say: Callable[[str], None] = print,
    make_pool: Callable[[int], Executor] = _process_pool,
) -> float:
    """Every run, ``jobs`` processes (``make_pool(jobs)``) at a time; returns wall seconds.

    Seed by seed (``run_order``): the first ``jobs`` seeds' warm-ups are built at once;
    once a seed's warm-up and those of the seeds before it are ready, its runs are
    queued, then the next seed's warm-up behind them: the seeds are trained in the order
    given, one after another, and a cached seed trains at once.
    """
    start = time.perf_counter()
    for spec in study.runs:
        check_run_dir(spec)  # fail before training anything
    order = run_order(study)
    warmups = study.warmup_specs()
    progress = _Progress(len(study.runs), say)
    if jobs <= 1:
        _execute_serial(order, warmups, progress)
        return time.perf_counter() - start
    waiting = [seed for seed, _ in order]  # warm-ups not yet queued, in seed order
    ready: set[int] = set()
    with make_pool(jobs) as pool:
        pending: dict[Future[Any], tuple[int, RunSpec | None]] = {}

        def queue_warmup() -> None:
            if waiting:
                seed = waiting.pop(0)
                pending[pool.submit(prepare_warmups, warmups[seed])] = (seed, None)

        for _ in range(min(jobs, len(waiting))):
            queue_warmup()
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    seed, spec = pending.pop(future)
                    if spec is not None:
                        progress.run(spec, future.result())
                        continue
                    progress.warmup(seed, future.result())
                    ready.add(seed)
                    while order and order[0][0] in ready:  # the next seed in order
                        first, specs = order.pop(0)
                        pending.update({pool.submit(train_run, r): (first, r) for r in specs})
                        queue_warmup()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return time.perf_counter() - start


def collect(study: Study) -> dict[str, dict[int, RunData]]:
    """The data of every finished run: ``{variant: {seed: RunData}}``."""
    from or1.tracking import EVAL_FILE, METRICS_FILE, read_jsonl

    runs: dict[str, dict[int, RunData]] = {}
    for spec in study.runs:
        run_dir = Path(spec.run_dir)
        record = _read_done(run_dir)
        if not record or not record.get("done"):
            continue
        problems = {
            step: read_problems(problems_file(run_dir, step))
            for step in (0, *spec.segment_ends)
            if problems_file(run_dir, step).is_file()
        }
        runs.setdefault(spec.variant, {})[spec.seed] = RunData(
            rows=read_jsonl(run_dir / METRICS_FILE),
            evals=read_jsonl(run_dir / EVAL_FILE),
            problems=problems,
            seconds=record.get("seconds"),
        )
    return runs
