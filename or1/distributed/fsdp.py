"""One rank of a sharded policy: torch.distributed + FSDP2 ``fully_shard`` (no Ray here).

Every rank holds 1/W of each parameter and of the AdamW state. ``update`` runs this
rank's shard of each mini-batch (see ``or1.distributed.sharding``): forward/backward with
the trainer's loss function and the mini-batch's *global* totals; FSDP2 reduce-scatters
the gradients with a *sum* (divide factor 1: the per-rank losses are already normalized
by the global totals, so their sum is the single-process loss); the gradient norm is the
global norm of the sharded DTensor gradients; each rank steps its own AdamW shard.

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
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor
from transformers import PreTrainedModel

from or1.checkpoint import first_non_finite, non_finite_error
from or1.config import OptimConfig
from or1.distributed.dcp import load_state, local_tensors, save_state, training_state
from or1.distributed.sharding import PolicyShard
from or1.engine.policy import LossFn, RolloutBatch, gather_logprobs, trim_padding

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
# ``OR1_KILL_WORKER_AT_UPDATE=N``: the last rank SIGKILLs itself when its N-th update
# call starts (fault-injection hook of the failure tests, like OR1_KILL_AFTER_STEP).
KILL_ENV = "OR1_KILL_WORKER_AT_UPDATE"


def response_logits(
    model: torch.nn.Module, batch: RolloutBatch, temperature: float, device: torch.device
) -> torch.Tensor:
    """[n, T] -> [n, T, V] logits that predict the response tokens, at the temperature.

    The computation of ``LocalPolicy._response_logits`` (the LM head only on the
    response positions); test_ray checks that both policies agree.
    """
    ids = batch.input_ids.to(device)
    mask = batch.attention_mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    p, width = batch.prompt_length, ids.shape[1]
    keep = torch.arange(p - 1, width - 1, device=device)
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep
    ).logits.float()
    return logits / temperature if temperature != 1.0 else logits


def micro_batches(batch: RolloutBatch, n_micro: int) -> list[torch.Tensor]:
    """Exactly ``n_micro`` row groups of similar lengths (less padding to trim)."""
    order = torch.sort(batch.attention_mask.sum(-1), descending=True, stable=True).indices
    return list(order.tensor_split(n_micro))


def shard_model(model: torch.nn.Module, mesh: Any) -> None:
    """``fully_shard`` each decoder layer, then the root (embeddings, norm, tied head)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    for layer in layers or []:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for module in model.modules():
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
        dtype: the dtype to train in (None: keep the model's).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        optim: OptimConfig,
        *,
        keep_reference: bool = False,
        threads: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        if dtype is not None:
            model.to(dtype)
        self.model = model
        self.optim_cfg = optim
        self.reference = copy.deepcopy(model).requires_grad_(False) if keep_reference else None
        self.names = [name for name, _ in model.named_parameters()]
        self.updates = 0

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
        self.model.to(self.device)
        shard_model(self.model, mesh)
        if self.reference is not None:
            self.reference.to(self.device).eval()
            shard_model(self.reference, mesh)
        o = self.optim_cfg
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay
        )

    def pid(self) -> int:
        return os.getpid()

    # ---- compute ---------------------------------------------------------------------
    @torch.no_grad()
    def logprobs(self, shard: PolicyShard, *, temperature: float, reference: bool) -> torch.Tensor:
        """[R, T] response log-probs of this rank's shard (padding rows included)."""
        model = self.reference if reference else self.model
        if model is None:
            raise ValueError("this policy keeps no reference model")
        model.eval()
        out = torch.zeros(shard.batch.response_mask.shape)
        for idx in micro_batches(shard.batch, shard.n_micro):
            micro = trim_padding(shard.batch.select(idx))
            logits = response_logits(model, micro, temperature, self.device)
            logp = gather_logprobs(logits, micro.response_ids.to(self.device)).cpu()
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
        self.model.train()
        return [self._step(shard, loss_fn, temperature) for shard in shards]

    def _step(self, shard: PolicyShard, loss_fn: LossFn, temperature: float) -> dict[str, float]:
        out: dict[str, float] = {"tokens": 0.0}
        for idx in micro_batches(shard.batch, shard.n_micro):
            micro = trim_padding(shard.batch.select(idx))
            logits = response_logits(self.model, micro, temperature, self.device)
            logp = gather_logprobs(logits, micro.response_ids.to(self.device))
            loss, stats = loss_fn(logp, logits, micro, shard.totals)
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
        out["grad_norm"] = self._clip_grad_norm(self.optim_cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return out

    def _clip_grad_norm(self, max_norm: float) -> float:
        """Global L2 norm of the sharded gradients, then clip (as clip_grad_norm_)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if isinstance(norm, DTensor):  # a partial norm per shard -> the global one
            norm = norm.full_tensor()
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return float(norm)

    def _fault_injection(self) -> None:
        if self.rank == self.world - 1 and os.environ.get(KILL_ENV) == str(self.updates):
            os.kill(os.getpid(), signal.SIGKILL)

    # ---- state -----------------------------------------------------------------------
    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The full weights on CPU on rank 0 ({} elsewhere); a collective: call on all."""
        state = get_model_state_dict(self.model, options=FULL)
        return state if self.rank == 0 else {}

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
