"""Ray plumbing: actor groups that fail fast, the cluster connection, bundle placement.

``WorkerGroup`` calls a method on every actor of a kind and waits for all of them; a
dead actor (``ray.exceptions.RayActorError``) stops the run with ``WorkerError`` and the
other actors are killed (they would wait in a collective). ``Placement`` reserves W
bundles (1 GPU each on GPUs, else CPUs) in one placement group; policy rank i and
rollout worker i share bundle i (colocated, as verl does: rollout and update alternate
in time, never overlap).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from or1.errors import ConfigError, Or1Error, WorkerError

RESUME_HINT = (
    "the run stopped; its last checkpoint is intact: continue with "
    "`or1 train --resume <run dir>`. The worker's own log is under "
    "/tmp/ray/session_latest/logs (worker-*.err)."
)
# Placement-group reservation timeout: a cluster that cannot fit the bundles never will.
PLACEMENT_TIMEOUT_S = 120


class WorkerGroup:
    """Actors of one kind; every call waits on all of them and fails fast on a death."""

    def __init__(self, kind: str, actors: list[Any]) -> None:
        self.kind, self.actors = kind, actors

    def __len__(self) -> int:
        return len(self.actors)

    def call(self, method: str, per_actor: Sequence[tuple[tuple, dict]] | None = None) -> list:
        """Call ``method`` on every actor (with per-actor args) and wait for all results."""
        per_actor = per_actor or [((), {})] * len(self.actors)
        refs = [
            getattr(actor, method).remote(*args, **kwargs)
            for actor, (args, kwargs) in zip(self.actors, per_actor, strict=True)
        ]
        return self.wait(refs, method)

    def call_all(self, method: str, *args: Any, **kwargs: Any) -> list:
        return self.call(method, [(args, kwargs)] * len(self.actors))

    def wait(
        self, refs: list[Any], what: str, on_ready: Callable[[int], None] | None = None
    ) -> list:
        """Results of ``refs`` in order. The first failure is raised at once (a rank that
        died leaves the others blocked in a collective: they are killed)."""
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            i = index[ready[0]]
            try:
                results[i] = ray.get(ready[0])
            except ray.exceptions.RayActorError as err:
                self.kill()
                raise WorkerError(
                    f"{self.kind} worker {i} of {len(self.actors)} died during {what} "
                    f"({type(err).__name__}: {_first_line(err)}).",
                    hint=RESUME_HINT,
                ) from None
            except ray.exceptions.RayTaskError as err:
                self.kill()
                if isinstance(err.cause, Or1Error):  # ours: its one-paragraph message
                    raise err.cause from None
                cause = err.as_instanceof_cause()
                raise cause from None
            if on_ready is not None:
                on_ready(i)
        return results

    def kill(self) -> None:
        """Kill every actor (idempotent: an actor already dead or killed is skipped)."""
        for actor in self.actors:
            # ValueError: not an actor handle of this session any more.
            with contextlib.suppress(ValueError):
                ray.kill(actor, no_restart=True)


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:200] if lines else "no detail"


def connect() -> None:
    """Join the Ray cluster at $RAY_ADDRESS (or a running local one), else start one."""
    if ray.is_initialized():
        return
    ray.init(
        address=os.environ.get("RAY_ADDRESS"),
        include_dashboard=False,
        logging_level=logging.WARNING,
    )


@dataclass
class Placement:
    """W reserved bundles (1 GPU each on GPUs) and what each holds."""

    group: PlacementGroup
    workers: int
    cpus: int  # per bundle
    use_gpu: bool

    @classmethod
    def reserve(cls, workers: int, *, use_gpu: bool) -> Placement:
        """Share the cluster's CPUs out over W bundles and wait until Ray places them."""
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 0)) // workers
        gpus = int(resources.get("GPU", 0))
        if cpus < 1 or (use_gpu and gpus < workers):
            raise ConfigError(
                f"distributed.workers={workers} needs {workers} bundles of 1 CPU"
                + (" and 1 GPU" if use_gpu else "")
                + f"; the Ray cluster has {resources.get('CPU', 0):g} CPUs, {gpus} GPUs.",
                hint="lower distributed.workers or add nodes to the Ray cluster.",
            )
        bundle = {"CPU": float(cpus), **({"GPU": 1.0} if use_gpu else {})}
        pg = placement_group([dict(bundle) for _ in range(workers)], strategy="PACK")
        try:
            ray.get(pg.ready(), timeout=PLACEMENT_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            remove_placement_group(pg)
            raise ConfigError(
                f"Ray could not place {workers} bundles of {bundle} in {PLACEMENT_TIMEOUT_S} s.",
                hint="check `ray status`: free resources, or lower distributed.workers.",
            ) from None
        return cls(pg, workers, cpus, use_gpu)

    def options(self, index: int) -> dict[str, Any]:
        """Actor options for bundle ``index``: the bundle holds the CPUs and the GPU; its
        policy rank and rollout worker (colocated, never busy at once) share them."""
        env = {k: v for k, v in os.environ.items() if k.startswith("OR1_")}
        return {
            "num_cpus": 0.01,
            "num_gpus": 0.5 if self.use_gpu else 0.0,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=self.group, placement_group_bundle_index=index % self.workers
            ),
            "runtime_env": {"env_vars": env},
            "max_restarts": 0,
        }
