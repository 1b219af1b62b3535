"""Files a training run writes besides metrics and checkpoints: the per-step samples
(``samples/step_<k>.jsonl``, ``train.save_samples`` groups) and ``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from or1.data.problem import Problem
from or1.engine.rollout import Rollouts


def write_samples(
    run_dir: Path,
    *,
    step: int,
    groups: int,
    problems: list[Problem],
    rollouts: Rollouts,
    texts: list[str],
    rewards: list[float],
) -> None:
    """Write the responses of the first ``groups`` groups of step ``step`` (one JSON row
    per response: uid, prompt, response, ground_truth, reward, truncated); nothing when
    ``groups`` <= 0."""
    if groups <= 0:
        return
    path = run_dir / "samples" / f"step_{step}.jsonl"
    path.parent.mkdir(exist_ok=True)
    with open(path, "w") as fh:
        for row, text in enumerate(texts):
            g = rollouts.group_ids[row]
            if g >= groups:
                break
            record = {
                "uid": problems[g].uid,
                "prompt": problems[g].question,
                "response": text,
                "ground_truth": problems[g].ground_truth,
                "reward": rewards[row],
                "truncated": rollouts.truncated[row],
            }
            fh.write(json.dumps(record) + "\n")


def write_summary(
    run_dir: Path,
    *,
    base_eval: list[dict[str, Any]],
    final: list[dict[str, Any]],
    benchmarks: list[str],
    fields: dict[str, Any],
) -> dict[str, Any]:
    """Write and return ``summary.json``: ``fields`` (preset, seed, k first), the base and
    final avg@k / pass@k of the test split (the summaries whose ``benchmark`` is None),
    each of ``benchmarks``' base and final avg@k, then the remaining ``fields``."""
    base = {b.get("benchmark"): b for b in base_eval}
    last = {r.get("benchmark"): r for r in final}
    head = {key: fields[key] for key in ("preset", "seed", "k")}
    summary = {
        **head,
        "base_avg_at_k": base.get(None, {}).get("avg_at_k"),
        "final_avg_at_k": last.get(None, {}).get("avg_at_k"),
        "base_pass_at_k": base.get(None, {}).get("pass_at_k"),
        "final_pass_at_k": last.get(None, {}).get("pass_at_k"),
        "benchmarks": {
            name: {
                "base_avg_at_k": base.get(name, {}).get("avg_at_k"),
                "final_avg_at_k": last.get(name, {}).get("avg_at_k"),
            }
            for name in benchmarks
        },
        **{key: value for key, value in fields.items() if key not in head},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
