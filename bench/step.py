"""One full RL step (rollout + reward + update): or1 vs TRL's GRPOTrainer.

    .venv/bin/python bench/step.py [--repeats 3]
    .venv/bin/python bench/step.py --threads 2 --processes 2   # the whole machine each

Equal settings on both sides: the tiny-arith warmed-up model, 32 training prompts x 8
samples, at most 64 new tokens (the preset's second stage), temperature 1.0, top-p 1.0,
the same Math-Verify reward, beta 0 (no reference model), one optimizer step (AdamW,
lr 5e-5) per step, CPU, fp32, the same torch threads. TRL 1.16 runs in its own venv
(bench/.venv-trl, created on first use by bench/_trl_env.py) with use_vllm=False,
use_cpu=True; its other settings are its defaults (its own batching of the
generation, its loss). or1 runs ``Trainer.train_step`` of the tiny-arith preset; with
``--processes N`` its rollouts are decoded by N single-thread processes
(``rollout.hf.processes``) while its update and TRL use ``--threads``.

The two alternate in one run: or1's step in this process, then TRL's in its worker
process (which waits on stdin between steps), ``--repeats`` times after one untimed
step each. Output: {"seconds_or1", "seconds_trl", "ratio" (TRL / or1), ...}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import _trl_env
from _trl_worker import TAG

from or1.trainer import Trainer

PROMPTS, GROUP, MAX_TOKENS, LR = 32, 8, 64, 5e-5


def write_problems(problems: list, path: Path) -> None:
    with open(path, "w") as fh:
        for p in problems:
            fh.write(json.dumps({"prompt": p.prompt, "ground_truth": p.ground_truth}) + "\n")


class TRLWorker:
    """The TRL side: one step per ``step()`` call, timed inside the worker."""

    def __init__(self, model_dir: str, data: Path, steps: int, threads: int) -> None:
        python = _trl_env.ensure()
        cmd = [
            str(python),
            str(Path(__file__).resolve().parent / "_trl_worker.py"),
            *("--model", model_dir, "--data", str(data), "--mode", "step"),
            *("--prompts", str(PROMPTS), "--group", str(GROUP)),
            *("--max-tokens", str(MAX_TOKENS), "--lr", str(LR), "--steps", str(steps)),
            *("--threads", str(threads)),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._read()  # {"ready": true}

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG) :])
        raise RuntimeError(f"TRL worker exited with {self.proc.wait()}")

    def step(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return float(self._read()["seconds"])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help=C.THREADS_HELP)
    ap.add_argument("--processes", type=int, default=1, help=C.PROCESSES_HELP)
    args = ap.parse_args()
    C.set_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="or1-bench-step-"))
    stage = f"{{steps: 100, max_response_length: {MAX_TOKENS}, batch_size: {PROMPTS}, "
    stage += f"mini_batch_size: {PROMPTS}, group_size: {GROUP}}}"
    cfg, loaded, train, _ = C.tiny_arith(
        [
            f"stages=[{stage}]",
            f"optim.lr={LR}",
            f"runs_dir={tmp}",
            "logging.tensorboard=false",
            f"train.threads={args.threads}",
            f"rollout.hf.processes={args.processes}",
        ]
    )
    trainer = Trainer(cfg, tmp / "or1", show_progress=False)
    write_problems(train, tmp / "train.jsonl")
    trl = TRLWorker(
        loaded.info["path"], tmp / "train.jsonl", steps=args.repeats + 1, threads=args.threads
    )
    times: dict[str, list[float]] = {"or1": [], "trl": []}
    parts: list[dict[str, float]] = []
    try:
        for r in range(args.repeats + 1):
            trainer.step += 1
            t0 = time.perf_counter()
            metrics = trainer.train_step(cfg.stages[0])
            or1_s = time.perf_counter() - t0
            trl_s = trl.step()
            C.log(f"  step {r} (0 = warm-up): or1 {or1_s:.2f} s, trl {trl_s:.2f} s")
            if r > 0:
                keys = ("rollout_seconds", "reward_seconds", "update_seconds")
                parts.append({k: round(float(metrics.get(k, 0.0)), 3) for k in keys})
                times["or1"].append(or1_s)
                times["trl"].append(trl_s)
    finally:
        trl.close()
        trainer.close()
    or1_t, trl_t = C.median(times["or1"]), C.median(times["trl"])
    C.emit(
        {
            "seconds_or1": round(or1_t, 3),
            "seconds_trl": round(trl_t, 3),
            "ratio": round(trl_t / or1_t, 2),
            "seconds_or1_all": [round(s, 3) for s in times["or1"]],
            "seconds_trl_all": [round(s, 3) for s in times["trl"]],
            "or1_parts": parts,
            "settings": {
                "prompts": PROMPTS,
                "group": GROUP,
                "max_tokens": MAX_TOKENS,
                "lr": LR,
                "threads": args.threads,
                "or1_processes": args.processes,
            },
            "trl": _trl_env.TRL_VERSION,
            "machine": C.machine(),
        }
    )


if __name__ == "__main__":
    main()
