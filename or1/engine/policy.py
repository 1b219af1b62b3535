"""The trainable policy: forward passes, log-probabilities, and optimizer steps.

The engine knows nothing about the RL objective: ``update`` receives the loss function
from the trainer (verl's ``train_batch(data, loss_function)`` seam), so a variant of the
loss never touches this file, and this file never imports ``or1.algo``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Protocol

import torch
from transformers import PreTrainedModel

from or1.config import OptimConfig


@dataclass
class RolloutBatch:
    """N sequences laid out as [left-padded prompt | right-padded response].

    Response token j of every row sits at column P + j, so the logits that predict it
    are at column P + j - 1. Per-sequence fields are [N]; per-token fields are [N, T].
    """

    input_ids: torch.Tensor  # [N, P+T] long
    attention_mask: torch.Tensor  # [N, P+T] long
    response_mask: torch.Tensor  # [N, T] float: 1 on tokens that enter the loss
    prompt_length: int  # P
    rewards: torch.Tensor  # [N]
    advantages: torch.Tensor  # [N]
    group_ids: torch.Tensor  # [N] long
    truncated: torch.Tensor  # [N] bool
    rollout_logp: torch.Tensor  # [N, T] sampling log-probs (0 on padding)
    old_logp: torch.Tensor | None = None  # [N, T] recomputed when N_SGD > 1
    ref_logp: torch.Tensor | None = None  # [N, T] reference policy, KL ablation only

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def response_ids(self) -> torch.Tensor:  # [N, T]
        return self.input_ids[:, self.prompt_length :]

    def select(self, index: torch.Tensor) -> RolloutBatch:
        """The rows ``index`` (a [n] long tensor), every per-row field sliced alike."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = value[index] if isinstance(value, torch.Tensor) else value
        return RolloutBatch(**values)


@dataclass(frozen=True)
class BatchTotals:
    """Counts over the whole mini-batch, so micro-batch losses add up to its loss."""

    tokens: float  # response tokens in the loss
    sequences: int  # rows with at least one response token in the loss

    @classmethod
    def of(cls, batch: RolloutBatch) -> BatchTotals:
        per_row = batch.response_mask.sum(-1)
        return cls(float(per_row.sum()), int((per_row > 0).sum()))


LossFn = Callable[
    [torch.Tensor, torch.Tensor, RolloutBatch, BatchTotals],
    tuple[torch.Tensor, dict[str, torch.Tensor]],
]
"""loss_fn(logp [n,T], logits [n,T,V], micro_batch, totals) -> (loss, stats)."""


class Policy(Protocol):
    """What the trainer needs from a trainable policy (local or sharded over workers)."""

    def logprobs(
        self, batch: RolloutBatch, *, temperature: float = 1.0, reference: bool = False
    ) -> torch.Tensor: ...

    def update(
        self,
        batch: RolloutBatch,
        loss_fn: LossFn,
        *,
        mini_batches: list[torch.Tensor],
        temperature: float = 1.0,
    ) -> list[dict[str, float]]: ...

    def export_model(self) -> PreTrainedModel:
        """A model holding the full current weights (gathered if sharded), for saving."""
        ...

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None: ...

    def optimizer_state(self) -> dict: ...

    def load_optimizer_state(self, state: dict) -> None: ...


def add_stats(total: dict[str, float], stats: dict[str, float], weight: float = 1.0) -> None:
    """Fold a part's loss statistics into ``total`` in place: a ``*_max`` statistic by
    max, any other as a ``weight``-ed sum (weights = the parts' shares of the tokens)."""
    for key, value in stats.items():
        if key.endswith("_max"):
            total[key] = max(total.get(key, value), value)
        else:
            total[key] = total.get(key, 0.0) + value * weight


def gather_logprobs(logits: torch.Tensor, ids: torch.Tensor, *, chunk: int = 4096) -> torch.Tensor:
    """log softmax(logits)[ids], computed by row chunks to bound memory.

    Args:
        logits: [N, T, V]; ids: [N, T]. Returns [N, T].
    """
    flat, flat_ids = logits.reshape(-1, logits.shape[-1]), ids.reshape(-1)
    parts = []
    for start in range(0, flat.shape[0], chunk):
        rows = flat[start : start + chunk].float()
        picked = rows.gather(-1, flat_ids[start : start + chunk, None]).squeeze(-1)
        parts.append(picked - torch.logsumexp(rows, dim=-1))
    return torch.cat(parts).view(ids.shape)


