"""One rank of a sharded policy: torch.distributed + FSDP2 ``fully_shard`` (no Ray here).

Every rank holds 1/W of each parameter and of the AdamW state, in the master dtype
(``model.master_dtype``, fp32). Forward/backward run in the compute dtype under FSDP2's
``MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=float32)``: each layer's
shards are all-gathered in bf16 for its forward/backward, and its gradients are
reduce-scattered in fp32 onto the fp32 shards, where AdamW steps.

The forward is ``or1.engine.forward.ResponseScorer``, the same module the local policy
runs (no [n, T, V] logits); it is the FSDP2 root unit, each decoder layer a unit below
it, and an untied model's embeddings and LM head a unit each (``shard_model``).
``update`` runs this rank's shard of each mini-batch (see ``or1.distributed.sharding``),
in the micro-batches the driver planned (the same count on every rank: FSDP2 runs
collectives in every forward/backward), with the trainer's loss function and the
mini-batch's *global* totals; FSDP2 reduce-scatters the gradients with a *sum* (divide
factor 1: the per-rank losses are already normalized by the global totals, so their sum
is the single-process loss); the gradient norm is the global norm of the sharded DTensor
gradients; each rank steps its own AdamW shard. A non-finite global gradient norm stops
every rank alike (``TrainingError``) before the step.

gloo on CPU, NCCL on GPU. Ray (``or1.distributed.ray``) only places these objects in
processes and carries their arguments.
"""

from __future__ import annotations

import copy
import os
import signal
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import (
    FSDPModule,
    MixedPrecisionPolicy,
    fully_shard,
    register_fsdp_forward_method,
)
from torch.distributed.tensor import DTensor
from transformers import PreTrainedModel

from or1.checkpoint import first_non_finite, non_finite_error
from or1.config import OptimConfig
from or1.distributed.dcp import load_state, local_tensors, save_state, training_state
from or1.distributed.sharding import PolicyShard
from or1.engine.forward import ResponseScorer
from or1.engine.lm_head import DEFAULT_CHUNK_TOKENS, SCORES_METHOD, give_scores_method
from or1.engine.micro import trim_padding
from or1.engine.policy import check_finite, return_cached_memory
from or1.types import LossFn, RolloutBatch, TokenScores

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
# ``OR1_KILL_WORKER_AT_UPDATE=N``: the last rank SIGKILLs itself when its N-th update
# call starts (fault-injection hook of the failure tests, like OR1_KILL_AFTER_STEP).
KILL_ENV = "OR1_KILL_WORKER_AT_UPDATE"


def mixed_precision(master: torch.dtype, compute: torch.dtype) -> MixedPrecisionPolicy:
    """Compute in ``compute``; gradients reduced in fp32 onto the ``master`` shards."""
    if compute == master:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32)


def shard_model(scorer: ResponseScorer, mesh: Any, mp_policy: MixedPrecisionPolicy) -> None:
    """``fully_shard`` each decoder layer; an untied model's embeddings and LM head each as
    a unit of its own; then the root: the scorer, with the final norm (and a tied
    embedding/head matrix, which one unit must hold).

    The root unit stays gathered from its forward to the end of backward, so at Qwen's
    152K vocabulary an untied embedding and head in it would cost 2 x V x h x c (3.1 GB at
    32B in bf16) plus their gradients for the whole backward. As units they are gathered
    only while they compute: the embedding in its forward and backward, the head while it
    scores (``head_scores`` calls the head's ``SCORES_METHOD``, which FSDP2 hooks like a
    forward) and again in its backward."""
    model = scorer.model
    for layer in getattr(model.base_model, "layers", None) or []:
        fully_shard(layer, mesh=mesh, mp_policy=mp_policy)
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head is not None and head.weight is not embed.weight:
        fully_shard(embed, mesh=mesh, mp_policy=mp_policy)
        give_scores_method(head)
        fully_shard(head, mesh=mesh, mp_policy=mp_policy)
        register_fsdp_forward_method(head, SCORES_METHOD)
    fully_shard(scorer, mesh=mesh, mp_policy=mp_policy)
    for module in scorer.modules():
        if isinstance(module, FSDPModule):
            # Sum, not mean: the rank losses are normalized by global totals already.
            # Plain SUM collectives (gloo has no PREMUL_SUM).
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)


