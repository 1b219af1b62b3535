"""Evaluation: avg@k and pass@k over a problem set, with a per-problem table.

avg@k is the paper's headline metric (mean accuracy over k samples per problem);
pass@k uses the unbiased estimator. Outputs: ``<label>_problems.csv`` (one row per
problem) and ``<label>_samples.jsonl`` (every sample, for error analysis).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from or1.algo import avg_at_k, pass_at_k_table
from or1.config import Config
from or1.data.problem import Problem
from or1.engine.rollout import RolloutEngine, SamplingParams
from or1.errors import ConfigError
from or1.progress import progress_bar
from or1.rewards import RewardSet, rewards_from_config, score_rollouts
from or1.rewards.scoring import grouped_means


@dataclass
class EvalResult:
    label: str
    k: int
    avg_at_k: float
    pass_at_k: dict[int, float]
    per_problem: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    mean_response_length: float = 0.0
    truncation_ratio: float = 0.0
    benchmark: str | None = None  # None: the run's test split
    # avg_at_k/<ability>, avg_at_k/src/<source>, mean_response_length/..., truncation_ratio/...
    breakdown: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<label>`` for the test split, ``<label>_<benchmark>`` for a benchmark (the
        stem of its output files)."""
        return f"{self.label}_{self.benchmark}" if self.benchmark else self.label

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            **({"benchmark": self.benchmark} if self.benchmark else {}),
            "k": self.k,
            "avg_at_k": self.avg_at_k,
            "pass_at_k": {str(k): v for k, v in self.pass_at_k.items()},
            "problems": len(self.per_problem),
            "mean_response_length": self.mean_response_length,
            "truncation_ratio": self.truncation_ratio,
            "seconds": self.seconds,
            **self.breakdown,
        }


def eval_sampling_params(cfg: Config) -> SamplingParams:
    """How every evaluation samples: ``eval.samples`` per problem at ``eval.temperature``
    and ``eval.top_p``, up to ``eval.max_tokens`` (default: the last stage's length)."""
    e = cfg.eval
    return SamplingParams(
        n=e.samples,
        temperature=e.temperature,
        top_p=e.top_p,
        max_tokens=e.max_tokens or cfg.stages[-1].max_response_length,
    )


def evaluate_problems(
    engine: RolloutEngine,
    problems: list[Problem],
    *,
    encode: Callable[[Problem], list[int]],
    decode: Callable[[list[list[int]]], list[str]],
    params: SamplingParams,
    label: str = "eval",
    rewards: RewardSet | None = None,
    reward_workers: int = 0,
    show: bool = True,
) -> EvalResult:
    """Sample ``params.n`` responses per problem and score them with ``rewards`` (None:
    the registry's; a run passes ``rewards_from_config(cfg.rewards)``)."""
    start = time.perf_counter()
    k = params.n
    prompts = [encode(p) for p in problems]
    with progress_bar(f"eval {label} (avg@{k})", len(problems), show=show) as bar:
        rollouts = engine.generate(prompts, params, progress=bar.advance)
    texts = decode(rollouts.response_ids)
    verdicts = score_rollouts(
        problems, rollouts.group_ids, texts, rewards=rewards, workers=reward_workers
    )
    scores = [v.reward for v in verdicts]
    correct = torch.tensor(scores, dtype=torch.float32).view(len(problems), k)
    ks = sorted({1, *(x for x in (2, 4, 8, 16, 32) if x <= k), k})
    result = EvalResult(
        label=label,
        k=k,
        avg_at_k=avg_at_k(correct),
        pass_at_k=pass_at_k_table(correct, ks),
        seconds=time.perf_counter() - start,
        mean_response_length=rollouts.num_tokens / max(len(rollouts), 1),
        truncation_ratio=sum(rollouts.truncated) / max(len(rollouts), 1),
        breakdown=grouped_means(
            [problems[g] for g in rollouts.group_ids],
            {
                "avg_at_k": scores,
                "mean_response_length": [len(r) for r in rollouts.response_ids],
                "truncation_ratio": [float(t) for t in rollouts.truncated],
            },
        ),
    )
    for i, problem in enumerate(problems):
        row = correct[i]
        result.per_problem.append(
            {
                "uid": problem.uid,
                "data_source": problem.data_source,
                "ground_truth": problem.ground_truth,
                "correct": int(row.sum()),
                "samples": k,
                "accuracy": float(row.mean()),
            }
        )
    for j, text in enumerate(texts):
        g = rollouts.group_ids[j]
        result.samples.append(
            {
                "uid": problems[g].uid,
                "response": text,
                "reward": scores[j],
                "reason": verdicts[j].reason,
                "truncated": rollouts.truncated[j],
                "tokens": len(rollouts.response_ids[j]),
            }
        )
    return result