def trim_padding(batch: RolloutBatch) -> RolloutBatch:
    """The batch without the columns that are padding in every row.

    Left: prompt columns before the longest prompt; right: response columns after the
    longest response. Per-token fields [N, T] are cut to the kept response columns.
    """
    attn = batch.attention_mask
    p = batch.prompt_length
    real = attn.bool().any(0)
    first = int(real[:p].long().argmax()) if bool(real[:p].any()) else p - 1
    first = min(first, p - 1)  # keep column P-1: its logits predict response token 0
    tail = real[p:].nonzero()
    t = int(tail[-1]) + 1 if len(tail) else 1
    if first == 0 and t == attn.shape[1] - p:
        return batch
    values = {}
    for f in fields(batch):
        value = getattr(batch, f.name)
        if f.name in ("input_ids", "attention_mask"):
            value = value[:, first : p + t]
        elif isinstance(value, torch.Tensor) and value.dim() == 2:
            value = value[:, :t]
        values[f.name] = value
    values["prompt_length"] = p - first
    return RolloutBatch(**values)


def _checkpointing(model: PreTrainedModel) -> bool:
    """Activation checkpointing on (it drops the KV cache the shared-prompt path needs)."""
    name = "is_activation_checkpointing"  # transformers >= 5.2x; older: is_gradient_...
    if not hasattr(type(model), name):
        name = "is_gradient_checkpointing"
    return bool(getattr(model, name, False))