class ShardedPolicyWorker:
    """One rank. Construct on every rank, then ``setup`` on all of them together.

    Args:
        model: the full model (every rank starts from the same weights).
        optim: AdamW settings (as ``LocalPolicy``).
        keep_reference: keep a frozen, also sharded, copy of the start weights (KL ablation).
        threads: torch intra-op threads in this process (CPU).
        master_dtype: the dtype of the parameters and AdamW state (None: the model's).
        compute_dtype: the dtype of forward/backward (None: the master dtype).
        logits_chunk_tokens: tokens per chunk of the LM head (None: [n, T, V] logits).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        optim: OptimConfig,
        *,
        keep_reference: bool = False,
        threads: int | None = None,
        master_dtype: torch.dtype | None = None,
        compute_dtype: torch.dtype | None = None,
        logits_chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        if master_dtype is not None:
            model.to(master_dtype)
        self.model = model
        self.master_dtype = next(model.parameters()).dtype
        self.compute_dtype = compute_dtype or self.master_dtype
        self.optim_cfg = optim
        self.scorer = ResponseScorer(model, chunk_tokens=logits_chunk_tokens)
        self.reference = None
        if keep_reference:
            frozen = copy.deepcopy(model).requires_grad_(False)
            self.reference = ResponseScorer(frozen, chunk_tokens=logits_chunk_tokens)
        self.names = [name for name, _ in model.named_parameters()]
        self.updates = 0

    def fsdp_units(self) -> list[str]:
        """Module names of this rank's FSDP2 units ("" is the root), after ``setup``."""
        return [name for name, m in self.scorer.named_modules() if isinstance(m, FSDPModule)]

    @staticmethod
    def rendezvous() -> tuple[str, int]:
        """(address, free port) of this process's node, for rank 0 to host the group."""
        import socket

        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def setup(self, *, rank: int, world: int, address: str, port: int) -> None:
        """Join the process group, shard the model(s), build the sharded AdamW."""
        use_cuda = torch.cuda.is_available()
        self.device = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        dist.init_process_group(
            "nccl" if use_cuda else "gloo",
            init_method=f"tcp://{address}:{port}",
            rank=rank,
            world_size=world,
        )
        self.rank, self.world = rank, world
        mesh = init_device_mesh(self.device.type, (world,))
        mp_policy = mixed_precision(self.master_dtype, self.compute_dtype)
        self.scorer.to(self.device)
        shard_model(self.scorer, mesh, mp_policy)
        if self.reference is not None:
            self.reference.to(self.device).eval()
            shard_model(self.reference, mesh, mp_policy)
        o = self.optim_cfg
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay
        )

    def pid(self) -> int:
        return os.getpid()

    # ---- compute ---------------------------------------------------------------------
    def _score(
        self, scorer: ResponseScorer, micro: RolloutBatch, temperature: float
    ) -> TokenScores:
        return scorer(
            micro.input_ids.to(self.device),
            micro.attention_mask.to(self.device),
            prompt_length=micro.prompt_length,
            temperature=temperature,
        )

    @torch.no_grad()
    def logprobs(self, shard: PolicyShard, *, temperature: float, reference: bool) -> torch.Tensor:
        """[R, T] response log-probs of this rank's shard (padding rows included)."""
        scorer = self.reference if reference else self.scorer
        if scorer is None:
            raise ValueError("this policy keeps no reference model")
        scorer.eval()
        out = torch.zeros(shard.batch.response_mask.shape)
        for idx in shard.micro:
            micro = trim_padding(shard.batch.select(idx))
            logp = self._score(scorer, micro, temperature).logp.cpu()
            out[idx, : logp.shape[1]] = logp
        return out

    def update(
        self, shards: list[PolicyShard], loss_fn: LossFn, *, temperature: float
    ) -> list[dict[str, float]]:
        """One optimizer step per shard (one per mini-batch). Returns per-step partial stats
        for ``sharding.merge_stats``: ``tokens``, ``sum:<stat>`` (``max:<stat>`` for a
        ``*_max`` one), ``grad_norm``."""
        self.updates += 1
        self._fault_injection()
        self.scorer.train()
        stats = [self._step(k, shard, loss_fn, temperature) for k, shard in enumerate(shards)]
        return_cached_memory()  # for a colocated vLLM waking after the update
        return stats

    def _step(
        self, step: int, shard: PolicyShard, loss_fn: LossFn, temperature: float
    ) -> dict[str, float]:
        out: dict[str, float] = {"tokens": 0.0}
        for idx in shard.micro:
            micro = trim_padding(shard.batch.select(idx))
            loss, stats = loss_fn(self._score(self.scorer, micro, temperature), micro, shard.totals)
            # No per-rank check of the loss here: a rank that stopped alone would leave
            # the others waiting in a collective. A non-finite loss makes the global
            # gradient norm non-finite on every rank, and that is checked below.
            loss.backward()
            tokens = float(micro.response_mask.sum())
            if tokens == 0:  # padding only: no statistics (they would be 0/0)
                continue
            out["tokens"] += tokens
            for key, value in stats.items():
                if key.endswith("_max"):  # a maximum stays a maximum (as add_stats)
                    out[f"max:{key}"] = max(out.get(f"max:{key}", float(value)), float(value))
                else:
                    out[f"sum:{key}"] = out.get(f"sum:{key}", 0.0) + float(value) * tokens
        norm = self._clip_grad_norm(self.optim_cfg.grad_clip)
        if not bool(torch.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            check_finite(norm, "gradient norm", step)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        out["grad_norm"] = float(norm)
        return out

    def _clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Global L2 norm of the sharded gradients, then clip (as clip_grad_norm_)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if isinstance(norm, DTensor):  # a partial norm per shard -> the global one
            norm = norm.full_tensor()
        if bool(torch.isfinite(norm)):
            torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return norm

    def _fault_injection(self) -> None:
        if self.rank == self.world - 1 and os.environ.get(KILL_ENV) == str(self.updates):
            os.kill(os.getpid(), signal.SIGKILL)

    # ---- state -----------------------------------------------------------------------
    def full_state_dict(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """The full weights on CPU on rank 0 ({} elsewhere), floating-point tensors cast to
        ``dtype`` (None: as held); a collective: call on all."""
        state = get_model_state_dict(self.model, options=FULL)
        if self.rank != 0:
            return {}
        if dtype is None:
            return state
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}

    def load_full_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load full weights (every rank gets the same dict); a collective."""
        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.model, state, options=options)

    def optimizer_state(self) -> dict[str, Any]:
        """AdamW state in ``torch.optim`` layout (params by index, as ``LocalPolicy``
        saves it), so checkpoints are interchangeable across backends. Rank 0 only."""
        full = get_optimizer_state_dict(self.model, self.optimizer, options=FULL)
        if self.rank != 0:
            return {}
        index = {name: i for i, name in enumerate(self.names)}
        groups = [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]]
        state = {index[name]: value for name, value in full["state"].items()}
        return {"state": state, "param_groups": groups}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Inverse of ``optimizer_state`` (every rank gets the same dict); a collective."""
        groups = [
            {**g, "params": [self.names[i] for i in g["params"]]} for g in state["param_groups"]
        ]
        full = {
            "state": {self.names[int(i)]: v for i, v in state["state"].items()},
            "param_groups": groups,
        }
        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(self.model, self.optimizer, full, options=options)

    def save_sharded(self, path: str, *, step: int) -> None:
        """Write this rank's shard of the weights and AdamW state into ``path`` (DCP; a
        collective). NaN/inf on any rank: TrainingError on every rank, nothing written."""
        state = training_state(self.model, self.optimizer)
        bad = first_non_finite(local_tensors(state))
        flags = torch.tensor([0.0 if bad is None else 1.0])
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)  # every rank raises, or none does
        if flags.item() > 0:
            raise non_finite_error(bad or "(on another rank)", what="sharded state", step=step)
        save_state(state, Path(path))

    def load_sharded(self, path: str) -> None:
        """Load weights and AdamW state from ``path`` (any world size wrote it; DCP
        reshards by global offsets); a collective."""
        load_state(self.model, self.optimizer, Path(path))

    def shutdown(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
