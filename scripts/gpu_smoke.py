"""A GPU smoke check of or1, ready to run on a CUDA machine with no internet (< 5 min).

    pip install 'or1[ray,vllm]'            # vLLM optional: without it the hf engine runs
    python scripts/gpu_smoke.py            # one GPU; prints one JSON line last
    python scripts/gpu_smoke.py --device cpu --tiny   # the same code path on a CPU (tests)

What it runs, downloading nothing: a random-init Qwen2 of 102M parameters with Qwen's
vocabulary size (151,936 rows of embeddings and LM head; hidden 512, 8 layers, 8 heads of
64, 2 KV heads) and the tokenizer or1 builds for its tiny-arith task, saved to a model
directory; then ``steps`` MAGIC steps of the tiny-arith task through ``Trainer`` with
the FSDP policy on Ray (``distributed.backend=ray``, one rank) and the vLLM engine when it
imports (``--engine hf`` otherwise), one checkpoint per step; then the run is resumed from
its next-to-last checkpoint in a copy of the run directory and its last step run again.

A random model solves nothing, so every group would be rejected (RECIPE step 3) and no
update would happen: the smoke keeps uniform groups and adds a fixed entropy bonus, so
each step updates every parameter. The JSON line holds:

- ``tokens_per_second``: the median over steps of the trainer's tokens/s (prompt +
  response tokens sampled and trained on, per second of step);
- ``peak_gpu_memory_gib``: the largest device-wide memory in use (total - free, every
  process: policy, vLLM, controller), sampled every 0.1 s; null on a CPU;
- ``rollout_logp_diff``: the largest per-step mean |rollout log-prob - trainer log-prob|;
- ``params_changed``: the fraction of parameter elements that differ between the start
  weights and the last checkpoint;
- ``checkpoint_resume_ok``: the resumed run reached the last step and its log-prob gap
  there is that of the uninterrupted run (``resume_metric_gap``: the largest difference
  of any logged metric at that step; exact on a CPU, GPU kernels need not be).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QWEN_VOCAB = 151_936
FULL = {"hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8}
FULL |= {"num_key_value_heads": 2, "intermediate_size": 1536}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
TINY |= {"num_key_value_heads": 2, "intermediate_size": 128}
# (prompts, samples per prompt, response tokens) per step.
FULL_BATCH, TINY_BATCH = (16, 8, 256), (2, 2, 8)
TIMING = ("seconds", "tokens_per_second", "wall")


def build_model_dir(root: Path, *, tiny: bool) -> Path:
    """A random-init Qwen2 (Qwen's vocabulary unless tiny) and or1's tiny-arith tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from or1.build.models import build_tiny_tokenizer
    from or1.config import ArithConfig
    from or1.data.tasks import arith

    corpus = arith.tokenizer_corpus(ArithConfig())
    tokenizer = build_tiny_tokenizer(corpus, extra_tokens=(arith.THINK_OPEN, arith.THINK_CLOSE))
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer) if tiny else QWEN_VOCAB,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **(TINY if tiny else FULL),
    )
    path = root / "model"
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def smoke_overrides(model: Path, runs: Path, args: argparse.Namespace) -> list[str]:
    prompts, group, tokens = TINY_BATCH if args.tiny else FULL_BATCH
    stage = f"{{steps: {args.steps}, max_response_length: {tokens}, batch_size: {prompts}, "
    stage += f"mini_batch_size: {prompts}, group_size: {group}}}"
    return [
        f"model.path={model}",
        f"model.device={args.device}",
        f"runs_dir={runs}",
        f"rollout.engine={args.engine}",
        "rollout.vllm.gpu_memory_utilization=0.3",  # colocated with the policy rank
        "distributed.backend=ray",
        "distributed.workers=1",
        f"stages=[{stage}]",
        "algo.reject_uniform_groups=false",  # a random model solves nothing: keep groups
        "algo.entropy.mode=fixed",  # ... and update through the entropy bonus
        "algo.entropy.coef=0.01",
        "optim.lr=1.0e-5",
        # 8 rows x 256 tokens x 151,936 logits x (2 + 12) bytes: 4.4 GiB for the LM head
        "train.micro_batch_size=8",
        "train.checkpoint_every=1",
        "train.save_samples=0",
        "eval.before=false",
        "eval.after=false",
        "logging.progress=false",
        "logging.tensorboard=false",
    ]


