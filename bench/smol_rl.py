"""The smol-arith run as a bench: SmolLM2-135M-Instruct, MAGIC, 20 steps, on this CPU.

    nice -n 15 .venv/bin/python bench/smol_rl.py [--seeds 0 1 2] [--steps 20] [overrides...]

Per seed: ``or1 train --preset smol-arith train.max_steps=<steps> train.seed=<seed>``
in-process (base avg@4 on the held-out split, the steps, final avg@4). Progress goes to
stderr; the last line of stdout is one JSON object: base, final, gain (means over
seeds), seconds_per_step (median step time over all steps), and the per-seed rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import emit, log, machine  # type: ignore[import-not-found]

from or1.config import load_config
from or1.trainer import Trainer


def run_seed(seed: int, steps: int, runs_dir: Path, overrides: list[str]) -> dict[str, Any]:
    cfg = load_config(
        "smol-arith",
        [
            f"train.max_steps={steps}",
            f"train.seed={seed}",
            f"runs_dir={runs_dir}",
            f"name=smol-rl-seed{seed}",
            "logging.progress=false",
            *overrides,
        ],
    )
    run_dir = runs_dir / f"smol-rl-seed{seed}"
    start = time.perf_counter()
    with Trainer(cfg, run_dir, show_progress=False) as trainer:
        answers = [p.ground_truth for p in trainer.test_problems]
        summary = trainer.run()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    step_seconds = [r["step_seconds"] for r in rows if "step_seconds" in r]
    result = {
        "seed": seed,
        "base": summary["base_avg_at_k"],
        "final": summary["final_avg_at_k"],
        "gain": summary["final_avg_at_k"] - summary["base_avg_at_k"],
        **{
            f"{label}_{key}": value
            for label in ("base", "final")
            for key, value in sample_stats(run_dir / "eval" / f"{label}_samples.jsonl").items()
        },
        # The accuracy of answering every held-out question with its most common answer:
        # a policy that only learned the answer format and prior scores about this.
        "best_constant_answer": max(map(answers.count, set(answers))) / len(answers),
        "steps": len(step_seconds),
        "seconds_per_step": statistics.median(step_seconds) if step_seconds else None,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "run_dir": str(run_dir),
    }
    log(json.dumps(result))
    return result


def sample_stats(samples: Path) -> dict[str, float | None]:
    """Stricter reads of one evaluation's samples than avg@k.

    - ``boxed``: accuracy counting only rewarded samples that put their answer in
      \\boxed{}. Math-Verify also reads un-boxed text, and on chain_sum restating the
      question's expression ("7 + 4 - 2") parses to the right value.
    - ``complete``: accuracy counting only correct samples that finished within the
      length limit. Evaluation grades a cut-off response's text too (standard practice),
      and a rambling small model often ends a cut-off text on a number that happens to
      be right; training gives such responses reward 0 (``algo.truncated_reward``).
    - ``truncated``: share of samples cut off at the length limit.
    """
    if not samples.is_file():
        return {"boxed": None, "complete": None, "truncated": None}
    rows = [json.loads(line) for line in samples.open()]
    correct = [r for r in rows if r["reward"] == 1.0]
    return {
        "boxed": sum("\\boxed" in r["response"] for r in correct) / len(rows),
        "complete": sum(not r["truncated"] for r in correct) / len(rows),
        "truncated": sum(bool(r["truncated"]) for r in rows) / len(rows),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="dotted config overrides")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="smol-rl-"))
    per_seed = [run_seed(s, args.steps, runs_dir, args.overrides) for s in args.seeds]
    all_steps = [r["seconds_per_step"] for r in per_seed if r["seconds_per_step"]]
    emit(
        {
            "bench": "smol_rl",
            "preset": "smol-arith",
            "k": 4,
            "base": statistics.mean(r["base"] for r in per_seed),
            "final": statistics.mean(r["final"] for r in per_seed),
            "gain": statistics.mean(r["gain"] for r in per_seed),
            "seconds_per_step": statistics.median(all_steps) if all_steps else None,
            "seeds": per_seed,
            "overrides": args.overrides,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    sys.exit(main())