def shared_prompts(batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(a row of each group [B], each row's group [n]) when rows share prompts by group.

    None when no group has two rows here or when some group's rows differ in their
    prompt (then the prompt cannot be run once for the group).
    """
    _, group = torch.unique(batch.group_ids, return_inverse=True)
    count = int(group.max()) + 1 if len(group) else 0
    if count == len(batch):
        return None
    rows = torch.arange(len(batch))
    first = torch.full((count,), len(batch)).scatter_reduce(0, group, rows, "amin")
    p = batch.prompt_length
    for field in (batch.input_ids, batch.attention_mask):
        if not torch.equal(field[:, :p], field[first, :p][group]):
            return None
    return first, group


class LocalPolicy:
    """A policy in this process (CPU or one GPU): AdamW, grad clipping, micro-batching.

    Args:
        model: the causal LM to train.
        optim: optimizer settings.
        micro_batch_size: sequences per forward/backward (gradients accumulate).
        keep_reference: keep a frozen copy of the initial weights (KL ablation).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        optim: OptimConfig,
        *,
        micro_batch_size: int = 64,
        keep_reference: bool = False,
    ) -> None:
        self.model = model
        self.micro_batch_size = micro_batch_size
        self.grad_clip = optim.grad_clip
        self.optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=optim.lr,
            betas=optim.betas,
            weight_decay=optim.weight_decay,
        )
        self.reference = (
            copy.deepcopy(model).eval().requires_grad_(False) if keep_reference else None
        )
        params = inspect.signature(model.forward).parameters
        self._keeps_logits = "logits_to_keep" in params
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        # Run each group's shared prompt once (see shared_prompts); exact up to rounding.
        self.share_prompts = self._keeps_logits

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _response_logits(
        self, model: PreTrainedModel, batch: RolloutBatch, temperature: float
    ) -> torch.Tensor:
        """[n, T, V] logits that score the response tokens (float32, at ``temperature``)."""
        groups = shared_prompts(batch) if self.share_prompts else None
        if groups is not None and not _checkpointing(model):
            logits = self._shared_prompt_logits(model, batch, *groups)
        else:
            logits = self._full_logits(model, batch)
        if logits.dtype != torch.float32:
            logits = logits.float()
        # Like verl, the policy is scored at the sampling temperature (the paper samples
        # at 1.0, where this is a no-op and no copy is made).
        return logits / temperature if temperature != 1.0 else logits

    def _full_logits(self, model: PreTrainedModel, batch: RolloutBatch) -> torch.Tensor:
        ids = batch.input_ids.to(self.device)
        mask = batch.attention_mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        p, width = batch.prompt_length, ids.shape[1]
        # Logits at column c predict the token at c + 1: only columns P-1 .. end-1 are
        # needed, so the LM head (and its backward) skips the prompt positions.
        if self._keeps_logits:
            keep = torch.arange(p - 1, width - 1, device=self.device)
            return model(
                input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
            ).logits
        return model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[
            :, p - 1 : -1
        ]

    def _shared_prompt_logits(
        self, model: PreTrainedModel, batch: RolloutBatch, first: torch.Tensor, group: torch.Tensor
    ) -> torch.Tensor:
        """The same logits, with each group's prompt run once (autograd flows through the
        shared prompt K/V into every response of the group).

        Args:
            first: [B] a row of each group; group: [n] the group (index into first) of each row.
        """
        p, t = batch.prompt_length, batch.input_ids.shape[1] - batch.prompt_length
        ids, mask = batch.input_ids.to(self.device), batch.attention_mask.to(self.device)
        first, group = first.to(self.device), group.to(self.device)
        prompt_mask = mask[first, :p]
        prompt_pos = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=ids[first, :p],
            attention_mask=prompt_mask,
            position_ids=prompt_pos,
            use_cache=True,
            logits_to_keep=1,
        )
        head = out.logits[:, -1:][group]  # [n, 1, V]: predicts response token 0
        if t == 1:
            return head
        cache = getattr(out, "cache", None) or out.past_key_values
        cache.batch_select_indices(group)  # differentiable: each row reads its group's K/V
        # Response token j sits at position len(prompt) + j, as in the full forward.
        steps = torch.arange(1, t, device=self.device)
        rest = model(
            input_ids=ids[:, p : p + t - 1],
            attention_mask=torch.cat([prompt_mask[group], mask[:, p : p + t - 1]], dim=1),
            position_ids=prompt_pos[group, -1:] + steps,
            **{self._cache_kw: cache},
            use_cache=True,
        ).logits
        return torch.cat([head, rest], dim=1)

    def _micro_batches(self, index: torch.Tensor, batch: RolloutBatch) -> Iterator[torch.Tensor]:
        """Split ``index`` into micro-batches; groups stay together (their prompt is run
        once) and are ordered by their longest row (less padding to trim)."""
        if len(index) > self.micro_batch_size:
            lengths = batch.attention_mask[index].sum(-1).float()
            _, group = torch.unique(batch.group_ids[index], return_inverse=True)
            longest = torch.zeros(int(group.max()) + 1).scatter_reduce(0, group, lengths, "amax")
            index = index[torch.sort(group, stable=True).indices]
            group = group[torch.sort(group, stable=True).indices]
            index = index[torch.sort(longest[group], descending=True, stable=True).indices]
        yield from index.split(self.micro_batch_size)

    @torch.no_grad()
    def logprobs(
        self, batch: RolloutBatch, *, temperature: float = 1.0, reference: bool = False
    ) -> torch.Tensor:
        """[N, T] log-probabilities of the response tokens under the current weights."""
        model = self.reference if reference else self.model
        if model is None:
            raise ValueError("this policy keeps no reference model")
        out = torch.zeros(batch.response_mask.shape)
        for idx in self._micro_batches(torch.arange(len(batch)), batch):
            micro = trim_padding(batch.select(idx))
            logits = self._response_logits(model, micro, temperature)
            logp = gather_logprobs(logits, micro.response_ids.to(self.device)).cpu()
            out[idx, : logp.shape[1]] = logp
        return out

    def update(
        self,
        batch: RolloutBatch,
        loss_fn: LossFn,
        *,
        mini_batches: list[torch.Tensor],
        temperature: float = 1.0,
    ) -> list[dict[str, float]]:
        """One optimizer step per entry of ``mini_batches`` (row indices into ``batch``).

        Returns one dict of statistics per optimizer step (loss stats averaged over
        micro-batches by token count, plus ``grad_norm``).
        """
        self.model.train()
        results = []
        for rows in mini_batches:
            mini = batch.select(rows)
            totals = BatchTotals.of(mini)
            sums: dict[str, float] = {}
            for idx in self._micro_batches(torch.arange(len(mini)), mini):
                micro = trim_padding(mini.select(idx))
                logits = self._response_logits(self.model, micro, temperature)
                logp = gather_logprobs(logits, micro.response_ids.to(self.device))
                loss, stats = loss_fn(logp, logits, micro, totals)
                loss.backward()
                weight = float(micro.response_mask.sum()) / max(totals.tokens, 1.0)
                add_stats(sums, {key: float(value) for key, value in stats.items()}, weight)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            results.append({**sums, "grad_norm": float(grad_norm)})
        return results

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def export_model(self) -> PreTrainedModel:
        return self.model

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state_dict)

    def optimizer_state(self) -> dict:
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
