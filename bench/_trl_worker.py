"""TRL GRPOTrainer worker for bench/step.py and bench/learning.py (runs in bench/.venv-trl).

    python bench/_trl_worker.py --model DIR --data FILE --mode step|learn [options]

mode step: before each training step, waits for a line on stdin (so the parent can
alternate it with or1's step) and after it prints {"seconds": ...} on stdout.
mode learn: trains until ``--budget`` seconds of training have passed (checked at step
ends, like or1's side), saves the model to ``--out`` and prints {"steps", "seconds"}.
Settings not given here are TRL's defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = "OR1BENCH "  # prefixes this worker's result lines (TRL prints its own logs too)
sys.path.insert(0, str(ROOT))  # or1's reward, from the source tree


def reward_fn(completions: list, ground_truth: list[str], **_: object) -> list[float]:
    from or1.rewards.math import math_reward

    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [math_reward(t, g) for t, g in zip(texts, ground_truth, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="jsonl of {prompt: messages, ground_truth}")
    ap.add_argument("--mode", choices=["step", "learn"], required=True)
    ap.add_argument("--prompts", type=int, default=32, help="prompts per step")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines()]
    dataset = Dataset.from_list(rows)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="or1-bench-trl-"),
        use_cpu=True,
        use_vllm=False,
        beta=0.0,
        learning_rate=args.lr,
        per_device_train_batch_size=args.prompts * args.group,
        gradient_accumulation_steps=1,
        num_generations=args.group,
        max_completion_length=args.max_tokens,
        temperature=1.0,
        top_p=1.0,
        max_steps=args.steps,
        seed=args.seed,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        bf16=False,
        dataloader_num_workers=0,
    )

    class Sync(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = 0.0
            self.start = 0.0
            self.steps = 0

        def on_train_begin(self, *a: object, **k: object) -> None:
            self.start = time.perf_counter()

        def on_step_begin(self, *a: object, **k: object) -> None:
            if args.mode == "step":
                sys.stdin.readline()
            self.t0 = time.perf_counter()

        def on_step_end(self, _args: object, _state: object, control: object, **k: object) -> None:
            self.steps += 1
            if args.mode == "step":
                print(TAG + json.dumps({"seconds": time.perf_counter() - self.t0}), flush=True)
            elif time.perf_counter() - self.start >= args.budget:
                control.should_training_stop = True  # type: ignore[attr-defined]

    sync = Sync()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward_fn],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[sync],
    )
    if args.mode == "step":
        print(TAG + json.dumps({"ready": True}), flush=True)
    trainer.train()
    if args.mode == "learn":
        seconds = time.perf_counter() - sync.start
        trainer.model.save_pretrained(args.out)
        tokenizer.save_pretrained(args.out)
        print(TAG + json.dumps({"steps": sync.steps, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