def write_eval_outputs(result: EvalResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{result.name}_problems.csv", "w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=list(result.per_problem[0]) if result.per_problem else ["uid"]
        )
        writer.writeheader()
        writer.writerows(result.per_problem)
    with open(out_dir / f"{result.name}_samples.jsonl", "w") as fh:
        for sample in result.samples:
            fh.write(json.dumps(sample) + "\n")
    (out_dir / f"{result.name}_summary.json").write_text(json.dumps(result.summary(), indent=1))


@dataclass
class EvalSet:
    """Problems evaluated together, with their prompt token ids by uid.

    ``benchmark`` is None for the run's own test split, else the benchmark's name.
    """

    problems: list[Problem]
    prompt_ids: dict[str, list[int]]
    benchmark: str | None = None


def load_benchmarks(cfg: Config) -> dict[str, list[Problem]]:
    """``eval.benchmarks`` by name (a file's stem), loaded without a model, so a missing
    or bad file fails in a second."""
    from or1.data.sources import load_benchmark, resolve_benchmark, source_name
    from or1.rewards import REWARDS

    e, root = cfg.eval, cfg.cache_path
    known = {*REWARDS, *cfg.rewards.by_ability}
    return {
        source_name(resolve_benchmark(n, e, root)): load_benchmark(n, e, root, abilities=known)
        for n in e.benchmarks
    }


def benchmark_sets(
    benchmarks: dict[str, list[Problem]],
    encode: Callable[[Problem], list[int]],
    max_prompt_length: int,
) -> list[EvalSet]:
    """Benchmarks (`load_benchmarks`) with their prompts encoded; prompts longer than
    ``max_prompt_length`` are dropped with a warning."""
    from or1.build import fit_prompts

    sets = []
    for name, problems in benchmarks.items():
        kept, ids = fit_prompts(problems, encode, max_prompt_length, split=f"benchmark {name}")
        sets.append(EvalSet(kept, ids, benchmark=name))
    return sets


def evaluate_sets(
    engine: RolloutEngine,
    sets: list[EvalSet],
    *,
    label: str,
    params: SamplingParams,
    decode: Callable[[list[list[int]]], list[str]],
    max_problems: int | None,
    out_dir: Path,
    rewards: RewardSet | None = None,
    show: bool = True,
) -> list[EvalResult]:
    """Evaluate each set (its first ``max_problems`` problems) and write its outputs."""
    results = []
    for each in sets:
        ids = each.prompt_ids
        result = evaluate_problems(
            engine,
            each.problems[:max_problems] if max_problems else each.problems,
            encode=lambda p, ids=ids: ids[p.uid],
            decode=decode,
            params=params,
            label=f"{label} {each.benchmark}" if each.benchmark else label,
            rewards=rewards,
            show=show,
        )
        result.label, result.benchmark = label, each.benchmark
        write_eval_outputs(result, out_dir)
        results.append(result)
    return results


