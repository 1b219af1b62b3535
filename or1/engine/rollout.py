"""The rollout seam: what every generation engine (HF, vLLM, Ray-backed) implements.

Letters used in shapes across or1: B prompts in a batch, G responses per prompt (group
size), N = B*G sequences, P prompt tokens, T response tokens, V vocabulary size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

# The ChatML end-of-turn token (Qwen, the tiny models): a response stops there.
IM_END = "<|im_end|>"


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: ``n`` responses per prompt, up to ``max_tokens`` each."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256


@dataclass
class Rollouts:
    """N = len(prompts) * n sampled responses, grouped: row i belongs to prompt i // n.

    Attributes:
        prompt_ids: per row, the prompt token ids (shared within a group).
        response_ids: per row, the sampled token ids, including the stop token if any.
        logprobs: per row, the sampling log-probability of each response token (at the
            sampling temperature, before top-p), aligned with ``response_ids``.
        truncated: per row, True when the response hit ``max_tokens`` without stopping.
        group_ids: per row, the index of its prompt in the request.
    """

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    logprobs: list[list[float]]
    truncated: list[bool]
    group_ids: list[int]
    stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.response_ids)

    @property
    def num_tokens(self) -> int:
        return sum(len(r) for r in self.response_ids)


class RolloutEngine(Protocol):
    """Generates grouped responses; receives new weights after each policy update.

    Everything the trainer, the evaluator and the offline filter call is here: a new
    engine implements these and registers itself (``or1.engine.factory``).
    """

    def generate(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        progress: Callable[[int], None] | None = None,
    ) -> Rollouts:
        """``params.n`` responses per prompt; ``progress(k)`` after k more prompts are done."""
        ...

    def load_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None: ...

    def release_memory(self) -> None:
        """Free the device memory held between rollouts, before a policy update (vLLM's
        sleep mode); the next ``load_weights`` or ``generate`` takes it back. A no-op
        for engines that hold none of their own."""
        ...

    def rng_state(self) -> dict[str, Any]:
        """The sampling RNG state (checkpointed: a resumed run samples the same)."""
        ...

    def set_rng_state(self, state: Mapping[str, Any]) -> None: ...

    def close(self) -> None:
        """Release worker processes or devices (idempotent)."""
        ...


def split_prompts(n_prompts: int, workers: int) -> list[tuple[int, int]]:
    """[start, end) prompt ranges: contiguous, sizes differing by at most 1, none empty."""
    bounds = torch.arange(n_prompts).tensor_split(min(workers, max(n_prompts, 1)))
    return [(int(b[0]), int(b[-1]) + 1) for b in bounds if len(b)]


def merge_rollouts(parts: list[Rollouts], starts: list[int]) -> Rollouts:
    """Concatenate workers' rollouts; group ids are shifted back to request prompt indices."""
    out = Rollouts([], [], [], [], [])
    for part, start in zip(parts, starts, strict=True):
        out.prompt_ids.extend(part.prompt_ids)
        out.response_ids.extend(part.response_ids)
        out.logprobs.extend(part.logprobs)
        out.truncated.extend(part.truncated)
        out.group_ids.extend(g + start for g in part.group_ids)
        for key, value in part.stats.items():
            # seconds and counts add up poorly across parallel workers: keep the slowest
            out.stats[key] = max(out.stats.get(key, value), value)
    return out


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> list[int]:
    """Token ids that end a response: the tokenizer's eos and the model's eos id(s)."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(model.generation_config, "eos_token_id", None) or model.config.eos_token_id
    ids.update(eos if isinstance(eos, list) else [eos])
    if IM_END in tokenizer.get_vocab():
        ids.add(tokenizer.convert_tokens_to_ids(IM_END))
    return sorted(i for i in ids if i is not None)
