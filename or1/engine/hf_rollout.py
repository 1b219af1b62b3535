"""Rollouts with a transformers model and a hand-written decode loop (CPU or GPU).

Why not ``model.generate``: for RL we sample G responses per prompt, and generate pads
and decodes every row until the longest is done. This loop

- prefills each distinct prompt once and copies its KV cache to the G rows of its group;
- keeps K/V in a preallocated cache written in place (``SlotKVCache``), not grown by
  ``torch.cat`` each step (that copy was over half of a small model's decode time);
- drops finished rows from the batch and the cache as soon as they stop, by
  swap-removal (only the moved rows are copied);
- builds the attention mask once per call and hands the model views of it, instead of
  the model rebuilding a 4-D mask from a 2-D one every step (and none at all when no
  prompt of the chunk is padded, for models that accept that);
- samples by inverse CDF (one uniform per row: ``torch.multinomial`` on CPU cost more
  than the tiny model's forward) and keeps tokens and log-probs in tensors, with one
  host read per step (did any row stop?);
- returns per-token sampling log-probabilities, which the trainer needs anyway.

Before each chunk's cache is allocated its size (rows x length x layers x 2 x kv_heads x
head_dim x bytes) is checked against the device's free memory: a configuration that
cannot fit is a ConfigError naming the settings to lower (``kv_cache.check_kv_cache_fits``).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from transformers import PreTrainedModel

from or1.engine.kv_cache import SlotKVCache, check_kv_cache_fits, free_memory_bytes, kv_cache_bytes
from or1.engine.rollout import Rollouts, SamplingParams

# Architectures whose decoder takes a ready 4-D bool mask as is (transformers 5's
# ``create_causal_mask`` returns a 4-D mask unchanged). Others get the 2-D padding mask
# and build their own 4-D mask at every step.
PREBUILT_MASK_MODELS = frozenset({"qwen2", "qwen3", "llama", "mistral"})
# Of those, the ones whose decoder also takes {"full_attention": mask} as is: when no
# prompt of a chunk is padded, the mask can then be None (plain causal / full SDPA).
MASK_MAPPING_MODELS = frozenset({"qwen2", "qwen3"})


def sample_tokens(
    logits: torch.Tensor, *, temperature: float, top_p: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row.

    Inverse-CDF sampling: one uniform draw per row, located in the row's cumulative
    distribution (exact up to float rounding of the cumsum, like ``torch.multinomial``).

    Args:
        logits: [N, V] next-token logits.
    Returns:
        tokens [N] and their log-probabilities [N] under the temperature-scaled
        distribution (before top-p truncation, as the trainer scores them).
    """
    scaled = logits.float()
    if temperature != 1.0:
        scaled = scaled / temperature
    logprobs = torch.log_softmax(scaled, dim=-1)
    probs = logprobs.exp()
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p
        probs = probs.scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
    cdf = probs.cumsum(-1)
    u = torch.rand((cdf.shape[0], 1), generator=generator, dtype=cdf.dtype)
    u = u.to(cdf.device) * cdf[:, -1:]
    tokens = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1)
    return tokens.squeeze(-1), logprobs.gather(-1, tokens).squeeze(-1)