class PeakMemory:
    """The largest device-wide memory in use on CUDA device 0, sampled in a thread."""

    def __init__(self, enabled: bool, interval: float = 0.1) -> None:
        self.enabled, self.interval, self.peak = enabled, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import torch

        while not self._stop.is_set():
            free, total = torch.cuda.mem_get_info(0)
            self.peak = max(self.peak, total - free)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()

    @property
    def gib(self) -> float | None:
        return round(self.peak / 2**30, 2) if self.enabled else None


def train(cfg: Any, run_dir: Path, resume: Path | None = None) -> list[dict]:
    """One run in a Ray instance of its own: Trainer.close stops the engine, but the Ray
    actors and placement group live on until ray.shutdown (a second Trainer in the same
    Ray could not place its workers)."""
    import ray

    from or1.tracking import read_jsonl
    from or1.trainer import Trainer

    start_ray()
    try:
        with Trainer(cfg, run_dir, show_progress=False) as trainer:
            trainer.run(resume=resume)
    finally:
        ray.shutdown()
    return read_jsonl(run_dir / "metrics.jsonl")


def changed_fraction(start: Path, end: Path) -> float:
    """Fraction of parameter elements that differ between two model directories."""
    from safetensors.torch import load_file

    a, b = load_file(start / "model.safetensors"), load_file(end / "model.safetensors")
    moved = sum(int((a[k].float() != b[k].float()).sum()) for k in a)
    return moved / sum(t.numel() for t in a.values())


def metric_gap(a: dict, b: dict) -> float:
    """Largest |a - b| over the numeric, non-timing metrics of one step of two runs."""
    keys = [k for k, v in a.items() if isinstance(v, int | float) and k in b]
    return max(abs(float(a[k]) - float(b[k])) for k in keys if not any(t in k for t in TIMING))


def smoke(args: argparse.Namespace, root: Path) -> dict:
    """Run, resume, measure (module docstring); the JSON fields."""
    from or1.checkpoint import find_checkpoint
    from or1.config import load_config

    started = time.perf_counter()
    model = build_model_dir(root, tiny=args.tiny)
    cfg = load_config("tiny-arith", smoke_overrides(model, root / "runs", args))
    run_dir = root / "runs" / "smoke"
    with PeakMemory(args.device == "cuda") as memory:
        rows = train(cfg, run_dir)
        copy = root / "runs" / "resumed"
        shutil.copytree(run_dir, copy, symlinks=True)  # ckpt/latest is a link
        resumed = train(cfg, copy, resume=copy / "ckpt" / f"step_{args.steps - 1}")
    last, again = rows[-1], resumed[-1]
    ok = again["step"] == args.steps and again["rollout_logp_diff"] <= 2 * max(
        r["rollout_logp_diff"] for r in rows
    ) + (1e-6 if args.device == "cpu" else 1e-3)
    return {
        "device": args.device,
        "engine": args.engine,
        "params": _param_count(model),
        "steps": len(rows),
        "tokens_per_second": round(statistics.median(r["tokens_per_second"] for r in rows), 1),
        "peak_gpu_memory_gib": memory.gib,
        "rollout_logp_diff": max(r["rollout_logp_diff"] for r in rows),
        "params_changed": round(changed_fraction(model, find_checkpoint(run_dir) / "model"), 4),
        "checkpoint_resume_ok": bool(ok),
        "resume_metric_gap": metric_gap(last, again),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _param_count(model: Path) -> int:
    from safetensors.torch import load_file

    return sum(t.numel() for t in load_file(model / "model.safetensors").values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="or1 GPU smoke check (one JSON line)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a tiny model (CPU tests)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--engine", choices=["auto", "vllm", "hf"], default="auto")
    parser.add_argument("--out", type=Path, help="work directory (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.engine == "auto":
        args.engine = "vllm" if find_spec("vllm") is not None else "hf"
    if args.steps < 2:
        parser.error("--steps must be at least 2 (a checkpoint to resume from)")
    return args


def start_ray() -> None:
    """A Ray instance of this smoke's own (not a cluster already running here, whose
    CPUs may be taken); the trainer then uses it."""
    import logging

    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no ~/.ray/auth_token for a smoke
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="or1-gpu-smoke-"))
    root.mkdir(parents=True, exist_ok=True)
    return smoke(args, root)


if __name__ == "__main__":  # vLLM and Ray spawn processes: the guard is required
    print(json.dumps(main()))
