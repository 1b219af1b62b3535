"""Rollout throughput: or1's HFRolloutEngine vs transformers' ``model.generate``.

    .venv/bin/python bench/rollout.py [--repeats 3] [--skip-25m] [--profile]
    .venv/bin/python bench/rollout.py --threads 2 --processes 2   # the whole machine each

Same model, same prompts (tiny-arith held-out problems), same sampling: temperature 1.0,
top-p 1.0, no top-k, group size 8, at most 256 new tokens, the same stop tokens. One
process, the two engines alternating, ``--repeats`` times; throughput is the median.

What is counted: *real* response tokens, i.e. each response up to and including its stop
token (or 256 if it never stops), for both engines. ``generate`` also decodes padding
for rows that already stopped while others go on; those tokens are not counted.

Models: the tiny-arith policy (warmed up, cached; 32 prompts x 8 = 256 rows, the
preset's rollout batch) and a randomly initialised ~25M-parameter Qwen2 with the same
tokenizer (8 prompts x 8 = 64 rows, so that the bench stays under 10 minutes; its
responses are random tokens that stop by chance, about half of them before 256).

Threads: by default both engines run in this process with ``--threads`` (1) torch
threads. With ``--processes N`` or1 decodes in N single-thread worker processes that
share the model (``rollout.hf.processes``); give HF the same cores with ``--threads N``.

Output: one JSON line, {"tokens_per_s_or1", "tokens_per_s_hf", "ratio"} for the
tiny-arith model, plus the same per model under "models", and the machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.process_rollout import ProcessRolloutEngine
from or1.engine.rollout import SamplingParams

GROUP, MAX_NEW, TEMPERATURE = 8, 256, 1.0


def real_tokens(new: torch.Tensor, stop_ids: list[int]) -> int:
    """Tokens of each row [N, T] up to and including its first stop token."""
    is_stop = torch.isin(new, torch.tensor(stop_ids))
    any_stop = is_stop.any(-1)
    first = is_stop.float().argmax(-1) + 1
    return int(torch.where(any_stop, first, torch.full_like(first, new.shape[1])).sum())


def hf_generate(model: Any, prompts: list[list[int]], *, pad_id: int, stop_ids: list[int]) -> int:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            temperature=TEMPERATURE,
            top_p=1.0,
            top_k=0,
            num_return_sequences=GROUP,
            max_new_tokens=MAX_NEW,
            eos_token_id=stop_ids,
            pad_token_id=pad_id,
        )
    return real_tokens(out[:, width:], stop_ids)


def or1_generate(engine: HFRolloutEngine | ProcessRolloutEngine, prompts: list[list[int]]) -> int:
    params = SamplingParams(n=GROUP, temperature=TEMPERATURE, top_p=1.0, max_tokens=MAX_NEW)
    return engine.generate(prompts, params).num_tokens


def compare(
    name: str, model: Any, tok: Any, prompts: list[list[int]], repeats: int, processes: int
) -> dict:
    stop_ids = C.stops(tok, model)
    rows = len(prompts) * GROUP
    engine: HFRolloutEngine | ProcessRolloutEngine
    if processes > 1:
        engine = ProcessRolloutEngine(
            model,
            processes=processes,
            pad_id=tok.pad_token_id,
            stop_ids=stop_ids,
            max_batch_sequences=rows,
        )
    else:
        engine = HFRolloutEngine(
            model, pad_id=tok.pad_token_id, stop_ids=stop_ids, max_batch_sequences=rows
        )
    C.log(f"{name}: {C.params_of(model) / 1e6:.2f}M params, {len(prompts)} prompts x {GROUP}")
    # Warm both paths (allocator, kernels) on a small call, untimed.
    hf_generate(model, prompts[:1], pad_id=tok.pad_token_id, stop_ids=stop_ids)
    or1_generate(engine, prompts[:1])
    torch.manual_seed(0)
    runs = C.alternate(
        {
            "or1": lambda: or1_generate(engine, prompts),
            "hf": lambda: hf_generate(model, prompts, pad_id=tok.pad_token_id, stop_ids=stop_ids),
        },
        repeats,
    )
    if isinstance(engine, ProcessRolloutEngine):
        engine.close()
    tps = {k: C.median([tokens / s for s, tokens in v]) for k, v in runs.items()}
    return {
        "params": C.params_of(model),
        "rows": len(prompts) * GROUP,
        "tokens_per_s_or1": round(tps["or1"], 1),
        "tokens_per_s_hf": round(tps["hf"], 1),
        "ratio": round(tps["or1"] / tps["hf"], 2),
        "tokens_or1": [t for _, t in runs["or1"]],
        "tokens_hf": [t for _, t in runs["hf"]],
        "seconds_or1": [round(s, 2) for s, _ in runs["or1"]],
        "seconds_hf": [round(s, 2) for s, _ in runs["hf"]],
    }


def profile(model: Any, tok: Any, prompts: list[list[int]]) -> None:
    """torch profiler of one or1 generate call: top ops by self CPU time, to stderr."""
    engine = HFRolloutEngine(model, pad_id=tok.pad_token_id, stop_ids=C.stops(tok, model))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        or1_generate(engine, prompts)
    C.log(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=32, help="tiny-arith prompts (x8 rows)")
    ap.add_argument("--prompts-25m", type=int, default=8)
    ap.add_argument("--skip-25m", action="store_true")
    ap.add_argument("--profile", action="store_true", help="print a torch profile to stderr")
    ap.add_argument("--threads", type=int, default=1, help=C.THREADS_HELP)
    ap.add_argument("--processes", type=int, default=1, help=C.PROCESSES_HELP)
    args = ap.parse_args()
    C.set_threads(args.threads)
    _, loaded, _, test = C.tiny_arith()
    tok, model = loaded.tokenizer, loaded.model.eval()
    prompts = C.prompts_of(tok, test)
    if args.profile:
        profile(model, tok, prompts[: args.prompts])
    tiny = compare("tiny-arith", model, tok, prompts[: args.prompts], args.repeats, args.processes)
    models = {"tiny-arith": tiny}
    if not args.skip_25m:
        big = C.model_25m(tok)
        models["25m"] = compare(
            "25m", big, tok, prompts[: args.prompts_25m], args.repeats, args.processes
        )
    head = models["tiny-arith"]
    C.emit(
        {
            "tokens_per_s_or1": head["tokens_per_s_or1"],
            "tokens_per_s_hf": head["tokens_per_s_hf"],
            "ratio": head["ratio"],
            "counted": "real tokens (through the stop token), both engines",
            "settings": {
                "group": GROUP,
                "max_new_tokens": MAX_NEW,
                "temperature": TEMPERATURE,
                "threads": args.threads,
                "or1_processes": args.processes,
            },
            "models": models,
            "machine": C.machine(),
        }
    )


if __name__ == "__main__":
    main()
