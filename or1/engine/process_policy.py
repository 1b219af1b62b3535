"""The policy update computed data-parallel by single-thread CPU processes.

Each mini-batch is split into whole groups, balanced by tokens, one part per worker.
Every worker backwards its part's loss (normalized by the whole mini-batch's counts, so
the parts add up) into its own gradient buffers, which live in shared memory; this
process sums them into the parameters' gradients, clips and takes the AdamW step in
place on the shared parameters, which the workers (and the rollout workers) therefore
see at once. Compared with DDP there is no all-reduce and no second optimizer: a sum of
buffers the parent can already read. The optimizer and its state stay here, so
checkpoints are those of `LocalPolicy`.
"""

from __future__ import annotations

import pickle
from typing import Any

import torch
from transformers import PreTrainedModel

from or1.config import OptimConfig
from or1.engine.policy import BatchTotals, LocalPolicy, LossFn, RolloutBatch, add_stats
from or1.engine.workers import WorkerPool


def split_groups(batch: RolloutBatch, parts: int) -> list[torch.Tensor]:
    """Row indices of ``parts`` parts of ``batch``: whole groups, balanced by tokens.

    Largest group first onto the part with the fewest tokens so far (a group's rows stay
    together: its prompt is run once). Parts keep the rows' order; some may be empty.
    """
    lengths = batch.attention_mask.sum(-1).float()
    _, group = torch.unique(batch.group_ids, return_inverse=True)
    count = int(group.max()) + 1 if len(group) else 0
    tokens = torch.zeros(count).index_add_(0, group, lengths)
    load = [0.0] * parts
    owner = torch.empty(count, dtype=torch.long)
    for g in torch.sort(tokens, descending=True, stable=True).indices.tolist():
        part = min(range(parts), key=load.__getitem__)
        owner[g] = part
        load[part] += float(tokens[g])
    row_owner = owner[group] if count else torch.empty(0, dtype=torch.long)
    return [torch.nonzero(row_owner == p).flatten() for p in range(parts)]


def _trainable(model: PreTrainedModel) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


class _GradientWorker:
    """A worker's handler: ("grad", part, loss_fn, totals, temperature) -> loss stats
    (gradients land in the shared buffers); ("logprobs", part, temperature) -> [n, T]."""

    def __init__(
        self,
        model: PreTrainedModel,
        optim: OptimConfig,
        micro_batch_size: int,
        grads: list[torch.Tensor],
    ) -> None:
        self.policy = LocalPolicy(model, optim, micro_batch_size=micro_batch_size)
        self.grads = grads
        for param, grad in zip(_trainable(model), grads, strict=True):
            # backward adds into an existing .grad in place, so it stays this buffer
            param.grad = grad

    def __call__(self, command: str, *args: Any) -> Any:
        if command == "grad":
            part, loss_fn, totals, temperature = args
            torch._foreach_zero_(self.grads)
            self.policy.model.train()
            return self.policy.accumulate_gradients(part, loss_fn, totals, temperature)
        if command == "logprobs":
            part, temperature = args
            return self.policy.logprobs(part, temperature=temperature)
        raise ValueError(f"unknown command {command!r}")


class ProcessPolicy(LocalPolicy):
    """A `LocalPolicy` whose forward/backward passes run in ``processes`` single-thread
    worker processes (CPU only); the optimizer step runs here.

    Args:
        model: the policy model (CPU); its parameters move to shared memory in place.
        optim, micro_batch_size, keep_reference: as for `LocalPolicy` (micro-batches are
            per worker; reference log-probs, an ablation, are computed in this process).
        processes: worker processes (>= 2).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        optim: OptimConfig,
        *,
        processes: int,
        micro_batch_size: int = 64,
        keep_reference: bool = False,
    ) -> None:
        if processes < 2:
            raise ValueError(f"processes must be >= 2, got {processes}")
        super().__init__(
            model, optim, micro_batch_size=micro_batch_size, keep_reference=keep_reference
        )
        model.share_memory()
        self._params = _trainable(model)
        self._grads = [
            [torch.zeros_like(p).share_memory_() for p in self._params] for _ in range(processes)
        ]
        self.pool = WorkerPool(
            "update",
            _GradientWorker,
            [(model, optim, micro_batch_size, grads) for grads in self._grads],
            hint="rerun with train.update_processes=1 to update in this process and see the"
            " error directly.",
        )

    @property
    def processes(self) -> int:
        return len(self.pool)

    @torch.no_grad()
    def logprobs(
        self, batch: RolloutBatch, *, temperature: float = 1.0, reference: bool = False
    ) -> torch.Tensor:
        if reference:
            return super().logprobs(batch, temperature=temperature, reference=True)
        parts = split_groups(batch, self.processes)
        answers = self.pool.map(
            [("logprobs", batch.select(idx), temperature) if len(idx) else None for idx in parts]
        )
        out = torch.zeros(batch.response_mask.shape)
        for idx, logp in zip(parts, answers, strict=True):
            if logp is not None:
                out[idx] = logp
        return out

    def update(
        self,
        batch: RolloutBatch,
        loss_fn: LossFn,
        *,
        mini_batches: list[torch.Tensor],
        temperature: float = 1.0,
    ) -> list[dict[str, float]]:
        try:
            pickle.dumps(loss_fn)
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            raise TypeError(
                f"train.update_processes > 1 sends the loss function to worker processes, "
                f"but {loss_fn!r} cannot be pickled ({err}); use a module-level function "
                "or an instance of a module-level class (like or1.objective.MagicLoss)."
            ) from None
        results = []
        for rows in mini_batches:
            mini = batch.select(rows)
            totals = BatchTotals.of(mini)
            parts = split_groups(mini, self.processes)
            answers = self.pool.map(
                [
                    ("grad", mini.select(idx), loss_fn, totals, temperature) if len(idx) else None
                    for idx in parts
                ]
            )
            stats: dict[str, float] = {}
            for answer in answers:
                add_stats(stats, answer or {})
            self._sum_gradients([i for i, a in enumerate(answers) if a is not None])
            results.append({**stats, "grad_norm": self.optimizer_step()})
        return results

    def _sum_gradients(self, workers: list[int]) -> None:
        """Point the parameters' gradients at the first worker's buffers, plus the rest
        (the workers zero their buffers before their next backward)."""
        first, *rest = [self._grads[i] for i in workers]
        for grads in rest:
            torch._foreach_add_(first, grads)
        for param, grad in zip(self._params, first, strict=True):
            param.grad = grad

    def close(self) -> None:
        """Stop the workers (idempotent; also run at interpreter exit)."""
        self.pool.close()
