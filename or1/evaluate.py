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
from or1.rewards import score_batch


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

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "k": self.k,
            "avg_at_k": self.avg_at_k,
            "pass_at_k": {str(k): v for k, v in self.pass_at_k.items()},
            "problems": len(self.per_problem),
            "mean_response_length": self.mean_response_length,
            "truncation_ratio": self.truncation_ratio,
            "seconds": self.seconds,
        }


def evaluate_problems(
    engine: RolloutEngine,
    problems: list[Problem],
    *,
    encode: Callable[[Problem], list[int]],
    decode: Callable[[list[list[int]]], list[str]],
    params: SamplingParams,
    label: str = "eval",
    reward_workers: int = 0,
    show: bool = True,
) -> EvalResult:
    """Sample ``params.n`` responses per problem and score them."""
    start = time.perf_counter()
    k = params.n
    prompts = [encode(p) for p in problems]
    with progress_bar(f"eval {label} (avg@{k})", len(problems), show=show) as bar:
        rollouts = engine.generate(prompts, params, progress=bar.advance)  # type: ignore[call-arg]
    texts = decode(rollouts.response_ids)
    items = [
        (problems[g].ability, t, problems[g].ground_truth)
        for g, t in zip(rollouts.group_ids, texts, strict=True)
    ]
    rewards = score_batch(items, workers=reward_workers)
    correct = torch.tensor(rewards, dtype=torch.float32).view(len(problems), k)
    ks = sorted({1, *(x for x in (2, 4, 8, 16, 32) if x <= k), k})
    result = EvalResult(
        label=label,
        k=k,
        avg_at_k=avg_at_k(correct),
        pass_at_k=pass_at_k_table(correct, ks),
        seconds=time.perf_counter() - start,
        mean_response_length=rollouts.num_tokens / max(len(rollouts), 1),
        truncation_ratio=sum(rollouts.truncated) / max(len(rollouts), 1),
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
                "reward": rewards[j],
                "truncated": rollouts.truncated[j],
                "tokens": len(rollouts.response_ids[j]),
            }
        )
    return result


def write_eval_outputs(result: EvalResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{result.label}_problems.csv", "w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=list(result.per_problem[0]) if result.per_problem else ["uid"]
        )
        writer.writeheader()
        writer.writerows(result.per_problem)
    with open(out_dir / f"{result.label}_samples.jsonl", "w") as fh:
        for sample in result.samples:
            fh.write(json.dumps(sample) + "\n")
    (out_dir / f"{result.label}_summary.json").write_text(json.dumps(result.summary(), indent=1))


def run_eval(cfg: Config, out_dir: Path, *, show: bool = True) -> dict[str, Any]:
    """``or1 eval``: the preset's test split (or model.path) at the eval settings."""
    from or1.build import encode_prompt, load_model, load_problems, seed_everything
    from or1.engine.hf_rollout import HFRolloutEngine
    from or1.engine.models import stop_token_ids

    seed_everything(cfg.train.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    train, test = load_problems(cfg)
    if not test:
        raise ConfigError("no evaluation problems: the preset has no test split (data.test).")
    loaded = load_model(cfg, train, show=show)
    model, tokenizer = loaded.model, loaded.tokenizer
    engine = HFRolloutEngine(
        model,
        pad_id=tokenizer.pad_token_id,
        stop_ids=stop_token_ids(tokenizer, model),
        max_batch_sequences=cfg.rollout.batch_size,
        seed=cfg.train.seed,
    )
    e = cfg.eval
    problems = test[: e.max_problems] if e.max_problems else test
    result = evaluate_problems(
        engine,
        problems,
        encode=lambda p: encode_prompt(tokenizer, p),
        decode=lambda r: tokenizer.batch_decode(r, skip_special_tokens=True),
        params=SamplingParams(
            n=e.samples,
            temperature=e.temperature,
            top_p=e.top_p,
            max_tokens=e.max_tokens or cfg.stages[-1].max_response_length,
        ),
        label="eval",
        show=show,
    )
    write_eval_outputs(result, out_dir)
    return {**result.summary(), "model": loaded.info.get("path"), "out_dir": str(out_dir)}