class HFRolloutEngine:
    """A `RolloutEngine` over an in-process transformers causal LM.

    Args:
        model: the policy model; the local trainer shares the object, so weights are
            always current and ``load_weights`` is only needed for a separate copy.
        pad_id: padding token id.
        stop_ids: token ids that end a response.
        max_batch_sequences: sequences decoded together (memory/speed trade-off).
        seed: seeds the sampling generator (its state is checkpointed).
        free_memory: probe of a device's free bytes, for the KV cache check (tests fake it).
        compute_dtype: decode under autocast in this dtype when the parameters are in
            another (fp32 masters, bf16 compute); None: the parameters' dtype.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        pad_id: int,
        stop_ids: list[int],
        max_batch_sequences: int = 256,
        seed: int = 0,
        free_memory: Callable[[torch.device], int] = free_memory_bytes,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        self.model = model
        self.free_memory = free_memory
        self.compute_dtype = compute_dtype
        self.pad_id = pad_id
        self.stop_ids = torch.tensor(stop_ids, dtype=torch.long)
        self.max_batch_sequences = max_batch_sequences
        self.generator = torch.Generator().manual_seed(seed)
        # transformers renamed `past_key_values` to `cache` in 5.2x; accept both.
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        layer_types = set(getattr(model.config, "layer_types", None) or ["full_attention"])
        model_type = getattr(model.config, "model_type", None)
        full_attention = layer_types == {"full_attention"}
        self._prebuilt_mask = full_attention and model_type in PREBUILT_MASK_MODELS
        self._mask_mapping = full_attention and model_type in MASK_MAPPING_MODELS

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

    def _forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        cache: SlotKVCache,
        *,
        padded: bool = True,
    ) -> torch.Tensor:
        """Logits [n, V] of the last position. ``mask``: [n, 1, q, L] bool, True = attend.

        ``padded`` False: no key is padding, so the mask is only causal (SDPA needs none).
        """
        attention_mask: Any
        if self._mask_mapping and not padded:
            attention_mask = {"full_attention": None}
        elif self._prebuilt_mask:
            attention_mask = mask
        else:  # the 2-D key-padding mask: the last query row of the 4-D one
            attention_mask = mask[:, 0, -1].long()
        out = self.model(
            input_ids=ids,
            attention_mask=attention_mask,
            position_ids=positions,
            **{self._cache_kw: cache},
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1].float()

    def _prefill(
        self, prompts: list[list[int]], n: int, max_tokens: int
    ) -> tuple[SlotKVCache, torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        """One forward over the distinct (left-padded) prompts, then a copy to the n rows
        of each group.

        Returns the cache, logits [N, V], next positions [N], the key mask
        [N, P + max_tokens] (True on real prompt tokens and on every response slot) and
        whether any prompt is padded.
        """
        device = self.device
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        valid = torch.zeros((len(prompts), width), dtype=torch.bool)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            valid[i, width - len(p) :] = True
        ids, valid = ids.to(device), valid.to(device)
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
        # Causal and key padding; a pad query sees itself, so no softmax row is empty.
        causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
        mask = (causal & valid[:, None, :]) | torch.eye(width, dtype=torch.bool, device=device)
        self.check_cache(rows=len(prompts) * n, length=width + max_tokens)
        cache = SlotKVCache(
            num_layers=self.model.config.num_hidden_layers,
            max_rows=len(prompts) * n,
            max_length=width + max_tokens,
        )
        padded = not bool(valid.all())
        logits = self._forward(ids, positions, mask[:, None], cache, padded=padded)
        cache.batch_repeat_interleave(n)
        keys = torch.ones((len(prompts) * n, width + max_tokens), dtype=torch.bool, device=device)
        keys[:, :width] = valid.repeat_interleave(n, dim=0)
        next_pos = positions[:, -1].repeat_interleave(n) + 1
        return cache, logits.repeat_interleave(n, dim=0), next_pos, keys, padded

    def check_cache(self, *, rows: int, length: int) -> None:
        """Refuse a KV cache of ``rows`` x ``length`` tokens that the device cannot hold."""
        device = self.device
        dtype = next(self.model.parameters()).dtype
        if torch.is_autocast_enabled(device.type):  # K/V come out in the autocast dtype
            dtype = torch.get_autocast_dtype(device.type)
        needed = kv_cache_bytes(self.model.config, rows=rows, length=length, dtype=dtype)
        what = f"{rows} rows x {length} tokens ({str(dtype).removeprefix('torch.')})"
        check_kv_cache_fits(needed, device, what=what, free_memory=self.free_memory)

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.compute_dtype
        if dtype is None or dtype == next(self.model.parameters()).dtype:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    @torch.no_grad()
    def _generate_chunk(
        self, prompts: list[list[int]], params: SamplingParams
    ) -> tuple[list[list[int]], list[list[float]], list[bool]]:
        with self._autocast():
            return self._decode_chunk(prompts, params)

    def _decode_chunk(
        self, prompts: list[list[int]], params: SamplingParams
    ) -> tuple[list[list[int]], list[list[float]], list[bool]]:
        steps = params.max_tokens
        cache, logits, next_pos, keys, padded = self._prefill(prompts, params.n, steps)
        width = keys.shape[1] - steps
        rows = logits.shape[0]
        tokens_out = torch.full((rows, steps), self.pad_id, dtype=torch.long)
        logp_out = torch.zeros((rows, steps))
        lengths = torch.full((rows,), steps, dtype=torch.long)
        truncated = torch.zeros(rows, dtype=torch.bool)
        alive = torch.arange(rows)  # alive[i]: the output row of batch row i
        stop_ids = self.stop_ids.to(logits.device)
        for t in range(steps):
            tokens, lps = sample_tokens(
                logits, temperature=params.temperature, top_p=params.top_p, generator=self.generator
            )
            tokens_out[alive, t], logp_out[alive, t] = tokens.cpu(), lps.float().cpu()
            done = torch.isin(tokens, stop_ids).cpu()  # the one host read per step
            if t == steps - 1:
                truncated[alive[~done]] = True
                break
            if bool(done.any()):
                lengths[alive[done]] = t + 1
                if bool(done.all()):
                    break
                order = cache.compact(done)
                alive, on_device = alive[order], order.to(keys.device)
                keys, tokens, next_pos = keys[on_device], tokens[on_device], next_pos[on_device]
            mask = keys[:, None, None, : width + t + 1]
            logits = self._forward(tokens[:, None], next_pos[:, None], mask, cache, padded=padded)
            next_pos = next_pos + 1
        responses = [row[:n] for row, n in zip(tokens_out.tolist(), lengths.tolist(), strict=True)]
        logprobs = [row[:n] for row, n in zip(logp_out.tolist(), lengths.tolist(), strict=True)]
        return responses, logprobs, truncated.tolist()

    def load_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state_dict, strict=True)

    def release_memory(self) -> None:
        """Nothing to free: it decodes with the given model and frees its KV cache after
        every generate."""

    def rng_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_rng_state(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def close(self) -> None:
        """Nothing to release: the engine runs in this process on the caller's model."""
