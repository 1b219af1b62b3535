"""Peak memory of one policy update and one log-prob pass, by response length, at
Qwen's vocabulary (151,936): or1 (chunked LM head), or1 with chunking off, and TRL
1.16's own per-token log-prob / entropy computation on the same model and sequence.

    .venv/bin/python bench/memory.py                 # T = 1K, 2K, 4K, 8K (~5 min)
    .venv/bin/python bench/memory.py --tokens 1024   # one length

Each measurement runs in a fresh process (one torch thread): the model (a random Qwen2,
hidden 64, 2 layers, untied head like R1-Distill-7B's), one sequence of a 64-token
prompt and T response tokens with a nonzero advantage, then the peak resident memory is
reset (``/proc/self/clear_refs``) and one update (forward + backward + AdamW step, with
the entropy bonus on) or one log-prob pass runs. Reported: the peak above the resident
memory before it (MB), per response token, and the marginal MB per token between the
shortest and the longest T (what a longer response costs; the fixed part, e.g. the
AdamW state or one chunk of logits, cancels). The TRL side runs in bench/.venv-trl and
does what its GRPOTrainer does: ``add_fused_lm_head(model, outputs=("log_probs",
"entropy"))`` (TRL's own tiled LM head, 4096 tokens x 32768 vocabulary entries per tile)
and ``model(..., labels=..., fused_lm_head=True)``; loss = -mean(A * logp) (TRL's GRPO
loss has no entropy bonus; or1's update here has one, coefficient 0.005).

Prints progress on stderr and one JSON object as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VOCAB, HIDDEN, LAYERS, PROMPT = 151_936, 64, 2, 64
IMPLS = ("or1", "or1-unchunked", "trl")


def _resident_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _model() -> Any:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=4 * HIDDEN,
        max_position_embeddings=16_384,
        tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(config)


def _or1_step(tokens: int, mode: str, chunk: int | None) -> Any:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from or1.config import AlgoConfig, OptimConfig
    from or1.engine.policy import LocalPolicy
    from or1.objective import magic_loss
    from or1.types import RolloutBatch

    policy = LocalPolicy(
        _model(), OptimConfig(lr=1e-6), micro_batch_size=1, logits_chunk_tokens=chunk
    )
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (1, PROMPT + tokens), generator=gen)
    batch = RolloutBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        response_mask=torch.ones((1, tokens)),
        prompt_length=PROMPT,
        rewards=torch.ones(1),
        advantages=torch.ones(1),
        group_ids=torch.zeros(1, dtype=torch.long),
        truncated=torch.zeros(1, dtype=torch.bool),
        rollout_logp=torch.zeros((1, tokens)),
    )
    loss_fn = magic_loss(AlgoConfig(), entropy_coef=0.005)
    if mode == "update":
        return lambda: policy.update(batch, loss_fn, mini_batches=[torch.arange(1)])
    return lambda: policy.logprobs(batch)


def _trl_step(tokens: int, mode: str) -> Any:
    import torch
    from trl.trainer.utils import add_fused_lm_head

    model = _model()
    # What GRPOTrainer 1.16 does to its model: a fused (tiled) LM head that returns
    # per-token log-probs and entropies instead of logits.
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (1, PROMPT + tokens), generator=gen)
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :-tokens] = -100  # only the completion is scored, as in its trainer

    def scores() -> tuple[Any, Any]:
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        return out.log_probs[:, -tokens:], out.entropy[:, -tokens:]

    def update() -> None:
        model.train()
        logps, _ = scores()
        loss = -(logps * 1.0).mean()  # GRPO's loss has no entropy bonus
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def logprobs() -> None:
        with torch.no_grad():
            scores()

    return update if mode == "update" else logprobs


def worker(impl: str, tokens: int, mode: str) -> dict[str, float]:
    """One measurement in this process: the peak above the resident memory before it."""
    import torch

    torch.set_num_threads(1)
    if impl == "trl":
        step = _trl_step(tokens, mode)
    else:
        step = _or1_step(tokens, mode, None if impl == "or1-unchunked" else 512)
    base = _resident_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    peak = _resident_mb("VmHWM")
    return {"base_mb": base, "peak_mb": peak, "delta_mb": peak - base, "seconds": seconds}


def measure(impl: str, tokens: int, mode: str) -> dict[str, float]:
    here = Path(__file__).resolve()
    python = sys.executable
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if impl == "trl":
        sys.path.insert(0, str(here.parent))
        from _trl_env import ensure

        python = str(ensure())
    else:
        env["PYTHONPATH"] = str(here.parent.parent)
    args = [python, str(here), "--worker", impl, "--tokens", str(tokens), "--mode", mode]
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{impl} T={tokens} {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--repeats", type=int, default=1, help="timing repeats (min is kept)")
    parser.add_argument(
        "--unchunked-max",
        type=int,
        default=4096,
        help="longest T for or1-unchunked (2.9 MB/token: 8K needs ~24 GB, more than this machine)",
    )
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("update", "logprobs"), default="update")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.tokens[0], args.mode)))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import emit, log, machine

    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for mode in ("update", "logprobs"):
        for tokens in args.tokens:
            for impl in args.impls:
                if impl == "or1-unchunked" and tokens > args.unchunked_max:
                    continue
                runs = [measure(impl, tokens, mode) for _ in range(args.repeats)]
                best = min(runs, key=lambda r: r["seconds"])
                best["mb_per_token"] = best["delta_mb"] / tokens
                rows.setdefault(mode, {}).setdefault(impl, {})[str(tokens)] = best
                log(
                    f"{mode:8s} T={tokens:5d} {impl:14s} +{best['delta_mb']:8.1f} MB "
                    f"({best['mb_per_token']:.3f} MB/token) {best['seconds']:.2f} s"
                )
    lo = str(min(args.tokens))
    summary: dict[str, Any] = {}
    for mode, impls in rows.items():
        for impl, by_t in impls.items():
            hi = max(by_t, key=int)
            if lo != hi:
                slope = (by_t[hi]["delta_mb"] - by_t[lo]["delta_mb"]) / (int(hi) - int(lo))
                summary[f"{mode}/{impl}/marginal_mb_per_token_{lo}_to_{hi}"] = round(slope, 4)
            summary[f"{mode}/{impl}/mb_per_token_at_{hi}"] = round(by_t[hi]["mb_per_token"], 4)
    if "or1" in rows["update"] and "or1-unchunked" in rows["update"]:
        t = rows["update"]["or1"][lo]["seconds"] / rows["update"]["or1-unchunked"][lo]["seconds"]
        summary[f"update/or1_over_unchunked_seconds_at_{lo}"] = round(t, 3)
    emit({"bench": "memory", "vocab": VOCAB, "summary": summary, "rows": rows, **machine()})


if __name__ == "__main__":
    main()
