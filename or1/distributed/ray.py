"""Ray-backed engines: a policy sharded over W FSDP2 ranks and R rollout workers.

The controller (``or1.trainer``) stays one process and sees the same ``Policy`` and
``RolloutEngine`` protocols as with the local engines. Here:

- a placement group of W bundles (``or1.distributed.actors``) places the actors;
  policy rank i and rollout worker i share bundle i (colocated, as verl does: rollout
  and update alternate in time, never overlap);
- ``RayPolicy`` splits each mini-batch's rows over the ranks (``sharding.shard_rows``;
  loss totals are global) and merges their statistics by token weight;
- ``RayRollout`` splits prompts over the rollout workers by whole groups;
- ``sync_weights`` gathers the full state dict on rank 0 once
  (``get_model_state_dict(full_state_dict=True, cpu_offload=True)``), keeps it in the Ray
  object store, and every rollout worker (and the controller's copy of the model, which
  checkpoints are written from) loads it from there;
- a checkpoint's training state is written by every rank, its own shard of the weights
  and the AdamW state (``save_sharded``, torch.distributed.checkpoint: nothing gathered);
  it loads into any number of ranks (DCP reshards) or into a local policy.

A dead actor (``ray.exceptions.RayActorError``) stops the run with ``WorkerError``: the
other ranks are killed (they would wait in a collective), the last checkpoint is intact,
and ``or1 train --resume`` continues. No RPC or collective is home-made: Ray carries
calls and objects, torch.distributed does the collectives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ray
import torch
from ray.util.placement_group import remove_placement_group
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from or1.config import Config, OptimConfig
from or1.distributed.actors import Placement, WorkerGroup, connect
from or1.distributed.fsdp import ShardedPolicyWorker
from or1.distributed.rollout_worker import RolloutWorker
from or1.distributed.sharding import PolicyShard, merge_rows, merge_stats, shard_rows
from or1.engine.factory import Engines, RolloutSpec, rollout_spec
from or1.engine.precision import master_dtype, resolve_dtype
from or1.engine.rollout import Rollouts, SamplingParams, merge_rollouts, split_prompts
from or1.errors import ConfigError
from or1.types import LossFn, RolloutBatch

log = logging.getLogger("or1.distributed")


class RayPolicy:
    """``Policy`` over W ``ShardedPolicyWorker`` ranks (FSDP2)."""

    def __init__(
        self,
        group: WorkerGroup,
        model: PreTrainedModel,
        *,
        micro_batch_size: int,
        micro_batch_tokens: int | None = None,
    ) -> None:
        self.group, self.model, self.micro_batch_size = group, model, micro_batch_size
        self.micro_batch_tokens = micro_batch_tokens
        self._current = True  # is self.model (the controller's copy) up to date?

    @property
    def world(self) -> int:
        return len(self.group)

    def _shards(self, batch: RolloutBatch, rows: torch.Tensor) -> list[PolicyShard]:
        return shard_rows(
            batch,
            rows,
            world=self.world,
            micro_batch_size=self.micro_batch_size,
            micro_batch_tokens=self.micro_batch_tokens,
        )

    def logprobs(
        self, batch: RolloutBatch, *, temperature: float = 1.0, reference: bool = False
    ) -> torch.Tensor:
        shards = self._shards(batch, torch.arange(len(batch)))
        args = [((s,), {"temperature": temperature, "reference": reference}) for s in shards]
        return merge_rows(self.group.call("logprobs", args), shards)

    def update(
        self,
        batch: RolloutBatch,
        loss_fn: LossFn,
        *,
        mini_batches: list[torch.Tensor],
        temperature: float = 1.0,
    ) -> list[dict[str, float]]:
        plans = [self._shards(batch, rows) for rows in mini_batches]  # [steps][ranks]
        loss_ref = ray.put(loss_fn)  # shipped once (cloudpickle) to every rank
        args = [
            (([plan[rank] for plan in plans], loss_ref), {"temperature": temperature})
            for rank in range(self.world)
        ]
        per_rank = self.group.call("update", args)  # [ranks][steps]
        self._current = False
        return [merge_stats([steps[k] for steps in per_rank]) for k in range(len(plans))]

    def full_state_ref(self, dtype: torch.dtype | None = None) -> Any:
        """The full weights as one object in the Ray object store (rank 0's result),
        floating-point tensors cast to ``dtype`` (None: the master dtype)."""
        refs = [a.full_state_dict.remote(dtype) for a in self.group.actors]
        self.group.wait(refs, "gathering the weights")
        return refs[0]

    def refresh_model(self, state_ref: Any) -> None:
        self.model.load_state_dict(ray.get(state_ref))
        self._current = True

    def export_model(self) -> PreTrainedModel:
        if not self._current:
            self.refresh_model(self.full_state_ref())
        return self.model

    def load_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        ref = ray.put(dict(state_dict))
        self.group.call_all("load_full_state_dict", ref)
        self.model.load_state_dict(state_dict)
        self._current = True

    def close(self) -> None:
        """Kill the policy ranks (their process group and memory go with them);
        idempotent. The placement group is released by the rollout engine's close."""
        self.group.kill()

    def optimizer_state(self) -> dict:
        return self.group.call_all("optimizer_state")[0]

    def load_optimizer_state(self, state: dict) -> None:
        self.group.call_all("load_optimizer_state", ray.put(state))

    def save_sharded(self, path: Path, *, step: int) -> None:
        """Every rank writes its own shard of weights and AdamW state (no gathering);
        ``path`` must be on storage all ranks reach (``or1.checkpoint.ShardedState``)."""
        self.group.call_all("save_sharded", str(path), step=step)

    def load_sharded(self, path: Path) -> None:
        self.group.call_all("load_sharded", str(path))
        self._current = False  # the controller's copy is refreshed from the ranks


class RayRollout:
    """``RolloutEngine`` over R rollout workers; prompts split by whole groups."""

    def __init__(self, group: WorkerGroup, placement: Placement | None = None) -> None:
        self.group = group
        self.placement = placement  # released by close() when this engine owns it

    def generate(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        progress: Callable[[int], None] | None = None,
    ) -> Rollouts:
        ranges = split_prompts(len(prompts), len(self.group))
        actors = self.group.actors[: len(ranges)]
        refs = [
            a.generate.remote(prompts[s:e], params)
            for a, (s, e) in zip(actors, ranges, strict=True)
        ]

        def advance(i: int) -> None:
            if progress is not None:
                progress(ranges[i][1] - ranges[i][0])

        parts = self.group.wait(refs, "generation", on_ready=advance)
        return merge_rollouts(parts, [s for s, _ in ranges])

    def load_weights(self, state_dict: Mapping[str, torch.Tensor] | Any) -> None:
        """Load new weights: a state dict, or an object-store reference to one."""
        ref = state_dict if isinstance(state_dict, ray.ObjectRef) else ray.put(dict(state_dict))
        self.group.call_all("load_weights", ref)

    def release_memory(self) -> None:
        """Every rollout worker frees what its engine holds (vLLM's sleep mode)."""
        self.group.call_all("release_memory")

    def rng_state(self) -> dict[str, Any]:
        states = self.group.call_all("rng_state")
        # One worker: the same layout as a local engine, so checkpoints move across backends.
        return states[0] if len(states) == 1 else {"workers": states}

    def set_rng_state(self, state: Mapping[str, Any]) -> None:
        states = list(state["workers"]) if "workers" in state else [state]
        if len(states) != len(self.group):
            log.warning(
                "checkpoint has sampler states of %d rollout workers, this run has %d: "
                "sampling continues from fresh seeds where they differ",
                len(states),
                len(self.group),
            )
        args = [((s,), {}) for s in states[: len(self.group)]]
        self.group.call("set_rng_state", args + [(({},), {})] * (len(self.group) - len(args)))

    def close(self) -> None:
        """Kill the rollout actors and release the placement group (its bundles: GPUs,
        CPUs), so a process that trains, closes and goes on (a study, a sweep, a notebook)
        gets them back; idempotent."""
        self.group.kill()
        if self.placement is not None:
            remove_placement_group(self.placement.group)
            self.placement = None


def start_policy(
    placement: Placement,
    model: PreTrainedModel,
    optim: OptimConfig,
    *,
    micro_batch_size: int,
    micro_batch_tokens: int | None = None,
    model_ref: Any = None,
    **worker_options: Any,
) -> RayPolicy:
    """W FSDP2 ranks, one per bundle, in one torch.distributed group.

    ``worker_options`` go to every ``ShardedPolicyWorker`` (keep_reference, threads,
    master_dtype, compute_dtype, logits_chunk_tokens).
    """
    model_ref = model_ref if model_ref is not None else ray.put(model)
    cls = ray.remote(ShardedPolicyWorker)
    actors = [
        cls.options(**placement.options(i)).remote(model_ref, optim, **worker_options)
        for i in range(placement.workers)
    ]
    group = WorkerGroup("policy", actors)
    address, port = group.wait([actors[0].rendezvous.remote()], "start-up")[0]
    world = placement.workers
    group.call(
        "setup",
        [((), {"rank": r, "world": world, "address": address, "port": port}) for r in range(world)],
    )
    return RayPolicy(
        group, model, micro_batch_size=micro_batch_size, micro_batch_tokens=micro_batch_tokens
    )


def start_rollout(
    placement: Placement,
    model_ref: Any,
    spec: RolloutSpec,
    *,
    workers: int,
    threads: int | None = None,
    dtype: torch.dtype | None = None,
    owns_placement: bool = False,
) -> RayRollout:
    """R rollout workers; worker j shares bundle j mod W with policy rank j mod W.
    With ``owns_placement`` the engine's ``close()`` also removes the placement group."""
    if placement.use_gpu and workers > placement.workers:
        raise ConfigError(
            f"distributed.rollout_workers={workers} > distributed.workers="
            f"{placement.workers} on GPUs: each rollout worker shares a policy rank's GPU.",
            hint="set distributed.rollout_workers <= distributed.workers.",
        )
    tensor_parallel = int(spec.options.get("tensor_parallel_size", 1))
    if tensor_parallel > 1:
        raise ConfigError(
            f"rollout.vllm.tensor_parallel_size={tensor_parallel} with "
            "distributed.backend=ray: each vLLM engine shares one GPU with a policy rank.",
            hint="use rollout.vllm.tensor_parallel_size=1, or distributed.backend=local to let "
            "one vLLM engine span several GPUs.",
        )
    cls = ray.remote(RolloutWorker)
    actors = [
        cls.options(**placement.options(j)).remote(
            model_ref, spec, worker_index=j, threads=threads, dtype=dtype
        )
        for j in range(workers)
    ]
    group = WorkerGroup("rollout", actors)
    group.call_all("ready")
    return RayRollout(group, placement if owns_placement else None)


def make_ray_engines(
    cfg: Config, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> Engines:
    """The engines of ``distributed.backend=ray``: the policy group, the rollout group,
    and the weight sync between them."""
    if cfg.rollout.hf.processes > 1:
        raise ConfigError(
            "rollout.hf.processes > 1 is for the local backend; with Ray, set "
            "distributed.rollout_workers.",
            hint="drop rollout.hf.processes or use distributed.backend=local.",
        )
    spec = rollout_spec(cfg, model, tokenizer)
    connect()
    use_gpu = cfg.model.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
    placement = Placement.reserve(cfg.distributed.workers, use_gpu=use_gpu)
    threads = cfg.train.threads or placement.cpus
    compute = resolve_dtype(cfg.model, torch.device("cuda" if use_gpu else "cpu"))
    model.to("cpu")  # the controller's copy: checkpoints only
    model_ref = ray.put(model)  # one copy in the object store for every actor
    policy = start_policy(
        placement,
        model,
        cfg.optim,
        micro_batch_size=cfg.train.micro_batch_size,
        micro_batch_tokens=cfg.train.micro_batch_tokens,
        model_ref=model_ref,
        keep_reference=cfg.algo.kl_beta > 0,
        threads=threads,
        master_dtype=master_dtype(cfg.model),
        compute_dtype=compute,
        logits_chunk_tokens=cfg.train.logits_chunk_tokens,
    )
    rollout = start_rollout(
        placement,
        model_ref,
        spec,
        workers=cfg.distributed.rollout_workers or cfg.distributed.workers,
        threads=threads,
        dtype=compute,
        owns_placement=True,
    )

    def sync_weights() -> None:
        # Gathered once on rank 0 in the rollout workers' dtype (bf16 on GPUs: half the
        # bytes of the fp32 masters through the object store); the controller's fp32
        # copy is refreshed only when a checkpoint or an export asks (export_model).
        rollout.load_weights(policy.full_state_ref(dtype=compute))

    return Engines(policy, rollout, sync_weights)
