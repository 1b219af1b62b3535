"""Learning per wall-clock second: held-out avg@8 on tiny-arith, or1 vs TRL GRPO.

    .venv/bin/python bench/learning.py [--budget 60] [--seeds 0 1 2]

For each seed, both start from the same warmed-up tiny-arith base (the seed-0 warm-up,
cached; the seed varies the RL run: prompt order and sampling) and train for the same
wall-clock budget (training loop only, checked at step ends; model loading and the
final evaluation are outside it):

- or1: the tiny-arith preset as shipped (MAGIC: rejection of zero-variance groups,
  token-mean PPO-clip loss, adaptive entropy control, multi-stage 32 -> 64 tokens).
- TRL 1.16 GRPOTrainer (bench/.venv-trl) with its defaults and beta 0, except the
  settings of scale, set equal to or1's: 32 prompts x 8 samples per step, at most 64
  new tokens, lr 5e-5 (TRL's default 1e-6 is meant for billion-parameter models), CPU.

Both final models are evaluated the same way, by or1's evaluator: avg@8 on the 200
held-out problems, temperature 1.0, at most 64 tokens, the same sampling seed.
Output: {"or1_avg8": [...], "trl_avg8": [...], "or1_higher_every_seed": bool, ...}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import _trl_env
from _trl_worker import TAG
from step import write_problems

from or1.build import encode_prompt, seed_everything
from or1.build.models import load_pretrained
from or1.data.sampler import PromptSampler
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.rollout import SamplingParams
from or1.evaluate import evaluate_problems
from or1.stages import stage_of
from or1.trainer import Trainer

EVAL_SEED, K, EVAL_TOKENS = 1234, 8, 64


def avg_at_k(model: Any, tok: Any, problems: list) -> float:
    engine = HFRolloutEngine(
        model, pad_id=tok.pad_token_id, stop_ids=C.stops(tok, model), seed=EVAL_SEED
    )
    result = evaluate_problems(
        engine,
        problems,
        encode=lambda p: encode_prompt(tok, p),
        decode=lambda ids: tok.batch_decode(ids, skip_special_tokens=True),
        params=SamplingParams(n=K, temperature=1.0, top_p=1.0, max_tokens=EVAL_TOKENS),
        show=False,
    )
    return float(result.avg_at_k)


def train_or1(
    seed: int, budget: float, tmp: Path, threads: int, processes: int
) -> tuple[Any, int, float]:
    overrides = [f"runs_dir={tmp}", "logging.tensorboard=false", f"train.threads={threads}"]
    overrides.append(f"rollout.hf.processes={processes}")
    cfg, _, _, _ = C.tiny_arith(overrides)
    trainer = Trainer(cfg, tmp / f"or1-seed{seed}", show_progress=False)
    # The RL run's randomness from `seed`, the base model and data split from seed 0.
    seed_everything(seed)
    trainer.engine.set_rng_state({"generator": torch.Generator().manual_seed(seed).get_state()})
    trainer.sampler = PromptSampler(list(trainer.by_uid), seed=seed)
    start = time.perf_counter()
    while time.perf_counter() - start < budget and trainer.step < cfg.total_steps:
        trainer.step += 1
        index = stage_of(cfg.stages, trainer.step)
        trainer.enter_stage(index)
        trainer.train_step(cfg.stages[index])
    trainer.close()
    return trainer.model, trainer.step, time.perf_counter() - start


def train_trl(
    seed: int, budget: float, base_dir: str, data: Path, out: Path, threads: int
) -> tuple[int, float]:
    cmd = [
        str(_trl_env.ensure()),
        str(Path(__file__).resolve().parent / "_trl_worker.py"),
        *("--model", base_dir, "--data", str(data), "--mode", "learn", "--seed", str(seed)),
        *("--budget", str(budget), "--out", str(out), "--steps", "100000"),
        *("--prompts", "32", "--group", "8", "--max-tokens", "64", "--lr", "5e-5"),
        *("--threads", str(threads)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith(TAG))
    done = json.loads(line[len(TAG) :])
    return int(done["steps"]), float(done["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="training seconds per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help=C.THREADS_HELP)
    ap.add_argument("--processes", type=int, default=1, help=C.PROCESSES_HELP)
    args = ap.parse_args()
    C.set_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="or1-bench-learning-"))
    cfg, loaded, train, test = C.tiny_arith()
    write_problems(train, tmp / "train.jsonl")
    base_dir = loaded.info["path"]
    base = avg_at_k(loaded.model, loaded.tokenizer, test)
    C.log(f"base avg@{K}: {base:.3f}")
    rows: dict[str, list] = {"or1": [], "trl": [], "steps_or1": [], "steps_trl": []}
    for seed in args.seeds:
        model, steps, secs = train_or1(seed, args.budget, tmp, args.threads, args.processes)
        rows["or1"].append(round(avg_at_k(model, loaded.tokenizer, test), 4))
        rows["steps_or1"].append(steps)
        C.log(f"seed {seed}: or1 {steps} steps in {secs:.0f} s -> avg@{K} {rows['or1'][-1]}")
        out = tmp / f"trl-seed{seed}"
        steps, secs = train_trl(seed, args.budget, base_dir, tmp / "train.jsonl", out, args.threads)
        trl_model, trl_tok = load_pretrained(out, cfg.model)
        rows["trl"].append(round(avg_at_k(trl_model, trl_tok, test), 4))
        rows["steps_trl"].append(steps)
        C.log(f"seed {seed}: trl {steps} steps in {secs:.0f} s -> avg@{K} {rows['trl'][-1]}")
    C.emit(
        {
            "budget_s": args.budget,
            "seeds": args.seeds,
            "base_avg8": round(base, 4),
            "or1_avg8": rows["or1"],
            "trl_avg8": rows["trl"],
            "or1_higher_every_seed": all(
                a > b for a, b in zip(rows["or1"], rows["trl"], strict=True)
            ),
            "steps_or1": rows["steps_or1"],
            "steps_trl": rows["steps_trl"],
            "trl": _trl_env.TRL_VERSION,
            "machine": C.machine(),
        }
    )


if __name__ == "__main__":
    main()