def run_eval(cfg: Config, out_dir: Path, *, show: bool = True) -> dict[str, Any]:
    """``or1 eval``: ``eval.benchmarks`` when set, else the preset's test split."""
    from or1.build import encode_prompt, load_model, load_problems, seed_everything
    from or1.engine.factory import local_rollout_engine

    seed_everything(cfg.train.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if cfg.eval.benchmarks:
        return run_benchmarks(cfg, out_dir, show=show)
    rewards = rewards_from_config(cfg.rewards)
    train, test = load_problems(cfg)
    if not test:
        raise ConfigError("no evaluation problems: the preset has no test split (data.test).")
    loaded = load_model(cfg, train, show=show)
    model, tokenizer = loaded.model, loaded.tokenizer
    engine = local_rollout_engine(cfg, model, tokenizer)
    e = cfg.eval
    problems = test[: e.max_problems] if e.max_problems else test
    result = evaluate_problems(
        engine,
        problems,
        encode=lambda p: encode_prompt(tokenizer, p),
        decode=lambda r: tokenizer.batch_decode(r, skip_special_tokens=True),
        params=eval_sampling_params(cfg),
        label="eval",
        rewards=rewards,
        show=show,
    )
    write_eval_outputs(result, out_dir)
    return {**result.summary(), "model": loaded.info.get("path"), "out_dir": str(out_dir)}


def run_benchmarks(cfg: Config, out_dir: Path, *, show: bool = True) -> dict[str, Any]:
    """avg@k on each of ``eval.benchmarks`` (e.g. aime24, aime25: local parquet files).

    Writes per benchmark ``<name>_problems.csv``, ``<name>_samples.jsonl`` (every
    sample) and ``<name>_summary.json``, and the table ``benchmarks.csv`` +
    ``benchmarks.md`` (+ ``benchmarks.json``) over all of them.
    """
    from or1.build import encode_prompt, load_model, load_problems
    from or1.engine.factory import local_rollout_engine

    e = cfg.eval
    rewards = rewards_from_config(cfg.rewards)
    sets = load_benchmarks(cfg)  # before the model: a missing file fails in a second
    loaded = load_model(cfg, [] if cfg.model.path else load_problems(cfg)[0], show=show)
    model, tokenizer = loaded.model, loaded.tokenizer
    engine = local_rollout_engine(cfg, model, tokenizer)
    params = eval_sampling_params(cfg)
    results = []
    for label, problems in sets.items():
        result = evaluate_problems(
            engine,
            problems[: e.max_problems] if e.max_problems else problems,
            encode=lambda p: encode_prompt(tokenizer, p),
            decode=lambda r: tokenizer.batch_decode(r, skip_special_tokens=True),
            params=params,
            label=label,
            rewards=rewards,
            show=show,
        )
        write_eval_outputs(result, out_dir)
        results.append(result)
    table = write_benchmark_table(results, out_dir)
    return {
        "benchmarks": {r.label: r.summary() for r in results},
        "table": table,
        "sampling": {
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        },
        "model": loaded.info.get("path"),
        "out_dir": str(out_dir),
    }


def benchmark_rows(results: list[EvalResult]) -> list[dict[str, Any]]:
    """One row per benchmark: avg@k and pass@k in percent, lengths, truncation, time."""
    rows = []
    for r in results:
        row: dict[str, Any] = {
            "benchmark": r.label,
            "problems": len(r.per_problem),
            "k": r.k,
            f"avg@{r.k}": round(100 * r.avg_at_k, 2),
        }
        row.update({f"pass@{k}": round(100 * v, 2) for k, v in r.pass_at_k.items()})
        row.update(
            mean_response_length=round(r.mean_response_length, 1),
            truncation_ratio=round(r.truncation_ratio, 4),
            seconds=round(r.seconds, 1),
        )
        rows.append(row)
    return rows


def write_benchmark_table(results: list[EvalResult], out_dir: Path) -> str:
    """Write ``benchmarks.csv``, ``benchmarks.md`` and ``benchmarks.json``; return the
    markdown table."""
    rows = benchmark_rows(results)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "benchmarks.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    table = "\n".join(lines)
    (out_dir / "benchmarks.md").write_text(table + "\n")
    (out_dir / "benchmarks.json").write_text(json.dumps(rows, indent=1))
    return table
