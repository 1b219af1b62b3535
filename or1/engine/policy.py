"""The trainable policy: forward passes, log-probabilities, and optimizer steps.

The engine knows nothing about the RL objective: ``update`` receives the loss function
from the trainer (verl's ``train_batch(data, loss_function)`` seam), so a variant of the
loss never touches this file, and this file never imports ``or1.algo``.

Mixed precision: the parameters (the masters) and the AdamW state stay in the model's
dtype (``model.master_dtype``, float32 by default); forward and backward run in
``compute_dtype`` (``model.dtype``: bf16 on a GPU) under ``torch.autocast``, and the
gradients land in the masters' dtype. A non-finite loss or gradient norm stops the
update with ``TrainingError`` before the optimizer step (nothing is written).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Protocol

import torch
from transformers import PreTrainedModel

from or1.config import OptimConfig
from or1.engine.forward import ResponseScorer
from or1.engine.lm_head import DEFAULT_CHUNK_TOKENS
from or1.engine.micro import plan_micro_batches, shared_prompts, trim_padding
from or1.errors import TrainingError
from or1.types import BatchTotals, LossFn, RolloutBatch, TokenScores


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


def return_cached_memory() -> None:
    """After an update, give the caching allocator's free blocks back to the GPU: a
    colocated vLLM that slept through the update (``rollout.vllm.sleep_level``) wakes
    into that memory, and it allocates outside this process's cache."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_finite(value: torch.Tensor, what: str, step: int) -> None:
    """Raise TrainingError when ``value`` (a loss or a gradient norm) is NaN or inf."""
    if not bool(torch.isfinite(value)):
        raise TrainingError(
            f"the {what} is {float(value)} in optimizer step {step} of this update; the run "
            "stops before the optimizer step, so the weights and the last checkpoint are intact.",
            hint="resume from the last checkpoint (or1 train --resume RUN) with a lower "
            "optim.lr, or model.dtype=float32 if bf16 overflowed.",
        )


class LocalPolicy:
    """A policy in this process (CPU or one GPU): AdamW, grad clipping, micro-batching.

    Args:
        model: the causal LM to train; its parameters are the master weights.
        optim: optimizer settings.
        micro_batch_size: sequences per forward/backward (gradients accumulate).
        micro_batch_tokens: also at most this many padded tokens per forward/backward
            (``or1.engine.micro``); None: rows only.
        keep_reference: keep a frozen copy of the initial weights (KL ablation).
        compute_dtype: dtype of forward/backward (autocast); None: the parameters'.
        logits_chunk_tokens: tokens per chunk of the LM head (None: [n, T, V] logits).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        optim: OptimConfig,
        *,
        micro_batch_size: int = 64,
        micro_batch_tokens: int | None = None,
        keep_reference: bool = False,
        compute_dtype: torch.dtype | None = None,
        logits_chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
    ) -> None:
        self.model = model
        self.micro_batch_size = micro_batch_size
        self.micro_batch_tokens = micro_batch_tokens
        self.grad_clip = optim.grad_clip
        self.optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=optim.lr,
            betas=optim.betas,
            weight_decay=optim.weight_decay,
        )
        self.scorer = ResponseScorer(model, chunk_tokens=logits_chunk_tokens)
        self.reference = None
        if keep_reference:
            frozen = copy.deepcopy(model).eval().requires_grad_(False)
            self.reference = ResponseScorer(frozen, chunk_tokens=logits_chunk_tokens)
        self.compute_dtype = compute_dtype
        # Run each group's shared prompt once (see shared_prompts); exact up to rounding.
        self.share_prompts = True

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.compute_dtype
        if dtype is None or dtype == next(self.model.parameters()).dtype:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _score(
        self, scorer: ResponseScorer, micro: RolloutBatch, temperature: float
    ) -> TokenScores:
        groups = shared_prompts(micro) if self.share_prompts else None
        with self._autocast():
            return scorer(
                micro.input_ids.to(self.device),
                micro.attention_mask.to(self.device),
                prompt_length=micro.prompt_length,
                temperature=temperature,
                groups=groups,
            )

    def _micro_batches(self, batch: RolloutBatch) -> Iterator[torch.Tensor]:
        yield from plan_micro_batches(
            batch,
            torch.arange(len(batch)),
            max_rows=self.micro_batch_size,
            max_tokens=self.micro_batch_tokens,
        )

    @torch.no_grad()
    def logprobs(
        self, batch: RolloutBatch, *, temperature: float = 1.0, reference: bool = False
    ) -> torch.Tensor:
        """[N, T] log-probabilities of the response tokens under the current weights."""
        scorer = self.reference if reference else self.scorer
        if scorer is None:
            raise ValueError("this policy keeps no reference model")
        out = torch.zeros(batch.response_mask.shape)
        for idx in self._micro_batches(batch):
            micro = trim_padding(batch.select(idx))
            logp = self._score(scorer, micro, temperature).logp.cpu()
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

        Raises:
            TrainingError: a non-finite loss or gradient norm (before the step).
        """
        self.model.train()
        results = []
        for step, rows in enumerate(mini_batches):
            mini = batch.select(rows)
            totals = BatchTotals.of(mini)
            sums: dict[str, float] = {}
            for idx in self._micro_batches(mini):
                micro = trim_padding(mini.select(idx))
                loss, stats = loss_fn(self._score(self.scorer, micro, temperature), micro, totals)
                check_finite(loss.detach(), "loss", step)
                loss.backward()
                weight = float(micro.response_mask.sum()) / max(totals.tokens, 1.0)
                add_stats(sums, {key: float(value) for key, value in stats.items()}, weight)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            if not bool(torch.isfinite(grad_norm)):
                self.optimizer.zero_grad(set_to_none=True)
                check_finite(grad_norm, "gradient norm", step)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            results.append({**sums, "grad_norm": float(grad_norm)})
        return_cached_memory()
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
