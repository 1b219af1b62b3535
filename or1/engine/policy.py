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
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _response_logits(
        self, model: PreTrainedModel, batch: RolloutBatch, temperature: float
    ) -> torch.Tensor:
        ids = batch.input_ids.to(self.device)
        mask = batch.attention_mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        p, width = batch.prompt_length, ids.shape[1]
        # Logits at column c predict the token at c + 1: only columns P-1 .. end-1 are
        # needed, so the LM head (and its backward) skips the prompt positions.
        keep = {"logits_to_keep": torch.arange(p - 1, width - 1, device=self.device)}
        if not self._keeps_logits:
            keep = {}
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **keep).logits
        if not keep:
            logits = logits[:, p - 1 : -1]
        if logits.dtype != torch.float32:
            logits = logits.float()
        # Like verl, the policy is scored at the sampling temperature (the paper samples
        # at 1.0, where this is a no-op and no copy is made).
        return logits / temperature if temperature != 1.0 else logits

    def _micro_batches(self, index: torch.Tensor, batch: RolloutBatch) -> Iterator[torch.Tensor]:
        """Split ``index`` into micro-batches of similar lengths (less padding to trim)."""
        if len(index) > self.micro_batch_size:
            lengths = batch.attention_mask[index].sum(-1)
            index = index[torch.sort(lengths, descending=True, stable=True).indices]
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
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * weight
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
