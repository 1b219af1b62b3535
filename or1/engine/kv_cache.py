"""A preallocated KV cache for batched sampling, written in place (no per-step ``cat``).

transformers' ``DynamicCache`` grows every layer's K/V with ``torch.cat`` at each decode
step: O(N * L) bytes copied per token, O(N * L^2) per response, which was ~57% of the
CPU time of a tiny model's decode. ``SlotKVCache`` allocates [N, H, L_max, D] once per
generate call, writes each step's K/V into its slot and hands the model a view of the
filled prefix, so a step copies only the new token's K/V.

Rows that finish leave the batch by *swap-removal*: the last live rows are moved into
the holes, so a removal copies only the moved rows instead of the whole cache. The
caller keeps the row order (``compact`` returns it).

Before a cache is allocated, ``check_kv_cache_fits`` compares its size with the device's
free memory, so a configuration that cannot fit fails with one ConfigError naming the
settings to lower instead of an out-of-memory crash (or swapping) mid-rollout.

It implements the part of transformers' ``Cache`` interface that decoder-only models
call (``update``, ``get_seq_length``, ``get_mask_sizes``, ``batch_repeat_interleave``,
``batch_select_indices``), through transformers' own ``Cache`` / ``CacheLayerMixin``
classes, so any such model can use it; the attention mask is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from or1.errors import ConfigError

GIB = 2**30
# Settings that size the hf engine's KV cache (named in the error).
KV_SETTINGS_HINT = (
    "lower rollout.max_num_seqs (sequences decoded together), the stage's "
    "max_response_length or rollout.max_prompt_length, or use rollout.engine=vllm "
    "(paged KV cache); `or1 plan` prints the memory budget of a configuration."
)


def kv_cache_bytes(
    config: Any, *, rows: int, length: int, dtype: torch.dtype = torch.float32
) -> int:
    """Bytes of a full ``SlotKVCache``: rows x length x layers x 2 (K, V) x kv_heads x
    head_dim x bytes per element.

    Args:
        config: a transformers model config (num_hidden_layers, num_attention_heads,
            num_key_value_heads, head_dim or hidden_size / heads).
        rows: sequences decoded together; length: prompt + response tokens per row.
    """
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    per_token = config.num_hidden_layers * 2 * kv_heads * head_dim
    return rows * length * per_token * torch.empty((), dtype=dtype).element_size()


def free_memory_bytes(device: torch.device, meminfo: Path = Path("/proc/meminfo")) -> int:
    """Memory that can still be allocated on ``device``: CUDA ``mem_get_info``'s free
    bytes; on a CPU, the kernel's MemAvailable (free + reclaimable page cache)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"no MemAvailable in {meminfo}")


def check_kv_cache_fits(
    needed: int,
    device: torch.device,
    *,
    what: str,
    free_memory: Callable[[torch.device], int] = free_memory_bytes,
) -> None:
    """Raise ConfigError when ``needed`` bytes exceed the free memory of ``device``.

    Args:
        needed: bytes the cache will take (``kv_cache_bytes``).
        what: the cache's shape in words, for the message.
        free_memory: probe of the free bytes (tests pass a fake).
    """
    free = free_memory(device)
    if needed > free:
        raise ConfigError(
            f"the hf rollout engine's KV cache for {what} needs {needed / GIB:.2f} GiB, "
            f"more than the {free / GIB:.2f} GiB free on {device}.",
            hint=KV_SETTINGS_HINT,
        )


class SlotLayer(CacheLayerMixin):
    """One layer's K/V in buffers [N_max, H, L_max, D]; rows [0, rows), columns [0, length) live."""

    is_compileable = False
    is_sliding = False
    supports_early_init = False

    def __init__(self, max_rows: int, max_length: int) -> None:
        super().__init__()
        self.max_rows, self.max_length = max_rows, max_length
        self.rows = 0
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        _, heads, _, k_dim = key_states.shape
        shape = (self.max_rows, heads, self.max_length)
        self.keys = key_states.new_empty((*shape, k_dim))
        self.values = value_states.new_empty((*shape, value_states.shape[-1]))
        self.device = key_states.device
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write [n, H, q, D] at columns [length, length + q); return the live K/V views."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, _, q, _ = key_states.shape
        end = self.length + q
        if end > self.max_length or n > self.max_rows:
            raise ValueError(f"SlotKVCache full: {n} x {end} > {self.max_rows} x {self.max_length}")
        self.keys[:n, :, self.length : end] = key_states
        self.values[:n, :, self.length : end] = value_states
        self.rows, self.length = n, end
        return self.keys[:n, :, :end], self.values[:n, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.max_length

    def batch_repeat_interleave(self, repeats: int) -> None:
        if not self.is_initialized:
            return
        n, end = self.rows, self.length
        if n * repeats > self.max_rows:
            raise ValueError(f"SlotKVCache: {n} x {repeats} rows exceed {self.max_rows}")
        for buf in (self.keys, self.values):
            # Back to front, so no source row is overwritten before it is copied.
            for row in range(n - 1, -1, -1):
                buf[row * repeats : (row + 1) * repeats, :, :end] = buf[row : row + 1, :, :end]
        self.rows = n * repeats

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows ``indices`` (in that order) at the front; a gather of the live prefix."""
        if not self.is_initialized:
            return
        end = self.length
        for buf in (self.keys, self.values):
            buf[: len(indices), :, :end] = buf[indices, :, :end]
        self.rows = len(indices)

    def move_rows(self, src: torch.Tensor, dst: torch.Tensor, rows: int) -> None:
        """Copy rows ``src`` onto rows ``dst`` (disjoint), then keep the first ``rows``."""
        if self.is_initialized and src.numel():
            end = self.length
            for buf in (self.keys, self.values):
                buf[dst, :, :end] = buf[src, :, :end]
        self.rows = rows

    def reset(self) -> None:
        self.rows = self.length = 0


class SlotKVCache(Cache):
    """A ``Cache`` of ``SlotLayer``s for ``num_layers`` layers, ``max_rows`` x ``max_length``.

    Example:
        >>> cache = SlotKVCache(num_layers=2, max_rows=8, max_length=64)
        >>> # model(input_ids=..., cache=cache, use_cache=True, ...) fills it in place
    """

    def __init__(self, *, num_layers: int, max_rows: int, max_length: int) -> None:
        super().__init__(layers=[SlotLayer(max_rows, max_length) for _ in range(num_layers)])

    @property
    def rows(self) -> int:
        return self.layers[0].rows

    def compact(self, done: torch.Tensor) -> torch.Tensor:
        """Drop the rows where ``done`` [n] is True by swap-removal.

        Returns the new order: ``order[i]`` is the old index of the row now at ``i``.
        Only the live rows past the new end are copied, into the holes before it.
        """
        n = done.shape[0]
        keep = int(n - int(done.sum()))
        order = torch.arange(n)
        holes = done[:keep].nonzero().squeeze(-1)  # dead rows inside the kept range
        movers = (~done[keep:]).nonzero().squeeze(-1) + keep  # live rows past it
        order[holes] = movers
        for layer in self.layers:
            layer.move_rows(movers, holes, keep)
        return order[:keep]
