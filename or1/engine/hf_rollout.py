"""Rollouts with a transformers model and a hand-written decode loop (CPU or GPU).

Why not ``model.generate``: for RL we sample G responses per prompt, and generate pads
and decodes every row until the longest is done. This loop prefills each distinct
prompt once and copies its KV cache to the G rows of its group, drops finished rows
from the batch (and the cache) as soon as they stop, and returns per-token sampling
log-probabilities, which the trainer needs anyway.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel

from or1.engine.rollout import Rollouts, SamplingParams


def sample_tokens(
    logits: torch.Tensor, *, temperature: float, top_p: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row.

    Args:
        logits: [N, V] next-token logits.
    Returns:
        tokens [N] and their log-probabilities [N] under the temperature-scaled
        distribution (before top-p truncation, as the trainer scores them).
    """
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    tokens = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1)
    tokens = tokens.to(logits.device)
    return tokens, logprobs.gather(-1, tokens[:, None]).squeeze(-1)


class HFRolloutEngine:
    """A `RolloutEngine` over an in-process transformers causal LM.

    Args:
        model: the policy model; the local trainer shares the object, so weights are
            always current and ``load_weights`` is only needed for a separate copy.
        pad_id: padding token id.
        stop_ids: token ids that end a response.
        max_batch_sequences: sequences decoded together (memory/speed trade-off).
        seed: seeds the sampling generator (its state is checkpointed).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        pad_id: int,
        stop_ids: list[int],
        max_batch_sequences: int = 256,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.pad_id = pad_id
        self.stop_ids = torch.tensor(stop_ids, dtype=torch.long)
        self.max_batch_sequences = max_batch_sequences
        self.generator = torch.Generator().manual_seed(seed)
        # transformers renamed `past_key_values` to `cache` in 5.2x; accept both.
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        progress: Callable[[int], None] | None = None,
    ) -> Rollouts:
        per_chunk = max(1, self.max_batch_sequences // params.n)
        out = Rollouts([], [], [], [], [])
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(prompts), per_chunk):
                chunk = prompts[start : start + per_chunk]
                responses, logprobs, truncated = self._generate_chunk(chunk, params)
                for row, (resp, lps, trunc) in enumerate(
                    zip(responses, logprobs, truncated, strict=True)
                ):
                    out.prompt_ids.append(chunk[row // params.n])
                    out.response_ids.append(resp)
                    out.logprobs.append(lps)
                    out.truncated.append(trunc)
                    out.group_ids.append(start + row // params.n)
                if progress is not None:
                    progress(len(chunk))
        finally:
            self.model.train(was_training)
        return out

    @torch.no_grad()
    def _generate_chunk(
        self, prompts: list[list[int]], params: SamplingParams
    ) -> tuple[list[list[int]], list[list[float]], list[bool]]:
        device, n = self.device, params.n
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            **{self._cache_kw: cache},
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        # One prefill per distinct prompt; its group shares the cached prefix.
        cache.batch_repeat_interleave(n)
        logits = logits.repeat_interleave(n, dim=0)
        mask = mask.repeat_interleave(n, dim=0)
        next_pos = positions[:, -1:].repeat_interleave(n, dim=0) + 1
        rows = len(prompts) * n
        responses: list[list[int]] = [[] for _ in range(rows)]
        logprobs: list[list[float]] = [[] for _ in range(rows)]
        truncated = [False] * rows
        alive = torch.arange(rows)
        stop_ids = self.stop_ids.to(device)
        for t in range(params.max_tokens):
            tokens, lps = sample_tokens(
                logits, temperature=params.temperature, top_p=params.top_p, generator=self.generator
            )
            for row, tok, lp in zip(alive.tolist(), tokens.tolist(), lps.tolist(), strict=True):
                responses[row].append(tok)
                logprobs[row].append(lp)
            done = torch.isin(tokens, stop_ids)
            if t == params.max_tokens - 1:
                for row in alive[~done.cpu()].tolist():
                    truncated[row] = True
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(-1)
                if keep.numel() == 0:
                    break
                cache.batch_select_indices(keep)
                alive, tokens = alive[keep.cpu()], tokens[keep]
                mask, next_pos = mask[keep], next_pos[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            logits = self.model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=next_pos,
                **{self._cache_kw: cache},
                use_cache=True,
            ).logits[:, -1]
            next_pos = next_pos + 1
        return responses, logprobs, truncated

    def load_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state_dict, strict=True)

    def rng_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_rng_state(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
